/**
 * The SDK's view of the server's answers (what the transport areas return). Each is checked against its schema in
 * the wire contract (@valise/core/wire) before it is returned; the areas declare these types as their results, so
 * the compiler checks that a schema's type fits the view it is handed on as.
 */
/** Audit log query filters (GET /v1/log/audit/events; checked again by the client, see audit.ts). */
export interface AuditFilter {
  actor?: string | undefined;
  action?: string | undefined;
  object?: string | undefined;
  /** ISO 8601; events at or after. */
  since?: string | undefined;
  /** ISO 8601; events strictly before. */
  until?: string | undefined;
  /** Only entries with a log index below this (paging, newest first). */
  before?: number | undefined;
  /** At most this many (1-1000, default 100). */
  limit?: number | undefined;
}

export interface ServerConversation {
  id: string;
  kind: "direct" | "group" | "unit" | "link";
  label: string;
  unit: string | null;
  /** For `link` conversations (cable and document keys between units): the originating unit. */
  fromUnit?: string | null;
  creator: string;
  epoch: number;
  headSeq: number;
  joinedSeq?: number;
  leftSeq?: number | null;
}
export interface ServerMessage {
  seq: number;
  kind: "application" | "commit" | "proposal";
  epoch: number;
  sender: string;
  payload: Uint8Array;
  createdAt: number;
}
export interface ServerUser {
  handle: string;
  units: string[];
  clearance: string;
  role: string;
  /** The units (also in `units`) this user is the records archive of (issue 14). */
  archives?: string[];
  devices: {
    id: string;
    name: string;
    signaturePublicKey: string;
    createdAt: number;
    revokedAt: number | null;
    /** Directory log index of the device's `device.add` entry (null: not in the log). */
    logIndex?: number | null;
    /** Directory log index of its `device.revoke` entry, if revoked. */
    revokeLogIndex?: number | null;
  }[];
  /** Directory log index of the user's `user.add` entry. */
  logIndex?: number | null;
  /** Directory log index of the latest entry setting the user's clearance (`user.add` or `user.clearance`). */
  clearanceLogIndex?: number | null;
  /** Offboarded: gets no keys, cannot log in. */
  disabled?: boolean;
}
export interface InboxItem {
  id: number;
  conversation: ServerConversation;
  commitSeq: number;
  welcome: Uint8Array;
  createdAt: number;
}
export interface AppendAnswer {
  seq: number;
  epoch: number;
  duplicate: boolean;
}

export interface BlobStatus {
  id: string;
  size: number;
  received: number;
  complete: boolean;
}
export interface ServerDocument {
  id: string;
  owner: string;
  label: string;
  to: { kind: "user" | "unit"; name: string };
  createdAt: number;
  versions: { version: number; blob: string; size: number; createdAt: number; createdBy: string }[];
}
export interface CableReceipt {
  unit: string;
  role: "action" | "info";
  deliveredAt: number | null;
  deliveredBy: string | null;
  readAt: number | null;
  readBy: string | null;
}
export interface ServerCable {
  id: string;
  reference: string;
  originator: string;
  sender: string;
  senderDevice: string;
  precedence: string;
  label: string;
  action: string[];
  info: string[];
  blob: string;
  size: number;
  corrects: string | null;
  createdAt: number;
  receipts: CableReceipt[];
}
export interface CableRelease {
  id: string;
  originator: string;
  action: string[];
  info: string[];
  precedence: string;
  label: string;
  blob: string;
  corrects?: string;
}

/** Detection still learning: until `until` (ISO; null before the first audit event) only critical rules alert. */
export interface AlertsLearning {
  until: string | null;
  trainDays: number;
  active: boolean;
  hours: string;
}

/** A detection alert (GET /v1/alerts, the `alert` push frame, webhooks): for security officers. */
export interface ServerAlert {
  id: number;
  /** The triggering audit event's time (ISO 8601). */
  time: string;
  actor: string;
  rule: string;
  severity: "low" | "medium" | "high" | "critical";
  reason: string;
  /** Audit event ids behind the alert, the triggering event last. */
  events: string[];
  createdAt: string;
  acknowledgedBy: string | null;
  acknowledgedAt: string | null;
}

/** An incident (officers): alerts grouped under a title, exportable as STIX 2.1 and shareable over TAXII. */
export interface ServerIncident {
  id: string;
  title: string;
  createdBy: string;
  createdAt: string;
  alerts: number[];
  note: string | null;
  shared: boolean;
  sharedAt: string | null;
  sharedBy: string | null;
  /** GET /v1/incidents/:id only: the alerts themselves. */
  alertDetails?: Omit<ServerAlert, "createdAt" | "acknowledgedBy" | "acknowledgedAt">[];
}
/** A TAXII partner token's record (the token itself only in the answer to `issueTaxiiToken`). */
export interface TaxiiToken {
  id: string;
  partner: string;
  createdBy: string;
  createdAt: string;
  revokedAt: string | null;
  token?: string;
}

/** TLP 2.0 levels an officer chooses per share. */
export type TlpLevel = "clear" | "green" | "amber" | "amber+strict" | "red";

/** A partner's TAXII collection that the server polls (the partner's token is never returned). */
export interface TaxiiPartner {
  id: string;
  name: string;
  url: string;
  createdBy: string;
  createdAt: string;
  addedAfter: string | null;
  lastPollAt: string | null;
  lastError: string | null;
  imported: number;
  refused: number;
  lastRefusals: { id: string; reason: string }[];
}

/** What an import of STIX objects did: indicators stored, objects refused (id, reason), the search of the past. */
export interface IndicatorImportReport {
  imported: number;
  unchanged: number;
  revoked: number;
  refused: { id: string; reason: string }[];
  skipped: number;
  retro: {
    scanned: number;
    /** Present when the audit log was pruned: entries below this index were exported and deleted, not searched. */
    prunedBefore?: number;
    ms: number;
    matches: { actor: string; events: number; indicators: string[]; first: string; last: string }[];
    alerts: number;
  };
}

export interface ImportedIndicatorView {
  id: string;
  partner: string;
  version: string;
  name: string;
  pattern: string;
  networks: string[];
  techniques: string[];
  validFrom: string;
  validUntil: string | null;
  tlp: string | null;
  importedAt: string;
  retroMatches: number;
}

/** A user as the staff lifecycle routes list them. */
export interface StaffUser {
  handle: string;
  units: string[];
  clearance: string;
  role: string;
  disabled: boolean;
  disabledAt: number | null;
  activeDevices: number;
}
/** A directory log entry as the change feed and user history show it (decoded by the server: untrusted). */
export interface DirectoryChange {
  index: number;
  time: string;
  type: string;
  entry: Record<string, unknown> & { type: string; time: number };
}
export interface PendingRemovalView {
  conversation: string;
  devices: string[];
}
/** A key-transparency finding reported to the security officers (POST /v1/kt/reports). */
export interface KtReport {
  kind: "directory_mismatch" | "unknown_device" | "log_refused" | "not_mine";
  /** A handle or unit (at most 200 characters); for `not_mine`, the device that is not the user's. */
  subject: string;
  /** What differs (at most 2000 characters). */
  detail: string;
}
