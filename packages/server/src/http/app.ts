/**
 * Builds the Fastify app: JSON schemas at the edge, binary MLS bodies, WebSocket push, /healthz, /metrics.
 * Logs carry routing metadata only: never bodies, tokens or keys.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { createServer } from "node:http";
import Fastify, { type FastifyInstance } from "fastify";
import websocket from "@fastify/websocket";
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import { ValiseError, systemClock, type Clock, parseNoteVerifierKey } from "@valise/core";
import { DIRECTORY_SIZE_HEADER } from "@valise/core/wire";

/** The writes whose answers carry DIRECTORY_SIZE_HEADER (a membership check usually follows them). */
const DIRECTORY_SIZE_ROUTES = new Set([
  "POST /v1/cables",
  "POST /v1/documents",
  "POST /v1/documents/:id/versions",
  "POST /v1/conversations/:id/messages",
]);
import type { Store } from "../storage/store.js";
import type { ServerMls } from "./capabilities.js";
import { AppendBatcher } from "../delivery/batcher.js";
import { watchDirectoryCheckpoints } from "../delivery/directory-watch.js";
import { type Fanout, type FanoutEvent, InProcessFanout } from "../delivery/fanout.js";
import { createMetrics } from "../metrics.js";
import { RateLimiter, type Limiter } from "./rate-limit.js";
import { SharedRateLimiter } from "../storage/rate-buckets.js";
import type { ServerContext } from "./context.js";
import { installErrorHandler, STORE_RETRY_AFTER_S } from "./errors.js";
import { readiness } from "./readiness.js";
import { sessionLookup } from "../storage/session-lookup.js";
import { authRoutes } from "./routes-auth.js";
import { directoryRoutes } from "./routes-directory.js";
import { conversationRoutes } from "./routes-conversations.js";
import { blobRoutes } from "./routes-blobs.js";
import { documentRoutes } from "./routes-documents.js";
import { cableRoutes } from "./routes-cables.js";
import { logRoutes, PUBLIC_LOG_ROUTES } from "./routes-log.js";
import type { LogKey } from "../storage/log-key.js";
import { resolveSession, wsRoutes } from "./ws-hub.js";
import { AuditRecorder } from "../audit/recorder.js";
import { installAuditHook, notAudited } from "../audit/http.js";
import { auditOrigin, auditRoutes, PUBLIC_AUDIT_ROUTES } from "../audit/routes.js";
import { CosignedCheckpoints, startWitnessPublisher } from "../witness/publisher.js";
import { checkLogsAgainstWitnesses } from "../witness/startup-check.js";
import { listLogHandovers } from "../storage/log-rotation.js";
import type { WitnessEndpoint } from "../witness/submit.js";
import { DEFAULT_ORG_NAME, incidentRoutes } from "./routes-incidents.js";
import { TAXII_PREFIX, taxiiRoutes } from "./routes-taxii.js";
import { type DetectOptions, setupDetection } from "../detect/index.js";
import { passkeyRoutes, type WebAuthnOptions } from "./routes-passkeys.js";
import { webRoutes } from "./web.js";
import { lifecycleRoutes } from "./routes-lifecycle.js";
import { ktReportRoutes } from "../detect/kt-reports.js";
import { deviceAckRoutes } from "../detect/device-ack.js";
import { IocService } from "../incidents/ioc-service.js";
import { LeaderElection } from "../cluster/leader.js";

export type { WebAuthnOptions } from "./routes-passkeys.js";
export { WEB_CSP } from "./web.js";

/** Endpoints that answer without a session; everything else under /v1/ needs one. */
const PUBLIC_ROUTES = new Set([
  "/v1/enroll",
  "/v1/auth/challenge",
  "/v1/auth/session",
  "/v1/auth/passkey/options",
  "/v1/auth/passkey/session",
  "/v1/ws",
  ...PUBLIC_LOG_ROUTES,
  ...PUBLIC_AUDIT_ROUTES,
]);

export interface AppOptions {
  store: Store;
  mls: ServerMls;
  fanout?: Fanout;
  clock?: Clock;
  logger?: boolean | { level: string; stream?: NodeJS.WritableStream };
  loginRatePerMinute?: number;
  /** Key-package claims per device and minute (each claim names up to 5000 devices); default 60. */
  claimRatePerMinute?: number;
  /**
   * The directory log's signing key. With it the app signs a checkpoint whenever the log has grown (checked every
   * `checkpointIntervalMs`, default 250 ms; so at least once a second while there are changes). Without it no
   * checkpoints are signed (tests that do not need them).
   */
  logKey?: LogKey;
  checkpointIntervalMs?: number;
  /**
   * Witnesses (c2sp.org/tlog-witness) to submit every new checkpoint to (needs `logKey`). With any configured,
   * GET /v1/log/directory/checkpoint serves only checkpoints cosigned by at least `witnessQuorum` of them (default:
   * all), with the cosignatures appended.
   */
  witnesses?: readonly WitnessEndpoint[];
  witnessQuorum?: number;
  /** Timeout of each witness request (default 5 s) and the retry interval for a checkpoint short of quorum. */
  witnessTimeoutMs?: number;
  witnessRetryMs?: number;
  /** How often witnesses cosign the published checkpoint again when the log has not grown (default 60 s). */
  witnessRefreshMs?: number;
  /**
   * Before signing anything, ask each witness for the last checkpoint of each log it cosigned and refuse to start
   * (ValiseError "conflict", saying what to do) if this database cannot reproduce one signed by this log key — a
   * restore from a backup older than what was published (witness/startup-check.ts). Default true with witnesses.
   */
  witnessStartupCheck?: boolean;
  /** The organisation named in STIX exports and by the TAXII server; default "Ministry of Foreign Affairs". */
  orgName?: string;
  /**
   * Online detection over the audit log (detect/): rules, training days, alert webhooks. On by default with the
   * default rules; `false` turns it off. Bad rule files or webhook URLs make buildApp throw (RuleError names the file).
   */
  detect?: DetectOptions | false;
  /** How often partners' TAXII collections are polled for indicators (default 15 min; 0: only on request). */
  taxiiPollMs?: number;
  /** Passkeys for the web client (relying party id and allowed origins); without it the passkey routes are absent. */
  webauthn?: WebAuthnOptions;
  /** Uploads never attached to a document or cable are reclaimed this long (ms) after creation; default 24 h. */
  uploadTtlMs?: number;
  uploadReapIntervalMs?: number;
  /** Serve the web app (packages/web/dist) from this directory at `/`, with a strict Content-Security-Policy. */
  webRoot?: string;
  /**
   * Reverse proxies (addresses or CIDRs) whose X-Forwarded-For is believed: the client address they forward becomes
   * the request's source for audit events, rate limits and detection. Anyone else's X-Forwarded-For is ignored.
   * Default: none (the TCP peer is the source).
   */
  trustProxy?: readonly string[];
  /**
   * `/metrics` on the API port only with `Authorization: Bearer <metricsToken>`. Without a token it is not served
   * there at all: run `serveMetrics` on its own (loopback) listener instead.
   */
  metricsToken?: string;
  /** Per-user blob quota in bytes (the announced sizes of the user's blobs); default 20 GiB. Beyond: 413. */
  blobQuotaBytes?: number;
  /**
   * One of several nodes on one PostgreSQL (issue 18; pass a NATS `fanout` too): the detector, the checkpoint
   * signers and the witness publishers run only on the node elected leader through the database (cluster/leader.ts),
   * and move to another node when it dies. Needs PostgreSQL.
   */
  cluster?: boolean | { leaderIntervalMs?: number };
  /**
   * How often the leader enforces the retention rules (`valise admin retention`; issue 19): deletes messages, cables
   * and document versions past their rule, audited as counts. Default 1 h; 0: never (only `valise admin retention run`).
   */
  retentionIntervalMs?: number;
}

export async function buildApp(opts: AppOptions): Promise<{ app: FastifyInstance; ctx: ServerContext }> {
  const clock = opts.clock ?? systemClock;
  const now = () => clock.now();
  const fanout = opts.fanout ?? new InProcessFanout();
  const metrics = createMetrics(opts.store.handle.poolStats);
  opts.store.handle.onQuery = (seconds, ok) => metrics.querySeconds.observe({ outcome: ok ? "ok" : "error" }, seconds);
  const app = Fastify({
    logger: opts.logger === undefined ? false : opts.logger === true ? { level: "info" } : opts.logger,
    bodyLimit: 1024 * 1024,
    // proxy-addr semantics: X-Forwarded-For is walked back only through these peers (never "trust everyone").
    trustProxy: opts.trustProxy && opts.trustProxy.length > 0 ? [...opts.trustProxy] : false,
    ajv: { customOptions: { removeAdditional: false } },
  }).withTypeProvider<TypeBoxTypeProvider>();

  // Audit events queued when a message batch is written go into its transaction (delivery/batcher.ts).
  const audit = new AuditRecorder(
    opts.store.audit,
    now,
    2000,
    (n) => metrics.auditBatchSize.observe(n),
    (_n, seconds, ok) => metrics.transactionSeconds.observe({ kind: "audit", outcome: ok ? "ok" : "error" }, seconds),
  );
  const batcher = new AppendBatcher(
    opts.store.conversations,
    (reqs, results) => {
      const events: FanoutEvent[] = [];
      reqs.forEach((r, i) => {
        const res = results[i]!;
        if (!res.ok || res.duplicate) return;
        metrics.appended.inc({ kind: r.kind });
        if (r.kind === "commit" && r.commit && (r.commit.added.length > 0 || r.commit.removed.length > 0))
          events.push({ type: "membership", conversationId: r.conversationId });
        events.push({
          type: "message",
          conversationId: r.conversationId,
          seq: res.seq,
          kind: r.kind,
          epoch: r.epoch,
          sender: r.senderDevice,
          // Natively (core toBase64 is the browser's, in JavaScript): the same canonical base64.
          payload: Buffer.from(r.payload.buffer, r.payload.byteOffset, r.payload.byteLength).toString("base64"),
          createdAt: res.createdAt,
        });
        for (const ib of res.inbox)
          events.push({ type: "inbox", deviceId: ib.deviceId, id: ib.id, conversationId: r.conversationId });
      });
      fanout.publish(events);
    },
    512,
    (n) => metrics.batchSize.observe(n),
    (_n, seconds, ok) => metrics.transactionSeconds.observe({ kind: "message", outcome: ok ? "ok" : "error" }, seconds),
    audit,
  );

  const witnesses = opts.witnesses ?? [];
  const witnessQuorum = opts.witnessQuorum ?? witnesses.length;
  if (witnesses.length > 0 && !opts.logKey) throw new ValiseError("bad_request", "witnesses need a log key");
  if (!Number.isSafeInteger(witnessQuorum) || witnessQuorum < 0 || witnessQuorum > witnesses.length)
    throw new ValiseError(
      "bad_request",
      `witness quorum ${witnessQuorum} unreachable with ${witnesses.length} witnesses`,
    );
  const witnessed = witnesses.length > 0 ? new CosignedCheckpoints(opts.store.handle.db, "directory") : undefined;
  // The audit log is witnessed like the directory log (DESIGN §3): same witnesses, same quorum, its own origin.
  const auditWitnessed = witnesses.length > 0 ? new CosignedCheckpoints(opts.store.handle.db, "audit") : undefined;

  // On PostgreSQL the buckets that stop guessing and draining (logins, enrollments, key-package claims) are shared
  // by every node (rate_buckets), so several nodes behind a proxy do not multiply the rate; on SQLite (one node) they
  // stay in memory.
  const limiter = (name: string, perMinute: number, burst: number): Limiter =>
    opts.store.handle.dialect === "postgres"
      ? new SharedRateLimiter(opts.store.handle.db, name, perMinute, burst, now)
      : new RateLimiter(perMinute, burst, now);

  const ctx: ServerContext = {
    store: opts.store,
    mls: opts.mls,
    batcher,
    fanout,
    metrics,
    loginLimiter: limiter("login", opts.loginRatePerMinute ?? 60, opts.loginRatePerMinute ?? 60),
    // Per node: it guards this node's append batch against one device's conflicting keys.
    abuseLimiter: new RateLimiter(10, 10, now),
    claimLimiter: limiter("claim", opts.claimRatePerMinute ?? 60, opts.claimRatePerMinute ?? 60),
    // 5 at once, then one every 10 minutes: re-adding the same device is rare; draining it is what this stops.
    claimPairLimiter: limiter("claim-pair", 0.1, 5),
    now,
    lookupSession: sessionLookup(opts.store, now),
    audit,
    ...(witnessed ? { witnessed } : {}),
    ...(auditWitnessed ? { auditWitnessed } : {}),
    ...(opts.logKey
      ? { trustAnchors: { logKey: opts.logKey.vkey, witnesses: witnesses.map((w) => w.vkey), quorum: witnessQuorum } }
      : {}),
  };

  installErrorHandler(app);
  installAuditHook(app, ctx);
  await app.register(websocket, { options: { maxPayload: 512 * 1024 } });

  app.decorateRequest("session", null);
  app.addHook("onRequest", async (req) => {
    // TAXII (routes-taxii.ts) authenticates partners with their own tokens, never a user session.
    if (req.url.startsWith(TAXII_PREFIX)) return;
    // /metrics has its own token (or is not served on this port).
    if (req.routeOptions.url === "/metrics") return;
    const auth = req.headers.authorization;
    if (auth?.startsWith("Bearer ")) {
      const token = auth.slice(7);
      // An invalid token is a 401 even on routes that would also work anonymously: no silent downgrade.
      const s = token.length < 200 ? await resolveSession(ctx, token) : null;
      if (!s) throw new ValiseError("unauthenticated", "invalid or expired session token; log in again");
      req.session = s;
    } else if (req.routeOptions.url?.startsWith("/v1/") && !PUBLIC_ROUTES.has(req.routeOptions.url)) {
      // Authentication before validation: an anonymous caller learns nothing about an endpoint's schema.
      throw new ValiseError("unauthenticated", "authentication required: Authorization: Bearer <session token>");
    }
  });
  // The writes a client makes just before it asks whether its conversations' members may have changed (a cable's or
  // document's key delivery, the next message) also say how far the directory log has grown
  // (`Valise-Directory-Size`, the head size GET /v1/log/directory/size gives): the client skips that request. Only
  // these routes: the size is a query, not worth adding to every write. A hint like the route's answer: the log is
  // what the client verifies; a stale size gains a server nothing it could not get by withholding the log entry.
  app.addHook("onSend", async (req, reply, payload) => {
    if (req.session && reply.statusCode < 300 && DIRECTORY_SIZE_ROUTES.has(`${req.method} ${req.routeOptions.url}`))
      reply.header(DIRECTORY_SIZE_HEADER, String(await ctx.store.directory.log.size()));
    return payload;
  });
  app.addHook("onResponse", async (req, reply) => {
    const route = req.routeOptions.url ?? "unknown";
    metrics.httpRequests.inc({ route, status: String(reply.statusCode) });
    metrics.httpDuration.observe({ route, method: req.method }, reply.elapsedTime / 1000);
  });

  // Liveness: the process is up and answering (a database outage must not get it restarted: it recovers by itself).
  app.get("/healthz", notAudited("liveness: reads no stored data"), async () => ({ ok: true }));
  // Readiness: the store can be read and written now — a read, a committed write through the database (the path
  // every audit append takes), a flushed write in the data directory (disk full), and no failed audit append since
  // the last good one. 503 store_error with Retry-After while any of them fails.
  app.get("/readyz", notAudited("readiness: probes the store, returns no stored data"), async (_req, reply) => {
    const r = await readiness(opts.store, ctx.audit);
    if (!r.ready) reply.status(503).header("retry-after", String(STORE_RETRY_AFTER_S));
    return r.ready ? { ok: true, ...r } : { code: "store_error", message: r.error ?? "not ready", ...r };
  });
  if (opts.metricsToken !== undefined) {
    if (opts.metricsToken.length < 16) throw new ValiseError("bad_request", "the metrics token needs 16+ characters");
    const want = createHash("sha256").update(`Bearer ${opts.metricsToken}`).digest();
    const getMetricsAudit = notAudited("Prometheus counters behind their own token; no stored data");
    app.get("/metrics", getMetricsAudit, async (req, reply) => {
      const got = createHash("sha256")
        .update(req.headers.authorization ?? "")
        .digest();
      if (!timingSafeEqual(got, want)) throw new ValiseError("unauthenticated", "metrics need their bearer token");
      reply.header("content-type", metrics.registry.contentType);
      return metrics.registry.metrics();
    });
  }

  authRoutes(app, ctx);
  directoryRoutes(app, ctx);
  lifecycleRoutes(app, ctx);
  ktReportRoutes(app, ctx);
  deviceAckRoutes(app, ctx);
  conversationRoutes(app, ctx);
  blobRoutes(app, ctx, {
    ...(opts.uploadTtlMs !== undefined ? { uploadTtlMs: opts.uploadTtlMs } : {}),
    ...(opts.uploadReapIntervalMs !== undefined ? { reapIntervalMs: opts.uploadReapIntervalMs } : {}),
    ...(opts.blobQuotaBytes !== undefined ? { quotaBytes: opts.blobQuotaBytes } : {}),
  });
  documentRoutes(app, ctx);
  cableRoutes(app, ctx);
  logRoutes(app, ctx);
  auditRoutes(app, ctx, opts.logKey);
  ctx.iocs = new IocService(opts.store.handle.db, opts.store.audit, now, () => ctx.detector, {
    warn: (msg, data) => app.log.warn(data ?? {}, msg),
  });
  incidentRoutes(app, ctx, { orgName: opts.orgName ?? DEFAULT_ORG_NAME });
  taxiiRoutes(app, ctx, { orgName: opts.orgName ?? DEFAULT_ORG_NAME });
  if (opts.webauthn) passkeyRoutes(app, ctx, opts.webauthn);
  if (opts.webRoot) webRoutes(app, opts.webRoot);
  const unsub = wsRoutes(app, ctx);
  const detector = opts.detect === false ? undefined : setupDetection(app, ctx, opts.detect ?? {});
  if (detector) {
    ctx.detector = detector;
    ctx.audit.onWritten = () => detector.notify();
  }
  // Indicators the detector matches: loaded on every node (the leader's detector uses them).
  await ctx.iocs.load();
  // Checked on every node at start-up: a node with another log key must not serve this database's logs.
  if (opts.logKey) {
    await opts.store.directory.log.pinVerifierKey(opts.logKey.vkey);
    await opts.store.audit.pinVerifierKey(opts.logKey.vkey);
  }
  // A database older than what the witnesses cosigned (an older backup restored) must not sign on: that forks.
  if (opts.logKey && witnesses.length > 0 && opts.witnessStartupCheck !== false) {
    const key = opts.logKey;
    const named = (log: Store["audit"] | Store["directory"]["log"], name: string, origin: string) => ({
      name,
      origin,
      size: () => log.size(),
      rootAt: (n: number) => log.rootAt(n),
    });
    const check = await checkLogsAgainstWitnesses({
      logs: [
        named(opts.store.directory.log, "directory", key.origin),
        named(opts.store.audit, "audit", auditOrigin(key.origin)),
      ],
      logVerifiers: [
        parseNoteVerifierKey(key.vkey),
        ...(await listLogHandovers(opts.store.handle.db)).map((h) => parseNoteVerifierKey(h.oldKey)),
      ],
      witnesses,
      ...(opts.witnessTimeoutMs !== undefined ? { timeoutMs: opts.witnessTimeoutMs } : {}),
    });
    for (const s of check.seen)
      if (s.error !== undefined)
        app.log.warn(s, "could not compare the log with this witness at start-up (it still refuses any fork)");
    if (check.refused !== null) {
      app.log.error({ witnesses: check.seen }, check.refused);
      unsub();
      await detector?.close();
      await app.close();
      throw new ValiseError("conflict", check.refused);
    }
  }
  /**
   * What runs once per database: the checkpoint signers, the witness publishers (started after the signers, which
   * have signed a first checkpoint by then) and the detection tailer. On one node: always; in a cluster: on the
   * elected leader only.
   */
  const startSingletons = async (): Promise<() => Promise<void>> => {
    const stopSigner = opts.logKey
      ? await startCheckpointSigner(app, opts.store.directory.log, opts.logKey, opts.checkpointIntervalMs)
      : undefined;
    // The audit log is signed with the same key, under its own origin (`…/audit`).
    const stopAuditSigner = opts.logKey
      ? await startCheckpointSigner(
          app,
          opts.store.audit,
          { ...opts.logKey, origin: auditOrigin(opts.logKey.origin) },
          opts.checkpointIntervalMs,
        )
      : undefined;
    const publish = (store: CosignedCheckpoints, log: Store["audit"] | Store["directory"]["log"], origin?: string) =>
      startWitnessPublisher({
        store,
        latest: () => log.latestCheckpoint(),
        consistencyProof: (from, to) => log.consistencyProof(from, to),
        logVerifier: parseNoteVerifierKey(opts.logKey!.vkey),
        ...(origin !== undefined ? { origin } : {}),
        witnesses,
        quorum: witnessQuorum,
        now,
        ...(opts.witnessTimeoutMs !== undefined ? { timeoutMs: opts.witnessTimeoutMs } : {}),
        ...(opts.witnessRetryMs !== undefined ? { retryMs: opts.witnessRetryMs } : {}),
        ...(opts.witnessRefreshMs !== undefined ? { refreshMs: opts.witnessRefreshMs } : {}),
        ...(opts.checkpointIntervalMs !== undefined ? { intervalMs: opts.checkpointIntervalMs } : {}),
        handovers: async () => (await listLogHandovers(opts.store.handle.db)).map((h) => h.note),
        warn: (msg, data) => app.log.warn(data, msg),
        info: (msg, data) => app.log.info(data, msg),
      });
    const publisher = witnessed && opts.logKey ? await publish(witnessed, opts.store.directory.log) : undefined;
    const auditPublisher =
      auditWitnessed && opts.logKey
        ? await publish(auditWitnessed, opts.store.audit, auditOrigin(opts.logKey.origin))
        : undefined;
    // Clients are told when the checkpoint they are served grows (a frame on every socket of every node).
    const directoryWatch = opts.logKey
      ? watchDirectoryCheckpoints({
          servedSize: async () =>
            (witnessed ? await witnessed.latest() : await opts.store.directory.log.latestCheckpoint())?.size ?? null,
          fanout: ctx.fanout,
          ...(opts.checkpointIntervalMs !== undefined ? { intervalMs: opts.checkpointIntervalMs } : {}),
          warn: (msg, data) => app.log.warn(data, msg),
        })
      : undefined;
    await detector?.start();
    const stopRetention = startRetention(app, opts.store, opts.retentionIntervalMs ?? 3_600_000);
    // Partners' TAXII collections are polled by one node.
    ctx.iocs?.start(opts.taxiiPollMs ?? 15 * 60_000);
    return async () => {
      await stopRetention();
      await ctx.iocs?.stop();
      await directoryWatch?.stop();
      await detector?.stop(false);
      await publisher?.stop();
      await auditPublisher?.stop();
      await stopSigner?.();
      await stopAuditSigner?.();
    };
  };
  let election: LeaderElection | undefined;
  let stopSingletons: (() => Promise<void>) | undefined;
  if (opts.cluster) {
    if (!opts.store.handle.url) throw new ValiseError("bad_request", "a cluster node needs PostgreSQL");
    const o = typeof opts.cluster === "object" ? opts.cluster : {};
    election = new LeaderElection({
      databaseUrl: opts.store.handle.url,
      ...(o.leaderIntervalMs !== undefined ? { intervalMs: o.leaderIntervalMs } : {}),
      onElected: async () => {
        stopSingletons = await startSingletons();
      },
      onDeposed: async () => {
        const stop = stopSingletons;
        stopSingletons = undefined;
        await stop?.();
      },
      log: { info: (msg, data) => app.log.info(data, msg), warn: (msg, data) => app.log.warn(data, msg) },
    });
    ctx.leader = election;
    // A follower answers "learning until" from the leader's stored detector state.
    await detector?.peek();
    const peek = setInterval(() => {
      if (detector && !detector.running) void detector.peek().catch(() => undefined);
    }, 60_000);
    peek.unref();
    app.addHook("onClose", async () => clearInterval(peek));
    election.start();
  } else stopSingletons = await startSingletons();
  app.addHook("onClose", async () => {
    unsub();
    await election?.stop();
    await stopSingletons?.();
    stopSingletons = undefined;
    await detector?.close();
  });
  return { app, ctx };
}

/**
 * Runs `task` every `intervalMs` (never two at once: a tick while one runs is skipped), logging a failure as `what
 * failed`; the returned stop waits for a run in progress.
 */
function every(
  app: FastifyInstance,
  intervalMs: number,
  what: string,
  task: () => Promise<unknown>,
): () => Promise<void> {
  let running: Promise<unknown> = Promise.resolve();
  let busy = false;
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    running = task()
      .catch((e: unknown) =>
        app.log.error({ err: { message: e instanceof Error ? e.message : String(e) } }, `${what} failed`),
      )
      .finally(() => {
        busy = false;
      });
  }, intervalMs);
  timer.unref();
  return async () => {
    clearInterval(timer);
    await running;
  };
}

/** Runs the retention rules on a timer (the first run one interval after start); logs what each run deleted. */
function startRetention(app: FastifyInstance, store: Store, intervalMs: number): () => Promise<void> {
  if (intervalMs <= 0) return async () => undefined;
  return every(app, intervalMs, "retention run", async () => {
    const { byRule: _b, held, ...counts } = await store.retention.run();
    if (Object.values(counts).some((n) => n > 0) || held.length > 0) app.log.info({ ...counts, held }, "retention run");
  });
}

/** Signs a first checkpoint, then signs a new one on a timer whenever the log has grown. */
async function startCheckpointSigner(
  app: FastifyInstance,
  log: Pick<Store["directory"]["log"], "pinVerifierKey" | "signCheckpoint">,
  key: LogKey,
  intervalMs = 250,
): Promise<() => Promise<void>> {
  await log.signCheckpoint(key.origin, key.signer);
  return every(app, intervalMs, "checkpoint signing", () => log.signCheckpoint(key.origin, key.signer));
}

/**
 * Prometheus `/metrics` on a listener of its own (the API port does not serve it without a token): bind it to the
 * loopback or a management network. Resolves with its URL once listening.
 */
export async function serveMetrics(
  ctx: Pick<ServerContext, "metrics">,
  host: string,
  port: number,
): Promise<{ url: string; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    if (req.method !== "GET" || (req.url ?? "").split("?")[0] !== "/metrics") {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
      return;
    }
    ctx.metrics.registry
      .metrics()
      .then((text) => res.writeHead(200, { "content-type": ctx.metrics.registry.contentType }).end(text))
      .catch(() => res.writeHead(500).end());
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const a = server.address();
  const p = a && typeof a === "object" ? a.port : port;
  const h = host.includes(":") ? `[${host}]` : host;
  return {
    url: `http://${h}:${p}/metrics`,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
