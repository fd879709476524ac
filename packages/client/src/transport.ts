/**
 * HTTP transport to a Valise server, on `fetch` (browser and Node alike). Every method maps one endpoint; errors
 * come back as ValiseError with the server's stable `code`. Responses are server-controlled data: the SDK treats
 * them as untrusted: the main endpoints' answers are checked against the shared wire contract (@valise/core/wire, the
 * schemas the server validates requests with) and a malformed one is a `protocol_error` naming the endpoint and the
 * field; the rest are checked where used; cryptographic checks are in the protocol layer.
 */
import { ValiseError, type ValiseErrorCode, fromBase64, toBase64 } from "@valise/core";
import { AppendAnswerResponse, ConversationsResponse, MessagesResponse, parseWire } from "@valise/core/wire";
import type { Static, TSchema } from "typebox";

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

/** Sent as `x-valise-client` with every request: the client kind/version in the server's audit events. */
export const VALISE_CLIENT = "valise-sdk/0.1.0";

/** What the CLI and the web app tell the user while the server cannot store or read (503 store_error, unreachable). */
export const STORE_OUTAGE_NOTICE = "the server cannot store or read right now; nothing was lost, retrying";

/** Told to `onRetry` before each wait: which request, the attempt (1 = first retry), the wait and why. */
export interface RetryNotice {
  method: string;
  path: string;
  attempt: number;
  waitMs: number;
  reason: string;
  /** True on the first retry of an outage (the moment to tell the user); false for the next ones. */
  first: boolean;
}

export interface RetryPolicy {
  /** Give up after retrying this long (ms); default 60 s. 0 turns retries off. */
  budgetMs: number;
  /** First wait (ms), doubled each time up to `maxDelayMs` (a server's Retry-After is honoured up to that). */
  baseDelayMs: number;
  maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { budgetMs: 60_000, baseDelayMs: 250, maxDelayMs: 5000 };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Requests that are safe to send again when the first answer was lost or was 502/503/504: reads, and writes the
 * server deduplicates (an idempotency key; a blob append at an explicit offset, refused with 409 offset_mismatch if
 * the first one landed).
 */
function retryable(method: string, path: string, headers: Record<string, string>, body: unknown): boolean {
  if (method === "GET" || method === "HEAD") return true;
  if (headers["idempotency-key"] !== undefined || headers["upload-offset"] !== undefined) return true;
  if (path === "/v1/auth/challenge") return true;
  return (
    body !== null &&
    typeof body === "object" &&
    !(body instanceof Uint8Array) &&
    typeof (body as { idempotencyKey?: unknown }).idempotencyKey === "string"
  );
}

export class HttpTransport {
  token: string | null = null;
  /** Retries of idempotent requests while the server is unreachable or answers 502/503/504 (see DEFAULT_RETRY). */
  retry: RetryPolicy = { ...DEFAULT_RETRY };
  /** Called before each retry wait; the CLI and the web app print STORE_OUTAGE_NOTICE on the first one. */
  onRetry: ((n: RetryNotice) => void) | null = null;
  constructor(
    readonly baseUrl: string,
    private readonly fetchImpl: typeof fetch = globalThis.fetch.bind(globalThis),
  ) {}

  /**
   * Sends with `send` (one attempt: resolves the response, or throws transport_error when unreachable), retrying
   * idempotent requests with exponential backoff while the server is unreachable or answers 502/503/504. A 503's
   * body is read here only when the request is retried (otherwise the caller reads it).
   */
  private async withRetry(
    method: string,
    path: string,
    canRetry: boolean,
    send: () => Promise<Response>,
  ): Promise<Response> {
    const started = Date.now();
    for (let attempt = 1; ; attempt++) {
      let res: Response | null = null;
      let reason: string;
      let after: number | null = null;
      try {
        res = await send();
        if (![502, 503, 504].includes(res.status)) return res;
        reason = `${res.status}`;
        const ra = Number(res.headers.get("retry-after"));
        if (Number.isFinite(ra) && ra > 0) after = ra * 1000;
      } catch (e) {
        if (!(e instanceof ValiseError && e.code === "transport_error")) throw e;
        if (!canRetry) throw e;
        reason = e.message;
      }
      const delay = Math.min(
        this.retry.maxDelayMs,
        Math.max(after ?? 0, this.retry.baseDelayMs * 2 ** Math.min(attempt - 1, 10)),
      );
      if (!canRetry || Date.now() + delay - started > this.retry.budgetMs) {
        if (res) return res;
        throw new ValiseError("transport_error", `${reason} (gave up after ${attempt} attempts)`);
      }
      if (res) await res.arrayBuffer().catch(() => undefined); // this answer is dropped: free its body
      this.onRetry?.({ method, path, attempt, waitMs: delay, reason, first: attempt === 1 });
      await sleep(delay);
    }
  }

  private reach(url: URL, init: RequestInit): () => Promise<Response> {
    return async () => {
      try {
        return await this.fetchImpl(url, init);
      } catch (e) {
        throw new ValiseError(
          "transport_error",
          `cannot reach ${this.baseUrl}: ${e instanceof Error ? e.message : String(e)}`,
        );
      }
    };
  }

  private async call<T>(
    method: string,
    path: string,
    body?: unknown,
    extraHeaders: Record<string, string> = {},
    /** The answer's schema in the wire contract: a 2xx answer that does not match is a protocol_error. */
    schema?: TSchema,
  ): Promise<T> {
    const headers: Record<string, string> = { ...extraHeaders };
    let payload: BodyInit | undefined;
    if (body instanceof Uint8Array) {
      headers["content-type"] ??= "application/octet-stream";
      payload = body as unknown as BodyInit;
    } else if (body !== undefined) {
      headers["content-type"] = "application/json";
      payload = JSON.stringify(body);
    }
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    headers["x-valise-client"] ??= VALISE_CLIENT;
    const res = await this.withRetry(
      method,
      path,
      retryable(method, path, headers, body),
      this.reach(new URL(path, this.baseUrl), { method, headers, body: payload ?? null }),
    );
    const text = await res.text();
    let json: unknown = undefined;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      /* non-JSON */
    }
    if (!res.ok) {
      const err = (json ?? {}) as { code?: string; message?: string; epoch?: number };
      const code = (
        typeof err.code === "string" ? err.code : res.status >= 500 ? "transport_error" : "bad_request"
      ) as ValiseErrorCode;
      throw new ValiseError(code, `${method} ${path}: ${res.status} ${err.message ?? text.slice(0, 200)}`, {
        status: res.status,
        epoch: err.epoch,
      });
    }
    return (schema ? parseWire(schema, json, `${method} ${path.split("?")[0]}`) : json) as T;
  }

  /** GET a non-JSON resource (signed note, tile) as bytes; errors as in `call`. */
  private async bytes(path: string): Promise<Uint8Array> {
    const headers: Record<string, string> = { "x-valise-client": VALISE_CLIENT };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    const res = await this.withRetry(
      "GET",
      path,
      true,
      this.reach(new URL(path, this.baseUrl), { method: "GET", headers }),
    );
    const body = new Uint8Array(await res.arrayBuffer());
    if (!res.ok) {
      let err: { code?: string; message?: string } = {};
      try {
        err = JSON.parse(new TextDecoder().decode(body)) as typeof err;
      } catch {
        /* non-JSON */
      }
      const code = (
        typeof err.code === "string" ? err.code : res.status >= 500 ? "transport_error" : "bad_request"
      ) as ValiseErrorCode;
      throw new ValiseError(code, `GET ${path}: ${res.status} ${err.message ?? ""}`, { status: res.status });
    }
    return body;
  }

  // Directory log (key transparency). Everything here is checked by the caller against the trusted log key.
  /** The latest checkpoint as a signed note (with witness cosignatures), untrusted until verified. */
  async logCheckpoint(): Promise<string> {
    return new TextDecoder("utf-8", { fatal: false }).decode(await this.bytes("/v1/log/directory/checkpoint"));
  }
  /** Log-key hand-overs (signed notes, oldest first), untrusted until verified against the pinned key. */
  async logKeyHandovers(): Promise<string[]> {
    const r = await this.call<{ handovers: unknown }>("GET", "/v1/log/directory/key-handovers");
    return Array.isArray(r.handovers) ? r.handovers.filter((x): x is string => typeof x === "string") : [];
  }
  async logEntry(index: number): Promise<Uint8Array> {
    const r = await this.call<{ entry: string }>("GET", `/v1/log/directory/entry/${index}`);
    return fromBase64(String(r.entry));
  }
  async logInclusionProof(index: number, size: number): Promise<Uint8Array[]> {
    const r = await this.call<{ proof: string[] }>(
      "GET",
      `/v1/log/directory/proof/inclusion?index=${index}&size=${size}`,
    );
    return (Array.isArray(r.proof) ? r.proof : []).map((p) => fromBase64(String(p)));
  }
  async logConsistencyProof(from: number, to: number): Promise<Uint8Array[]> {
    const r = await this.call<{ proof: string[] }>("GET", `/v1/log/directory/proof/consistency?from=${from}&to=${to}`);
    return (Array.isArray(r.proof) ? r.proof : []).map((p) => fromBase64(String(p)));
  }
  /** C2SP tlog-tiles entry bundle `index` holding `width` entries (256 = full). */
  logEntryBundle(index: number, width: number): Promise<Uint8Array> {
    return this.bytes(`/v1/log/directory/tile/entries/${tileIndexPath(index)}${width < 256 ? `.p/${width}` : ""}`);
  }

  enroll(
    code: string,
    device: { id: string; name: string; signaturePublicKey: Uint8Array },
    keyPackages: Uint8Array[],
  ) {
    return this.call<{
      user: { handle: string; units: string[]; clearance: string; role: string };
      device: { id: string };
    }>("POST", "/v1/enroll", {
      code,
      device: { id: device.id, name: device.name, signaturePublicKey: toBase64(device.signaturePublicKey) },
      keyPackages: keyPackages.map(toBase64),
    });
  }
  challenge(device: string) {
    return this.call<{ challenge: string; expiresAt: number }>("POST", "/v1/auth/challenge", { device });
  }
  session(device: string, challenge: string, signature: Uint8Array) {
    return this.call<{ token: string; expiresAt: number }>("POST", "/v1/auth/session", {
      device,
      challenge,
      signature: toBase64(signature),
    });
  }
  me() {
    return this.call<ServerUser & { device: string }>("GET", "/v1/me");
  }
  user(handle: string) {
    return this.call<ServerUser>("GET", `/v1/users/${encodeURIComponent(handle)}`);
  }
  /** The server's directory log key and witnesses (public; for trust on first use). */
  logTrust() {
    return this.call<{ logKey: string; witnesses: string[]; quorum: number }>("GET", "/v1/log/directory/trust");
  }
  units() {
    return this.call<{ units: { name: string; maxLabel: string; share?: string }[] }>("GET", "/v1/units");
  }
  unitMembers(unit: string) {
    return this.call<{ unit: string; members: string[] }>("GET", `/v1/unit-members?unit=${encodeURIComponent(unit)}`);
  }
  uploadKeyPackages(kps: Uint8Array[]) {
    return this.call<{ count: number }>("POST", "/v1/keypackages", { keyPackages: kps.map(toBase64) });
  }
  keyPackageCount() {
    return this.call<{ count: number }>("GET", "/v1/keypackages/count");
  }
  /** Key packages of `devices`, to add them to `conversation` (the server checks the caller may). */
  async claimKeyPackages(devices: string[], conversation: string) {
    if (devices.length === 0) return [];
    const r = await this.call<{ keyPackages: { handle: string; device: string; keyPackage: string }[] }>(
      "POST",
      "/v1/keypackages/claim",
      { devices, conversation },
    );
    return r.keyPackages.map((k) => ({ handle: k.handle, device: k.device, keyPackage: fromBase64(k.keyPackage) }));
  }
  createConversation(c: { id: string; kind: string; label: string; unit?: string; fromUnit?: string }) {
    return this.call<ServerConversation>("POST", "/v1/conversations", c);
  }
  async conversations() {
    const r = await this.call<Static<typeof ConversationsResponse>>(
      "GET",
      "/v1/conversations",
      undefined,
      {},
      ConversationsResponse,
    );
    return r.conversations as ServerConversation[];
  }
  async messages(id: string, after: number, limit = 500): Promise<ServerMessage[]> {
    const r = await this.call<Static<typeof MessagesResponse>>(
      "GET",
      `/v1/conversations/${encodeURIComponent(id)}/messages?after=${after}&limit=${limit}`,
      undefined,
      {},
      MessagesResponse,
    );
    return r.messages.map((m) => ({ ...m, payload: fromBase64(m.payload) }));
  }
  /** `client`: the audit event's client field for this send (a key forward says so; see forward.ts). */
  postMessage(id: string, message: Uint8Array, idempotencyKey: string, client?: string) {
    return this.call<AppendAnswer>(
      "POST",
      `/v1/conversations/${encodeURIComponent(id)}/messages`,
      message,
      { "idempotency-key": idempotencyKey, ...(client ? { "x-valise-client": client } : {}) },
      AppendAnswerResponse,
    );
  }
  postCommit(
    id: string,
    c: {
      commit: Uint8Array;
      welcome?: Uint8Array | undefined;
      groupInfo: Uint8Array;
      added: string[];
      removed: string[];
      idempotencyKey: string;
      external?: boolean;
    },
  ) {
    return this.call<AppendAnswer>(
      "POST",
      `/v1/conversations/${encodeURIComponent(id)}/commits`,
      {
        commit: toBase64(c.commit),
        ...(c.welcome ? { welcome: toBase64(c.welcome) } : {}),
        groupInfo: toBase64(c.groupInfo),
        added: c.added,
        removed: c.removed,
        idempotencyKey: c.idempotencyKey,
        ...(c.external ? { external: true } : {}),
      },
      {},
      AppendAnswerResponse,
    );
  }
  async groupInfo(id: string) {
    return fromBase64(
      (await this.call<{ groupInfo: string }>("GET", `/v1/conversations/${encodeURIComponent(id)}/group-info`))
        .groupInfo,
    );
  }
  async inbox(after: number): Promise<InboxItem[]> {
    const r = await this.call<{ items: (Omit<InboxItem, "welcome"> & { welcome: string })[] }>(
      "GET",
      `/v1/inbox?after=${after}`,
    );
    return r.items.map((i) => ({ ...i, welcome: fromBase64(i.welcome) }));
  }

  // Blobs: ciphertext of documents and cables, uploaded in resumable parts, downloaded as a (ranged) stream.
  createBlob(size: number) {
    return this.call<BlobStatus>("POST", "/v1/blobs", { size });
  }
  blobStatus(id: string) {
    return this.call<BlobStatus>("GET", `/v1/blobs/${encodeURIComponent(id)}/status`);
  }
  /** Appends `part` at `offset` (must equal the server's `received`, else 409 offset_mismatch). */
  appendBlob(id: string, offset: number, part: Uint8Array) {
    return this.call<BlobStatus>("PATCH", `/v1/blobs/${encodeURIComponent(id)}`, part, {
      "upload-offset": String(offset),
      "content-type": "application/offset+octet-stream",
    });
  }
  /** The blob's bytes from `offset` (to `end`, inclusive) as a stream (the server answers 206 for a range). */
  async readBlob(id: string, offset = 0, end?: number): Promise<ReadableStream<Uint8Array>> {
    const headers: Record<string, string> = { "x-valise-client": VALISE_CLIENT };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    if (offset > 0 || end !== undefined) headers.range = `bytes=${offset}-${end ?? ""}`;
    const path = `/v1/blobs/${encodeURIComponent(id)}`;
    const res = await this.withRetry("GET", path, true, this.reach(new URL(path, this.baseUrl), { headers }));
    if (!res.ok || !res.body) {
      const text = await res.text();
      let err: { code?: string; message?: string } = {};
      try {
        err = JSON.parse(text) as typeof err;
      } catch {
        /* non-JSON */
      }
      const code = (
        typeof err.code === "string" ? err.code : res.status >= 500 ? "transport_error" : "bad_request"
      ) as ValiseErrorCode;
      throw new ValiseError(code, `GET blob ${id}: ${res.status} ${err.message ?? text.slice(0, 200)}`, {
        status: res.status,
      });
    }
    if ((offset > 0 || end !== undefined) && res.status !== 206)
      throw new ValiseError("protocol_error", `server ignored the range request for blob ${id}`);
    return res.body;
  }

  // Documents
  createDocument(d: { id: string; label: string; to: { kind: "user" | "unit"; name: string }; blob: string }) {
    return this.call<ServerDocument>("POST", "/v1/documents", d);
  }
  addDocumentVersion(id: string, blob: string) {
    return this.call<ServerDocument>("POST", `/v1/documents/${encodeURIComponent(id)}/versions`, { blob });
  }
  async documents() {
    return (await this.call<{ documents: ServerDocument[] }>("GET", "/v1/documents")).documents;
  }
  document(id: string) {
    return this.call<ServerDocument>("GET", `/v1/documents/${encodeURIComponent(id)}`);
  }
  setCanary(id: string, canary: boolean) {
    return this.call<{ id: string; canary: boolean }>("PUT", `/v1/documents/${encodeURIComponent(id)}/canary`, {
      canary,
    });
  }

  // Cables
  releaseCable(c: CableRelease) {
    return this.call<ServerCable>("POST", "/v1/cables", c);
  }
  async cables(q: { limit?: number; offset?: number; unit?: string; precedence?: string } = {}) {
    const p = new URLSearchParams();
    for (const [k, v] of Object.entries(q)) if (v !== undefined) p.set(k, String(v));
    return (await this.call<{ cables: ServerCable[] }>("GET", `/v1/cables?${p.toString()}`)).cables;
  }
  async cableQueue(limit = 200) {
    return (await this.call<{ cables: ServerCable[] }>("GET", `/v1/cables/queue?limit=${limit}`)).cables;
  }
  cable(id: string) {
    return this.call<ServerCable>("GET", `/v1/cables/${encodeURIComponent(id)}`);
  }
  cableByReference(reference: string) {
    return this.call<ServerCable>("GET", `/v1/cables/by-reference?reference=${encodeURIComponent(reference)}`);
  }
  cableReceipt(id: string, state: "delivered" | "read") {
    return this.call<ServerCable>("POST", `/v1/cables/${encodeURIComponent(id)}/receipts`, { state });
  }

  // Clearances (security officers)
  setClearance(handle: string, clearance: string) {
    return this.call<{
      handle: string;
      clearance: string;
      pendingRemovals: { conversation: string; devices: string[] }[];
    }>("PUT", `/v1/users/${encodeURIComponent(handle)}/clearance`, { clearance });
  }

  // Staff lifecycle (issue 12; admins, and officers where noted). Unit names are URL-encoded in the path.
  /** Officers and admins: users with units, clearance, role and state (optionally one unit's). */
  async listUsers(unit?: string) {
    const q = unit === undefined ? "" : `?unit=${encodeURIComponent(unit)}`;
    return (await this.call<{ users: StaffUser[] }>("GET", `/v1/users${q}`)).users;
  }
  /** Officers and admins: every directory log entry about a user. Untrusted: check entries against the log. */
  async userHistory(handle: string) {
    return (
      await this.call<{ handle: string; history: DirectoryChange[] }>(
        "GET",
        `/v1/users/${encodeURIComponent(handle)}/history`,
      )
    ).history;
  }
  /** Officers and admins: a unit's members with their state (disabled ones included). */
  async unitMembersDetailed(unit: string) {
    return (
      await this.call<{ unit: string; members: StaffUser[] }>("GET", `/v1/units/${encodeURIComponent(unit)}/members`)
    ).members;
  }
  addUnitMember(unit: string, handle: string) {
    return this.call<{ handle: string; unit: string }>("POST", `/v1/units/${encodeURIComponent(unit)}/members`, {
      handle,
    });
  }
  removeUnitMember(unit: string, handle: string) {
    return this.call<{ handle: string; unit: string; pendingRemovals: PendingRemovalView[] }>(
      "DELETE",
      `/v1/units/${encodeURIComponent(unit)}/members/${encodeURIComponent(handle)}`,
    );
  }
  moveUser(handle: string, from: string, to: string) {
    return this.call<{ handle: string; from: string; to: string; pendingRemovals: PendingRemovalView[] }>(
      "POST",
      `/v1/users/${encodeURIComponent(handle)}/move`,
      { from, to },
    );
  }
  setRole(handle: string, role: string) {
    return this.call<{ handle: string; role: string; changed: boolean }>(
      "PUT",
      `/v1/users/${encodeURIComponent(handle)}/role`,
      { role },
    );
  }
  /** Officers and admins: offboard a user (devices revoked, logins refused). */
  disableUser(handle: string) {
    return this.call<{ handle: string; revokedDevices: string[]; pendingRemovals: PendingRemovalView[] }>(
      "POST",
      `/v1/users/${encodeURIComponent(handle)}/disable`,
    );
  }
  enableUser(handle: string) {
    return this.call<{ handle: string }>("POST", `/v1/users/${encodeURIComponent(handle)}/enable`);
  }
  /** Admins: the archivist `handle` becomes the records archive of `unit` (`archive.assign`). */
  assignArchive(unit: string, handle: string) {
    return this.call<{ handle: string; unit: string }>("POST", `/v1/units/${encodeURIComponent(unit)}/archives`, {
      handle,
    });
  }
  removeArchive(unit: string, handle: string) {
    return this.call<{ handle: string; unit: string; pendingRemovals: PendingRemovalView[] }>(
      "DELETE",
      `/v1/units/${encodeURIComponent(unit)}/archives/${encodeURIComponent(handle)}`,
    );
  }
  /** Admins: how far back the unit shares keys with members who join later (`all` or seconds; `unit.share`). */
  setUnitShare(unit: string, since: string) {
    return this.call<{ unit: string; since: string; changed: boolean }>(
      "PUT",
      `/v1/units/${encodeURIComponent(unit)}/share`,
      { since },
    );
  }
  setUnitMaxLabel(unit: string, maxLabel: string) {
    return this.call<{ unit: string; maxLabel: string }>("PUT", `/v1/units/${encodeURIComponent(unit)}/max-label`, {
      maxLabel,
    });
  }
  /**
   * Officers and admins: directory log entries after index `after` (-1: from the start), decoded by the server.
   * Untrusted: a monitor checks them against the witnessed log.
   */
  directoryChanges(after = -1, limit = 100) {
    return this.call<{ size: number; changes: DirectoryChange[] }>(
      "GET",
      `/v1/directory/changes?after=${after}&limit=${limit}`,
    );
  }
  /** Any device: tell the security officers what key transparency found (raises an alert; deduplicated per hour). */
  reportKt(body: KtReport) {
    return this.call<{ id: number; duplicate: boolean; incident?: string }>("POST", "/v1/kt/reports", body);
  }

  // Audit log (security officers). Entries are leaf bytes; the caller verifies them against a signed checkpoint.
  /** The audit log's latest checkpoint as a signed note, untrusted until verified. */
  async auditCheckpoint(): Promise<string> {
    const headers: Record<string, string> = { "x-valise-client": VALISE_CLIENT };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    let res: Response;
    try {
      res = await this.fetchImpl(new URL("/v1/log/audit/checkpoint", this.baseUrl), { headers });
    } catch (e) {
      throw new ValiseError(
        "transport_error",
        `cannot reach ${this.baseUrl}: ${e instanceof Error ? e.message : String(e)}`,
      );
    }
    const text = await res.text();
    if (!res.ok)
      throw new ValiseError(
        res.status === 404 ? "not_found" : "transport_error",
        `audit checkpoint: ${res.status} ${text.slice(0, 200)}`,
        { status: res.status },
      );
    return text;
  }
  /** The server's claim of its log key and the audit log's origin (trust it only on first use, or pin it). */
  auditKey() {
    return this.call<{ vkey: string; origin: string }>("GET", "/v1/log/audit/key");
  }
  /** RFC 9162 consistency proof between two sizes of the audit log, untrusted until verified. */
  async auditConsistencyProof(from: number, to: number): Promise<Uint8Array[]> {
    const r = await this.call<{ proof: string[] }>("GET", `/v1/log/audit/proof/consistency?from=${from}&to=${to}`);
    return (Array.isArray(r.proof) ? r.proof : []).map((p) => fromBase64(String(p)));
  }
  /** Entries [start, start+count) of the audit log (count ≤ 1000), as leaf bytes. */
  /** Where the audit log was pruned: entries below `before` were exported and deleted; the prefix's frontier. */
  async auditPruned(): Promise<{ before: number; frontier: Uint8Array[] }> {
    const r = await this.call<{ before: number; frontier: string[] }>("GET", "/v1/log/audit/pruned");
    return {
      before: Number(r.before),
      frontier: (Array.isArray(r.frontier) ? r.frontier : []).map((e) => fromBase64(String(e))),
    };
  }
  async auditEntries(start: number, count: number): Promise<Uint8Array[]> {
    const r = await this.call<{ entries: string[] }>("GET", `/v1/log/audit/entries?start=${start}&count=${count}`);
    return (Array.isArray(r.entries) ? r.entries : []).map((e) => fromBase64(String(e)));
  }
  /** A cable's metadata by reference, for officers' audit queries (no subject or content). */
  auditCableByReference(reference: string) {
    return this.call<{ id: string; reference: string; originator: string; label: string; createdAt: number }>(
      "GET",
      `/v1/audit/cables/by-reference?reference=${encodeURIComponent(reference)}`,
    );
  }
  /** Detection alerts in id order (officers only): after an id, at least a severity, triggered since a time. */
  async alerts(
    q: { after?: number; limit?: number; severity?: ServerAlert["severity"]; since?: string } = {},
  ): Promise<ServerAlert[]> {
    const p = new URLSearchParams();
    for (const [k, v] of Object.entries(q)) if (v !== undefined) p.set(k, String(v));
    const r = await this.call<{ alerts: ServerAlert[] }>("GET", `/v1/alerts?${p.toString()}`);
    return Array.isArray(r.alerts) ? r.alerts : [];
  }
  /** Whether detection is still learning (GET /v1/alerts's `learning`; null from a server without it). */
  async alertsLearning(): Promise<AlertsLearning | null> {
    const r = await this.call<{ learning?: AlertsLearning }>("GET", "/v1/alerts?limit=1");
    return r.learning && typeof r.learning === "object" ? r.learning : null;
  }
  /** The user acknowledges their own device (audited as directory.device.ack; detection then trusts it). */
  ackOwnDevice(id: string) {
    return this.call<{ device: string; acknowledged: boolean; from: string }>(
      "POST",
      `/v1/devices/${encodeURIComponent(id)}/ack`,
      {},
    );
  }
  /** Ends this session on the server (sign out): the token is refused from then on. */
  logout() {
    return this.call<undefined>("POST", "/v1/auth/logout", {});
  }
  /** The user revokes one of their own other devices (lost or stolen): a `device.revoke` in the directory log. */
  revokeOwnDevice(id: string) {
    return this.call<{ device: string; revoked: boolean }>("POST", `/v1/devices/${encodeURIComponent(id)}/revoke`, {});
  }
  ackAlert(id: number) {
    return this.call<ServerAlert>("POST", `/v1/alerts/${encodeURIComponent(String(id))}/ack`, {});
  }
  /** Entries matching a filter, newest first; with `size`, each with its inclusion proof in that tree. */
  async auditEvents(
    f: AuditFilter & { size?: number | undefined },
  ): Promise<{ index: number; entry: Uint8Array; proof: Uint8Array[] }[]> {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(f)) if (v !== undefined) q.set(k, String(v));
    const r = await this.call<{ events: { index: number; entry: string; proof?: string[] }[] }>(
      "GET",
      `/v1/log/audit/events?${q.toString()}`,
    );
    return (Array.isArray(r.events) ? r.events : []).map((e) => ({
      index: Number(e.index),
      entry: fromBase64(String(e.entry)),
      proof: (Array.isArray(e.proof) ? e.proof : []).map((p) => fromBase64(String(p))),
    }));
  }
  /** Incidents (officers only): create from alert ids, list, show, STIX 2.1 bundle, share to the TAXII collection. */
  createIncident(b: { title: string; alerts: number[]; note?: string }) {
    return this.call<ServerIncident>("POST", "/v1/incidents", b);
  }
  async incidents(limit = 100): Promise<ServerIncident[]> {
    const r = await this.call<{ incidents: ServerIncident[] }>("GET", `/v1/incidents?limit=${limit}`);
    return Array.isArray(r.incidents) ? r.incidents : [];
  }
  incident(id: string) {
    return this.call<ServerIncident>("GET", `/v1/incidents/${encodeURIComponent(id)}`);
  }
  incidentStix(id: string, includeAccounts = false) {
    return this.call<{ type: "bundle"; id: string; objects: Record<string, unknown>[] }>(
      "GET",
      `/v1/incidents/${encodeURIComponent(id)}/stix${includeAccounts ? "?includeAccounts=true" : ""}`,
    );
  }
  /** Shares to the common collection, or to one partner's own (`partner`), marked with the chosen TLP 2.0 level. */
  shareIncident(id: string, includeAccounts = false, to: { partner?: string; tlp?: TlpLevel } = {}) {
    return this.call<{
      id: string;
      collection: string;
      partner?: string;
      tlp: string;
      objects: number;
      added: number;
    }>("POST", `/v1/incidents/${encodeURIComponent(id)}/share`, {
      ...(includeAccounts ? { includeAccounts } : {}),
      ...(to.partner !== undefined ? { partner: to.partner } : {}),
      ...(to.tlp !== undefined ? { tlp: to.tlp } : {}),
    });
  }
  /** Partners' TAXII collections this server polls for indicators (officers only). */
  addTaxiiPartner(b: { url: string; token: string; name: string }) {
    return this.call<TaxiiPartner>("POST", "/v1/taxii/partners", b);
  }
  async taxiiPartners(): Promise<TaxiiPartner[]> {
    const r = await this.call<{ partners: TaxiiPartner[] }>("GET", "/v1/taxii/partners");
    return Array.isArray(r.partners) ? r.partners : [];
  }
  removeTaxiiPartner(id: string) {
    return this.call<TaxiiPartner>("DELETE", `/v1/taxii/partners/${encodeURIComponent(id)}`);
  }
  pollTaxiiPartner(id: string) {
    return this.call<TaxiiPartner & { report: IndicatorImportReport & { retro: IndicatorImportReport["retro"][] } }>(
      "POST",
      `/v1/taxii/partners/${encodeURIComponent(id)}/poll`,
    );
  }
  importStixBundle(bundle: unknown) {
    return this.call<IndicatorImportReport>("POST", "/v1/taxii/import", bundle);
  }
  async indicators(): Promise<ImportedIndicatorView[]> {
    const r = await this.call<{ indicators: ImportedIndicatorView[] }>("GET", "/v1/taxii/indicators");
    return Array.isArray(r.indicators) ? r.indicators : [];
  }
  /** TAXII partner tokens (officers only): the token is in this answer only. */
  issueTaxiiToken(partner: string) {
    return this.call<TaxiiToken & { token: string }>("POST", "/v1/taxii/tokens", { partner });
  }
  async taxiiTokens(): Promise<TaxiiToken[]> {
    const r = await this.call<{ tokens: TaxiiToken[] }>("GET", "/v1/taxii/tokens");
    return Array.isArray(r.tokens) ? r.tokens : [];
  }
  revokeTaxiiToken(id: string) {
    return this.call<TaxiiToken>("DELETE", `/v1/taxii/tokens/${encodeURIComponent(id)}`);
  }
}

/** C2SP tlog-tiles index encoding: 3-digit groups, all but the last prefixed with `x` (1234067 → x001/x234/067). */
export function tileIndexPath(n: number): string {
  const groups: string[] = [];
  do {
    groups.unshift(String(n % 1000).padStart(3, "0"));
    n = Math.floor(n / 1000);
  } while (n > 0);
  return groups.map((g, i) => (i < groups.length - 1 ? `x${g}` : g)).join("/");
}
