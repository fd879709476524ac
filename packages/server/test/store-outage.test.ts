/**
 * Outages said as what they are (issue 20): a database or disk failure is `503 store_error` with `Retry-After`,
 * never `500`; `/healthz` is liveness (200 while the process answers), `/readyz` readiness (the store can be read
 * and written now, the audit append included). The real outages (PostgreSQL restarted and stopped, a full disk) are
 * in packages/cli/test/faults.test.ts; here the error edge is fed the errors those outages raise.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { ValiseError } from "@valise/core";
import { startTestServer } from "../src/testing/server.js";
import { DATABASE_KINDS } from "../src/testing/databases.js";
import { isStoreOutage } from "../src/http/errors.js";

/** What pg, better-sqlite3 and node:fs throw when the store is down or full (shapes as the libraries make them). */
function err(message: string, code?: string): Error {
  return Object.assign(new Error(message), code !== undefined ? { code } : {});
}
const OUTAGES: Error[] = [
  err("terminating connection due to administrator command", "57P01"),
  err("the database system is starting up", "57P03"),
  err("the database system is shutting down", "57P03"),
  err("Connection terminated unexpectedly"),
  err("connect ECONNREFUSED 127.0.0.1:5432", "ECONNREFUSED"),
  err("timeout exceeded when trying to connect"),
  err("could not extend file: No space left on device", "53100"),
  err("database is locked", "SQLITE_BUSY"),
  err("database or disk is full", "SQLITE_FULL"),
  err("disk I/O error", "SQLITE_IOERR_WRITE"),
  err("ENOSPC: no space left on device, write", "ENOSPC"),
  Object.assign(new Error("wrapped"), { cause: err("database or disk is full", "SQLITE_FULL") }),
];
const BUGS: Error[] = [
  err("Cannot read properties of undefined (reading 'x')"),
  err("UNIQUE constraint failed: units.name", "SQLITE_CONSTRAINT_PRIMARYKEY"),
  err('duplicate key value violates unique constraint "units_pkey"', "23505"),
  err('relation "nope" does not exist', "42P01"),
];

test("isStoreOutage: database and disk outages, not bugs", () => {
  for (const e of OUTAGES) assert.equal(isStoreOutage(e), true, e.message);
  for (const e of BUGS) assert.equal(isStoreOutage(e), false, e.message);
});

for (const kind of DATABASE_KINDS)
  test(`${kind}: a store outage answers 503 store_error with Retry-After; a bug stays 500; /healthz and /readyz`, async () => {
    const s = await startTestServer(kind, {
      beforeListen: (app) => {
        app.get<{ Querystring: { i: string; bug?: string } }>("/test-outage", async (req) => {
          const list = req.query.bug ? BUGS : OUTAGES;
          throw list[Number(req.query.i)]!;
        });
        app.get("/test-store-error", async () => {
          throw new ValiseError("store_error", "audit log append failed");
        });
      },
    });
    try {
      for (let i = 0; i < OUTAGES.length; i++) {
        const r = await fetch(`${s.url}/test-outage?i=${i}`);
        assert.equal(r.status, 503, OUTAGES[i]!.message);
        assert.equal(r.headers.get("retry-after"), "2");
        const body = (await r.json()) as { code: string; message: string };
        assert.equal(body.code, "store_error");
        assert.doesNotMatch(body.message, /ECONNREFUSED|5432|SQLITE/, "no internals in the answer");
      }
      for (let i = 0; i < BUGS.length; i++) {
        const r = await fetch(`${s.url}/test-outage?i=${i}&bug=1`);
        assert.equal(r.status, 500, BUGS[i]!.message);
      }
      const se = await fetch(`${s.url}/test-store-error`);
      assert.equal(se.status, 503);
      assert.equal(se.headers.get("retry-after"), "2");

      assert.equal((await fetch(`${s.url}/healthz`)).status, 200);
      const ready = await fetch(`${s.url}/readyz`);
      const rb = (await ready.json()) as Record<string, unknown>;
      assert.equal(ready.status, 200, JSON.stringify(rb));
      assert.deepEqual(
        { read: rb.read, write: rb.write, disk: rb.disk, auditAppend: rb.auditAppend },
        { read: true, write: true, disk: true, auditAppend: "ok" },
      );
      // The readiness write probe leaves nothing behind.
      const left = await s.store.handle.db
        .selectFrom("challenges")
        .select("challenge")
        .where("device_id", "=", "readyz")
        .execute();
      assert.deepEqual(left, []);

      // The store closed under the server (the database is gone): alive, not ready, requests 503.
      await s.store.close();
      assert.equal((await fetch(`${s.url}/healthz`)).status, 200, "liveness does not depend on the database");
      const down = await fetch(`${s.url}/readyz`);
      assert.equal(down.status, 503);
      assert.equal(down.headers.get("retry-after"), "2");
      assert.equal(((await down.json()) as { code: string; read: boolean }).code, "store_error");
    } finally {
      await s.app.close();
      await s.db.dispose();
    }
  });
