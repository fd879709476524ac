/**
 * Classification labels: `CLASSIFICATION[/COMPARTMENT[,COMPARTMENT…]]`, e.g. `CONFIDENTIAL/ASIA`.
 * Parsed and printed only here; the printed form is canonical (compartments sorted, deduplicated), so equal labels
 * print equal and can be compared as strings where they are bound into authenticated data.
 */
import { ValiseError } from "./errors.js";

export const CLASSIFICATIONS = ["UNCLASSIFIED", "RESTRICTED", "CONFIDENTIAL", "SECRET"] as const;
export type Classification = (typeof CLASSIFICATIONS)[number];

export interface Label {
  readonly level: Classification;
  readonly compartments: readonly string[]; // sorted, unique
}
/** A clearance has the same shape as a label: the highest level and the compartments a user may read. */
export type Clearance = Label;

const COMPARTMENT_RE = /^[A-Z][A-Z0-9-]{0,23}$/;
const MAX_COMPARTMENTS = 16;

export function levelRank(level: Classification): number {
  return CLASSIFICATIONS.indexOf(level);
}

export function parseLabel(text: string): Label {
  if (typeof text !== "string" || text.length === 0 || text.length > 512)
    throw new ValiseError("bad_label", "label must be a non-empty string of at most 512 characters");
  const slash = text.indexOf("/");
  const levelText = slash < 0 ? text : text.slice(0, slash);
  if (!(CLASSIFICATIONS as readonly string[]).includes(levelText))
    throw new ValiseError(
      "bad_label",
      `unknown classification ${JSON.stringify(levelText)}: expected one of ${CLASSIFICATIONS.join(", ")}`,
    );
  const compartments: string[] = [];
  if (slash >= 0) {
    const rest = text.slice(slash + 1);
    for (const c of rest.split(",")) {
      if (!COMPARTMENT_RE.test(c))
        throw new ValiseError("bad_label", `invalid compartment ${JSON.stringify(c)} in label`);
      if (!compartments.includes(c)) compartments.push(c);
    }
    if (compartments.length > MAX_COMPARTMENTS)
      throw new ValiseError("bad_label", `at most ${MAX_COMPARTMENTS} compartments`);
  }
  compartments.sort();
  return Object.freeze({ level: levelText as Classification, compartments: Object.freeze(compartments) });
}

export function formatLabel(l: Label): string {
  return l.compartments.length === 0 ? l.level : `${l.level}/${l.compartments.join(",")}`;
}

/** Canonical form of a label string (throws on bad input). */
export function canonicalLabel(text: string): string {
  return formatLabel(parseLabel(text));
}

/** `a` dominates `b`: level ≥ and compartments ⊇. A reader may read an item iff clearance dominates label. */
export function dominates(a: Label, b: Label): boolean {
  if (levelRank(a.level) < levelRank(b.level)) return false;
  return b.compartments.every((c) => a.compartments.includes(c));
}

export const UNCLASSIFIED: Label = parseLabel("UNCLASSIFIED");
