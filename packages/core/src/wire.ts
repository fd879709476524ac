/**
 * The wire contract (issue 17): the request and response schemas (TypeBox, i.e. JSON Schema) of the main endpoints,
 * in one module that the server validates requests with (Fastify) and the client validates responses with
 * (`parseWire`). Browser-safe: no node: imports, and `parseWire` interprets the schema (no code generation, so the
 * web app's Content-Security-Policy without 'unsafe-eval' is kept).
 *
 * Responses allow fields beyond the ones named (a newer server may add some); requests do not.
 */
import type { Static, TSchema } from "typebox";
import { Type } from "./schema-type.js";
import { ValiseError } from "./errors.js";
import { ID_PATTERN } from "./ids.js";

export const MAX_MESSAGE = 256 * 1024;
/**
 * Response header on the successful authenticated writes a membership check usually follows (a cable's or document's
 * release, a message): the directory log's head size (the answer of GET /v1/log/directory/size at that moment), so
 * the client need not ask for it.
 */
export const DIRECTORY_SIZE_HEADER = "valise-directory-size";
export const MAX_COMMIT = 16 * 1024 * 1024;

export const ConversationIdT = Type.String({ pattern: ID_PATTERN.conversation });
export const DeviceIdT = Type.String({ pattern: ID_PATTERN.device });
export const IdempotencyKeyT = Type.String({ minLength: 8, maxLength: 128, pattern: "^[A-Za-z0-9_-]+$" });
export const base64T = (maxLength: number) => Type.String({ maxLength, pattern: ID_PATTERN.base64 });
const Seq = Type.Integer({ minimum: 0 });
const Time = Type.Integer({ minimum: 0 });
const ConversationKindT = Type.Union([
  Type.Literal("direct"),
  Type.Literal("group"),
  Type.Literal("unit"),
  Type.Literal("link"),
]);

// ---------------------------------------------------------------- requests (the server validates these)

export const CreateConversationBody = Type.Object(
  {
    id: ConversationIdT,
    kind: ConversationKindT,
    label: Type.String({ minLength: 1, maxLength: 512 }),
    unit: Type.Optional(Type.String({ maxLength: 200 })),
    /** `link`: the originating unit (the caller's); `unit` is the addressee unit. */
    fromUnit: Type.Optional(Type.String({ maxLength: 200 })),
  },
  { additionalProperties: false },
);
export const ConversationParams = Type.Object({ id: ConversationIdT });
export const FetchMessagesQuery = Type.Object(
  {
    after: Type.Optional(Type.Integer({ minimum: 0 })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
  },
  { additionalProperties: false },
);
export const CommitBody = Type.Object(
  {
    commit: base64T(MAX_COMMIT),
    welcome: Type.Optional(base64T(MAX_COMMIT)),
    groupInfo: base64T(MAX_COMMIT),
    added: Type.Array(DeviceIdT, { maxItems: 5000 }),
    removed: Type.Array(DeviceIdT, { maxItems: 5000 }),
    idempotencyKey: IdempotencyKeyT,
    external: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
export const InboxQuery = Type.Object(
  { after: Type.Optional(Type.Integer({ minimum: 0 })) },
  { additionalProperties: false },
);

// Auth and enrollment.
const EnrollB64 = Type.String({ maxLength: 1_000_000, pattern: ID_PATTERN.base64 });
export const EnrollBody = Type.Object(
  {
    code: Type.String({ minLength: 8, maxLength: 64 }),
    device: Type.Object(
      {
        id: DeviceIdT,
        name: Type.String({ minLength: 1, maxLength: 64 }),
        signaturePublicKey: Type.String({ minLength: 44, maxLength: 44 }),
      },
      { additionalProperties: false },
    ),
    keyPackages: Type.Array(EnrollB64, { minItems: 0, maxItems: 100 }),
  },
  { additionalProperties: false },
);
export const ChallengeBody = Type.Object({ device: DeviceIdT }, { additionalProperties: false });
export const SessionBody = Type.Object(
  {
    device: DeviceIdT,
    challenge: Type.String({ minLength: 16, maxLength: 128 }),
    signature: Type.String({ minLength: 88, maxLength: 88 }),
  },
  { additionalProperties: false },
);
const PasskeyChallenge = Type.String({ minLength: 16, maxLength: 128 });
/** A WebAuthn credential as the browser serializes it (checked by @simplewebauthn/server). */
const PasskeyCredential = Type.Object(
  {
    id: Type.String({ minLength: 1, maxLength: 1024 }),
    rawId: Type.String({ minLength: 1, maxLength: 1024 }),
    type: Type.Literal("public-key"),
    response: Type.Record(Type.String(), Type.Unknown()),
    clientExtensionResults: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
    authenticatorAttachment: Type.Optional(Type.String({ maxLength: 32 })),
  },
  { additionalProperties: false },
);
export const PasskeyRegisterBody = Type.Object(
  { challenge: PasskeyChallenge, credential: PasskeyCredential },
  { additionalProperties: false },
);
export const PasskeyOptionsBody = Type.Object({ device: DeviceIdT }, { additionalProperties: false });
export const PasskeySessionBody = Type.Object(
  {
    device: DeviceIdT,
    challenge: PasskeyChallenge,
    signature: Type.String({ minLength: 88, maxLength: 88 }),
    credential: PasskeyCredential,
  },
  { additionalProperties: false },
);

// Directory, key packages, key-transparency reports.
const KeyPackageB64 = Type.String({ maxLength: 100_000, pattern: ID_PATTERN.base64 });
export const UploadKeyPackagesBody = Type.Object(
  { keyPackages: Type.Array(KeyPackageB64, { minItems: 1, maxItems: 100 }) },
  { additionalProperties: false },
);
export const ClaimKeyPackagesBody = Type.Object(
  {
    devices: Type.Array(Type.String({ pattern: ID_PATTERN.device }), { minItems: 1, maxItems: 5000 }),
    /** The conversation the caller is adding these devices to (it must be an active member of it). */
    conversation: Type.String({ pattern: ID_PATTERN.conversation }),
  },
  { additionalProperties: false },
);
export const ClearanceBody = Type.Object(
  { clearance: Type.String({ minLength: 1, maxLength: 512 }) },
  { additionalProperties: false },
);
export const KtReportBody = Type.Object(
  {
    kind: Type.Union([
      Type.Literal("directory_mismatch"),
      Type.Literal("unknown_device"),
      Type.Literal("log_refused"),
      Type.Literal("not_mine"),
    ]),
    subject: Type.String({ minLength: 1, maxLength: 200 }),
    detail: Type.String({ maxLength: 2000 }),
  },
  { additionalProperties: false },
);

// Staff lifecycle.
export const HandleBody = Type.Object(
  { handle: Type.String({ minLength: 1, maxLength: 64 }) },
  { additionalProperties: false },
);
export const MoveBody = Type.Object(
  { from: Type.String({ minLength: 1, maxLength: 200 }), to: Type.String({ minLength: 1, maxLength: 200 }) },
  { additionalProperties: false },
);
export const ShareBody = Type.Object(
  { since: Type.String({ minLength: 1, maxLength: 16 }) },
  { additionalProperties: false },
);
export const RoleBody = Type.Object(
  { role: Type.String({ minLength: 1, maxLength: 32 }) },
  { additionalProperties: false },
);
export const MaxLabelBody = Type.Object(
  { maxLabel: Type.String({ minLength: 1, maxLength: 512 }) },
  { additionalProperties: false },
);

// Blobs, documents, cables.
export const MAX_BLOB = 64 * 1024 ** 3;
/** The largest blob sent whole in one request (POST /v1/blobs/whole); larger ones go in parts (POST, then PATCH). */
export const MAX_WHOLE_BLOB = 1024 * 1024;
const BlobIdT = Type.String({ pattern: ID_PATTERN.blob });
export const CreateBlobBody = Type.Object(
  { size: Type.Integer({ minimum: 1, maximum: MAX_BLOB }) },
  { additionalProperties: false },
);
export const CreateDocumentBody = Type.Object(
  {
    id: Type.String({ pattern: ID_PATTERN.document }),
    label: Type.String({ minLength: 1, maxLength: 512 }),
    to: Type.Object(
      {
        kind: Type.Union([Type.Literal("user"), Type.Literal("unit")]),
        name: Type.String({ minLength: 1, maxLength: 200 }),
      },
      { additionalProperties: false },
    ),
    blob: BlobIdT,
  },
  { additionalProperties: false },
);
export const DocumentVersionBody = Type.Object({ blob: BlobIdT }, { additionalProperties: false });
export const CanaryBody = Type.Object({ canary: Type.Boolean() }, { additionalProperties: false });
const CableUnit = Type.String({ minLength: 1, maxLength: 200 });
export const ReleaseCableBody = Type.Object(
  {
    id: Type.String({ pattern: ID_PATTERN.cable }),
    originator: CableUnit,
    action: Type.Array(CableUnit, { minItems: 1, maxItems: 200 }),
    info: Type.Optional(Type.Array(CableUnit, { maxItems: 200 })),
    precedence: Type.String({ minLength: 1, maxLength: 20 }),
    label: Type.String({ minLength: 1, maxLength: 512 }),
    blob: BlobIdT,
    corrects: Type.Optional(Type.Union([Type.String({ minLength: 1, maxLength: 300 }), Type.Null()])),
  },
  { additionalProperties: false },
);
export const CableReceiptBody = Type.Object(
  { state: Type.Union([Type.Literal("delivered"), Type.Literal("read")]) },
  { additionalProperties: false },
);

// Incidents and TAXII (officers).
export const MAX_INCIDENT_ALERTS = 500;
export const CreateIncidentBody = Type.Object(
  {
    title: Type.String({ minLength: 1, maxLength: 200 }),
    alerts: Type.Array(Type.Integer({ minimum: 1 }), { minItems: 1, maxItems: MAX_INCIDENT_ALERTS }),
    note: Type.Optional(Type.String({ maxLength: 20_000 })),
  },
  { additionalProperties: false },
);
export const IssueTaxiiTokenBody = Type.Object(
  { partner: Type.String({ minLength: 1, maxLength: 200, pattern: "\\S" }) },
  { additionalProperties: false },
);
export const AddTaxiiPartnerBody = Type.Object(
  {
    url: Type.String({ minLength: 1, maxLength: 2000 }),
    token: Type.String({ minLength: 1, maxLength: 4000 }),
    name: Type.String({ minLength: 1, maxLength: 200, pattern: "\\S" }),
  },
  { additionalProperties: false },
);

// ---------------------------------------------------------------- responses (the client validates these)

export const WireConversation = Type.Object({
  id: ConversationIdT,
  kind: ConversationKindT,
  label: Type.String({ maxLength: 512 }),
  unit: Type.Union([Type.String({ maxLength: 200 }), Type.Null()]),
  fromUnit: Type.Optional(Type.Union([Type.String({ maxLength: 200 }), Type.Null()])),
  creator: Type.String({ maxLength: 200 }),
  epoch: Seq,
  headSeq: Seq,
  joinedSeq: Type.Optional(Seq),
  leftSeq: Type.Optional(Type.Union([Seq, Type.Null()])),
});
export const ConversationsResponse = Type.Object({ conversations: Type.Array(WireConversation) });

export const WireMessage = Type.Object({
  seq: Type.Integer({ minimum: 1 }),
  kind: Type.Union([Type.Literal("application"), Type.Literal("commit"), Type.Literal("proposal")]),
  epoch: Seq,
  sender: DeviceIdT,
  payload: base64T(MAX_COMMIT * 2),
  createdAt: Time,
});
export const MessagesResponse = Type.Object({ messages: Type.Array(WireMessage, { maxItems: 1000 }) });

export const AppendAnswerResponse = Type.Object({ seq: Seq, epoch: Seq, duplicate: Type.Boolean() });

const LogIndex = Type.Optional(Type.Union([Seq, Type.Null()]));
export const WireUser = Type.Object({
  handle: Type.String({ pattern: ID_PATTERN.handle }),
  units: Type.Array(Type.String({ pattern: ID_PATTERN.unit }), { maxItems: 1000 }),
  /** The units (also in `units`) this user is the records archive of. */
  archives: Type.Optional(Type.Array(Type.String({ pattern: ID_PATTERN.unit }), { maxItems: 1000 })),
  clearance: Type.String({ maxLength: 512 }),
  role: Type.String({ maxLength: 64 }),
  devices: Type.Array(
    Type.Object({
      id: DeviceIdT,
      name: Type.String({ maxLength: 200 }),
      signaturePublicKey: base64T(1000),
      createdAt: Time,
      revokedAt: Type.Union([Time, Type.Null()]),
      logIndex: LogIndex,
      revokeLogIndex: LogIndex,
    }),
    { maxItems: 10_000 },
  ),
  logIndex: LogIndex,
  clearanceLogIndex: LogIndex,
  disabled: Type.Optional(Type.Boolean()),
});

// ---------------------------------------------------------------- more responses, by area

const Str = (maxLength: number) => Type.String({ maxLength });
const Int = Type.Integer();
const Nat = Type.Integer({ minimum: 0 });
const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);
const List = <T extends TSchema>(t: T, maxItems: number) => Type.Array(t, { maxItems });
const HandleT = Type.String({ pattern: ID_PATTERN.handle });
const UnitT = Type.String({ pattern: ID_PATTERN.unit });
const Iso = Str(64);
/** A proof: at most 64 hashes (a tree of 2^64 leaves). */
const ProofT = List(base64T(64), 64);
/** Any JSON object (its fields are checked where used, e.g. a STIX object or a decoded directory entry). */
const AnyObject = Type.Record(Type.String(), Type.Unknown());
const PendingRemovalsT = List(Type.Object({ conversation: Str(200), devices: List(DeviceIdT, 10_000) }), 100_000);

// auth, session, own devices
export const EnrollResponse = Type.Object({
  user: Type.Object({ handle: HandleT, units: List(UnitT, 1000), clearance: Str(512), role: Str(64) }),
  device: Type.Object({ id: DeviceIdT }),
});
export const ChallengeResponse = Type.Object({ challenge: Str(256), expiresAt: Time });
export const SessionResponse = Type.Object({ token: Type.String({ minLength: 1, maxLength: 512 }), expiresAt: Time });
export const MeResponse = Type.Object({ ...WireUser.properties, device: DeviceIdT });
export const PasskeyOptionsResponse = Type.Object({ challenge: Str(256), options: AnyObject });
export const PasskeyRegisteredResponse = Type.Object({ credentialId: Str(1024) });
export const DeviceAckResponse = Type.Object({ device: DeviceIdT, acknowledged: Type.Boolean(), from: DeviceIdT });
export const DeviceRevokeResponse = Type.Object({ device: DeviceIdT, revoked: Type.Boolean() });

// directory and key transparency
export const UserResponse = WireUser;
export const UnitsResponse = Type.Object({
  units: List(Type.Object({ name: UnitT, maxLabel: Str(512), share: Type.Optional(Str(64)) }), 10_000),
});
export const UnitMembersResponse = Type.Object({ unit: UnitT, members: List(HandleT, 100_000) });
export const KeyPackageCountResponse = Type.Object({ count: Nat });
/** The directory log's head size (entries appended, witnessed or not yet). */
export const LogSizeResponse = Type.Object({ size: Nat });
export const ClaimKeyPackagesResponse = Type.Object({
  keyPackages: List(Type.Object({ handle: HandleT, device: DeviceIdT, keyPackage: base64T(64 * 1024) }), 10_000),
});
export const LogTrustResponse = Type.Object({ logKey: Str(1000), witnesses: List(Str(1000), 100), quorum: Nat });
export const KeyHandoversResponse = Type.Object({ handovers: List(Str(16 * 1024), 10_000) });
export const LogEntryResponse = Type.Object({ entry: base64T(1024 * 1024) });
export const ProofResponse = Type.Object({ proof: ProofT });
export const KtReportResponse = Type.Object({ id: Int, duplicate: Type.Boolean(), incident: Type.Optional(Str(200)) });

// conversations
export const GroupInfoResponse = Type.Object({ groupInfo: base64T(MAX_COMMIT * 2) });
export const InboxResponse = Type.Object({
  items: List(
    Type.Object({
      id: Nat,
      conversation: WireConversation,
      commitSeq: Nat,
      welcome: base64T(MAX_COMMIT * 2),
      createdAt: Time,
    }),
    1000,
  ),
});

// blobs and documents
export const BlobStatusResponse = Type.Object({
  id: Type.String({ pattern: ID_PATTERN.blob }),
  size: Nat,
  received: Nat,
  complete: Type.Boolean(),
});
const AddresseeT = Type.Object({ kind: Type.Union([Type.Literal("user"), Type.Literal("unit")]), name: Str(200) });
export const WireDocument = Type.Object({
  id: Type.String({ pattern: ID_PATTERN.document }),
  owner: Str(200),
  label: Str(512),
  to: AddresseeT,
  createdAt: Time,
  versions: List(
    Type.Object({
      version: Nat,
      blob: Type.String({ pattern: ID_PATTERN.blob }),
      size: Nat,
      createdAt: Time,
      createdBy: Str(200),
    }),
    100_000,
  ),
});
export const DocumentsResponse = Type.Object({ documents: List(WireDocument, 100_000) });
export const CanaryResponse = Type.Object({
  id: Type.String({ pattern: ID_PATTERN.document }),
  canary: Type.Boolean(),
});

// cables
const NullableTime = Nullable(Time);
export const WireCable = Type.Object({
  id: Type.String({ pattern: ID_PATTERN.cable }),
  reference: Str(200),
  originator: Str(200),
  sender: Str(200),
  senderDevice: Str(200),
  precedence: Str(64),
  label: Str(512),
  action: List(Str(200), 1000),
  info: List(Str(200), 1000),
  blob: Type.String({ pattern: ID_PATTERN.blob }),
  size: Nat,
  corrects: Nullable(Str(200)),
  createdAt: Time,
  receipts: List(
    Type.Object({
      unit: Str(200),
      role: Type.Union([Type.Literal("action"), Type.Literal("info")]),
      deliveredAt: NullableTime,
      deliveredBy: Nullable(Str(200)),
      readAt: NullableTime,
      readBy: Nullable(Str(200)),
    }),
    2000,
  ),
});
export const CablesResponse = Type.Object({ cables: List(WireCable, 10_000) });

// staff lifecycle and clearances (officers, admins)
export const ClearanceResponse = Type.Object({
  handle: HandleT,
  clearance: Str(512),
  pendingRemovals: PendingRemovalsT,
});
export const StaffUserT = Type.Object({
  handle: HandleT,
  units: List(UnitT, 1000),
  clearance: Str(512),
  role: Str(64),
  disabled: Type.Boolean(),
  disabledAt: NullableTime,
  activeDevices: Nat,
});
export const StaffUsersResponse = Type.Object({ users: List(StaffUserT, 1_000_000) });
const DirectoryChangeT = Type.Object({
  index: Nat,
  time: Iso,
  type: Str(64),
  entry: Type.Object({ type: Str(64), time: Int }),
});
export const UserHistoryResponse = Type.Object({ handle: HandleT, history: List(DirectoryChangeT, 1_000_000) });
export const UnitMembersDetailedResponse = Type.Object({ unit: UnitT, members: List(StaffUserT, 1_000_000) });
export const MembershipResponse = Type.Object({ handle: HandleT, unit: UnitT });
export const MembershipRemovedResponse = Type.Object({
  handle: HandleT,
  unit: UnitT,
  pendingRemovals: PendingRemovalsT,
});
export const MoveResponse = Type.Object({ handle: HandleT, from: UnitT, to: UnitT, pendingRemovals: PendingRemovalsT });
export const RoleResponse = Type.Object({ handle: HandleT, role: Str(64), changed: Type.Boolean() });
export const DisableResponse = Type.Object({
  handle: HandleT,
  revokedDevices: List(DeviceIdT, 10_000),
  pendingRemovals: PendingRemovalsT,
});
export const EnableResponse = Type.Object({ handle: HandleT });
export const UnitShareResponse = Type.Object({ unit: UnitT, since: Str(64), changed: Type.Boolean() });
export const UnitMaxLabelResponse = Type.Object({ unit: UnitT, maxLabel: Str(512) });
export const DirectoryChangesResponse = Type.Object({ size: Nat, changes: List(DirectoryChangeT, 1000) });

// audit log and detection (officers)
export const AuditKeyResponse = Type.Object({ vkey: Str(1000), origin: Str(1000) });
export const AuditPrunedResponse = Type.Object({ before: Nat, frontier: List(base64T(64), 64) });
export const AuditEntriesResponse = Type.Object({ entries: List(base64T(1024 * 1024), 1000) });
/** `index` any integer: an event the log does not hold is reported by the audit client as unproven (audit.ts). */
export const AuditEventsResponse = Type.Object({
  events: List(Type.Object({ index: Int, entry: base64T(1024 * 1024), proof: Type.Optional(ProofT) }), 1000),
});
export const AuditCableResponse = Type.Object({
  id: Type.String({ pattern: ID_PATTERN.cable }),
  reference: Str(200),
  originator: Str(200),
  label: Str(512),
  createdAt: Time,
});
const SeverityT = Type.Union([
  Type.Literal("low"),
  Type.Literal("medium"),
  Type.Literal("high"),
  Type.Literal("critical"),
]);
const AlertCore = {
  id: Nat,
  time: Iso,
  actor: Str(200),
  rule: Str(200),
  severity: SeverityT,
  reason: Str(20_000),
  events: List(Str(200), 10_000),
};
export const WireAlert = Type.Object({
  ...AlertCore,
  createdAt: Iso,
  acknowledgedBy: Nullable(Str(200)),
  acknowledgedAt: Nullable(Iso),
});
export const AlertsResponse = Type.Object({
  alerts: List(WireAlert, 1000),
  learning: Type.Optional(
    Type.Object({ until: Nullable(Iso), trainDays: Nat, active: Type.Boolean(), hours: Str(4000) }),
  ),
});

// incidents and TAXII (officers)
export const WireIncident = Type.Object({
  id: Str(200),
  title: Str(200),
  createdBy: Str(200),
  createdAt: Iso,
  alerts: List(Nat, 100_000),
  note: Nullable(Str(20_000)),
  shared: Type.Boolean(),
  sharedAt: Nullable(Iso),
  sharedBy: Nullable(Str(200)),
  alertDetails: Type.Optional(List(Type.Object(AlertCore), 100_000)),
});
export const IncidentsResponse = Type.Object({ incidents: List(WireIncident, 1000) });
export const StixBundleResponse = Type.Object({
  type: Type.Literal("bundle"),
  id: Str(200),
  objects: List(AnyObject, 1_000_000),
});
export const ShareIncidentResponse = Type.Object({
  id: Str(200),
  collection: Str(200),
  partner: Type.Optional(Str(200)),
  tlp: Str(64),
  objects: Nat,
  added: Nat,
});
const RefusalT = Type.Object({ id: Str(1000), reason: Str(20_000) });
export const WireTaxiiPartner = Type.Object({
  id: Str(200),
  name: Str(200),
  url: Str(2000),
  createdBy: Str(200),
  createdAt: Iso,
  addedAfter: Nullable(Iso),
  lastPollAt: Nullable(Iso),
  lastError: Nullable(Str(100_000)),
  imported: Nat,
  refused: Nat,
  lastRefusals: List(RefusalT, 10_000),
});
export const TaxiiPartnersResponse = Type.Object({ partners: List(WireTaxiiPartner, 10_000) });
const RetroT = Type.Object({
  scanned: Nat,
  prunedBefore: Type.Optional(Nat),
  ms: Type.Number({ minimum: 0 }),
  matches: List(
    Type.Object({
      actor: Str(200),
      events: Nat,
      indicators: List(Str(1000), 100_000),
      first: Iso,
      last: Iso,
    }),
    100_000,
  ),
  alerts: Nat,
});
const ImportCounts = {
  imported: Nat,
  unchanged: Nat,
  revoked: Nat,
  refused: List(RefusalT, 100_000),
  skipped: Nat,
};
export const ImportReportResponse = Type.Object({ ...ImportCounts, retro: RetroT });
export const PollPartnerResponse = Type.Object({
  ...WireTaxiiPartner.properties,
  report: Type.Object({ ...ImportCounts, retro: List(RetroT, 10_000) }),
});
export const IndicatorsResponse = Type.Object({
  indicators: List(
    Type.Object({
      id: Str(1000),
      partner: Str(200),
      version: Str(200),
      name: Str(20_000),
      pattern: Str(1024 * 1024),
      networks: List(Str(200), 100_000),
      techniques: List(Str(200), 10_000),
      validFrom: Iso,
      validUntil: Nullable(Iso),
      tlp: Nullable(Str(64)),
      importedAt: Iso,
      retroMatches: Nat,
    }),
    1_000_000,
  ),
});
export const WireTaxiiToken = Type.Object({
  id: Str(200),
  partner: Str(200),
  createdBy: Str(200),
  createdAt: Iso,
  revokedAt: Nullable(Iso),
  token: Type.Optional(Str(1000)),
});
export const IssuedTaxiiTokenResponse = Type.Object({ ...WireTaxiiToken.properties, token: Str(1000) });
export const TaxiiTokensResponse = Type.Object({ tokens: List(WireTaxiiToken, 100_000) });

// ---------------------------------------------------------------- the contract: every route the SDK calls

/**
 * What a route answers: a JSON schema (checked by the client), or a body that is not JSON — a signed note (`text`),
 * tile bytes (`bytes`), a blob's ciphertext as a stream (`stream`) — checked cryptographically by the caller, or
 * nothing (`empty`, 204).
 */
export type WireAnswerKind = TSchema | "text" | "bytes" | "stream" | "empty";
export interface WireRouteSpec {
  response: WireAnswerKind;
  /** The request body's schema, where the server validates it with this very schema. */
  body?: TSchema;
}

/**
 * Every route the SDK (HttpTransport) calls, keyed "METHOD /path/:param" as the server registers it. The client can
 * only call a route named here (its request core takes the key), and test/wire-routes.test.ts (server) fails if a
 * key names no server route or a server route is neither here nor in its list of routes the SDK does not call.
 */
export const WIRE = {
  // auth, session, own devices
  "POST /v1/enroll": { response: EnrollResponse, body: EnrollBody },
  "POST /v1/auth/challenge": { response: ChallengeResponse, body: ChallengeBody },
  "POST /v1/auth/session": { response: SessionResponse, body: SessionBody },
  "POST /v1/auth/logout": { response: "empty" },
  "POST /v1/auth/passkey/options": { response: PasskeyOptionsResponse, body: PasskeyOptionsBody },
  "POST /v1/auth/passkey/session": { response: SessionResponse, body: PasskeySessionBody },
  "POST /v1/auth/passkey/register/options": { response: PasskeyOptionsResponse },
  "POST /v1/auth/passkey/register": { response: PasskeyRegisteredResponse, body: PasskeyRegisterBody },
  "GET /v1/me": { response: MeResponse },
  "POST /v1/devices/:id/ack": { response: DeviceAckResponse },
  "POST /v1/devices/:id/revoke": { response: DeviceRevokeResponse },
  // directory and key transparency
  "GET /v1/users/:handle": { response: UserResponse },
  "GET /v1/units": { response: UnitsResponse },
  "GET /v1/unit-members": { response: UnitMembersResponse },
  "POST /v1/keypackages": { response: KeyPackageCountResponse, body: UploadKeyPackagesBody },
  "GET /v1/keypackages/count": { response: KeyPackageCountResponse },
  "POST /v1/keypackages/claim": { response: ClaimKeyPackagesResponse, body: ClaimKeyPackagesBody },
  "GET /v1/log/directory/checkpoint": { response: "text" },
  "GET /v1/log/directory/size": { response: LogSizeResponse },
  "GET /v1/log/directory/trust": { response: LogTrustResponse },
  "GET /v1/log/directory/key-handovers": { response: KeyHandoversResponse },
  "GET /v1/log/directory/entry/:index": { response: LogEntryResponse },
  "GET /v1/log/directory/proof/inclusion": { response: ProofResponse },
  "GET /v1/log/directory/proof/consistency": { response: ProofResponse },
  "GET /v1/log/directory/tile/*": { response: "bytes" },
  "POST /v1/kt/reports": { response: KtReportResponse, body: KtReportBody },
  // conversations
  "POST /v1/conversations": { response: WireConversation, body: CreateConversationBody },
  "GET /v1/conversations": { response: ConversationsResponse },
  "GET /v1/conversations/:id/messages": { response: MessagesResponse },
  "POST /v1/conversations/:id/messages": { response: AppendAnswerResponse },
  "POST /v1/conversations/:id/commits": { response: AppendAnswerResponse, body: CommitBody },
  "GET /v1/conversations/:id/group-info": { response: GroupInfoResponse },
  "GET /v1/inbox": { response: InboxResponse },
  // blobs and documents
  "POST /v1/blobs": { response: BlobStatusResponse, body: CreateBlobBody },
  "POST /v1/blobs/whole": { response: BlobStatusResponse },
  "GET /v1/blobs/:id/status": { response: BlobStatusResponse },
  "PATCH /v1/blobs/:id": { response: BlobStatusResponse },
  "GET /v1/blobs/:id": { response: "stream" },
  "POST /v1/documents": { response: WireDocument, body: CreateDocumentBody },
  "POST /v1/documents/:id/versions": { response: WireDocument, body: DocumentVersionBody },
  "GET /v1/documents": { response: DocumentsResponse },
  "GET /v1/documents/:id": { response: WireDocument },
  "PUT /v1/documents/:id/canary": { response: CanaryResponse, body: CanaryBody },
  // cables
  "POST /v1/cables": { response: WireCable, body: ReleaseCableBody },
  "GET /v1/cables": { response: CablesResponse },
  "GET /v1/cables/queue": { response: CablesResponse },
  "GET /v1/cables/by-reference": { response: WireCable },
  "GET /v1/cables/:id": { response: WireCable },
  "POST /v1/cables/:id/receipts": { response: WireCable, body: CableReceiptBody },
  // staff lifecycle and clearances (officers, admins)
  "PUT /v1/users/:handle/clearance": { response: ClearanceResponse, body: ClearanceBody },
  "GET /v1/users": { response: StaffUsersResponse },
  "GET /v1/users/:handle/history": { response: UserHistoryResponse },
  "GET /v1/units/:unit/members": { response: UnitMembersDetailedResponse },
  "POST /v1/units/:unit/members": { response: MembershipResponse, body: HandleBody },
  "DELETE /v1/units/:unit/members/:handle": { response: MembershipRemovedResponse },
  "POST /v1/users/:handle/move": { response: MoveResponse, body: MoveBody },
  "PUT /v1/users/:handle/role": { response: RoleResponse, body: RoleBody },
  "POST /v1/users/:handle/disable": { response: DisableResponse },
  "POST /v1/users/:handle/enable": { response: EnableResponse },
  "POST /v1/units/:unit/archives": { response: MembershipResponse, body: HandleBody },
  "DELETE /v1/units/:unit/archives/:handle": { response: MembershipRemovedResponse },
  "PUT /v1/units/:unit/share": { response: UnitShareResponse, body: ShareBody },
  "PUT /v1/units/:unit/max-label": { response: UnitMaxLabelResponse, body: MaxLabelBody },
  "GET /v1/directory/changes": { response: DirectoryChangesResponse },
  // audit log and detection (officers)
  "GET /v1/log/audit/checkpoint": { response: "text" },
  "GET /v1/log/audit/key": { response: AuditKeyResponse },
  "GET /v1/log/audit/proof/consistency": { response: ProofResponse },
  "GET /v1/log/audit/pruned": { response: AuditPrunedResponse },
  "GET /v1/log/audit/entries": { response: AuditEntriesResponse },
  "GET /v1/log/audit/events": { response: AuditEventsResponse },
  "GET /v1/audit/cables/by-reference": { response: AuditCableResponse },
  "GET /v1/alerts": { response: AlertsResponse },
  "POST /v1/alerts/:id/ack": { response: WireAlert },
  // incidents and TAXII (officers)
  "POST /v1/incidents": { response: WireIncident, body: CreateIncidentBody },
  "GET /v1/incidents": { response: IncidentsResponse },
  "GET /v1/incidents/:id": { response: WireIncident },
  "GET /v1/incidents/:id/stix": { response: StixBundleResponse },
  "POST /v1/incidents/:id/share": { response: ShareIncidentResponse },
  "POST /v1/taxii/partners": { response: WireTaxiiPartner, body: AddTaxiiPartnerBody },
  "GET /v1/taxii/partners": { response: TaxiiPartnersResponse },
  "DELETE /v1/taxii/partners/:id": { response: WireTaxiiPartner },
  "POST /v1/taxii/partners/:id/poll": { response: PollPartnerResponse },
  "POST /v1/taxii/import": { response: ImportReportResponse },
  "GET /v1/taxii/indicators": { response: IndicatorsResponse },
  "POST /v1/taxii/tokens": { response: IssuedTaxiiTokenResponse, body: IssueTaxiiTokenBody },
  "GET /v1/taxii/tokens": { response: TaxiiTokensResponse },
  "DELETE /v1/taxii/tokens/:id": { response: WireTaxiiToken },
} as const satisfies Record<string, WireRouteSpec>;

export type WireRoute = keyof typeof WIRE;
/** What a route answers, as the client sees it once checked. */
export type WireAnswer<K extends WireRoute> = (typeof WIRE)[K]["response"] extends infer R
  ? R extends "text"
    ? string
    : R extends "bytes"
      ? Uint8Array
      : R extends "stream"
        ? ReadableStream<Uint8Array>
        : R extends "empty"
          ? undefined
          : R extends TSchema
            ? Static<R>
            : never
  : never;

const templates = new Map<string, RegExp>();
/** Whether `path` (without its query) is an instance of the route's path template (`:param` one segment, `*` any). */
export function pathMatchesRoute(route: WireRoute, path: string): boolean {
  let r = templates.get(route);
  if (!r) {
    const tpl = route.slice(route.indexOf(" ") + 1);
    const src = tpl
      .split("/")
      .map((seg) => (seg === "*" ? ".*" : seg.startsWith(":") ? "[^/]+" : seg.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")))
      .join("/");
    templates.set(route, (r = new RegExp(`^${src}$`)));
  }
  return r.test(path.split("?")[0]!);
}

// ---------------------------------------------------------------- checking

type Schema = {
  type?: string;
  properties?: Record<string, Schema>;
  required?: string[];
  additionalProperties?: boolean;
  items?: Schema;
  anyOf?: Schema[];
  const?: unknown;
  pattern?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  minItems?: number;
  maxItems?: number;
};

/** Keys refused anywhere in an answer: merged into an object they would reach its prototype. */
const FORBIDDEN_KEYS = new Set(["__proto__", "constructor", "prototype"]);
const patterns = new Map<string, RegExp>();
const re = (p: string) => {
  let r = patterns.get(p);
  if (!r) patterns.set(p, (r = new RegExp(p, "u")));
  return r;
};
const show = (v: unknown) => (v === null ? "null" : Array.isArray(v) ? "an array" : typeof v);

/**
 * Why `value` does not match `schema` (the JSON Schema subset above: object, array, string, integer, number,
 * boolean, null, anyOf, const), or null if it does. `path` names where in the value (for the message).
 */
export function wireProblem(schema: TSchema, value: unknown, path = "$"): string | null {
  const s = schema as unknown as Schema;
  if (s.anyOf)
    return s.anyOf.some((x) => wireProblem(x, value, path) === null) ? null : `${path}: not one of the allowed forms`;
  if ("const" in s) return value === s.const ? null : `${path}: expected ${JSON.stringify(s.const)}`;
  switch (s.type) {
    case "object": {
      if (typeof value !== "object" || value === null || Array.isArray(value))
        return `${path}: expected an object, got ${show(value)}`;
      const o = value as Record<string, unknown>;
      for (const k of s.required ?? []) if (!Object.hasOwn(o, k)) return `${path}.${k}: missing`;
      for (const [k, v] of Object.entries(o)) {
        if (FORBIDDEN_KEYS.has(k)) return `${path}.${k}: not allowed (a key that reaches object prototypes)`;
        const p = s.properties && Object.hasOwn(s.properties, k) ? s.properties[k] : undefined;
        if (!p) {
          if (s.additionalProperties === false) return `${path}.${k}: not allowed`;
          continue;
        }
        const why = wireProblem(p, v, `${path}.${k}`);
        if (why) return why;
      }
      return null;
    }
    case "array": {
      if (!Array.isArray(value)) return `${path}: expected an array, got ${show(value)}`;
      if (s.maxItems !== undefined && value.length > s.maxItems) return `${path}: more than ${s.maxItems} items`;
      if (s.minItems !== undefined && value.length < s.minItems) return `${path}: fewer than ${s.minItems} items`;
      if (s.items)
        for (let i = 0; i < value.length; i++) {
          const why = wireProblem(s.items, value[i], `${path}[${i}]`);
          if (why) return why;
        }
      return null;
    }
    case "string":
      if (typeof value !== "string") return `${path}: expected a string, got ${show(value)}`;
      if (s.maxLength !== undefined && value.length > s.maxLength) return `${path}: longer than ${s.maxLength}`;
      if (s.minLength !== undefined && value.length < s.minLength) return `${path}: shorter than ${s.minLength}`;
      if (s.pattern !== undefined && !re(s.pattern).test(value)) return `${path}: not of the expected form`;
      return null;
    case "integer":
    case "number":
      if (typeof value !== "number" || !Number.isFinite(value)) return `${path}: expected a number, got ${show(value)}`;
      if (s.type === "integer" && !Number.isSafeInteger(value)) return `${path}: expected an integer`;
      if (s.minimum !== undefined && value < s.minimum) return `${path}: below ${s.minimum}`;
      if (s.maximum !== undefined && value > s.maximum) return `${path}: above ${s.maximum}`;
      return null;
    case "boolean":
      return typeof value === "boolean" ? null : `${path}: expected a boolean, got ${show(value)}`;
    case "null":
      return value === null ? null : `${path}: expected null, got ${show(value)}`;
    default:
      return null;
  }
}

/**
 * JSON.parse of an answer, refusing (protocol_error naming `what`) a key that reaches object prototypes anywhere in
 * it, also inside parts the schema leaves open (a STIX object, a decoded directory entry). The usual answer has no
 * such word and no escape that could spell one, and is parsed without a reviver.
 */
export function parseWireJson(text: string, what: string): unknown {
  if (!/__proto__|constructor|prototype|\\u/.test(text)) return JSON.parse(text);
  return JSON.parse(text, (k, v: unknown) => {
    if (FORBIDDEN_KEYS.has(k))
      throw new ValiseError("protocol_error", `${what}: malformed answer from the server (a "${k}" key)`);
    return v;
  });
}

/** `value` as the schema's type, or a `protocol_error` naming `what` (e.g. the endpoint) and the first mismatch. */
export function parseWire<T extends TSchema>(schema: T, value: unknown, what: string): Static<T> {
  const why = wireProblem(schema, value);
  if (why) throw new ValiseError("protocol_error", `${what}: malformed answer from the server (${why})`);
  return value as Static<T>;
}
