/**
 * Issue 19 part 7: /metrics carries a request latency histogram per route pattern (never a concrete path with ids)
 * and method, counted for each request made.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { buildApp, openStore, protocolServerMls, type Store } from "../src/index.js";
import { freshDb, type TestDb } from "./helpers/databases.js";

let db: TestDb;
let store: Store;
after(async () => {
  await store?.close();
  await db?.dispose();
});

test("request latency histograms per route on /metrics", async () => {
  db = await freshDb("sqlite");
  store = await openStore({ dataDir: db.dataDir });
  const token = "0123456789abcdef0123";
  const { app } = await buildApp({ store, mls: protocolServerMls, detect: false, metricsToken: token });
  try {
    for (let i = 0; i < 3; i++) assert.equal((await app.inject({ method: "GET", url: "/healthz" })).statusCode, 200);
    await app.inject({ method: "GET", url: "/v1/users/nobody" });
    const m = await app.inject({ method: "GET", url: "/metrics", headers: { authorization: `Bearer ${token}` } });
    assert.equal(m.statusCode, 200);
    const text = m.body;
    assert.match(text, /# TYPE valise_http_request_duration_seconds histogram/);
    assert.match(text, /valise_http_request_duration_seconds_count\{route="\/healthz",method="GET"\} 3/);
    assert.match(text, /valise_http_request_duration_seconds_bucket\{le="\+Inf",route="\/healthz",method="GET"\} 3/);
    assert.match(text, /valise_http_request_duration_seconds_count\{route="\/v1\/users\/:handle",method="GET"\} 1/);
    assert.doesNotMatch(text, /nobody/, "route patterns, never concrete ids");
  } finally {
    await app.close();
  }
});
