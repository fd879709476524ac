/**
 * Profile load code: brings a profile written by any earlier version to the current shape (see migrateProfile).
 * Runs on the whole ProfileState before the ProfileRepository hands out its slices.
 */
import { isConversationId } from "@valise/core";
import type { ProfileState } from "./profile.js";
import type { CablePayload, DocumentPayload } from "./items.js";
import { appPayload } from "./items.js";
import { nullRecord } from "./schema.js";

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
