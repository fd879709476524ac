/**
 * What an item without a key on this device says (issue 14): its own module, so that cables and documents can say it
 * without importing the key-forwarding code that imports them.
 */
import { dominates, parseLabel } from "@valise/core";
import type { ServerUser } from "./transport.js";

const within = (label: string, cap: string) => {
  try {
    return dominates(parseLabel(cap), parseLabel(label));
  } catch {
    return false;
  }
};

/**
 * Why this device has no key for an item, and who can still send it (issue 14: "yet" only while someone can).
 * `holders` are the users the directory shows as cleared members of a unit the item is addressed to or held by.
 */
export function missingKeyMessage(what: string, label: string, me: ServerUser | null, holders: string[]): string {
  if (!me || !within(label, me.clearance))
    return `this device holds no key for ${what} (${label}): it is above your clearance, nobody will send it`;
  const others = holders.filter((h) => h !== me.handle);
  if (others.length === 0)
    return `this device holds no key for ${what} (${label}): no other cleared member of its units can forward it`;
  return (
    `this device holds no key for ${what} (${label}) yet: it was sent before this device joined; ` +
    `${others.join(", ")} can forward it (automatically, when one of their devices next syncs)`
  );
}
