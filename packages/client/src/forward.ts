/**
 * Keys for members who join later (issue 14 part 2). MLS gives a new member of a unit's channel no past keys, so the
 * member device that adds a new user to a unit or link conversation forwards, inside that conversation (MLS, end to
 * end), the cable and document keys it holds for the conversation's unit(s) that the new member may read: at most
 * the conversation's label and the member's clearance, only to a user the directory (the log, with key
 * transparency) proves is a member of the unit. The receiving device keeps a forwarded key only when
 *  - the item travels in this conversation by the same rule as the original (addressed to / shared with its unit),
 *  - its label is within this user's clearance (from the log) and the conversation's label,
 *  - the forwarding user is, per the log, a member of a unit the item was addressed to or is held by, and cleared,
 *  - the server's record of the item matches the copy (same blob, label, reference, addressees, sender: a forward
 *    cannot replace an original's metadata; held-keys never overwrites a key already held),
 *  - the key decrypts the first chunk of the item's blob (a wrong key would otherwise block the right one).
 * Anything else is refused and becomes an alert naming the forwarder.
 */
import { canonicalLabel, dominates, fromBase64, parseLabel } from "@valise/core";
import type { ConversationState } from "./profile.js";
import type { ProfileRepository } from "./profile-repo.js";
import type { CablePayload, DocumentPayload, ForwardPayload } from "./items.js";
import { MAX_CABLE_HEADER, MAX_FORWARD_KEYS, parseCableHeader } from "./items.js";
import { acceptCable, acceptDocument, heldCable, heldDocument, type HeldKeys } from "./held-keys.js";
import { checkAgainstServer } from "./cables.js";
export { missingKeyMessage } from "./missing-key.js";
import { sameAsServer } from "./documents.js";
import type { HttpTransport, ServerUser } from "./transport.js";
import { ByteReader, downloadDecrypted, type StreamCipher } from "./content.js";

type Sender = { user: string; device: string };

/** The `client` field of the audit event of a forward's send (`x-valise-client`): identifies it in the audit log. */
export function forwardClientTag(base: string, to: string): string {
  return `${base} key-forward to=${to}`;
}

const within = (label: string, cap: string) => {
  try {
    return dominates(parseLabel(cap), parseLabel(label));
  } catch {
    return false;
  }
};

/** The units a cable is addressed to or held by. */
const cableUnits = (p: CablePayload) => new Set([p.originator, ...p.action, ...p.info]);

/** The rule the original key travelled by (client.ts acceptPayload): this conversation may carry this item. */
export function travelsIn(conv: ConversationState, p: CablePayload | DocumentPayload): boolean {
  if (conv.kind !== "unit" && conv.kind !== "link") return false;
  if (!conv.unit || !within(p.label, conv.label)) return false;
  if (p.t === "cable") return cableUnits(p).has(conv.unit) && (!conv.fromUnit || conv.fromUnit === p.originator);
  return p.to.kind === "unit" && (p.to.name === conv.unit || (!!conv.fromUnit && p.to.name === conv.fromUnit));
}

/** Is `u` (as the door tells it) a member of one of `units`, not disabled, cleared for `label`? */
function memberCleared(u: ServerUser | null, units: Iterable<string>, label: string): boolean {
  if (!u || (u as { disabled?: boolean }).disabled) return false;
  const set = new Set(units);
  return u.units.some((x) => set.has(x)) && within(label, u.clearance);
}

/**
 * The keys this device forwards to `to` in `conv`: held (with a bound sender), travelling in this conversation,
 * within the recipient's clearance, split into payloads of at most MAX_FORWARD_KEYS keys and ~256 KiB.
 * Empty when the directory does not prove `to` a member of the conversation's unit(s).
 */
export function forwardPayloads(
  keys: HeldKeys,
  conv: ConversationState,
  to: ServerUser | null,
  device?: string,
  keep: (p: CablePayload | DocumentPayload) => boolean = () => true,
): ForwardPayload[] {
  if (!to || !conv.unit) return [];
  const units = [conv.unit, ...(conv.fromUnit ? [conv.fromUnit] : [])];
  if (!memberCleared(to, units, conv.label)) return [];
  const ok = (p: CablePayload | DocumentPayload) =>
    p.sender !== "" && travelsIn(conv, p) && within(p.label, to.clearance) && keep(p);
  const cables = Object.values(keys.cables ?? {}).filter(ok);
  const documents = Object.values(keys.documents ?? {})
    .flatMap((vs) => Object.values(vs))
    .filter(ok);
  const out: ForwardPayload[] = [];
  const fresh = (): ForwardPayload => ({
    t: "fwd",
    to: to.handle,
    ...(device ? { device } : {}),
    cables: [],
    documents: [],
  });
  let cur = fresh();
  let bytes = 0;
  const push = (p: CablePayload | DocumentPayload) => {
    const n = JSON.stringify(p).length;
    if (cur.cables.length + cur.documents.length >= MAX_FORWARD_KEYS || bytes + n > 256 * 1024) {
      out.push(cur);
      cur = fresh();
      bytes = 0;
    }
    if (p.t === "cable") cur.cables.push(p);
    else cur.documents.push(p);
    bytes += n;
  };
  for (const c of cables) push(c);
  for (const d of documents) push(d);
  if (cur.cables.length + cur.documents.length > 0) out.push(cur);
  return out;
}

/**
 * How far back this conversation shares keys with a member who joined later (issue 14, `unit.share` in the log):
 * the oldest creation time (ms) an item may have, or null for everything. The recipient's own unit(s) in the
 * conversation decide (the most generous of them); the records archive of a unit always gets everything.
 */
export async function shareCutoff(
  door: { unit(name: string): Promise<{ share?: string } | null> },
  conv: ConversationState,
  to: ServerUser,
  now: number,
): Promise<number | null> {
  const units = [conv.unit, conv.fromUnit].filter((u): u is string => !!u && to.units.includes(u));
  if (units.length === 0 || units.some((u) => (to.archives ?? []).includes(u))) return null;
  let cutoff = Infinity;
  for (const u of units) {
    const share = (await door.unit(u))?.share;
    if (share === undefined || share === "all") return null;
    cutoff = Math.min(cutoff, now - Number(share) * 1000);
  }
  return Number.isFinite(cutoff) ? cutoff : null;
}

/**
 * The held items of `conv` created at or after `cutoff`, by the server's creation time (a server that lies about it
 * can only widen a window to members the log proves, who may read the item anyway).
 */
export async function sharedSince(
  transport: HttpTransport,
  keys: HeldKeys,
  conv: ConversationState,
  cutoff: number,
): Promise<Set<string>> {
  const out = new Set<string>();
  for (const c of Object.values(keys.cables ?? {})) {
    if (!travelsIn(conv, c)) continue;
    const r = await transport.cable(c.id).catch(() => null);
    if (r && r.createdAt >= cutoff) out.add(`c:${c.id}`);
  }
  for (const [id, vs] of Object.entries(keys.documents ?? {})) {
    const mine = Object.values(vs).filter((d) => travelsIn(conv, d));
    if (mine.length === 0) continue;
    const r = await transport.document(id).catch(() => null);
    for (const d of mine) {
      const v = r?.versions.find((x) => x.version === d.version);
      if (v && v.createdAt >= cutoff) out.add(`d:${id}:${d.version}`);
    }
  }
  return out;
}

/** The key of an item in `sharedSince`'s set. */
export const shareKey = (p: CablePayload | DocumentPayload) =>
  p.t === "cable" ? `c:${p.id}` : `d:${p.id}:${p.version}`;

export interface ForwardHost {
  readonly handle: string;
  readonly deviceId: string;
  /** The held keys: read, and a forwarded key accepted into them. */
  readonly profile: Pick<ProfileRepository, "heldKeys">;
  readonly transport: HttpTransport;
  readonly cipher: StreamCipher;
  user(handle: string): Promise<ServerUser | null>;
}

/** Does `key` open the first chunk of `blob` (AES-GCM authenticated)? Stops reading after that chunk. */
async function keyOpens(
  host: ForwardHost,
  key: string,
  params: { objectId: string; version: number; label: string },
  blob: string,
): Promise<boolean> {
  const it = downloadDecrypted(host.transport, host.cipher, fromBase64(key), params, blob)[Symbol.asyncIterator]();
  try {
    return !(await it.next()).done; // the first chunk authenticated under this key
  } catch {
    return false;
  } finally {
    await it.return?.();
  }
}

/** The subject inside a cable's encrypted header under `key` (the key and the subject a forward names are checked). */
async function cableSubject(host: ForwardHost, p: CablePayload): Promise<string | null> {
  const it = downloadDecrypted(
    host.transport,
    host.cipher,
    fromBase64(p.key),
    { objectId: p.id, version: 1, label: p.label },
    p.blob,
  )[Symbol.asyncIterator]();
  try {
    const r = new ByteReader({ [Symbol.asyncIterator]: () => it });
    const len = new DataView((await r.read(4)).buffer).getUint32(0);
    if (len > MAX_CABLE_HEADER) return null;
    return parseCableHeader(await r.read(len)).subject;
  } catch {
    return null;
  } finally {
    await it.return?.();
  }
}

/**
 * Checks and keeps the keys of a forward addressed to this user; returns one refusal sentence per key refused
 * (naming the forwarder), and how many keys were kept. A forward for another user is ignored.
 */
export async function acceptForward(
  host: ForwardHost,
  conv: ConversationState,
  p: ForwardPayload,
  from: Sender,
): Promise<{ kept: number; refusals: string[] }> {
  const refusals: string[] = [];
  let kept = 0;
  if (p.to !== host.handle || (p.device !== undefined && p.device !== host.deviceId)) return { kept, refusals };
  const me = await host.user(host.handle);
  const forwarder = await host.user(from.user);
  const who = `${from.user} (device ${from.device})`;
  const forwarderDevice = forwarder?.devices.some((d) => d.id === from.device && d.revokedAt === null) ?? false;
  const items: (CablePayload | DocumentPayload)[] = [...p.cables, ...p.documents];
  for (const item of items) {
    const what = item.t === "cable" ? `cable ${item.reference}` : `document ${item.id} v${item.version}`;
    const refuse = (why: string) => refusals.push(`${who} forwarded the key of ${what}: ${why}: refused`);
    if (
      item.t === "cable"
        ? heldCable(host.profile.heldKeys, item.id)
        : heldDocument(host.profile.heldKeys, item.id, item.version)
    ) {
      // Already held: an identical copy is ignored, a different one refused (held-keys keeps the original).
      const r =
        item.t === "cable"
          ? acceptCable(host.profile.heldKeys, item, senderOf(item))
          : acceptDocument(host.profile.heldKeys, item, senderOf(item));
      if (r) refuse("it differs from the copy this device holds (the original is kept)");
      continue;
    }
    let label: string;
    try {
      label = canonicalLabel(item.label);
    } catch {
      refuse("its label is not a label");
      continue;
    }
    if (!travelsIn(conv, item)) {
      refuse(`it is not addressed to ${conv.unit ?? "this conversation's unit"} (or is above ${conv.label})`);
      continue;
    }
    if (!me || !within(label, me.clearance)) {
      refuse(`its label ${label} is above your clearance`);
      continue;
    }
    const units = item.t === "cable" ? cableUnits(item) : [item.to.name];
    if (!forwarderDevice || !memberCleared(forwarder, units, label)) {
      refuse(`the directory does not show ${from.user} as a cleared member of a unit it was addressed to`);
      continue;
    }
    try {
      if (item.t === "cable") {
        checkAgainstServer(item, await host.transport.cable(item.id));
        const subject = await cableSubject(host, item);
        if (subject === null) {
          refuse("the key does not open the cable");
          continue;
        }
        if (subject !== item.subject) {
          refuse("the subject differs from the one inside the cable");
          continue;
        }
        if (acceptCable(host.profile.heldKeys, item, senderOf(item)))
          refuse("it differs from the copy this device holds");
        else kept++;
      } else {
        const d = await host.transport.document(item.id);
        const v = d.versions.find((x) => x.version === item.version);
        if (!v || !sameAsServer(item, d, v) || d.to.kind !== item.to.kind || d.to.name !== item.to.name) {
          refuse("the server's record of that version differs from the copy");
          continue;
        }
        if (
          !(await keyOpens(host, item.key, { objectId: item.id, version: item.version, label: item.label }, item.blob))
        ) {
          refuse("the key does not open the document");
          continue;
        }
        if (acceptDocument(host.profile.heldKeys, item, senderOf(item)))
          refuse("it differs from the copy this device holds");
        else kept++;
      }
    } catch (e) {
      refuse(e instanceof Error ? e.message : String(e));
    }
  }
  return { kept, refusals };
}

/** A forwarded copy is stored under its original sender (checked against the server's record before). */
const senderOf = (p: { sender: string; senderDevice: string }): Sender => ({ user: p.sender, device: p.senderDevice });
