/**
 * Auditing is declared per route (issue 17): every route the server registers — with every optional feature on
 * (passkeys, the web app, /metrics, detection) — states in its route config either the audit event it records
 * (`config.audit = {action, …}`) or that it records none and why (`config.audit = {none: "reason"}`). One onSend hook
 * reads that declaration; a route that declares nothing fails this test instead of going silently unaudited.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { declaredRoutes } from "../src/audit/http.js";
import { startTestServer } from "./helpers/server.js";

test("every registered route declares its audit event or says why it has none", async () => {
  const web = mkdtempSync(join(tmpdir(), "valise-audit-decl-"));
  mkdirSync(join(web, "assets"));
  for (const f of ["index.html", "favicon.svg", "sw.js"]) writeFileSync(join(web, f), "x");
  const s = await startTestServer("sqlite", {
    app: {
      webRoot: web,
      webauthn: { rpId: "valise.test", origins: ["https://valise.test"] },
      metricsToken: "0123456789abcdef-metrics",
    },
    // A route added without a declaration is listed as undeclared (what the check below fails on).
    beforeListen: (app) => void app.get("/v1/undeclared-probe", async () => ({})),
  });
  try {
    const routes = declaredRoutes(s.app);
    // The server's whole surface is here (a sample of each area), so the check below covers it.
    const seen = new Set(routes.map((r) => `${r.method} ${r.url}`));
    for (const r of [
      "GET /healthz",
      "POST /v1/enroll",
      "POST /v1/auth/session",
      "POST /v1/auth/passkey/session",
      "GET /v1/me",
      "POST /v1/conversations/:id/messages",
      "GET /v1/log/directory/checkpoint",
      "GET /v1/log/audit/events",
      "GET /v1/alerts",
      "GET /v1/incidents/:id/stix",
      "GET /v1/ws",
      "GET /assets/*",
      "GET /metrics",
    ])
      assert.ok(seen.has(r), `${r} is registered`);
    assert.ok(routes.length > 60, `only ${routes.length} routes seen`);
    const undeclared = routes.filter((r) => r.audit === undefined).map((r) => `${r.method} ${r.url}`);
    assert.deepEqual(
      undeclared.filter((r) => !r.endsWith(" /v1/undeclared-probe")),
      [],
      "routes that declare no audit event (config.audit) nor {none: reason}",
    );
    assert.ok(undeclared.includes("GET /v1/undeclared-probe"), "an undeclared route is noticed");
    for (const r of routes.filter((x) => x.audit !== undefined)) {
      const a = r.audit!;
      if ("none" in a) assert.ok(a.none.trim().length >= 8, `${r.method} ${r.url}: say why it is not audited`);
      else assert.match(a.action, /^[a-z]+(\.[a-z]+)*$/, `${r.method} ${r.url}: an audit action`);
    }
    // Authenticated reads of stored data are audited, not waved through.
    const byKey = new Map(routes.map((r) => [`${r.method} ${r.url}`, r.audit!]));
    for (const k of ["GET /v1/conversations/:id/messages", "GET /v1/log/audit/events", "GET /v1/incidents/:id"])
      assert.ok(!("none" in byKey.get(k)!), `${k} is audited`);
  } finally {
    await s.close();
    rmSync(web, { recursive: true, force: true });
  }
});
