/**
 * Online detection end to end (issue 6 item 2) through a real server on 127.0.0.1, on SQLite and PostgreSQL: a
 * canary document read by a user raises a critical alert during the training days, visible to an officer through
 * GET /v1/alerts (SDK and `valise alerts`), pushed over the officer's WebSocket (and `valise alerts --follow`), and
 * POSTed to a webhook (which fails once: retried) — within 60 s of the read while thousands of other audited
 * requests from several clients are in flight (the latency is measured and printed). A non-officer gets 403 (and
 * that is audited). A restart resumes from the stored audit index: no duplicate alerts, even when the stored state
 * is thrown away and the whole log replayed. A malformed rule file stops buildApp and `valise serve`.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { execFile, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { randomBytes } from "node:crypto";
import type { AddressInfo } from "node:net";
import type { FastifyInstance } from "fastify";
import { isValiseError, parseAuditEvent, type AuditEvent } from "@valise/core";
import { RuleError } from "@valise/detect";
import { bytesSource, collect, MemoryKeyStore, ValiseClient, type ServerAlert } from "@valise/client";
import { FileKeyStore } from "@valise/client/node/file-store";
import { nodeStreamCipher } from "@valise/client/node/docstream";
import { nodeWebSocket } from "@valise/client/node/websocket";
import { buildApp, openStore, protocolServerMls, type AppOptions, type Detector, type Store } from "@valise/server";
import { DATABASE_KINDS, freshDb, type TestDb } from "@valise/server/testing/databases";

const CLI = fileURLToPath(new URL("../../bin/valise.js", import.meta.url));
const ASIA = "CONFIDENTIAL/ASIA";

function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { timeout: 30_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/**
 * fetch that tries again when a pooled keep-alive connection turns out dead (the server was restarted on the same
 * port): that request never reached the server.
 */
const reconnectingFetch: typeof fetch = async (input, init) => {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fetch(input, init);
    } catch (e) {
      if (attempt >= 3 || init?.body instanceof ReadableStream) throw e;
    }
  }
};

/** /metrics is served on the API port only to this bearer token (issue 13 finding 10). */
const METRICS_TOKEN = "alerts-test-metrics-token";

/** A server on a database that outlives it (restart), with users, on a fixed port once chosen. */
class Site {
  store!: Store;
  app!: FastifyInstance;
  detector!: Detector;
  url = "";
  port = 0;
  readonly profiles = mkdtempSync(join(tmpdir(), "valise-alerts-profiles-"));
  private constructor(readonly db: TestDb) {}

  static async create(kind: "sqlite" | "postgres", detect: AppOptions["detect"] = {}): Promise<Site> {
    const s = new Site(await freshDb(kind));
    await s.boot(detect);
    const d = s.store.directory;
    for (const u of ["HQ/ASIA-1", "EMB/BEIJING", "HQ/SECURITY", "EMB/TOKYO"]) await d.addUnit(u, "SECRET/ASIA,NATO");
    await d.addUser({ handle: "jnovak", units: ["HQ/ASIA-1"], clearance: "SECRET/ASIA", role: "user" });
    await d.addUser({ handle: "pdvorak", units: ["EMB/BEIJING"], clearance: ASIA, role: "user" });
    await d.addUser({ handle: "olga", units: ["HQ/SECURITY"], clearance: "SECRET/ASIA,NATO", role: "officer" });
    for (let i = 0; i < 6; i++)
      await d.addUser({ handle: `load${i}`, units: ["EMB/TOKYO"], clearance: ASIA, role: "user" });
    return s;
  }

  async boot(detect: AppOptions["detect"]): Promise<void> {
    this.store = await openStore({ dataDir: this.db.dataDir, databaseUrl: this.db.databaseUrl });
    const { app, ctx } = await buildApp({
      store: this.store,
      mls: protocolServerMls,
      loginRatePerMinute: 1_000_000,
      metricsToken: METRICS_TOKEN,
      ...(detect !== undefined ? { detect } : {}),
    });
    this.app = app;
    this.detector = ctx.detector!;
    this.url = await this.app.listen({ port: this.port, host: "127.0.0.1" });
    this.port = (this.app.server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    await this.app.close();
    await this.store.close();
  }

  async enroll(handle: string, dir?: string): Promise<ValiseClient> {
    const { enrollmentCode } = await this.store.directory.newEnrollmentCode(handle);
    return ValiseClient.enroll({
      serverUrl: this.url,
      code: enrollmentCode,
      deviceName: "laptop",
      store: dir ? new FileKeyStore(dir) : new MemoryKeyStore(),
      // In-thread (no worker pool: its port would keep the test process alive; the documents here are small).
      cipher: nodeStreamCipher(undefined, { workers: 0 }),
      fetch: reconnectingFetch,
    });
  }

  async events(): Promise<AuditEvent[]> {
    return (await this.store.audit.entries(0, await this.store.audit.size())).map((d) => {
      const p = parseAuditEvent(d);
      assert.ok(p.ok);
      return p.event;
    });
  }

  async dispose(): Promise<void> {
    await this.db.dispose();
    rmSync(this.profiles, { recursive: true, force: true });
  }
}

/** A canary document shared by jnovak with pdvorak, marked by the officer. */
async function canary(desk: ValiseClient, officer: ValiseClient, name = "visit-programme.pdf"): Promise<string> {
  const put = await desk.documents.put({ to: "pdvorak", label: ASIA, name, source: bytesSource(randomBytes(4000)) });
  await officer.documents.setCanary(put.id, true);
  return put.id;
}

async function readDoc(reader: ValiseClient, id: string): Promise<void> {
  await reader.sync();
  await collect((await reader.documents.get(id)).bytes);
}

/** A webhook receiver on 127.0.0.1 that answers 503 to its first request (so the server must retry). */
async function webhook(): Promise<{
  url: string;
  got: { at: number; body: ServerAlert & { type: string } }[];
  close(): Promise<void>;
}> {
  const got: { at: number; body: ServerAlert & { type: string } }[] = [];
  let calls = 0;
  const srv = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      calls += 1;
      if (calls === 1) {
        res.writeHead(503).end();
        return;
      }
      got.push({
        at: Date.now(),
        body: JSON.parse(Buffer.concat(chunks).toString("utf8")) as ServerAlert & { type: string },
      });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(srv.address() as AddressInfo).port}/hook`,
    got,
    close: () =>
      new Promise((r) => {
        srv.close(() => r());
        srv.closeAllConnections();
      }),
  };
}

/** `n` audited requests (GET /v1/me), `inflight` at a time, from one client. */
async function load(c: ValiseClient, n: number, inflight: number): Promise<number> {
  let next = 0;
  let done = 0;
  await Promise.all(
    Array.from({ length: inflight }, async () => {
      while (next < n) {
        next += 1;
        await c.transport.me();
        done += 1;
      }
    }),
  );
  return done;
}

for (const kind of DATABASE_KINDS) {
  describe(`online detection on ${kind}`, { timeout: 180_000 }, () => {
    test("canary read under load: critical alert via GET, WebSocket push, webhook and the CLI within 60 s; 403 for others", async () => {
      const hook = await webhook();
      const site = await Site.create(kind, { webhooks: [hook.url], webhookBackoffMs: 100, webhookTimeoutMs: 2000 });
      try {
        const olgaDir = join(site.profiles, "olga");
        const [desk, reader, officer] = [
          await site.enroll("jnovak"),
          await site.enroll("pdvorak"),
          await site.enroll("olga", olgaDir),
        ];
        const loaders = await Promise.all(Array.from({ length: 6 }, (_, i) => site.enroll(`load${i}`)));
        for (const c of loaders) await c.login();
        const docId = await canary(desk, officer);
        // The officer's own marking is a canary-flagged write: not a touch, so no alert (issue 16; the old code raised
        // a critical alert against the officer).
        await site.detector.drain();
        const marked = await officer.alerts();
        assert.deepEqual(marked, []);

        let alertId = 0;
        const pushed: { at: number; alert: ServerAlert }[] = [];
        const watch = await officer.watchAlerts(nodeWebSocket, (a) => pushed.push({ at: Date.now(), alert: a }));
        const readerPushed: unknown[] = [];
        const readerWatch = await reader.watchAlerts(nodeWebSocket, (a) => readerPushed.push(a));
        const follow = spawn(process.execPath, [CLI, "alerts", "--profile", olgaDir, "--follow", "--json"], {
          stdio: ["ignore", "pipe", "pipe"],
        });
        let followOut = "";
        let followErr = "";
        follow.stdout.on("data", (b: Buffer) => (followOut += b.toString("utf8")));
        follow.stderr.on("data", (b: Buffer) => (followErr += b.toString("utf8")));
        try {
          await until("valise alerts --follow to subscribe", () =>
            followErr.includes("following alerts") ? true : undefined,
          );
          // Load: 6 clients × 500 audited requests, 80 in flight each (480 at once); the canary is read in the middle.
          const sizeBefore = await site.store.audit.size();
          const t0 = Date.now();
          const loading = Promise.all(loaders.map((c) => load(c, 500, 80)));
          await until("load under way", async () =>
            (await site.store.audit.size()) - sizeBefore > 600 ? true : undefined,
          );
          const readAt = Date.now();
          await readDoc(reader, docId);
          const readDone = Date.now();
          let visibleAt = 0;
          const alert = await until("the canary alert via GET /v1/alerts", async () => {
            const a = (await officer.alerts({ severity: "critical" })).find((x) => x.actor === "pdvorak");
            if (a) visibleAt = Date.now();
            return a;
          });
          alertId = alert.id;
          const requests = (await loading).reduce((a, b) => a + b, 0);
          const loadMs = Date.now() - t0;
          const ev = (await site.events()).find((e) => e.id === alert.events.at(-1));
          assert.ok(ev, "the alert names the audit event of the read");
          assert.deepEqual(
            [ev.actor, ev.action, ev.object, ev.canary, alert.severity, alert.actor],
            ["pdvorak", "document.read", docId, true, "critical", "pdvorak"],
          );
          const eventAt = Date.parse(ev.time);
          const stored = Date.parse(alert.createdAt);
          await until("the WebSocket push", () => (pushed.length > 0 ? true : undefined));
          const hooked = await until("the webhook POST", () => hook.got.find((g) => g.body.id === alert.id));
          await until("valise alerts --follow", () => (followOut.includes(`"id":${alert.id},`) ? true : undefined));
          const latency = {
            db: kind,
            auditedRequestsDuringLoad: requests,
            loadSeconds: loadMs / 1000,
            readRequestMs: readDone - readAt,
            eventToStoredMs: stored - eventAt,
            readStartToVisibleViaGetMs: visibleAt - readAt,
            eventToWebSocketMs: pushed[0]!.at - eventAt,
            eventToWebhookMs: hooked.at - eventAt,
          };
          console.log(`alert latency under load: ${JSON.stringify(latency)}`);
          assert.ok(requests >= 3000);
          assert.ok(stored - eventAt <= 60_000, `alert stored ${stored - eventAt} ms after the read`);
          assert.ok(visibleAt - readAt <= 60_000);
          assert.ok(pushed[0]!.at - eventAt <= 60_000 && hooked.at - eventAt <= 60_000);
          // The canary-flagged accesses of one open (metadata, blob status, blob bytes) are one alert (issue 16; the
          // old code raised one per request).
          await site.detector.drain();
          const readAlerts = (await officer.alerts()).filter((a) => a.actor === "pdvorak");
          assert.equal(readAlerts.length, 1, JSON.stringify(readAlerts));
          assert.ok(readAlerts.every((a) => a.rule === "canary-touch" && a.severity === "critical"));
          assert.equal(readAlerts[0]!.id, alert.id);
          await until("all pushes", () => (pushed.length === readAlerts.length ? true : undefined));
          // Every alert is pushed and POSTed exactly once (their relative order across frames is not asserted: on
          // PostgreSQL under load two pushes were seen to swap).
          const byId = (a: number, b: number) => a - b;
          assert.deepEqual(pushed.map((p) => p.alert.id).sort(byId), readAlerts.map((a) => a.id).sort(byId));
          const first = pushed.find((p) => p.alert.id === alert.id);
          assert.ok(first, "the first alert was pushed");
          assert.deepEqual({ ...first.alert, type: undefined }, { ...alert, type: undefined });
          await until("all webhooks", () => (hook.got.length === readAlerts.length ? true : undefined));
          assert.deepEqual(
            hook.got.map((g) => [g.body.type, g.body.id, g.body.rule]).sort((a, b) => byId(Number(a[1]), Number(b[1]))),
            readAlerts.map((a) => ["alert", a.id, "canary-touch"]).sort((a, b) => byId(Number(a[1]), Number(b[1]))),
          );
          assert.deepEqual(readerPushed, [], "alerts are pushed to officers only");
        } finally {
          watch.close();
          readerWatch.close();
          follow.kill("SIGINT");
          await new Promise((r) => follow.once("exit", r));
        }

        // Non-officers: 403 forbidden for reading and acknowledging, and the refusals are audited.
        for (const call of [() => reader.alerts(), () => reader.ackAlert(1)])
          await assert.rejects(call(), (e: unknown) => isValiseError(e) && e.code === "forbidden");
        const acked = await officer.ackAlert(alertId);
        assert.equal(acked.acknowledgedBy, "olga");
        const audits = (await site.events()).filter((e) => e.action === "audit.read");
        assert.ok(audits.some((e) => e.actor === "pdvorak" && e.object === "alerts" && e.outcome === "denied"));
        assert.ok(audits.some((e) => e.actor === "olga" && e.object === "alerts" && e.outcome === "ok"));
        assert.ok(audits.some((e) => e.actor === "olga" && e.object === `alert:${acked.id}` && e.outcome === "ok"));

        // The CLI, one-shot: JSON lines, and the human form.
        const out = await cli("alerts", "--profile", olgaDir, "--json", "--severity", "critical");
        assert.equal(out.code, 0, out.stderr);
        const lines = out.stdout
          .trim()
          .split("\n")
          .map((l) => JSON.parse(l) as ServerAlert);
        assert.deepEqual(lines.map((a) => [a.id, a.rule, a.actor, a.acknowledgedBy]).slice(0, 2), [
          [alertId, "canary-touch", "pdvorak", "olga"],
        ]);
        // Still in the training days: "learning until DATE" (on stderr with --json, first on stdout without).
        assert.match(out.stderr, /detection is learning until \d{4}-\d{2}-\d{2}T/);
        const human = await cli("alerts", "--profile", olgaDir);
        assert.match(human.stdout, /^detection is learning until \d{4}-\d{2}-\d{2}T[^\n]*only critical rules/);
        assert.match(human.stdout, /CRITICAL\s+canary-touch\s+pdvorak: pdvorak touched the canary item/);
        const metrics = await (
          await fetch(`${site.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } })
        ).text();
        assert.match(metrics, /valise_alerts_total\{severity="critical"\} \d+/);
        assert.match(metrics, /valise_alert_webhook_total\{outcome="retry"\} 1/);
      } finally {
        await site.stop();
        await site.dispose();
        await hook.close();
      }
    });

    test("a restart resumes from the stored audit index: baselines kept, no duplicate alerts, even on a full replay", async () => {
      const site = await Site.create(kind);
      const ids = (alerts: ServerAlert[]) => alerts.map((a) => [a.id, a.actor, a.events.at(-1)]);
      try {
        const desk = await site.enroll("jnovak");
        const officer = await site.enroll("olga");
        const reader = await site.enroll("pdvorak");
        await readDoc(reader, await canary(desk, officer, "a.pdf"));
        await site.detector.drain();
        const first = await officer.alerts();
        assert.ok(first.some((a) => a.actor === "pdvorak"));
        await site.stop();
        const st1 = await stateOf(site);
        assert.equal(st1.next_index, await sizeOf(site), "the detector saved its position on shutdown");
        assert.ok(st1.snapshot?.includes('"engine"'), "and its engine");

        // Clients point at the same URL (same port): their sessions are still valid.
        await site.boot({});
        // Another account opens the second canary (pdvorak's requests within 2 minutes are one open: one alert).
        await readDoc(desk, await canary(desk, officer, "b.pdf"));
        await site.detector.drain();
        const second = await officer.alerts();
        assert.deepEqual(ids(second).slice(0, first.length), ids(first), "the first alerts are not raised again");
        assert.deepEqual(
          second.slice(first.length).map((a) => [a.actor, a.rule]),
          [["jnovak", "canary-touch"]],
        );
        assert.equal(new Set(second.map((a) => a.events.at(-1))).size, second.length);
        await site.stop();
        const st2 = await stateOf(site);
        assert.ok(st2.next_index > st1.next_index);

        // Throw the state away: the whole log is replayed through a fresh engine, and nothing is stored twice.
        const s = await openStore({ dataDir: site.db.dataDir, databaseUrl: site.db.databaseUrl });
        await s.handle.db.updateTable("detect_state").set({ next_index: 0, snapshot: null }).execute();
        await s.close();
        await site.boot({});
        await until("full replay", () => (site.detector.position >= st2.next_index ? true : undefined));
        await site.detector.drain();
        assert.deepEqual(ids(await officer.alerts()), ids(second));
      } finally {
        await site.stop();
        await site.dispose();
      }
    });
  });
}

async function stateOf(site: Site): Promise<{ next_index: number; snapshot: string | null }> {
  const s = await openStore({ dataDir: site.db.dataDir, databaseUrl: site.db.databaseUrl });
  try {
    const r = await s.handle.db.selectFrom("detect_state").select(["next_index", "snapshot"]).executeTakeFirstOrThrow();
    return { next_index: Number(r.next_index), snapshot: r.snapshot };
  } finally {
    await s.close();
  }
}

async function sizeOf(site: Site): Promise<number> {
  const s = await openStore({ dataDir: site.db.dataDir, databaseUrl: site.db.databaseUrl });
  try {
    return await s.audit.size();
  } finally {
    await s.close();
  }
}

describe("bad detection rules", { timeout: 60_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), "valise-bad-rules-"));
  const bad = join(dir, "bad.json");
  writeFileSync(
    bad,
    JSON.stringify({ rules: [{ id: "x", title: "t", severity: "high", reason: "r", match: { actr: "jnovak" } }] }),
  );

  test("buildApp refuses a malformed rule file, naming the file, the rule and the path", async () => {
    const db = await freshDb("sqlite");
    const store = await openStore({ dataDir: db.dataDir, databaseUrl: undefined });
    try {
      await assert.rejects(
        buildApp({ store, mls: protocolServerMls, detect: { ruleFiles: [bad] } }),
        (e: unknown) =>
          e instanceof RuleError && /bad\.json: rule\[0\] "x": match\.actr: unknown field/.test(e.message),
      );
      await assert.rejects(
        buildApp({ store, mls: protocolServerMls, detect: { webhooks: ["ftp://example.org/x"] } }),
        /must be an http:\/\/ or https:\/\/ URL/,
      );
    } finally {
      await store.close();
      await db.dispose();
    }
  });

  test("valise serve refuses to start with the validator's message", async () => {
    const data = join(dir, "data");
    const r = await cli("serve", "--data", data, "--port", "0", "--rules", bad);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /bad detection rules: .*bad\.json: rule\[0\] "x": match\.actr: unknown field/);
    assert.doesNotMatch(r.stdout, /Valise is running/);
    const help = await cli("serve", "--help");
    assert.match(help.stdout, /--detect-train-days N/);
    rmSync(dir, { recursive: true, force: true });
  });
});
