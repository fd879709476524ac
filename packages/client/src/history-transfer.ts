/**
 * History for a user's own new device (issue 14 part 1): after `devices approve ID`, the approving device sends its
 * message history to that device only, end to end.
 *
 * Transport: the messages go as encrypted batches (server blobs, each ≤ BATCH_MESSAGES messages, streamed AEAD under
 * a fresh transfer key, bound to the transfer id and batch index); a small MLS message in a conversation whose only
 * members are the two devices carries the transfer key and a manifest signed by the approving device's key:
 * the batch list (blob, size, header, message count, SHA-256 of the plaintext), per-conversation counts, labels and
 * cursors, the total, and a hash over the batch hashes. The server stores ciphertext it cannot open, blobs are
 * unattached uploads only this user can read, and 10,000 messages stay out of the conversation log. Blobs are
 * created before the manifest is sent, so the new device knows from the start how much is coming.
 *
 * Resumable: the approving device keeps the transfer (key, blobs, headers, which batches are uploaded, and a
 * snapshot bound: the first N messages of its append-only store) in its sealed history, so running the approval
 * again rebuilds the same plaintext and continues each upload at the server's byte count. The receiving device
 * keeps the manifest and which batches arrived; it fetches what is complete on every sync.
 *
 * Never complete by accident: a batch is kept only if it decrypts (AEAD), has the manifest's size, SHA-256 and
 * message count, and names this transfer and index; a batch missing, truncated or altered on the server is recorded
 * as refused and the transfer reports itself incomplete (`transfersIn()`), as it does while batches are missing.
 */
import { ValiseError, fromBase64, fromHex, toBase64, utf8 } from "@valise/core";
import { signChallenge, verifyChallenge } from "@valise/protocol";
import {
  supersededIncoming,
  type HistoryManifest,
  type HistoryMessage,
  type HistoryStore,
  type OutgoingTransfer,
} from "./history.js";
import type { HistoryPayload } from "./items.js";
import type { HttpTransport, ServerUser } from "./transport.js";
import { bytesSource, collect, downloadDecrypted, uploadEncrypted, type StreamCipher } from "./content.js";
import { arr, int, literal, obj, oneOf, parseJsonBytes, str } from "./schema.js";

/** Messages per batch (a batch of 1,000 typical messages is ~200 KB). */
export const BATCH_MESSAGES = 1000;
const SIG_CONTEXT = "valise-history-manifest/1\n";
const BATCH_LABEL = "UNCLASSIFIED"; // bound into the stream's AAD; the labels travel inside, per message

export interface HistoryProgress {
  transfer: string;
  /** "prepare": blobs created; "manifest": sent to the device; "upload": batches uploaded. */
  phase: "prepare" | "manifest" | "upload";
  done: number;
  total: number;
  messages: number;
}

export interface TransferHost {
  readonly handle: string;
  readonly deviceId: string;
  readonly transport: HttpTransport;
  readonly cipher: StreamCipher;
  readonly signingKey: Uint8Array;
  user(handle: string): Promise<ServerUser | null>;
  /** A conversation whose MLS members are exactly this device and `device` (created on first use). */
  channelTo(device: string, existing?: string): Promise<string>;
  send(conversation: string, payload: HistoryPayload, idempotencyKey: string): Promise<unknown>;
}

const hex = (b: ArrayBuffer) => [...new Uint8Array(b)].map((x) => x.toString(16).padStart(2, "0")).join("");
export async function sha256Hex(data: Uint8Array): Promise<string> {
  return hex(await crypto.subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>));
}
export async function contentHash(shas: string[]): Promise<string> {
  return sha256Hex(utf8(shas.join("\n")));
}

const streamParams = (transfer: string, index: number) => ({
  objectId: `history:${transfer}`,
  version: index + 1,
  label: BATCH_LABEL,
});

function batchPlain(t: { id: string }, index: number, messages: HistoryMessage[]): Uint8Array {
  return utf8(JSON.stringify({ v: 1, transfer: t.id, index, messages }));
}

function snapshotBatches(store: HistoryStore, count: number, per: number): HistoryMessage[][] {
  const msgs = store.data.messages.slice(0, count);
  const out: HistoryMessage[][] = [];
  for (let i = 0; i < msgs.length; i += per) out.push(msgs.slice(i, i + per));
  return out;
}

function randomKey(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(32));
}

/**
 * Sends (or resumes sending) this device's history to `device` of the same user. The caller has checked, against
 * the directory (the log), that `device` is an active device of this user and that the user approved it.
 */
export async function sendHistory(
  host: TransferHost,
  store: HistoryStore,
  device: string,
  onProgress?: (p: HistoryProgress) => void,
): Promise<{ transfer: string; messages: number; batches: number; resumed: boolean; replaced?: string }> {
  let t: OutgoingTransfer | undefined = store.data.outgoing.find((o) => o.device === device && !o.done);
  let replaced: string | undefined;
  if (t && (await reaped(host, t))) {
    // The server reclaimed a batch's blob (an upload unattached for longer than its TTL) before the transfer was
    // finished: it can never complete. Give it up and send a new transfer that replaces it (manifest `supersedes`).
    t.done = true;
    t.abandoned = "a batch's blob is gone from the server (reaped)";
    replaced = t.id;
    await store.save();
    t = undefined;
  }
  const resumed = t !== undefined;
  if (!t) {
    const id = crypto.randomUUID();
    const count = store.data.messages.length;
    t = {
      id,
      device,
      key: toBase64(randomKey()),
      count,
      batches: [],
      manifestSent: false,
      uploaded: [],
      done: false,
      startedAt: new Date().toISOString(),
    };
    // Every earlier transfer to this device: this one holds all their messages (the store is append-only), so the
    // device can drop one it could not complete (e.g. its batches were reaped before it fetched them).
    const earlier = store.data.outgoing.filter((o) => o.device === device).map((o) => o.id);
    if (earlier.length > 0) t.supersedes = earlier;
    const key = fromBase64(t.key);
    const batches = snapshotBatches(store, count, Math.min(BATCH_MESSAGES, Math.max(1, store.transferBatch)));
    for (const [i, msgs] of batches.entries()) {
      const plain = batchPlain(t, i, msgs);
      const size = host.cipher.ciphertextSize(plain.length);
      const blob = (await host.transport.createBlob(size)).id;
      t.batches.push({
        index: i,
        blob,
        size,
        header: toBase64(host.cipher.newHeader(key)),
        count: msgs.length,
        sha256: await sha256Hex(plain),
      });
      onProgress?.({ transfer: id, phase: "prepare", done: i + 1, total: batches.length, messages: count });
    }
    store.data.outgoing.push(t);
    await store.save();
  }
  const out = t;
  const conversations = new Map<string, HistoryManifest["conversations"][number]>();
  for (const m of store.data.messages.slice(0, out.count)) {
    const c = conversations.get(m.conversation) ?? {
      conversation: m.conversation,
      label: m.label,
      count: 0,
      cursor: 0,
    };
    c.count++;
    if (m.seq >= c.cursor) {
      c.cursor = m.seq;
      c.label = m.label;
    }
    conversations.set(m.conversation, c);
  }
  if (!out.manifestSent) {
    const manifest: HistoryManifest = {
      v: 1,
      id: out.id,
      from: { user: host.handle, device: host.deviceId },
      to: { user: host.handle, device },
      createdAt: out.startedAt,
      messages: out.count,
      conversations: [...conversations.values()],
      batches: out.batches,
      contentHash: await contentHash(out.batches.map((b) => b.sha256)),
      ...(out.supersedes ? { supersedes: out.supersedes } : {}),
    };
    const text = JSON.stringify(manifest);
    const sig = toBase64(await signChallenge(host.signingKey, utf8(SIG_CONTEXT + text)));
    const conv = await host.channelTo(device);
    await host.send(conv, { t: "hist", to: host.handle, device, manifest: text, sig, key: out.key }, `hist-${out.id}`);
    out.manifestSent = true;
    await store.save();
  }
  onProgress?.({ transfer: out.id, phase: "manifest", done: 1, total: 1, messages: out.count });
  const key = fromBase64(out.key);
  const per = out.batches.length > 1 ? out.batches[0]!.count : Math.max(1, out.count);
  const batches = snapshotBatches(store, out.count, per);
  for (const b of out.batches) {
    if (out.uploaded.includes(b.index)) continue;
    const plain = batchPlain(out, b.index, batches[b.index]!);
    if ((await sha256Hex(plain)) !== b.sha256)
      throw new ValiseError("conflict", `history batch ${b.index} changed since the transfer started`);
    try {
      await uploadEncrypted(
        host.transport,
        host.cipher,
        key,
        streamParams(out.id, b.index),
        bytesSource(plain),
        undefined,
        {
          // The whole batch is this transfer's own bytes, checked against its recorded SHA-256 just above: that is
          // the checkpoint a resume needs (uploadEncrypted refuses to continue a blob onto unverified plaintext).
          resume: {
            blob: b.blob,
            header: fromBase64(b.header),
            sent: { plain: plain.length, sha256: toBase64(fromHex(b.sha256)) },
          },
        },
      );
    } catch (e) {
      if (!(e instanceof ValiseError && e.code === "not_found")) throw e;
      // Reaped while this transfer was under way: start again under a new id (once; a second loss is an error).
      if (replaced !== undefined) throw e;
      out.done = true;
      out.abandoned = `batch ${b.index + 1}'s blob is gone from the server (reaped)`;
      await store.save();
      const again = await sendHistory(host, store, device, onProgress);
      return { ...again, resumed, replaced: out.id };
    }
    out.uploaded.push(b.index);
    await store.save();
    onProgress?.({
      transfer: out.id,
      phase: "upload",
      done: out.uploaded.length,
      total: out.batches.length,
      messages: out.count,
    });
  }
  out.done = true;
  await store.save();
  return {
    transfer: out.id,
    messages: out.count,
    batches: out.batches.length,
    resumed,
    ...(replaced !== undefined ? { replaced } : {}),
  };
}

/** Is a blob of this (unfinished) transfer gone from the server? */
async function reaped(host: TransferHost, t: OutgoingTransfer): Promise<boolean> {
  for (const b of t.batches) {
    try {
      await host.transport.blobStatus(b.blob);
    } catch (e) {
      if (e instanceof ValiseError && e.code === "not_found") return true;
      throw e;
    }
  }
  return false;
}

const sha = str({ max: 64, min: 64, pattern: /^[0-9a-f]{64}$/ });
const manifestSchema = obj(
  {
    v: literal(1),
    id: str({ max: 64, min: 8, pattern: /^[0-9a-f-]+$/ }),
    from: obj({ user: str({ max: 64 }), device: str({ max: 66 }) }),
    to: obj({ user: str({ max: 64 }), device: str({ max: 66 }) }),
    createdAt: str({ max: 40 }),
    messages: int({ min: 0, max: 100_000_000 }),
    conversations: arr(
      obj({
        conversation: str({ max: 100 }),
        label: str({ max: 512 }),
        count: int({ min: 0, max: 100_000_000 }),
        cursor: int({ min: 0, max: Number.MAX_SAFE_INTEGER }),
      }),
      { max: 100_000 },
    ),
    batches: arr(
      obj({
        index: int({ min: 0, max: 1_000_000 }),
        blob: str({ max: 66, min: 1 }),
        size: int({ min: 0, max: 1024 * 1024 * 1024 }),
        header: str({ max: 200 }),
        count: int({ min: 0, max: BATCH_MESSAGES }),
        sha256: sha,
      }),
      { max: 1_000_000 },
    ),
    contentHash: sha,
    supersedes: arr(str({ max: 64, min: 8, pattern: /^[0-9a-f-]+$/ }), { max: 10_000 }),
  },
  { optional: ["supersedes"] },
);

const messageSchema = obj(
  {
    conversation: str({ max: 100, min: 1 }),
    seq: int({ min: 0, max: Number.MAX_SAFE_INTEGER }),
    from: str({ max: 64 }),
    device: str({ max: 66 }),
    text: str({ max: 100_000 }),
    label: str({ max: 512 }),
    time: str({ max: 40 }),
    kind: oneOf(["message", "document"] as const),
  },
  { optional: ["device"] },
);
const batchSchema = obj({
  v: literal(1),
  transfer: str({ max: 64 }),
  index: int({ min: 0, max: 1_000_000 }),
  messages: arr(messageSchema, { max: BATCH_MESSAGES }),
});

/**
 * A `hist` payload received in `conversation` from `sender` (MLS-authenticated). Kept (as an incoming transfer) only
 * if it is for this device, comes from another active device of this user (per the directory), the conversation's
 * members are this user's devices only, and the manifest's signature by the sending device verifies. Returns why it
 * was refused (null: kept or ignored).
 */
export async function acceptHistoryPayload(
  host: Pick<TransferHost, "handle" | "deviceId" | "user">,
  store: HistoryStore,
  p: HistoryPayload,
  sender: { user: string; device: string },
  members: { user: string; device: string }[],
): Promise<string | null> {
  if (p.to !== host.handle || p.device !== host.deviceId) return null; // for another device: ignored
  const who = `${sender.user} (device ${sender.device})`;
  if (sender.user !== host.handle) return `${who} sent a history transfer: only your own devices may: refused`;
  if (members.some((m) => m.user !== host.handle))
    return `a history transfer from ${who} arrived in a conversation with other users' devices: refused`;
  const me = await host.user(host.handle);
  const dev = me?.devices.find((d) => d.id === sender.device);
  if (!dev || dev.revokedAt !== null)
    return `a history transfer from ${who}: the directory does not show that device as an active device of yours: refused`;
  let ok = false;
  try {
    ok = await verifyChallenge(fromBase64(dev.signaturePublicKey), utf8(SIG_CONTEXT + p.manifest), fromBase64(p.sig));
  } catch {
    ok = false;
  }
  if (!ok) return `a history transfer from ${who}: its manifest's signature does not verify: refused`;
  let m: HistoryManifest;
  try {
    m = parseJsonBytes(utf8(p.manifest), manifestSchema, { maxBytes: 512 * 1024, maxDepth: 4, what: "manifest" });
  } catch (e) {
    return `a history transfer from ${who}: malformed manifest (${e instanceof Error ? e.message : String(e)}): refused`;
  }
  if (
    m.from.user !== sender.user ||
    m.from.device !== sender.device ||
    m.to.user !== host.handle ||
    m.to.device !== host.deviceId
  )
    return `a history transfer from ${who}: its manifest names another sender or recipient: refused`;
  if (m.batches.some((b, i) => b.index !== i)) return `a history transfer from ${who}: batches out of order: refused`;
  if (m.batches.reduce((a, b) => a + b.count, 0) !== m.messages)
    return `a history transfer from ${who}: the batches do not add up to ${m.messages} messages: refused`;
  if ((await contentHash(m.batches.map((b) => b.sha256))) !== m.contentHash)
    return `a history transfer from ${who}: the content hash does not match the batches: refused`;
  if (store.data.incoming.some((t) => t.id === m.id)) return null; // a copy (resent): already held
  store.data.incoming.push({
    id: m.id,
    from: sender,
    manifest: m,
    key: p.key,
    received: [],
    refused: [],
    receivedAt: new Date().toISOString(),
  });
  await store.save();
  return null;
}

/**
 * Fetches the batches of incoming transfers that the server holds completely: each checked (see the module
 * comment), its messages added. A batch not uploaded yet is tried again on the next call. Returns alert sentences
 * for batches refused (altered, truncated, missing).
 */
export async function fetchHistoryBatches(
  host: Pick<TransferHost, "transport" | "cipher">,
  store: HistoryStore,
  onProgress?: (p: { transfer: string; received: number; total: number }) => void,
): Promise<string[]> {
  const alerts: string[] = [];
  for (const t of store.data.incoming) {
    if (supersededIncoming(store.data, t)) continue; // replaced by a later transfer from the same device
    const key = fromBase64(t.key);
    for (const b of t.manifest.batches) {
      if (t.received.includes(b.index) || t.refused.some((r) => r.index === b.index)) continue;
      const refuse = async (why: string) => {
        t.refused.push({ index: b.index, why });
        await store.save();
        alerts.push(
          `history from ${t.from.user} (device ${t.from.device}): batch ${b.index + 1} of ${t.manifest.batches.length} ${why}: ` +
            `the history on this device is incomplete (approve this device again from that device: it sends a new ` +
            `transfer that replaces this one)`,
        );
      };
      let status;
      try {
        status = await host.transport.blobStatus(b.blob);
      } catch (e) {
        if (e instanceof ValiseError && (e.code === "not_found" || e.code === "forbidden")) {
          await refuse("is missing on the server");
          continue;
        }
        if (e instanceof ValiseError && e.code === "conflict") continue; // still being uploaded by the approving device
        throw e;
      }
      if (!status.complete) continue; // still being uploaded by the approving device
      if (status.size !== b.size) {
        await refuse(`has ${status.size} bytes on the server, not ${b.size} (altered)`);
        continue;
      }
      let plain: Uint8Array;
      try {
        plain = await collect(
          downloadDecrypted(host.transport, host.cipher, key, streamParams(t.id, b.index), b.blob),
          64 * 1024 * 1024,
        );
      } catch (e) {
        if (e instanceof ValiseError && e.code === "not_found") await refuse("is missing or truncated on the server");
        else if (e instanceof ValiseError && e.code === "transport_error") throw e;
        else await refuse("does not decrypt (altered or truncated)");
        continue;
      }
      if ((await sha256Hex(plain)) !== b.sha256) {
        await refuse("does not match the signed manifest (altered)");
        continue;
      }
      let batch;
      try {
        batch = parseJsonBytes(plain, batchSchema, { maxBytes: 64 * 1024 * 1024, maxDepth: 4, what: "history batch" });
      } catch {
        await refuse("is malformed");
        continue;
      }
      if (batch.transfer !== t.id || batch.index !== b.index || batch.messages.length !== b.count) {
        await refuse("does not match the signed manifest (count or position)");
        continue;
      }
      for (const m of batch.messages) store.add(m);
      t.received.push(b.index);
      await store.save();
      onProgress?.({ transfer: t.id, received: t.received.length, total: t.manifest.batches.length });
    }
  }
  return alerts;
}
