/**
 * The cable and document keys a device holds, with the metadata their senders bound to them. Kept in the profile
 * in null-prototype records (a peer's id is never used as a property name of a normal object), read with
 * `Object.hasOwn`. A key and its metadata are accepted only from the MLS-authenticated device the payload names as
 * its sender, and never overwritten: an identical copy (the same cable reaches a user through several of their
 * units) is ignored, a different one is refused and reported naming the peer who sent it.
 */
import type { ProfileState } from "./profile.js";
import type { CablePayload, DocumentPayload } from "./items.js";
import { appPayload } from "./items.js";
import { nullRecord, own } from "./schema.js";
import { isConversationId } from "@valise/core";

type Sender = { user: string; device: string };

export function cableStore(state: ProfileState): Record<string, CablePayload> {
  return (state.cables ??= nullRecord<CablePayload>());
}
export function documentStore(state: ProfileState): Record<string, Record<string, DocumentPayload>> {
  return (state.documents ??= nullRecord<Record<string, DocumentPayload>>());
}
export function heldCable(state: ProfileState, id: string): CablePayload | undefined {
  return own(state.cables, id);
}
export function heldDocument(state: ProfileState, id: string, version: number): DocumentPayload | undefined {
  return own(own(state.documents, id), String(version));
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
export function acceptCable(state: ProfileState, p: CablePayload, from: Sender): Refusal {
  const bad = senderMismatch("cable", p.reference, p, from);
  if (bad) return bad;
  const held = heldCable(state, p.id);
  if (held) {
    if (sameAsHeld(held, p)) return null;
    return `${from.user} (device ${from.device}) sent a copy of cable ${held.reference} that differs from the one held (${differences(held, p).join(", ")}): refused, the original is kept`;
  }
  cableStore(state)[p.id] = p;
  return null;
}

/** Stores a document version key received from `from` (the MLS sender). */
export function acceptDocument(state: ProfileState, p: DocumentPayload, from: Sender): Refusal {
  const bad = senderMismatch("document", `${p.id} v${p.version}`, p, from);
  if (bad) return bad;
  const held = heldDocument(state, p.id, p.version);
  if (held) {
    if (sameAsHeld(held, p)) return null;
    return `${from.user} (device ${from.device}) sent a copy of document ${p.id} v${p.version} that differs from the one held (${differences(held, p).join(", ")}): refused, the original is kept`;
  }
  const docs = documentStore(state);
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

/**
 * Brings a loaded profile to the current shape: per-id records become null-prototype, every held key is parsed
 * again by the payload schema (a record that fails it, or is filed under another id, is dropped), records kept from
 * before senders were bound get an empty sender (not compared), outbox entries (this device's own) are completed
 * with this device as sender. Profiles written by earlier versions load unchanged otherwise.
 */
export function migrateProfile(state: ProfileState): ProfileState {
  const conversations = nullRecord<ProfileState["conversations"][string]>();
  for (const [id, c] of Object.entries(state.conversations ?? {}))
    if (isConversationId(id) && c && typeof c === "object") conversations[id] = c;
  state.conversations = conversations;
  // Without a sender (written before senders were bound), or with the "" it then got: stands for "unknown".
  const isLegacy = (v: unknown): v is object =>
    !!v &&
    typeof v === "object" &&
    !Array.isArray(v) &&
    (!Object.hasOwn(v, "sender") ||
      ((v as { sender: unknown }).sender === "" && (v as { senderDevice?: unknown }).senderDevice === ""));
  const withSender = (v: unknown, sender: string, device: string): unknown =>
    isLegacy(v) ? { ...v, sender, senderDevice: device } : v;
  const reparse = (v: unknown): CablePayload | DocumentPayload | null => {
    const legacy = isLegacy(v);
    const probe = legacy ? withSender(v, "legacy.record", "d-legacyrecord") : v;
    try {
      const p = appPayload(probe, "stored key");
      if (p.t === "text" || p.t === "fwd" || p.t === "hist" || p.t === "receipt") return null;
      return legacy ? { ...p, sender: "", senderDevice: "" } : p;
    } catch {
      return null;
    }
  };
  if (state.cables) {
    const out = nullRecord<CablePayload>();
    for (const [id, v] of Object.entries(state.cables)) {
      const p = reparse(v);
      if (p?.t === "cable" && p.id === id) out[id] = p;
    }
    state.cables = out;
  }
  if (state.documents) {
    const out = nullRecord<Record<string, DocumentPayload>>();
    for (const [id, versions] of Object.entries(state.documents)) {
      if (!versions || typeof versions !== "object") continue;
      const vs = nullRecord<DocumentPayload>();
      for (const [ver, v] of Object.entries(versions)) {
        const p = reparse(v);
        if (p?.t === "doc" && p.id === id && String(p.version) === ver) vs[ver] = p;
      }
      if (Object.keys(vs).length > 0) out[id] = vs;
    }
    state.documents = out;
  }
  if (state.outbox)
    state.outbox = state.outbox.map((e) => ({
      ...e,
      payload: withSender(e.payload, state.handle, state.deviceId) as typeof e.payload,
    }));
  return state;
}
