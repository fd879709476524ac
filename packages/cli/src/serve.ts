import { existsSync } from "node:fs";
import { isIP } from "node:net";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ValiseError, canonicalLabel } from "@valise/core";
import { RuleError, type Rule } from "@valise/detect";
import {
  buildApp,
  checkWebhookUrl,
  detectorRules,
  loadOrCreateLogKey,
  NatsFanout,
  openStore,
  parseWitnessSpec,
  protocolServerMls,
  serveMetrics,
  type WitnessEndpoint,
} from "@valise/server";
import { parse, UsageError } from "./args.js";
import { CONFIG_HELP, effectiveConfig, parseDuration, resolveConfig } from "./config.js";
import { installNodeCrypto } from "./crypto.js";

export const SERVE_USAGE = `usage: valise serve [--data DIR] [--port N] [--host ADDR] [--log-level LEVEL] [--log-origin ORIGIN]
                   [--witness URL=VKEY …] [--witness-quorum K] [--witness-refresh S] [--login-rate N]
                   [--org-name NAME]
                   [--rules DIR|FILE …] [--no-default-rules] [--alert-webhook URL …] [--detect-train-days N]
                   [--taxii-poll DURATION]
                   [--web DIR | --no-web] [--web-origin URL …] [--upload-ttl DURATION]
                   [--trust-proxy CIDR …] [--metrics-listen HOST:PORT | --metrics-listen off]
                   [--blob-quota SIZE] [--session-ttl DURATION] [--enrollment-code-ttl DURATION]
                   [--db-pool-size N] [--config FILE] [--check-config]
                   [--blob-store fs|pg] [--blobs DIR] [--nats URL]
                   [--retention unit:UNIT=DURATION|label:LABEL=DURATION …] [--retention-interval DURATION|0]

Starts the Valise server: delivery service, directory, key packages, WebSocket push, /healthz (liveness: 200
while the process answers), /readyz (readiness: 503 store_error while the database or the disk cannot be read or
written, the audit append included), /metrics. A database or disk outage answers 503 store_error with Retry-After;
the server recovers by itself when the database is back.
  --data DIR        data directory (SQLite database, blobs); default ./valise-data
  --port N          TCP port; default 8080
  --host ADDR       listen address; default 127.0.0.1 (put a TLS-terminating proxy in front for remote clients)
  --log-level L     pino level (fatal, error, warn, info, debug); default info
  --log-origin O    directory log origin (checkpoint first line and key name), fixed when the log key is created;
                    default valise.example/directory — use your server's name, e.g. valise.mfa.example/directory
  --witness URL=VKEY  a witness (valise witness serve) at URL with verifier key VKEY (from valise witness init);
                    repeatable. Every new checkpoint is submitted to every witness; GET /v1/log/directory/checkpoint
                    then serves only checkpoints with at least K witness cosignatures (appended to the note)
  --witness-quorum K  cosignatures required to publish a checkpoint; default: all configured witnesses
  --witness-refresh S  when the log has not grown, ask the witnesses to cosign the published checkpoint again every
                    S seconds (default 60): clients call a checkpoint stale once its cosignatures are older than
                    their bound (default 600 s, VALISE_CHECKPOINT_MAX_AGE), so S must stay well below it
  --login-rate N    enrollments/logins allowed per minute per client address (429 beyond); default 60
  --upload-ttl D    uploads never attached to a document or cable are deleted D after they began (their space
                    reclaimed, each one audited as blob.expire); D is seconds or 90s, 30m, 24h, 7d; default 24h
  --trust-proxy CIDR  a TLS-terminating reverse proxy (address or CIDR, e.g. 10.0.0.5 or 10.0.0.0/24), repeatable:
                    X-Forwarded-For is believed only from these peers, so audit "source", rate limits and detection
                    see the real client address. Never list addresses that untrusted clients can connect from
  --blob-quota SIZE  per-user quota for uploaded ciphertext (documents, attachments): bytes or 500M, 20G, 1T;
                    default 20G. An upload that would exceed it is refused with 413 too_large naming the usage
  --blob-store S    where document and attachment ciphertext is kept: "fs" (files under --blobs, default
                    DIR/blobs) or "pg" (in the PostgreSQL database, chunked: every node of a cluster reads and
                    resumes the same uploads; needs PostgreSQL). Default fs (VALISE_BLOB_STORE)
  --blobs DIR       the directory of the fs blob store; default DIR/blobs. Several nodes on the fs store need one
                    directory they all mount (VALISE_BLOB_DIR)
  --nats URL        several nodes (see README "Several nodes"): pushes (messages, inbox, alerts, membership) reach
                    the clients of every node through this NATS server (nats://HOST:4222; VALISE_NATS_URL). The
                    database stays the source of truth: a lost NATS message only delays (clients catch up), and
                    the detector, checkpoint signers and witness publisher run on one elected node at a time
  --metrics-listen HOST:PORT  Prometheus /metrics on its own listener; default 127.0.0.1:9464 (skipped with a
                    warning if that port is taken); "off" for none. The API port serves /metrics only with
                    VALISE_METRICS_TOKEN (Authorization: Bearer <token>)
  --org-name NAME   the organisation named in STIX 2.1 incident exports and by the TAXII 2.1 server (partners);
                    default "Ministry of Foreign Affairs"
  --session-ttl D   lifetime of a login session (the bearer token a device gets at login); default 1h
  --enrollment-code-ttl D  lifetime of a one-time enrollment code made by valise admin (which reads the same
                    --config file); default 7d
  --db-pool-size N  PostgreSQL connection pool size; default 10
  --retention unit:UNIT=D | label:LABEL=D  a retention rule (repeatable; "retention": [...] in the file), set at
                    start-up as by valise admin retention set (which lists, removes and runs them): the unit's or
                    label's ciphertext (messages, cables, document versions and blobs) is deleted D after it was
                    created (D: 365d, 720h, …). Longest matching rule wins; an item no rule matches is kept; a unit
                    with a records archive keeps what its archive has not been marked as holding
  --retention-interval D  how often the (leader) server enforces the rules; default 1h; 0: never (only valise admin
                    retention run)
  --config FILE     read the settings from a JSON file (below); flags and environment variables override it
  --check-config    check the configuration (flags, environment, file, secret files, rule files), print the
                    effective configuration as JSON and exit without starting: 0 valid, 2 invalid
Web app: served at / (packages/web/dist/app, built by npm run build) with a strict Content-Security-Policy.
  --web DIR         serve the web app from DIR instead; --no-web: API only
  --web-origin URL  the origin users open (e.g. https://valise.mfa.example), repeatable; passkeys are bound to its
                    host name. Default http://localhost:PORT (browsers refuse passkeys for an IP address)
Detection: the audit log is tailed by the detection engine as it is written; alerts are stored (GET /v1/alerts),
pushed to security officers' WebSocket sessions (valise alerts --follow) and POSTed to the webhooks, within seconds.
  --rules DIR|FILE  extra detection rule files (*.json), repeatable; added to the default rules. A bad rule file
                    stops the server from starting, with the validator's message
  --no-default-rules  use only the --rules given
  --alert-webhook URL  POST every alert as JSON ({"type":"alert","id","time","actor","rule","severity","reason",
                    "events",…}) to URL; repeatable. 5 s timeout, 5 attempts with backoff; never delays detection
  --detect-train-days N  the first N UTC days from the first audit event only train the baselines (default 14): no
                    baseline or threshold alerts yet, but critical rules (a canary touch) alert from the first event.
                    Fixed once the first event is processed (kept in the stored detector state)
  --taxii-poll DURATION  how often partners' TAXII collections (valise taxii partner add) are polled for
                    indicators (default 15m; 0: only on valise taxii partner poll)
Logs are JSON lines (pino) on standard output; the start-up banner (address, database, the directory log's verifier
key — give it to clients and witnesses —, witnesses, metrics) goes to standard error. The signing key is DIR/log-key
(0600).
Environment: VALISE_DATABASE_URL=postgres://… uses PostgreSQL instead of the embedded SQLite;
  VALISE_LOG_KEY=PRIVATE+KEY+… supplies the log signing key instead of DIR/log-key (several servers, one log);
  VALISE_WITNESSES (space- or comma-separated URL=VKEY) and VALISE_WITNESS_QUORUM stand for --witness and
  --witness-quorum when no --witness is given (the same variables valise admin puts in enrollment bundles);
  VALISE_TRUST_PROXY (space- or comma-separated CIDRs) stands for --trust-proxy when none is given;
  VALISE_METRICS_TOKEN (16+ characters) also serves /metrics on the API port to that bearer token.
${CONFIG_HELP}`;

export async function serve(argv: string[]): Promise<number> {
  const { values } = parse(
    argv,
    {
      data: { type: "string" },
      port: { type: "string" },
      host: { type: "string" },
      "log-level": { type: "string" },
      "log-origin": { type: "string" },
      witness: { type: "string", multiple: true },
      "witness-quorum": { type: "string" },
      "witness-refresh": { type: "string" },
      "login-rate": { type: "string" },
      "org-name": { type: "string" },
      rules: { type: "string", multiple: true },
      "no-default-rules": { type: "boolean" },
      "alert-webhook": { type: "string", multiple: true },
      "detect-train-days": { type: "string" },
      "taxii-poll": { type: "string" },
      web: { type: "string" },
      "no-web": { type: "boolean" },
      "web-origin": { type: "string", multiple: true },
      "upload-ttl": { type: "string" },
      "trust-proxy": { type: "string", multiple: true },
      "metrics-listen": { type: "string" },
      "blob-quota": { type: "string" },
      "blob-store": { type: "string" },
      blobs: { type: "string" },
      nats: { type: "string" },
      "session-ttl": { type: "string" },
      "enrollment-code-ttl": { type: "string" },
      "db-pool-size": { type: "string" },
      retention: { type: "string", multiple: true },
      "retention-interval": { type: "string" },
      config: { type: "string" },
      "check-config": { type: "boolean" },
    },
    SERVE_USAGE,
  );
  if (values.help) {
    console.log(SERVE_USAGE);
    return 0;
  }
  // Flags, then the environment, then --config FILE, per key (config.ts); secrets come from files or the environment.
  const { config: configFile, "check-config": checkOnly, help: _help, ...flagValues } = values;
  const cfg = resolveConfig(flagValues, configFile);
  const str = (key: string): string | undefined => cfg.values[key] as string | undefined;
  const list = (key: string): string[] | undefined => cfg.values[key] as string[] | undefined;
  const bool = (key: string): boolean => cfg.values[key] === true;
  await installNodeCrypto();
  process.umask(0o077); // database, WAL and key files readable by the server's user only
  const dataDir = resolve(str("data") ?? "./valise-data");
  const port = Number(str("port") ?? 8080);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`invalid --port ${str("port") ?? ""}`);
  const host = str("host") ?? "127.0.0.1";
  // The same witnesses the bundles pin (valise admin reads VALISE_WITNESSES too): flags, else the environment, else
  // the file.
  const witnessSpecs = list("witness") ?? [];
  let witnesses: WitnessEndpoint[];
  try {
    witnesses = witnessSpecs.map((spec) => {
      if (!spec.includes("="))
        throw new Error(`witness ${JSON.stringify(spec)} has no URL: the server needs URL=VKEY to submit checkpoints`);
      return parseWitnessSpec(spec);
    });
  } catch (e) {
    throw new UsageError(`${e instanceof Error ? e.message : String(e)}\n\n${SERVE_USAGE}`);
  }
  // A quorum from the environment or the file does not apply to witnesses given as flags.
  const quorumArg =
    cfg.source.witness === "flag" && cfg.source.witnessQuorum !== "flag" ? undefined : str("witnessQuorum");
  const witnessQuorum = quorumArg === undefined ? witnesses.length : Number(quorumArg);
  if (!/^[0-9]+$/.test(quorumArg ?? "0") || witnessQuorum > witnesses.length)
    throw new UsageError(`--witness-quorum must be between 0 and the number of --witness (${witnesses.length})`);
  const refreshArg = str("witnessRefresh");
  if (refreshArg !== undefined && (!/^[0-9]{1,6}$/.test(refreshArg) || Number(refreshArg) < 1))
    throw new UsageError("--witness-refresh must be a positive number of seconds");
  const loginRate = Number(str("loginRate") ?? 60);
  if (!Number.isInteger(loginRate) || loginRate < 1) throw new UsageError("--login-rate must be a positive integer");
  const uploadTtlMs = str("uploadTtl") === undefined ? undefined : parseDuration(str("uploadTtl")!);
  if (uploadTtlMs === null) throw new UsageError(`--upload-ttl must be a duration such as 3600, 90s, 30m, 24h or 7d`);
  const sessionTtlMs = str("sessionTtl") === undefined ? undefined : parseDuration(str("sessionTtl")!);
  if (sessionTtlMs === null) throw new UsageError(`--session-ttl must be a duration such as 3600, 30m, 8h or 1d`);
  const enrollmentCodeTtlMs =
    str("enrollmentCodeTtl") === undefined ? undefined : parseDuration(str("enrollmentCodeTtl")!);
  if (enrollmentCodeTtlMs === null)
    throw new UsageError(`--enrollment-code-ttl must be a duration such as 3600, 30m, 24h or 7d`);
  const poolArg = str("dbPoolSize");
  if (poolArg !== undefined && (!/^[0-9]{1,4}$/.test(poolArg) || Number(poolArg) < 1 || Number(poolArg) > 1000))
    throw new UsageError("--db-pool-size must be an integer between 1 and 1000");
  const trainArg = str("detectTrainDays");
  if (trainArg !== undefined && !/^[0-9]{1,5}$/.test(trainArg))
    throw new UsageError("--detect-train-days must be a non-negative integer");
  const taxiiPollArg = str("taxiiPoll");
  const taxiiPollMs = taxiiPollArg === undefined ? undefined : taxiiPollArg === "0" ? 0 : parseDuration(taxiiPollArg);
  if (taxiiPollMs === null) throw new UsageError("--taxii-poll must be 0 or a duration such as 900, 15m or 1h");
  const retentionIntervalArg = str("retentionInterval");
  const retentionIntervalMs =
    retentionIntervalArg === undefined
      ? undefined
      : retentionIntervalArg === "0"
        ? 0
        : parseDuration(retentionIntervalArg);
  if (retentionIntervalMs === null)
    throw new UsageError("--retention-interval must be 0 or a duration such as 3600, 30m, 1h or 1d");
  const retentionRules = (list("retention") ?? []).map((spec) => {
    const m = /^(unit|label):(.+)=([^=]+)$/.exec(spec);
    const keepMs = m ? parseDuration(m[3]!) : null;
    if (!m || keepMs === null)
      throw new UsageError(`--retention ${JSON.stringify(spec)}: expected unit:UNIT=DURATION or label:LABEL=DURATION`);
    return { scope: m[1] as "unit" | "label", name: m[2]!, keepMs };
  });
  let rules: Rule[];
  let webhooks: string[];
  try {
    // Checked before anything is opened: a bad rule file stops the server with the validator's message.
    rules = detectorRules(list("rules") ?? [], bool("noDefaultRules"));
    webhooks = (list("alertWebhook") ?? []).map(checkWebhookUrl);
  } catch (e) {
    if (e instanceof RuleError) throw new ValiseError("bad_request", `bad detection rules: ${e.message}`);
    throw new UsageError(`${e instanceof Error ? e.message : String(e)}\n\n${SERVE_USAGE}`);
  }
  let origins: string[];
  try {
    origins = (list("webOrigin") ?? [`http://localhost:${port}`]).map((o) => new URL(o).origin);
  } catch {
    throw new UsageError(`--web-origin must be a URL such as https://valise.mfa.example\n\n${SERVE_USAGE}`);
  }
  const rpId = new URL(origins[0]!).hostname;
  const webRoot = bool("noWeb") ? undefined : resolve(str("web") ?? defaultWebRoot());
  if (webRoot && !existsSync(resolve(webRoot, "index.html"))) {
    if (str("web") !== undefined) throw new UsageError(`--web ${str("web")}: no index.html there`);
    if (!checkOnly) process.stderr.write(`web app not built (${webRoot}): serving the API only\n`);
  }
  const trustProxy = (list("trustProxy") ?? []).map((c) => {
    if (!isCidr(c))
      throw new UsageError(`--trust-proxy ${JSON.stringify(c)}: not an IP address or CIDR\n\n${SERVE_USAGE}`);
    return c;
  });
  const quotaArg = str("blobQuota");
  const quotaM = quotaArg === undefined ? null : /^([0-9]{1,15})([KMGT]?)$/i.exec(quotaArg);
  if (quotaArg !== undefined && !quotaM)
    throw new UsageError(`--blob-quota must be a size such as 500M or 20G\n\n${SERVE_USAGE}`);
  const blobQuotaBytes = quotaM
    ? Number(quotaM[1]) * 1024 ** "_KMGT".indexOf((quotaM[2] || "_").toUpperCase())
    : undefined;
  const metricsListen = str("metricsListen") ?? "127.0.0.1:9464";
  const metricsAt = metricsListen === "off" ? null : parseHostPort(metricsListen);
  if (metricsListen !== "off" && metricsAt === null)
    throw new UsageError(`--metrics-listen must be HOST:PORT or off\n\n${SERVE_USAGE}`);
  const metricsToken = cfg.secrets.metricsToken;
  if (metricsToken !== undefined && metricsToken.length < 16)
    throw new UsageError("the metrics token (VALISE_METRICS_TOKEN or metricsTokenFile) needs at least 16 characters");
  const logLevel = str("logLevel") ?? "info";
  if (!["fatal", "error", "warn", "info", "debug", "trace", "silent"].includes(logLevel))
    throw new UsageError(`--log-level must be one of fatal, error, warn, info, debug, trace, silent`);
  const databaseUrl = cfg.secrets.databaseUrl;
  const keyEnv = cfg.secrets.logKey !== undefined ? { VALISE_LOG_KEY: cfg.secrets.logKey } : {};
  if (checkOnly) {
    // The log key from a file or the environment must parse; DATA/log-key is only read (never created) here.
    try {
      if (cfg.secrets.logKey !== undefined) loadOrCreateLogKey({ dataDir, origin: str("logOrigin"), env: keyEnv });
    } catch (e) {
      const from = str("logKeyFile") !== undefined ? "logKeyFile" : "VALISE_LOG_KEY";
      throw new UsageError(`${from}: ${e instanceof Error ? e.message : String(e)}`);
    }
    console.log(
      JSON.stringify(
        {
          ok: true,
          config: effectiveConfig(cfg),
          sources: cfg.source,
          database: databaseUrl ? "postgresql" : "sqlite",
          logKey: cfg.secrets.logKey !== undefined ? (str("logKeyFile") ?? "VALISE_LOG_KEY") : `${dataDir}/log-key`,
        },
        null,
        2,
      ),
    );
    return 0;
  }
  const blobKind = str("blobStore") ?? "fs";
  if (blobKind !== "fs" && blobKind !== "pg") throw new UsageError(`--blob-store must be fs or pg\n\n${SERVE_USAGE}`);
  if (blobKind === "pg" && !databaseUrl)
    throw new UsageError("--blob-store pg keeps blobs in PostgreSQL: set VALISE_DATABASE_URL");
  const blobDirArg = str("blobDir");
  const blobDir = blobDirArg ? resolve(blobDirArg) : undefined;
  const natsUrl = str("nats");
  if (natsUrl !== undefined && !databaseUrl)
    throw new UsageError("--nats joins several nodes on one PostgreSQL database: set VALISE_DATABASE_URL");
  const store = await openStore({
    dataDir,
    databaseUrl,
    blobStore: blobKind,
    ...(blobDir ? { blobDir } : {}),
    ...(poolArg !== undefined ? { poolSize: Number(poolArg) } : {}),
    ...(sessionTtlMs !== undefined ? { sessionTtlMs } : {}),
    ...(enrollmentCodeTtlMs !== undefined ? { enrollmentCodeTtlMs } : {}),
  });
  // Retention rules of the configuration: set (and audited) only when they differ from the stored ones.
  const stored = await store.retention.rules();
  for (const r of retentionRules) {
    const name = r.scope === "label" ? canonicalLabel(r.name) : r.name;
    if (stored.some((s) => s.scope === r.scope && s.name === name && s.keepMs === r.keepMs)) continue;
    await store.retention.setRule(r.scope, name, r.keepMs, {
      actor: "config",
      source: "local",
      client: "valise-serve",
    });
  }
  const fanout = natsUrl
    ? new NatsFanout({
        servers: natsUrl,
        ...(process.env.VALISE_NATS_SUBJECT ? { subject: process.env.VALISE_NATS_SUBJECT } : {}),
        log: {
          info: (msg, data) =>
            process.stdout.write(JSON.stringify({ level: 30, time: Date.now(), msg, ...data }) + "\n"),
          warn: (msg, data) =>
            process.stdout.write(JSON.stringify({ level: 40, time: Date.now(), msg, ...data }) + "\n"),
        },
      })
    : undefined;
  const logKey = loadOrCreateLogKey({ dataDir, origin: str("logOrigin"), env: keyEnv });
  const { app, ctx } = await buildApp({
    store,
    ...(fanout ? { fanout, cluster: true } : {}),
    ...(trustProxy.length > 0 ? { trustProxy } : {}),
    ...(metricsToken !== undefined ? { metricsToken } : {}),
    ...(blobQuotaBytes !== undefined ? { blobQuotaBytes } : {}),
    mls: protocolServerMls,
    logger: { level: logLevel },
    logKey,
    witnesses,
    witnessQuorum,
    ...(refreshArg !== undefined ? { witnessRefreshMs: Number(refreshArg) * 1000 } : {}),
    loginRatePerMinute: loginRate,
    ...(uploadTtlMs !== undefined ? { uploadTtlMs } : {}),
    ...(str("orgName") ? { orgName: str("orgName")! } : {}),
    webauthn: { rpId, origins },
    ...(webRoot && existsSync(resolve(webRoot, "index.html")) ? { webRoot } : {}),
    detect: { rules, webhooks, ...(trainArg !== undefined ? { trainDays: Number(trainArg) } : {}) },
    ...(taxiiPollMs !== undefined ? { taxiiPollMs } : {}),
    ...(retentionIntervalMs !== undefined ? { retentionIntervalMs } : {}),
  });
  const address = await app.listen({ port, host });
  let metricsServer: Awaited<ReturnType<typeof serveMetrics>> | null = null;
  if (metricsAt !== null) {
    try {
      metricsServer = await serveMetrics(ctx, metricsAt.host, metricsAt.port);
    } catch (e) {
      if (str("metricsListen") !== undefined) throw e;
      process.stderr.write(
        `metrics listener not started on ${metricsListen}: ${e instanceof Error ? e.message : String(e)}\n`,
      );
    }
  }
  const url = address.replace("[::1]", "localhost");
  // The banner goes to stderr: stdout carries only the JSON log lines (one object per line, for a log shipper).
  process.stderr.write(
    `Valise is running at ${url}\n` +
      (webRoot && existsSync(resolve(webRoot, "index.html")) ? `  web app: open ${origins[0]}/\n` : "") +
      (configFile !== undefined ? `  configuration: ${resolve(configFile)}\n` : "") +
      `  database: ${databaseUrl ? "PostgreSQL" : `SQLite in ${dataDir}`}\n` +
      `  blobs: ${blobKind === "pg" ? "in PostgreSQL" : (blobDir ?? resolve(dataDir, "blobs"))}\n` +
      (natsUrl
        ? `  cluster: NATS fan-out ${natsUrl}` +
          (blobKind === "fs" && !blobDir
            ? " (warning: blobs on this node's disk only; use --blob-store pg or a shared --blobs DIR)"
            : "") +
          "\n"
        : "") +
      `  directory log verifier key: ${logKey.vkey}\n` +
      (witnesses.length > 0
        ? `  witnesses: ${witnesses.length} (checkpoints published with ${witnessQuorum} cosignatures)\n`
        : "") +
      (metricsServer ? `  metrics: ${metricsServer.url}\n` : "") +
      (trustProxy.length > 0 ? `  trusted proxies: ${trustProxy.join(" ")}\n` : "") +
      `  detection: ${rules.length} rules` +
      (webhooks.length > 0 ? `, alerts POSTed to ${webhooks.length} webhook(s)` : "") +
      "\n" +
      `  first administrator: npx valise admin --data ${dataDir} unit add HQ/IT && npx valise admin --data ${dataDir} user add admin --unit HQ/IT --role admin --json\n`,
  );
  await new Promise<void>((done) => {
    const stop = () => {
      void (metricsServer?.close() ?? Promise.resolve())
        .then(() => app.close())
        .then(() => fanout?.close())
        .then(() => store.close())
        .then(done);
    };
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
  return 0;
}

/** packages/web/dist beside this package (packages/cli/dist/src/serve.js → packages/web/dist/app). */
function defaultWebRoot(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), "../../../web/dist/app");
}

/** An IPv4/IPv6 address, optionally with a prefix length (/0-32, /0-128). */
export function isCidr(s: string): boolean {
  const [addr, len, ...rest] = s.split("/");
  if (rest.length > 0 || addr === undefined) return false;
  const v = isIP(addr);
  if (v === 0) return false;
  if (len === undefined) return true;
  if (!/^[0-9]{1,3}$/.test(len)) return false;
  return Number(len) <= (v === 4 ? 32 : 128);
}

function parseHostPort(s: string): { host: string; port: number } | null {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):([0-9]{1,5})$/.exec(s);
  if (!m) return null;
  const host = m[1] ?? m[2]!;
  const port = Number(m[3]);
  if (port > 65535 || (isIP(host) === 0 && host !== "localhost")) return null;
  return { host, port };
}
