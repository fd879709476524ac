/**
 * A device's local state: its keys, unused key package privates, MLS group states and sync cursors. Kept behind
 * the KeyStore interface: a file (mode 0600) on Node (`node/file-store.ts`), IndexedDB in the browser later.
 */
import type { CablePayload, DocumentPayload, ReceivedItem } from "./items.js";

/** Where an item's key goes: a user (direct), a unit's channel, or a link from one unit to another. */
export type ConversationTarget =
  | { kind: "direct"; peer: string; label: string }
  | { kind: "unit"; unit: string; label: string }
  | { kind: "link"; fromUnit: string; unit: string; label: string };
import type { LogState, TrustAnchors } from "./transparency.js";
import type { AuditLogState } from "./audit.js";
import type { UploadCheckpoint } from "./content.js";

export interface ConversationState {
  id: string;
  kind: "direct" | "group" | "unit" | "link";
  label: string;
  unit: string | null;
  /** For `link` conversations: the originating unit (cables and documents from it to `unit`). */
  fromUnit?: string | null;
  /** For direct conversations: the other user. */
  peer: string | null;
  /** Encoded MLS group state (base64). */
  group: string;
  /** Last server sequence number processed. */
  cursor: number;
  /** A history channel (approveDevice): only this device and that device of the same user are ever members. */
  historyFor?: string;
}

export interface ProfileState {
  version: 1;
  serverUrl: string;
  handle: string;
  deviceId: string;
  deviceName: string;
  signaturePublicKey: string; // base64
  signaturePrivateKey: string; // base64
  keyPackages: { ref: string; publicBytes: string; privateBytes: string }[];
  inboxCursor: number;
  conversations: Record<string, ConversationState>;
  /** Cable keys and bound metadata received (or sent), by cable id. */
  cables?: Record<string, CablePayload>;
  /** Document version keys and names received (or uploaded): documents[id][version]. */
  documents?: Record<string, Record<string, DocumentPayload>>;
  /**
   * Key deliveries not yet acknowledged by the server (a cable released or a document uploaded, then a crash):
   * retried on the next sync, each under its own idempotency key.
   */
  outbox?: { conversation: ConversationTarget; payload: CablePayload | DocumentPayload; idempotencyKey: string }[];
  /**
   * Messages (`send`) not yet acknowledged by the server (an outage, the process killed): retried on the next sync or
   * send under the same idempotency key, so the server stores each once.
   */
  textOutbox?: { conversation: ConversationTarget; text: string; idempotencyKey: string }[];
  /**
   * Resumable document uploads (`valise doc put --resume`): the blob id and what is needed to continue after this
   * process was stopped. Removed once the document version exists.
   */
  uploads?: Record<string, PendingUpload>;
  /**
   * Key forwards owed to members who joined later (issue 14): a conversation this device added them to, and the
   * user. Written with the add, removed once sent; a crash in between is retried by the next sync.
   */
  forwards?: { conversation: string; to: string; id: string; device?: string }[];
  /**
   * Delivered/read receipts (receipts.ts). `sent`: this user's own messages, conversation → seq → receiving device →
   * who and how far ("delivered" or "read"); a receipt for a seq not listed here is ignored. `owed`: messages from
   * others this device decrypted, per conversation, not yet acknowledged as delivered (`delivered`) or read (`unread`).
   */
  receipts?: {
    sent: Record<string, Record<string, Record<string, { user: string; state: "delivered" | "read" }>>>;
    owed: Record<string, { delivered: number[]; unread: number[] }>;
  };
  /** Items received but not yet handed to the user (e.g. fetched while catching up before a send). */
  pending: ReceivedItem[];
  session: { token: string; expiresAt: number } | null;
  /**
   * Key transparency trust anchors from the enrollment bundle (log key, witness keys, quorum); fixed at enrollment
   * so the server cannot swap them. Absent: the profile trusts the server's directory answers (DirectoryVerifier).
   */
  trust?: TrustAnchors;
  /** What this device has verified of the directory log: last accepted checkpoint, scan state, own-account alerts. */
  log?: LogState;
  /** The last audit log checkpoint this device accepted, per log origin (rollback and fork protection). */
  audit?: AuditLogState;
}

export interface PendingUpload {
  /** The server's blob id. */
  blob: string;
  /** Identifies the plaintext (the CLI: absolute path, size, mtime): a resume must read exactly the same bytes. */
  source: string;
  name: string;
  size: number;
  startedAt: number;
  /** The document (new, or `newVersion` of an existing one), its version, label and share target. */
  id: string;
  version: number;
  newVersion: boolean;
  label: string;
  to: { kind: "user" | "unit"; name: string };
  fromUnit?: string;
  /** The version's content key and the stream header (base64): the same ciphertext again from any chunk. */
  key: string;
  header: string;
  /**
   * The plaintext encrypted so far and its SHA-256, kept before any of it was sent: a resume re-reads and checks it
   * (a different file is refused). Absent in records kept by older versions, which cannot be resumed.
   */
  sent?: UploadCheckpoint;
}

export interface KeyStore {
  load(): Promise<ProfileState | null>;
  /** Must be atomic: a crash leaves either the old or the new state, never a torn one. */
  save(state: ProfileState): Promise<void>;
}

export class MemoryKeyStore implements KeyStore {
  private state: string | null = null;
  async load(): Promise<ProfileState | null> {
    return this.state ? (JSON.parse(this.state) as ProfileState) : null;
  }
  async save(state: ProfileState): Promise<void> {
    this.state = JSON.stringify(state);
  }
  async saveText(json: string): Promise<void> {
    this.state = json;
  }
}
