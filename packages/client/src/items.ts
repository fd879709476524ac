import {
  BLOB_ID_RE,
  CABLE_ID_RE,
  DOCUMENT_ID_RE,
  PRECEDENCES,
  canonicalLabel,
  fromBase64,
  isDeviceId,
  isUnitName,
  isUserHandle,
  parseCableReference,
} from "@valise/core";
import { arr, int, literal, map, nullable, obj, oneOf, parseJsonBytes, str, tagged, type Parser } from "./schema.js";

/** What a sync hands to the user: decrypted items, membership news, and alerts. */
export type ReceivedItem =
  | {
      type: "message";
      from: string;
      device: string;
      conversation: string;
      kind: string;
      label: string;
      text: string;
      seq: number;
      time: string;
    }
  | {
      type: "joined";
      from: string;
      conversation: string;
      kind: string;
      label: string;
      text: string;
      seq: number;
      time: string;
    }
  | { type: "alert"; from: string; conversation: string; label: string; text: string; seq: number; time: string }
  | {
      /**
       * Membership monitoring (from the verified directory log): a change to a unit this user belongs to or a person
       * it talks to — `event` is the log entry type (`member.add`, `device.add`, …), `from` the user concerned, `seq`
       * the log index.
       */
      type: "directory";
      from: string;
      conversation: string;
      label: string;
      text: string;
      seq: number;
      time: string;
      event: string;
      unit: string | null;
      device: string | null;
    }
  | {
      /** A cable addressed to (or sent by) one of this user's units; `text` is its subject. */
      type: "cable";
      from: string;
      conversation: string;
      label: string;
      text: string;
      seq: number;
      time: string;
      id: string;
      reference: string;
      precedence: string;
      originator: string;
      action: string[];
      info: string[];
      corrects: string | null;
    }
  | {
      /** A document (version) shared with this user; `text` is its file name. */
      type: "document";
      from: string;
      conversation: string;
      label: string;
      text: string;
      seq: number;
      time: string;
      id: string;
      version: number;
      size: number;
    };

/** Application payloads inside MLS: versioned JSON, told apart by `t`, parsed by `parsePayload` (see below). */
export interface TextPayload {
  t: "text";
  text: string;
}
/**
 * A cable's content key and the metadata its sender binds to it (signed inside MLS): a server that changes the
 * reference, precedence, label or addressees it lists is caught by comparing with this. `sender`/`senderDevice`
 * name who released it: a copy is accepted only from that MLS-authenticated device, and must match the server's
 * record of who released the cable.
 */
export interface CablePayload {
  t: "cable";
  id: string;
  reference: string;
  originator: string;
  precedence: string;
  label: string;
  action: string[];
  info: string[];
  corrects: string | null;
  subject: string;
  blob: string;
  /** Ciphertext bytes of the content blob. */
  size: number;
  key: string; // base64, 32 bytes
  /** The releasing user and device ("" only in a record kept from before senders were bound: not compared). */
  sender: string;
  senderDevice: string;
}
/** A document version's key, its (encrypted, here) file name, where it is shared, and who uploaded it. */
export interface DocumentPayload {
  t: "doc";
  id: string;
  version: number;
  label: string;
  name: string;
  /** Plaintext bytes. */
  size: number;
  blob: string;
  key: string; // base64, 32 bytes
  to: { kind: "user" | "unit"; name: string };
  /** The uploading user and device ("" only in a record kept from before senders were bound: not compared). */
  sender: string;
  senderDevice: string;
}
/**
 * Keys forwarded to a member who joined later (issue 14): copies of the cable and document payloads the forwarding
 * device holds, unchanged (their original sender and metadata), for the user `to`; other members ignore it. The
 * receiver checks each one (see forward.ts) before keeping it.
 */
export interface ForwardPayload {
  t: "fwd";
  to: string;
  /** Only this device of `to` (history for a user's own new device, after approval: issue 14 part 1). */
  device?: string;
  cables: CablePayload[];
  documents: DocumentPayload[];
}
/**
 * A history transfer to this user's own new device, after approval (issue 14 part 1; history-transfer.ts): the
 * manifest (JSON text) signed by the approving device, and the key of the encrypted batches (server blobs). Sent in a
 * conversation whose only members are the approving and the approved device; every other device ignores it.
 */
export interface HistoryPayload {
  t: "hist";
  to: string;
  device: string;
  manifest: string;
  /** Ed25519 signature (base64) by the approving device over "valise-history-manifest/1\n" + manifest. */
  sig: string;
  key: string;
}
/**
 * Delivered/read receipts for text messages (receipts.ts): sent inside the conversation's MLS group, so only its
 * members learn them (the server sees one more application message). `seqs` are the server sequence numbers of the
 * messages this device decrypted (never one it could not): "delivered" after a sync decrypted them, "read" once the
 * app showed them. One receipt per conversation per sync or view, never one per message, never one for a receipt.
 */
export interface ReceiptPayload {
  t: "receipt";
  state: "delivered" | "read";
  seqs: number[];
}
export type AppPayload =
  TextPayload | CablePayload | DocumentPayload | ForwardPayload | HistoryPayload | ReceiptPayload;

// ---------------------------------------------------------------- the one parser for what peers send

export const MAX_TEXT = 100_000;
export const MAX_SUBJECT = 2_000;
export const MAX_FILE_NAME = 1_000;
export const MAX_ADDRESSEES = 200;
export const MAX_ATTACHMENTS = 1_000;
export const MAX_CABLE_BODY = 8 * 1024 * 1024;
/** A payload is a few fields and at most MAX_TEXT characters (JSON-escaped: up to 6 bytes each). */
export const MAX_PAYLOAD_BYTES = 1024 * 1024;

const isBase64Key = (s: string) => fromBase64(s).length === 32;
const isCanonicalLabel = (s: string) => canonicalLabel(s) === s;
const isReference = (s: string) => parseCableReference(s).originator.length > 0 && s === s.trim();

export const payloadFields = {
  handle: str({ max: 64, test: isUserHandle }),
  device: str({ max: 66, test: isDeviceId }),
  unit: str({ max: 200, test: isUnitName }),
  label: str({ max: 512, test: isCanonicalLabel }),
  reference: str({ max: 200, test: isReference }),
  key: str({ max: 44, min: 44, test: isBase64Key }),
  size: int({ min: 0, max: Number.MAX_SAFE_INTEGER }),
};

const textPayload = obj({ t: literal("text"), text: str({ max: MAX_TEXT }) });

const cablePayload = obj({
  t: literal("cable"),
  id: str({ max: 66, pattern: CABLE_ID_RE }),
  reference: payloadFields.reference,
  originator: payloadFields.unit,
  precedence: oneOf(PRECEDENCES),
  label: payloadFields.label,
  action: arr(payloadFields.unit, { max: MAX_ADDRESSEES, unique: true }),
  info: arr(payloadFields.unit, { max: MAX_ADDRESSEES, unique: true }),
  corrects: nullable(payloadFields.reference),
  subject: str({ max: MAX_SUBJECT, min: 1 }),
  blob: str({ max: 66, pattern: BLOB_ID_RE }),
  size: payloadFields.size,
  key: payloadFields.key,
  sender: payloadFields.handle,
  senderDevice: payloadFields.device,
});

const documentPayload = obj({
  t: literal("doc"),
  id: str({ max: 66, pattern: DOCUMENT_ID_RE }),
  version: int({ min: 1, max: 1_000_000_000 }),
  label: payloadFields.label,
  name: str({ max: MAX_FILE_NAME, min: 1 }),
  size: payloadFields.size,
  blob: str({ max: 66, pattern: BLOB_ID_RE }),
  key: payloadFields.key,
  to: obj({
    kind: oneOf(["user", "unit"] as const),
    name: str({ max: 200, test: (s) => isUserHandle(s) || isUnitName(s) }),
  }),
  sender: payloadFields.handle,
  senderDevice: payloadFields.device,
});

/** At most this many keys in one forward message (a forward of more is split). */
export const MAX_FORWARD_KEYS = 200;

function checkItem(p: CablePayload | DocumentPayload): void {
  if (p.t === "cable") {
    if (parseCableReference(p.reference).originator !== p.originator)
      throw new Error("reference is not in the originator's series");
    if (p.action.length === 0) throw new Error("a cable needs an ACTION addressee");
    if (p.action.some((u) => p.info.includes(u))) throw new Error("a unit is both ACTION and INFO");
    if (p.corrects === p.reference) throw new Error("a cable cannot correct itself");
  }
  if (p.t === "doc" && (p.to.kind === "user") !== isUserHandle(p.to.name)) throw new Error("bad share target");
}

const forwardPayload = obj(
  {
    t: literal("fwd"),
    to: payloadFields.handle,
    device: payloadFields.device,
    cables: arr(
      map(cablePayload, (p) => (checkItem(p), p)),
      { max: MAX_FORWARD_KEYS },
    ),
    documents: arr(
      map(documentPayload, (p) => (checkItem(p), p)),
      { max: MAX_FORWARD_KEYS },
    ),
  },
  { optional: ["device"] },
);

const historyPayload = obj({
  t: literal("hist"),
  to: payloadFields.handle,
  device: payloadFields.device,
  manifest: str({ max: 512 * 1024, min: 2 }),
  sig: str({ max: 128, min: 1 }),
  key: payloadFields.key,
});

/** At most this many messages acknowledged by one receipt (more are split over several receipts). */
export const MAX_RECEIPT_SEQS = 1_000;

const receiptPayload = obj({
  t: literal("receipt"),
  state: oneOf(["delivered", "read"] as const),
  seqs: arr(int({ min: 1, max: Number.MAX_SAFE_INTEGER }), { max: MAX_RECEIPT_SEQS, unique: true }),
});

/** The schema of every application payload a peer may send (exported for tests). */
export const appPayload: Parser<AppPayload> = map(
  tagged("t", {
    text: textPayload,
    cable: cablePayload,
    doc: documentPayload,
    fwd: forwardPayload,
    hist: historyPayload,
    receipt: receiptPayload,
  }),
  (p): AppPayload => {
    if (p.t === "cable" || p.t === "doc") checkItem(p);
    return p;
  },
);
/**
 * Parses a decrypted payload strictly into typed values: a sender's bytes are checked before the SDK acts on them.
 * Throws a `protocol_error` ValiseError (and nothing else) on anything that is not exactly one of the payloads.
 */
export function parsePayload(bytes: Uint8Array): AppPayload {
  return parseJsonBytes(bytes, appPayload, { maxBytes: MAX_PAYLOAD_BYTES, maxDepth: 5, what: "payload" });
}

/** What is inside a cable's encrypted content, before the attachments' bytes. */
export interface CableHeader {
  v: 1;
  subject: string;
  body: string;
  attachments: { name: string; size: number }[];
}
export const MAX_CABLE_HEADER = 16 * 1024 * 1024;

export const cableHeader = obj({
  v: literal(1),
  subject: str({ max: MAX_SUBJECT, min: 1 }),
  body: str({ max: MAX_CABLE_BODY }),
  attachments: arr(obj({ name: str({ max: MAX_FILE_NAME, min: 1 }), size: payloadFields.size }), {
    max: MAX_ATTACHMENTS,
  }),
});

/** A cable's decrypted header (written by whoever holds its key): same rules as a payload. */
export function parseCableHeader(bytes: Uint8Array): CableHeader {
  return parseJsonBytes(bytes, cableHeader, { maxBytes: MAX_CABLE_HEADER, maxDepth: 4, what: "cable header" });
}

/**
 * Authenticated data bound to every application message (RFC 9420 §6.3.1 authenticated_data): the conversation and
 * its label. A server that moves or relabels a ciphertext makes it fail the receiver's check.
 */
export function messageAad(conversation: string, label: string): string {
  return `valise/1\nconversation=${conversation}\nlabel=${label}`;
}
