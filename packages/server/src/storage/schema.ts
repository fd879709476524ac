/**
 * Database schema as Kysely types. The same schema (one migration set, `migrations.ts`) runs on SQLite
 * (embedded default) and PostgreSQL. Binary columns come back as Buffer/Uint8Array on both drivers; 64-bit integer
 * columns are converted to number at the driver edge (see db.ts).
 */
import type { Generated } from "kysely";

export interface UnitsTable {
  name: string;
  max_label: string;
  created_at: number;
  /** `unit.share` (migration 021): seconds as decimal text; null: `all`. */
  share_since: string | null;
  /** The unit's IANA time zone (migration 024; `valise admin unit tz`), for detection's hours of day; null: UTC. */
  tz: string | null;
}
/** Memberships that are archive assignments (migration 021; each also has its user_units row). */
export interface ArchiveUnitsTable {
  handle: string;
  unit: string;
  created_at: number;
}
export interface UsersTable {
  handle: string;
  clearance: string;
  role: string; // "user" | "officer" | "admin" | "archivist"
  created_at: number;
  disabled_at: number | null; // offboarded (migration 010); null while active
}
export interface UserUnitsTable {
  handle: string;
  unit: string;
}
export interface EnrollmentCodesTable {
  code_hash: string; // hex SHA-256 of the code: the code itself is never stored
  handle: string;
  expires_at: number;
  used_at: number | null;
  /** Who issued the code (migration 025): an officer's handle or admin-cli; null for codes issued before. */
  issued_by: string | null;
}
export interface DevicesTable {
  id: string;
  handle: string;
  name: string;
  signature_public_key: Uint8Array;
  created_at: number;
  revoked_at: number | null;
}
export interface KeyPackagesTable {
  ref: string;
  device_id: string;
  data: Uint8Array;
  created_at: number;
}
export interface SessionsTable {
  token_hash: string;
  device_id: string;
  handle: string;
  expires_at: number;
}
export interface ChallengesTable {
  challenge: string;
  device_id: string;
  expires_at: number;
}
export interface ConversationsTable {
  id: string;
  kind: string; // direct | group | unit | link
  label: string;
  unit: string | null; // unit channel: the unit; link: the addressee unit
  from_unit: string | null; // link: the originating unit (migration 006)
  creator: string;
  epoch: number;
  head_seq: number;
  group_info: Uint8Array | null;
  created_at: number;
}
export interface ConversationMembersTable {
  conversation_id: string;
  device_id: string;
  joined_seq: number; // first seq this device may read (the commit that added it + 1)
  left_seq: number | null; // first seq it may no longer read
}
export interface MessagesTable {
  conversation_id: string;
  seq: number;
  kind: string; // application | commit | proposal
  epoch: number;
  sender_device: string;
  payload: Uint8Array;
  idem_key: string;
  created_at: number;
}
export interface InboxTable {
  id: Generated<number>;
  device_id: string;
  conversation_id: string;
  commit_seq: number;
  payload: Uint8Array;
  created_at: number;
}

export interface DirectoryLogHeadTable {
  id: number; // always 1
  size: number;
}
export interface DirectoryLogEntriesTable {
  idx: number;
  data: Uint8Array; // canonical entry bytes (core encodeDirectoryEntry)
  leaf_hash: Uint8Array;
  created_at: number;
}
export interface DirectoryLogNodesTable {
  level: number; // 0 = leaf hashes
  idx: number; // the perfect subtree [idx·2^level, (idx+1)·2^level)
  hash: Uint8Array;
}
export interface DirectoryLogCheckpointsTable {
  size: number;
  root_hash: Uint8Array;
  note: string; // the signed note, as served
  created_at: number;
}
export interface LogKeysTable {
  log: string; // "directory"
  vkey: string; // signed-note verifier key pinned at first use
  created_at: number;
}
export interface LogHandoversTable {
  old_vkey: string;
  new_vkey: string;
  directory_size: number;
  audit_size: number;
  note: string; // the hand-over signed note (core key-handover.ts)
  created_at: number;
}
export interface DirectoryLogRefsTable {
  ref: string; // e.g. "device.add/<device>", "user.clearance/<user>" (see migration 003)
  idx: number; // the directory log entry holding that fact
}
export interface LogCosignedCheckpointsTable {
  log: string; // "directory"
  size: number;
  note: string; // the log-signed checkpoint with witness cosignature lines appended, as published
  cosignatures: number;
  created_at: number;
}

export interface BlobsTable {
  id: string;
  owner: string;
  owner_device: string;
  size: number; // total ciphertext bytes announced at creation
  received: number; // bytes durably on the blob store (last known)
  complete: number; // 0 | 1
  object_kind: string | null; // "document" | "cable" once attached
  object_id: string | null;
  created_at: number;
  completed_at: number | null;
}
export interface DocumentsTable {
  id: string;
  owner: string;
  label: string;
  to_kind: string; // user | unit
  to_name: string;
  canary: number; // 0 | 1 — never shown to users
  created_at: number;
}
export interface DocumentVersionsTable {
  document_id: string;
  version: number;
  blob: string;
  size: number;
  created_at: number;
  created_by: string;
}
export interface CableSerialsTable {
  originator: string;
  year: number;
  last_serial: number;
}
export interface CablesTable {
  id: string;
  reference: string;
  originator: string;
  year: number;
  serial: number;
  sender: string;
  sender_device: string;
  precedence: string;
  precedence_rank: number; // 0 ROUTINE … 3 FLASH
  label: string;
  blob: string;
  size: number;
  corrects: string | null;
  request_hash: string; // what was asked (idempotent re-POST: same hash → same answer)
  created_at: number;
}
export interface CableAddresseesTable {
  cable_id: string;
  unit: string;
  role: string; // action | info
  position: number;
  delivered_at: number | null;
  delivered_by: string | null;
  read_at: number | null;
  read_by: string | null;
}
export interface CableDeviceReceiptsTable {
  device_id: string;
  cable_id: string;
  state: string; // delivered | read
  delivered_at: number;
  read_at: number | null;
}
export interface PendingRemovalsTable {
  conversation_id: string;
  device_id: string;
  reason: string; // revoked | clearance
  created_at: number;
}

export interface AlertsTable {
  id: number; // assigned in order by the detector
  time: number; // the triggering event's time, ms
  actor: string;
  rule: string;
  severity: string; // low | medium | high | critical
  reason: string;
  events: string; // JSON array of audit event ids, the triggering event last
  trigger_event: string;
  log_index: number; // the triggering event's index in the audit log
  created_at: number;
  acknowledged_by: string | null;
  acknowledged_at: number | null;
}
export interface DetectStateTable {
  id: number; // always 1
  next_index: number; // audit log entries below this index have been pushed into the engine
  snapshot: string | null; // engine snapshot JSON, as of next_index
  updated_at: number;
}

export interface IncidentsTable {
  id: string; // inc-<hex>
  title: string;
  created_by: string;
  created_at: number;
  alerts: string; // JSON array of alert ids (numbers)
  note: string | null;
  shared_at: number | null; // when an officer shared it to the TAXII collection (null: not shared)
  shared_by: string | null;
}
export interface TaxiiPartnersTable {
  id: string; // tp-<hex>
  name: string;
  url: string; // the partner's collection URL (…/collections/<id>/)
  token: string; // the bearer token the partner issued to us (presented on every poll)
  created_by: string;
  created_at: number;
  added_after: string | null; // TAXII date added of the last object received (the next poll's added_after)
  last_poll_at: number | null;
  last_error: string | null;
  imported: number;
  refused: number;
  last_refusals: string; // JSON [{id, reason}] of the last poll
}
export interface IocIndicatorsTable {
  id: string; // STIX id of the indicator
  partner: string; // taxii_partners.id, or "file:<officer>" for an imported bundle
  version: string;
  name: string;
  pattern: string;
  networks: string; // JSON list of CIDR texts
  techniques: string; // JSON list of ATT&CK ids
  valid_from: number;
  valid_until: number | null;
  tlp: string | null;
  from_index: number; // audit index from which live matching applies
  imported_at: number;
  retro_matches: number;
}
export interface TaxiiTokensTable {
  id: string; // tt-<hex>
  token_hash: string; // hex SHA-256 of the partner's bearer token: the token itself is never stored
  partner: string;
  created_by: string;
  created_at: number;
  revoked_at: number | null;
}
export interface TaxiiObjectsTable {
  collection_id: string;
  object_id: string;
  version: string; // the object's `modified` (or `created`, or "" for SCOs): one row per version
  added_at: number; // ms, unique and increasing (the TAXII date added)
  object: string; // the STIX object JSON
}
export interface IncidentKeysTable {
  name: string; // "pseudonym"
  secret: string; // hex
  created_at: number;
}

export interface BrowserDevicesTable {
  device_id: string;
  enrolled_at: number | string | bigint;
}

export interface PasskeysTable {
  credential_id: string; // base64url, as WebAuthn names it
  device_id: string;
  handle: string;
  public_key: Uint8Array; // COSE public key
  counter: number;
  transports: string; // JSON array
  created_at: number;
  last_used_at: number | null;
}

export interface BlobSizesTable {
  id: string;
  size: number; // bytes durably stored (the PostgreSQL blob store, migration 020)
}
export interface BlobChunksTable {
  blob_id: string;
  start: number; // byte offset of the chunk in the blob
  data: Uint8Array;
}
export interface RateBucketsTable {
  key: string; // "<limiter>:<key>"
  tokens: number;
  at: number; // ms of the last refill
}

/** Retention (migration 022). */
export interface RetentionRulesTable {
  scope: string; // "unit" | "label"
  name: string; // the unit's name or the canonical label
  keep_ms: number;
  set_at: number;
}
export interface RetentionArchiveMarksTable {
  unit: string;
  archived_through: number; // ms: the unit's archive holds its records created before this
  set_at: number;
}
export interface LogPruneTable {
  log: string; // "audit"
  pruned_before: number; // entries below this index were exported and deleted
  pruned_at: number;
}

export interface Database {
  retention_rules: RetentionRulesTable;
  retention_archive_marks: RetentionArchiveMarksTable;
  log_prune: LogPruneTable;
  units: UnitsTable;
  users: UsersTable;
  user_units: UserUnitsTable;
  archive_units: ArchiveUnitsTable;
  enrollment_codes: EnrollmentCodesTable;
  devices: DevicesTable;
  key_packages: KeyPackagesTable;
  sessions: SessionsTable;
  challenges: ChallengesTable;
  conversations: ConversationsTable;
  conversation_members: ConversationMembersTable;
  messages: MessagesTable;
  inbox: InboxTable;
  directory_log_head: DirectoryLogHeadTable;
  directory_log_entries: DirectoryLogEntriesTable;
  directory_log_nodes: DirectoryLogNodesTable;
  directory_log_checkpoints: DirectoryLogCheckpointsTable;
  log_keys: LogKeysTable;
  log_handovers: LogHandoversTable;
  log_cosigned_checkpoints: LogCosignedCheckpointsTable;
  directory_log_refs: DirectoryLogRefsTable;
  blobs: BlobsTable;
  documents: DocumentsTable;
  document_versions: DocumentVersionsTable;
  cable_serials: CableSerialsTable;
  cables: CablesTable;
  cable_addressees: CableAddresseesTable;
  cable_device_receipts: CableDeviceReceiptsTable;
  pending_removals: PendingRemovalsTable;
  alerts: AlertsTable;
  detect_state: DetectStateTable;
  incidents: IncidentsTable;
  taxii_tokens: TaxiiTokensTable;
  taxii_partners: TaxiiPartnersTable;
  ioc_indicators: IocIndicatorsTable;
  taxii_objects: TaxiiObjectsTable;
  incident_keys: IncidentKeysTable;
  passkeys: PasskeysTable;
  browser_devices: BrowserDevicesTable;
  blob_sizes: BlobSizesTable;
  blob_chunks: BlobChunksTable;
  rate_buckets: RateBucketsTable;
}
