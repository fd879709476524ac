/**
 * The server's configuration file (`valise serve --config FILE`, also read by `valise admin --config FILE`): one JSON
 * object whose keys are the serve flags in camelCase (`--witness-quorum` → `witnessQuorum`), plus the database URL,
 * the lifetimes and sizes, and the secrets, which are only ever read from files (`logKeyFile`, `databaseUrlFile`,
 * `metricsTokenFile`). Precedence, per key: command-line flag, then environment variable, then the file, then the
 * default. An unknown key, a value of the wrong type or a secret written inline is refused, naming the key.
 */
import { readFileSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { UsageError } from "./args.js";

type Kind = "string" | "list" | "boolean";

interface KeySpec {
  /** the serve flag (without --), or undefined for keys that only the file and the environment set */
  flag?: string;
  kind: Kind;
  /** the environment variable that overrides the file's value */
  env: string;
  /** a path, resolved relative to the file's folder */
  path?: boolean;
  /** the file holds a secret: it must not be readable by group or others */
  secret?: boolean;
  help: string;
}

const envName = (key: string) => `VALISE_${key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;
const k = (kind: Kind, help: string, extra: Partial<KeySpec> = {}): Omit<KeySpec, "env"> & { env?: string } => ({
  kind,
  help,
  ...extra,
});

const SPECS_RAW: Record<string, Omit<KeySpec, "env"> & { env?: string }> = {
  data: k("string", "data directory", { flag: "data", path: true }),
  port: k("string", "TCP port", { flag: "port" }),
  host: k("string", "listen address", { flag: "host" }),
  logLevel: k("string", "pino level", { flag: "log-level" }),
  logOrigin: k("string", "directory log origin", { flag: "log-origin" }),
  witness: k("list", "witnesses, URL=VKEY each", { flag: "witness", env: "VALISE_WITNESSES" }),
  witnessQuorum: k("string", "cosignatures to publish", { flag: "witness-quorum" }),
  witnessRefresh: k("string", "seconds between re-cosigning", { flag: "witness-refresh" }),
  loginRate: k("string", "enrollments/logins per minute per address", { flag: "login-rate" }),
  orgName: k("string", "organisation in STIX/TAXII", { flag: "org-name" }),
  rules: k("list", "extra detection rule files", { flag: "rules", path: true }),
  noDefaultRules: k("boolean", "only the given rules", { flag: "no-default-rules" }),
  alertWebhook: k("list", "alert webhooks", { flag: "alert-webhook" }),
  detectTrainDays: k("string", "baseline training days", { flag: "detect-train-days" }),
  web: k("string", "web app directory", { flag: "web", path: true }),
  noWeb: k("boolean", "API only", { flag: "no-web" }),
  webOrigin: k("list", "web origins", { flag: "web-origin" }),
  uploadTtl: k("string", "lifetime of unattached uploads", { flag: "upload-ttl" }),
  trustProxy: k("list", "trusted reverse proxies", { flag: "trust-proxy" }),
  metricsListen: k("string", "metrics listener HOST:PORT or off", { flag: "metrics-listen" }),
  blobQuota: k("string", "per-user upload quota", { flag: "blob-quota" }),
  blobStore: k("string", "blob store: fs or pg", { flag: "blob-store" }),
  blobDir: k("string", "directory of the fs blob store", { flag: "blobs", path: true }),
  nats: k("string", "NATS URL of a cluster's fan-out", { flag: "nats", env: "VALISE_NATS_URL" }),
  taxiiPoll: k("string", "how often partners' TAXII collections are polled (0: never)", { flag: "taxii-poll" }),
  sessionTtl: k("string", "session lifetime", { flag: "session-ttl" }),
  enrollmentCodeTtl: k("string", "enrollment code lifetime", { flag: "enrollment-code-ttl" }),
  dbPoolSize: k("string", "PostgreSQL connection pool size", { flag: "db-pool-size" }),
  retention: k("list", "retention rules, unit:NAME=DURATION or label:LABEL=DURATION each", { flag: "retention" }),
  retentionInterval: k("string", "how often the retention rules are enforced (0: never)", {
    flag: "retention-interval",
  }),
  databaseUrl: k("string", "PostgreSQL URL (no password: use databaseUrlFile)"),
  databaseUrlFile: k("string", "file holding the PostgreSQL URL", { path: true, secret: true }),
  logKeyFile: k("string", "file holding the log signing key", { path: true, secret: true }),
  metricsTokenFile: k("string", "file holding the metrics bearer token", { path: true, secret: true }),
};

export const CONFIG_KEYS: Record<string, KeySpec> = Object.fromEntries(
  Object.entries(SPECS_RAW).map(([key, s]) => [key, { ...s, env: s.env ?? envName(key) }]),
);

/** Inline secrets are refused with the file key to use instead. */
const INLINE_SECRETS: Record<string, string> = {
  logKey: "logKeyFile",
  metricsToken: "metricsTokenFile",
  databasePassword: "databaseUrlFile",
};

export type ConfigValue = string | string[] | boolean;
export type ConfigValues = Partial<Record<string, ConfigValue>>;

export interface ResolvedConfig {
  /** Effective values per key (flags > environment > file), without secrets' contents. */
  values: ConfigValues;
  /** Where each value came from. */
  source: Record<string, "flag" | "env" | "file">;
  /** Secrets read from files (never printed). */
  secrets: { logKey?: string; metricsToken?: string; databaseUrl?: string };
}

/** Parses and checks a configuration file's text: every key known, every value of its type. Paths stay as written. */
export function parseConfigText(text: string, where: string): ConfigValues {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`${where}: not valid JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw))
    throw new UsageError(`${where}: the configuration must be a JSON object`);
  const out: ConfigValues = {};
  for (const [key, v] of Object.entries(raw as Record<string, unknown>)) {
    if (key === "$comment" || key === "$schema") continue;
    const spec = CONFIG_KEYS[key];
    if (!spec) {
      if (INLINE_SECRETS[key])
        throw new UsageError(
          `${where}: unknown key "${key}": secrets are read from files, not written in the configuration: use "${INLINE_SECRETS[key]}"`,
        );
      throw new UsageError(`${where}: unknown key "${key}" (known keys: ${Object.keys(CONFIG_KEYS).join(", ")})`);
    }
    out[key] = typed(key, spec.kind, v, where);
  }
  return out;
}

function typed(key: string, kind: Kind, v: unknown, where: string): ConfigValue {
  if (kind === "boolean") {
    if (typeof v !== "boolean") throw new UsageError(`${where}: "${key}" must be true or false`);
    return v;
  }
  if (kind === "list") {
    const arr = typeof v === "string" ? [v] : v;
    if (!Array.isArray(arr) || arr.some((x) => typeof x !== "string" || x.length === 0))
      throw new UsageError(`${where}: "${key}" must be a list of non-empty strings`);
    return arr as string[];
  }
  if (typeof v === "number" && Number.isFinite(v)) return String(v);
  if (typeof v !== "string" || v.length === 0)
    throw new UsageError(`${where}: "${key}" must be a non-empty string${key === "port" ? " or a number" : ""}`);
  return v;
}

function fromEnv(spec: KeySpec, raw: string): ConfigValue {
  if (spec.kind === "list") return raw.split(/[\s,]+/).filter((s) => s.length > 0);
  if (spec.kind === "boolean") {
    if (/^(1|true|yes)$/i.test(raw)) return true;
    if (/^(0|false|no)$/i.test(raw)) return false;
    throw new UsageError(`${spec.env} must be true or false`);
  }
  return raw;
}

/** Reads a secret file: refused if group- or world-accessible (like DATA/log-key), trailing newline removed. */
export function readSecretFile(path: string, key: string): string {
  let st;
  try {
    st = statSync(path);
  } catch (e) {
    throw new UsageError(`${key}: cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  if (process.platform !== "win32" && (st.mode & 0o077) !== 0)
    throw new UsageError(`${key}: ${path} is accessible by group or others; chmod 600 ${path}`);
  const text = readFileSync(path, "utf8").replace(/\r?\n$/, "");
  if (text.trim().length === 0) throw new UsageError(`${key}: ${path} is empty`);
  return text;
}

/**
 * Merges the file (if any), the environment and the flags (`flags` keyed by flag name as parseArgs gives them).
 * Paths from the file are resolved relative to the file's folder; secret files are read.
 */
export function resolveConfig(
  flags: Record<string, ConfigValue | undefined>,
  configFile: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): ResolvedConfig {
  let file: ConfigValues = {};
  if (configFile !== undefined) {
    let text: string;
    try {
      text = readFileSync(configFile, "utf8");
    } catch (e) {
      throw new UsageError(`--config ${configFile}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
    }
    file = parseConfigText(text, configFile);
    const base = dirname(resolve(configFile));
    for (const [key, spec] of Object.entries(CONFIG_KEYS)) {
      const v = file[key];
      if (!spec.path || v === undefined) continue;
      file[key] = Array.isArray(v) ? v.map((p) => resolve(base, p)) : resolve(base, v as string);
    }
  }
  const values: ConfigValues = {};
  const source: ResolvedConfig["source"] = {};
  for (const [key, spec] of Object.entries(CONFIG_KEYS)) {
    const f = spec.flag !== undefined ? flags[spec.flag] : undefined;
    const e = env[spec.env];
    if (f !== undefined) {
      values[key] = f;
      source[key] = "flag";
    } else if (e !== undefined && e !== "") {
      values[key] = fromEnv(spec, e);
      source[key] = "env";
    } else if (file[key] !== undefined) {
      values[key] = file[key];
      source[key] = "file";
    }
  }
  const secrets: ResolvedConfig["secrets"] = {};
  if (values.databaseUrl !== undefined && values.databaseUrlFile !== undefined)
    throw new UsageError(`"databaseUrl" and "databaseUrlFile" are both set: keep one`);
  if (typeof values.databaseUrlFile === "string")
    secrets.databaseUrl = readSecretFile(values.databaseUrlFile, "databaseUrlFile");
  else if (typeof values.databaseUrl === "string") secrets.databaseUrl = values.databaseUrl;
  if (typeof values.logKeyFile === "string") secrets.logKey = readSecretFile(values.logKeyFile, "logKeyFile");
  else if (env.VALISE_LOG_KEY) secrets.logKey = env.VALISE_LOG_KEY;
  if (typeof values.metricsTokenFile === "string")
    secrets.metricsToken = readSecretFile(values.metricsTokenFile, "metricsTokenFile");
  else if (env.VALISE_METRICS_TOKEN !== undefined) secrets.metricsToken = env.VALISE_METRICS_TOKEN;
  if (secrets.databaseUrl !== undefined && !/^postgres(ql)?:\/\//.test(secrets.databaseUrl))
    throw new UsageError("the database URL must start with postgres:// or postgresql://");
  return { values, source, secrets };
}

/** The effective configuration as a config file would hold it (secrets named by their files, never their content). */
export function effectiveConfig(r: ResolvedConfig): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(CONFIG_KEYS)) {
    const v = r.values[key];
    if (v === undefined) continue;
    out[key] = key === "databaseUrl" ? redactUrl(v as string) : v;
  }
  return out;
}

function redactUrl(u: string): string {
  try {
    const url = new URL(u);
    if (url.password) url.password = "***";
    return url.toString();
  } catch {
    return "***";
  }
}

/** "3600" (seconds), "90s", "30m", "24h", "7d" → milliseconds; null if malformed or zero. */
export function parseDuration(s: string): number | null {
  const m = /^([0-9]{1,9})(s|m|h|d)?$/.exec(s);
  if (!m) return null;
  const n = Number(m[1]) * { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[(m[2] ?? "s") as "s" | "m" | "h" | "d"];
  return n > 0 ? n : null;
}

export const CONFIG_HELP = `Configuration file (--config FILE): a JSON object with the flags above in camelCase (e.g. {"port": 8443,
  "witness": ["https://w1.example=w1+…"], "witnessQuorum": "1", "trustProxy": ["10.0.0.5"], "noWeb": true}), and
  sessionTtl, enrollmentCodeTtl (durations), dbPoolSize, databaseUrl. Secrets only from files (0600, not readable by
  group or others): logKeyFile (the PRIVATE+KEY+… log key), databaseUrlFile (a postgres:// URL with its password),
  metricsTokenFile. Relative paths are relative to the file's folder. Each key can be overridden by the environment
  (VALISE_ + the key in UPPER_SNAKE_CASE, e.g. VALISE_PORT, VALISE_LOG_KEY_FILE; witness: VALISE_WITNESSES) and by
  its flag. Unknown keys are refused by name. --check-config checks it all (and reads the secret files), prints the
  effective configuration as JSON (secrets as their file names) and exits: 0 when valid, 2 with the reason.`;
