/**
 * Issue 19 configuration: `valise serve --config FILE` (JSON, every serve flag in camelCase, lifetimes and sizes),
 * precedence flag > environment > file, secrets only from files (0600), unknown keys refused by name,
 * `--check-config` (exit 0 with the effective configuration, exit 2 with the reason), and the settings taking effect:
 * the log key from logKeyFile signs (DATA/log-key is not created), `valise admin --config` makes enrollment codes with
 * the file's lifetime, and the store's session lifetime.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { openStore } from "@valise/server";
import { UsageError } from "../src/args.js";
import { CONFIG_KEYS, parseConfigText, resolveConfig } from "../src/config.js";
import { serve } from "../src/serve.js";
import { runCli, startServeProcess } from "./cli-process.js";

const scratch = () => mkdtempSync(join(tmpdir(), "valise-config-"));

/** A value of the right kind for every key (paths relative to the file). */
const EVERY_KEY: Record<string, unknown> = {
  data: "data",
  port: 8443,
  host: "127.0.0.1",
  logLevel: "warn",
  logOrigin: "valise.example/directory",
  witness: [],
  witnessQuorum: "0",
  witnessRefresh: "30",
  loginRate: "120",
  orgName: "Ministry of Foreign Affairs of Ruritania",
  rules: [],
  noDefaultRules: false,
  alertWebhook: [],
  detectTrainDays: "7",
  web: "web",
  noWeb: true,
  webOrigin: ["https://valise.mfa.example"],
  uploadTtl: "12h",
  trustProxy: ["10.0.0.5", "192.0.2.0/24"],
  metricsListen: "off",
  blobQuota: "5G",
  blobStore: "pg",
  blobDir: "shared-blobs",
  nats: "nats://127.0.0.1:4222",
  taxiiPoll: "15m",
  sessionTtl: "8h",
  enrollmentCodeTtl: "2d",
  dbPoolSize: 20,
  retention: ["unit:HQ/IT=365d", "label:SECRET=3650d"],
  retentionInterval: "1h",
  databaseUrl: "postgres://valise@127.0.0.1:5432/valise",
  logKeyFile: "secrets/log-key",
  metricsTokenFile: "secrets/metrics-token",
};

function writeSecret(path: string, text: string, mode = 0o600): void {
  mkdirSync(join(path, ".."), { recursive: true });
  writeFileSync(path, text);
  chmodSync(path, mode);
}

async function checkConfig(
  file: string,
  extraArgs: string[] = [],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number; out: Record<string, unknown>; stderr: string }> {
  try {
    const r = await runCli(["serve", "--config", file, "--check-config", ...extraArgs], env);
    return { code: 0, out: JSON.parse(r.stdout) as Record<string, unknown>, stderr: r.stderr };
  } catch (e) {
    const err = e as { code?: number; stderr?: string };
    return { code: err.code ?? -1, out: {}, stderr: err.stderr ?? "" };
  }
}

test("every serve flag has a configuration key, and every key is in the help", async () => {
  const help = (await runCli(["serve", "--help"])).stdout;
  const flags = [...help.matchAll(/\[--([a-z-]+)/g)].map((m) => m[1]!);
  const keyed = new Set(Object.values(CONFIG_KEYS).flatMap((s) => (s.flag ? [s.flag] : [])));
  for (const f of flags) if (f !== "config" && f !== "check-config") assert.ok(keyed.has(f), `--${f} has no key`);
  assert.deepEqual(
    Object.keys(EVERY_KEY).sort(),
    Object.keys(CONFIG_KEYS)
      .filter((k) => k !== "databaseUrlFile")
      .sort(),
  );
  assert.match(help, /logKeyFile/);
  assert.match(help, /--check-config/);
  // The example shipped in deploy/ is a valid configuration.
  const example = join(fileURLToPath(new URL("../../../../deploy/valise.example.json", import.meta.url)));
  assert.equal(await serve(["--config", example, "--check-config"]), 0);
});

test("round trip: a file with every key → --check-config → the same configuration; its output checks again", async () => {
  const dir = scratch();
  try {
    writeSecret(join(dir, "secrets/metrics-token"), "0123456789abcdef0123\n");
    // A real log key: made by valise admin in a scratch data directory, then moved out of it.
    const keyDir = join(dir, "keymaker");
    const vkey = (await runCli(["admin", "--data", keyDir, "log", "key"])).stdout.trim();
    writeSecret(join(dir, "secrets/log-key"), readFileSync(join(keyDir, "log-key"), "utf8"));
    mkdirSync(join(dir, "web"));
    const file = join(dir, "valise.json");
    writeFileSync(file, JSON.stringify(EVERY_KEY, null, 2));
    const r = await checkConfig(file);
    assert.equal(r.code, 0, r.stderr);
    const config = r.out.config as Record<string, unknown>;
    const expected: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(EVERY_KEY)) {
      const spec = CONFIG_KEYS[k]!;
      expected[k] = spec.path && typeof v === "string" ? join(dir, v) : typeof v === "number" ? String(v) : v;
    }
    assert.deepEqual(config, expected);
    assert.ok(Object.values(r.out.sources as Record<string, string>).every((s) => s === "file"));
    assert.equal(r.out.logKey, join(dir, "secrets/log-key"));
    // No secret's content appears in the output.
    const printed = JSON.stringify(r.out);
    assert.ok(!printed.includes("PRIVATE+KEY") && !printed.includes("0123456789abcdef0123"));
    assert.ok(vkey.length > 20);
    // The effective configuration is itself a valid configuration file that gives the same result.
    const again = join(dir, "again.json");
    writeFileSync(again, JSON.stringify(config));
    const r2 = await checkConfig(again);
    assert.equal(r2.code, 0, r2.stderr);
    assert.deepEqual(r2.out.config, config);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("unknown keys, wrong types, inline secrets and open secret files are refused by name", async () => {
  const dir = scratch();
  try {
    const file = join(dir, "valise.json");
    // As a user runs it: exit 2, the key named on stderr.
    writeFileSync(file, JSON.stringify({ port: 8080, witnesQuorum: "1" }));
    const r = await checkConfig(file);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /unknown key "witnesQuorum"/);
    // The other refusals in-process (the same serve function, which stops at --check-config).
    const refused = async (body: unknown, pattern: RegExp) => {
      writeFileSync(file, typeof body === "string" ? body : JSON.stringify(body));
      await assert.rejects(
        serve(["--config", file, "--check-config"]),
        (e: unknown) => e instanceof UsageError && pattern.test(e.message),
        `${JSON.stringify(body)} must be refused with ${String(pattern)}`,
      );
    };
    await refused({ logKey: "PRIVATE+KEY+x+1+AA" }, /unknown key "logKey": secrets are read from files.*"logKeyFile"/);
    await refused({ metricsToken: "x".repeat(20) }, /use "metricsTokenFile"/);
    await refused({ noWeb: "yes" }, /"noWeb" must be true or false/);
    await refused({ trustProxy: [5] }, /"trustProxy" must be a list/);
    await refused({ port: "" }, /"port" must be a non-empty string/);
    await refused({ port: 70000 }, /invalid --port 70000/);
    await refused("[1, 2]", /must be a JSON object/);
    await refused("{ port: 1 }", /not valid JSON/);
    await refused({ sessionTtl: "forever" }, /--session-ttl must be a duration/);
    await refused({ enrollmentCodeTtl: "0" }, /--enrollment-code-ttl must be a duration/);
    await refused({ dbPoolSize: 0 }, /--db-pool-size must be an integer/);
    await refused({ logLevel: "loud" }, /--log-level must be one of/);
    await refused({ trustProxy: ["not-an-address"] }, /not an IP address or CIDR/);
    await refused({ witnessQuorum: "2" }, /--witness-quorum must be between/);
    writeSecret(join(dir, "short"), "too-short");
    await refused({ metricsTokenFile: "short" }, /needs at least 16 characters/);
    writeSecret(join(dir, "key"), "PRIVATE+KEY+x\n", 0o644);
    await refused({ logKeyFile: "key" }, /logKeyFile: .*key is accessible by group or others; chmod 600/);
    await refused({ logKeyFile: "missing" }, /logKeyFile: cannot read .*missing: ENOENT/);
    chmodSync(join(dir, "key"), 0o600);
    await refused({ logKeyFile: "key" }, /^logKeyFile: /);
    writeSecret(join(dir, "dburl"), "mysql://root@db/valise");
    await refused({ databaseUrlFile: "dburl" }, /must start with postgres:\/\//);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("precedence: flag over environment over file", () => {
  const dir = scratch();
  try {
    const file = join(dir, "valise.json");
    writeFileSync(file, JSON.stringify({ port: 1000, host: "127.0.0.2", witness: ["https://w.example=w+1+AA"] }));
    const r = resolveConfig({ port: "3000" }, file, { VALISE_PORT: "2000", VALISE_HOST: "127.0.0.3" });
    assert.equal(r.values.port, "3000");
    assert.equal(r.source.port, "flag");
    assert.equal(r.values.host, "127.0.0.3");
    assert.equal(r.source.host, "env");
    assert.deepEqual(r.values.witness, ["https://w.example=w+1+AA"]);
    const w = resolveConfig({}, file, { VALISE_WITNESSES: "https://a.example=a+1+AA, https://b.example=b+1+AA" });
    assert.deepEqual(w.values.witness, ["https://a.example=a+1+AA", "https://b.example=b+1+AA"]);
    assert.equal(w.source.witness, "env");
    // Secrets: the file's logKeyFile beats VALISE_LOG_KEY; VALISE_LOG_KEY_FILE beats the file's.
    writeSecret(join(dir, "k1"), "KEY-ONE\n");
    writeSecret(join(dir, "k2"), "KEY-TWO");
    writeFileSync(file, JSON.stringify({ logKeyFile: "k1" }));
    assert.equal(resolveConfig({}, file, { VALISE_LOG_KEY: "ENV" }).secrets.logKey, "KEY-ONE");
    assert.equal(resolveConfig({}, file, { VALISE_LOG_KEY_FILE: join(dir, "k2") }).secrets.logKey, "KEY-TWO");
    assert.equal(resolveConfig({}, undefined, { VALISE_LOG_KEY: "ENV" }).secrets.logKey, "ENV");
    writeFileSync(file, JSON.stringify({ databaseUrlFile: "k1", databaseUrl: "postgres://x" }));
    assert.throws(() => resolveConfig({}, file, {}), /"databaseUrl" and "databaseUrlFile" are both set/);
    assert.throws(() => parseConfigText('{"pool": 3}', "f.json"), /f\.json: unknown key "pool"/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the settings take effect: log key from logKeyFile, admin's code lifetime, session lifetime", async () => {
  const dir = scratch();
  let server: Awaited<ReturnType<typeof startServeProcess>> | undefined;
  try {
    const keyDir = join(dir, "keymaker");
    const vkey = (await runCli(["admin", "--data", keyDir, "log", "key"])).stdout.trim();
    writeSecret(join(dir, "secrets/log-key"), readFileSync(join(keyDir, "log-key"), "utf8"));
    const data = join(dir, "data");
    const file = join(dir, "valise.json");
    writeFileSync(
      file,
      JSON.stringify({
        data: "data",
        logKeyFile: "secrets/log-key",
        noWeb: true,
        metricsListen: "off",
        enrollmentCodeTtl: "2d",
      }),
    );
    server = await startServeProcess(data, ["--config", file]);
    assert.match(server.output(), new RegExp(`directory log verifier key: ${vkey.replace(/\+/g, "\\+")}`));
    assert.match(server.output(), /configuration: .*valise\.json/);
    assert.equal(existsSync(join(data, "log-key")), false, "the key stays in its secret file");
    // valise admin reads the same file: its log key is the file's, and codes live 2 days.
    assert.equal((await runCli(["admin", "--config", file, "log", "key"])).stdout.trim(), vkey);
    await runCli(["admin", "--config", file, "unit", "add", "HQ/IT"]);
    const before = Date.now();
    const added = JSON.parse(
      (await runCli(["admin", "--config", file, "user", "add", "alice", "--unit", "HQ/IT", "--json"])).stdout,
    ) as { expiresAt: string };
    const after = Date.now();
    const expires = Date.parse(added.expiresAt);
    assert.ok(
      expires - before >= 2 * 86_400_000 - 1000 && expires - after <= 2 * 86_400_000,
      `expires ${added.expiresAt}`,
    );
    const text = (await runCli(["admin", "--config", file, "user", "code", "alice"])).stdout;
    assert.match(text, /valid 2 days/);
  } finally {
    server?.kill();
    rmSync(dir, { recursive: true, force: true });
  }
  // Session lifetime, in the store (what --session-ttl / sessionTtl sets).
  const dir2 = scratch();
  const store = await openStore({ dataDir: dir2, sessionTtlMs: 5 * 60_000, enrollmentCodeTtlMs: 60_000 });
  try {
    // No device row is needed for the lifetime: the foreign key is switched off on this scratch database.
    store.handle.sqlite!.pragma("foreign_keys = OFF");
    const t0 = Date.now();
    const s = await store.directory.createSession("dev-1", "alice");
    assert.ok(s.expiresAt - t0 >= 5 * 60_000 - 1000 && s.expiresAt - t0 <= 5 * 60_000 + 1000);
  } finally {
    await store.close();
    rmSync(dir2, { recursive: true, force: true });
  }
});
