/**
 * The wire contract covers the server (issue 17): every route the SDK calls is in @valise/core/wire's WIRE with its
 * answer's schema (the client can only call routes named there), WIRE names no route the server lacks, and every
 * server route is either in WIRE or listed below as one the SDK does not call, with why. Where the server validates
 * a request body with a schema, it is the contract's own object, so the two cannot drift apart.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { WIRE, type WireRouteSpec } from "@valise/core/wire";
import { declaredRoutes } from "../src/audit/http.js";
import { startTestServer } from "./helpers/server.js";

/** Server routes the SDK's HttpTransport does not call, and who does. */
const NOT_CALLED_BY_SDK: Record<string, string> = {
  "GET /healthz": "liveness probe (load balancers, orchestration)",
  "GET /readyz": "readiness probe (load balancers, orchestration)",
  "GET /metrics": "Prometheus scrape, with its own token",
  "GET /": "the web app's static files",
  "GET /favicon.svg": "the web app's static files",
  "GET /sw.js": "the web app's static files",
  "GET /assets/*": "the web app's static files",
  "GET /v1/ws": "the push WebSocket (push.ts parses and checks each frame)",
  "GET /v1/conversations/:id": "one conversation's record: the SDK lists them (GET /v1/conversations)",
  "GET /v1/officer/canaries": "officers' canary list: served for operators' tools, not called by the SDK",
  "GET /v1/log/audit/proof/inclusion":
    "the SDK takes inclusion proofs with the events (GET /v1/log/audit/events?size=)",
  "GET /v1/log/audit/tile/*": "C2SP tiles of the audit log, for external log monitors",
  "GET /taxii2": "TAXII 2.1 server: partners' TAXII clients, with their own tokens",
  "GET /taxii2/valise/": "TAXII 2.1 server",
  "GET /taxii2/valise/collections/": "TAXII 2.1 server",
  "GET /taxii2/valise/collections/:id/": "TAXII 2.1 server",
  "GET /taxii2/valise/collections/:id/objects/": "TAXII 2.1 server",
  "GET /taxii2/valise/collections/:id/manifest/": "TAXII 2.1 server",
  "GET /taxii2/valise/collections/:id/objects/:objectId/": "TAXII 2.1 server",
  "GET /taxii2/valise/collections/:id/objects/:objectId/versions/": "TAXII 2.1 server",
  "GET /taxii2/valise/status/:statusId/": "TAXII 2.1 server",
};

test("every route the SDK calls has its schema in the wire contract, and the server uses the contract's bodies", async () => {
  const web = mkdtempSync(join(tmpdir(), "valise-wire-routes-"));
  mkdirSync(join(web, "assets"));
  for (const f of ["index.html", "favicon.svg", "sw.js"]) writeFileSync(join(web, f), "x");
  const s = await startTestServer("sqlite", {
    app: {
      webRoot: web,
      webauthn: { rpId: "valise.test", origins: ["https://valise.test"] },
      metricsToken: "0123456789abcdef-metrics",
    },
  });
  try {
    const routes = declaredRoutes(s.app).filter((r) => r.method !== "HEAD");
    const server = new Map(routes.map((r) => [`${r.method} ${r.url}`, r]));
    const contract = WIRE as Record<string, WireRouteSpec>;
    const missing = Object.keys(contract).filter((k) => !server.has(k));
    assert.deepEqual(missing, [], "contract routes the server does not have");
    const uncovered = [...server.keys()].filter((k) => !(k in contract) && !(k in NOT_CALLED_BY_SDK));
    assert.deepEqual(uncovered, [], "server routes neither in the contract nor listed as not called by the SDK");
    const stale = Object.keys(NOT_CALLED_BY_SDK).filter((k) => !server.has(k) || k in contract);
    assert.deepEqual(stale, [], "listed as not called by the SDK, but no such route or it is in the contract");
    for (const [k, spec] of Object.entries(contract)) {
      const body = server.get(k)!.schema?.body;
      if (body !== undefined) assert.equal(spec.body, body, `${k}: the server's body schema is the contract's`);
      else assert.equal(spec.body, undefined, `${k}: the contract names a body the server does not check`);
    }
  } finally {
    await s.close();
    rmSync(web, { recursive: true, force: true });
  }
});
