/**
 * The cable and document keys a device holds, with the metadata their senders bound to them. Kept in the profile
 * in null-prototype records (a peer's id is never used as a property name of a normal object), read with
 * `Object.hasOwn`. A key and its metadata are accepted only from the MLS-authenticated device the payload names as
 * its sender, and never overwritten: an identical copy (the same cable reaches a user through several of their
 * units) is ignored, a different one is refused and reported naming the peer who sent it.
 */
import type { CablePayload, DocumentPayload } from "./items.js";
import { nullRecord, own } from "./schema.js";

type Sender = { user: string; device: string };

/**
 * The profile's held-keys slice (ProfileRepository.heldKeys; PROFILE_SLICES.keys): all this module reads or writes.
 * Absent records are created on the first key accepted.
 */
export interface HeldKeys {
  cables?: Record<string, CablePayload>;
  documents?: Record<string, Record<string, DocumentPayload>>;
}

export function cableStore(keys: HeldKeys): Record<string, CablePayload> {
  return (keys.cables ??= nullRecord<CablePayload>());
}
export function documentStore(keys: HeldKeys): Record<string, Record<string, DocumentPayload>> {
  return (keys.documents ??= nullRecord<Record<string, DocumentPayload>>());
}
export function heldCable(keys: HeldKeys, id: string): CablePayload | undefined {
  return own(keys.cables, id);
}
export function heldDocument(keys: HeldKeys, id: string, version: number): DocumentPayload | undefined {
  return own(own(keys.documents, id), String(version));
}

/** Field-by-field equality of two parsed payloads (every field the user sees is among them). */
export function samePayload(a: object, b: object): boolean {
  const ka = Object.keys(a).sort();
  const kb = Object.keys(b).sort();
  if (ka.join() !== kb.join()) return false;
  const ra = a as Record<string, unknown>;
  const rb = b as Record<string, unknown>;
  return ka.every((k) => JSON.stringify(ra[k]) === JSON.stringify(rb[k]));
}

/** A held record is the same as a new copy; one kept from before senders were bound is compared without them. */
function sameAsHeld<T extends { sender: string; senderDevice: string }>(held: T, p: T): boolean {
  return held.sender === ""
    ? samePayload({ ...held, sender: "", senderDevice: "" }, { ...p, sender: "", senderDevice: "" })
    : samePayload(held, p);
}

/** Why a copy is refused (a sentence naming the peer), or null when it was stored or was a duplicate. */
export type Refusal = string | null;

function senderMismatch(kind: string, what: string, p: { sender: string; senderDevice: string }, from: Sender) {
  return p.sender !== from.user || p.senderDevice !== from.device
    ? `${from.user} (device ${from.device}) sent the key of ${kind} ${what} naming ${p.sender} (device ${p.senderDevice}) as its sender: refused`
    : null;
}

/** Stores a cable key received from `from` (the MLS sender); see the module comment. */
export function acceptCable(keys: HeldKeys, p: CablePayload, from: Sender): Refusal {
  const bad = senderMismatch("cable", p.reference, p, from);
  if (bad) return bad;
  const held = heldCable(keys, p.id);
  if (held) {
    if (sameAsHeld(held, p)) return null;
    return `${from.user} (device ${from.device}) sent a copy of cable ${held.reference} that differs from the one held (${differences(held, p).join(", ")}): refused, the original is kept`;
  }
  cableStore(keys)[p.id] = p;
  return null;
}

/** Stores a document version key received from `from` (the MLS sender). */
export function acceptDocument(keys: HeldKeys, p: DocumentPayload, from: Sender): Refusal {
  const bad = senderMismatch("document", `${p.id} v${p.version}`, p, from);
  if (bad) return bad;
  const held = heldDocument(keys, p.id, p.version);
  if (held) {
    if (sameAsHeld(held, p)) return null;
    return `${from.user} (device ${from.device}) sent a copy of document ${p.id} v${p.version} that differs from the one held (${differences(held, p).join(", ")}): refused, the original is kept`;
  }
  const docs = documentStore(keys);
  const versions = own(docs, p.id) ?? (docs[p.id] = nullRecord<DocumentPayload>());
  versions[String(p.version)] = p;
  return null;
}

function differences(a: object, b: object): string[] {
  const ra = a as Record<string, unknown>;
  const rb = b as Record<string, unknown>;
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])];
  return keys.filter((k) => JSON.stringify(ra[k]) !== JSON.stringify(rb[k]));
}

export { migrateProfile } from "./migrate.js";
