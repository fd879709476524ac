/**
 * Issue 19 part 7: /metrics carries what an operator graphs — a request latency histogram per route pattern (never a
 * concrete path with ids) and method; database query times; append transaction times and audit batch sizes; on
 * PostgreSQL the pool's connections by state. SQLite and PostgreSQL.
 */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { buildApp, openStore, protocolServerMls, type Store } from "../src/index.js";
import { DATABASE_KINDS, freshDb, type TestDb } from "./helpers/databases.js";

for (const kind of DATABASE_KINDS)
  describe(`metrics (${kind})`, () => {
    let db: TestDb;
    let store: Store;
    after(async () => {
      await store?.close();
      await db?.dispose();
    });

    test("latency per route, query and transaction times, batch sizes, pool", async () => {
      db = await freshDb(kind);
      store = await openStore({ dataDir: db.dataDir, databaseUrl: db.databaseUrl });
      const token = "0123456789abcdef0123";
      const { app, ctx } = await buildApp({ store, mls: protocolServerMls, detect: false, metricsToken: token });
      try {
        for (let i = 0; i < 3; i++)
          assert.equal((await app.inject({ method: "GET", url: "/healthz" })).statusCode, 200);
        await app.inject({ method: "GET", url: "/v1/users/nobody" });
        await app.inject({ method: "GET", url: "/readyz" });
        await ctx.audit.record({
          actor: "t",
          device: null,
          source: "test",
          client: null,
          action: "login",
          object: "x",
          bytes: 0,
          outcome: "ok",
        });
        const m = await app.inject({ method: "GET", url: "/metrics", headers: { authorization: `Bearer ${token}` } });
        assert.equal(m.statusCode, 200);
        const text = m.body;
        assert.match(text, /# TYPE valise_http_request_duration_seconds histogram/);
        assert.match(text, /valise_http_request_duration_seconds_count\{route="\/healthz",method="GET"\} 3/);
        assert.match(
          text,
          /valise_http_request_duration_seconds_bucket\{le="\+Inf",route="\/healthz",method="GET"\} 3/,
        );
        assert.match(text, /valise_http_request_duration_seconds_count\{route="\/v1\/users\/:handle",method="GET"\} 1/);
        assert.doesNotMatch(text, /nobody/, "route patterns, never concrete ids");
        const count = (re: RegExp) => Number(re.exec(text)?.[1] ?? 0);
        assert.ok(count(/valise_db_query_seconds_count\{outcome="ok"\} (\d+)/) > 0, "queries timed");
        assert.ok(count(/valise_db_transaction_seconds_count\{kind="audit",outcome="ok"\} (\d+)/) >= 1);
        assert.ok(count(/valise_audit_append_batch_size_count (\d+)/) >= 1);
        assert.match(text, /# TYPE valise_append_batch_size histogram/);
        assert.match(text, /# TYPE valise_ws_connections gauge/);
        if (kind === "postgres") assert.match(text, /valise_db_pool_connections\{state="total"\} [1-9]/);
        else assert.doesNotMatch(text, /valise_db_pool_connections\{/);
      } finally {
        await app.close();
      }
    });

    test("the Grafana dashboard in deploy/ graphs only metrics the server exposes", async () => {
      const dash = JSON.parse(
        readFileSync(new URL("../../../../deploy/grafana-dashboard.json", import.meta.url), "utf8"),
      ) as { panels: { targets?: { expr: string }[] }[] };
      const exprs = dash.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));
      const names = new Set(
        exprs.flatMap((e) =>
          [...e.matchAll(/\b((?:valise|nodejs|process)_[a-z0-9_]+)/g)].map((m) =>
            m[1]!.replace(/_(bucket|count|sum)$/, ""),
          ),
        ),
      );
      assert.ok(names.size >= 12, [...names].join(" "));
      // Detection on (its metrics register with the detector), on the store opened above.
      const { app } = await buildApp({ store, mls: protocolServerMls, metricsToken: "0123456789abcdef0123" });
      try {
        const m = await app.inject({
          method: "GET",
          url: "/metrics",
          headers: { authorization: "Bearer 0123456789abcdef0123" },
        });
        for (const n of names) {
          if (n === "valise_db_pool_connections" && kind === "sqlite") continue; // PostgreSQL only
          assert.match(m.body, new RegExp(`# TYPE ${n} `), `the dashboard graphs ${n}, which /metrics lacks`);
        }
      } finally {
        await app.close();
      }
    });
  });
