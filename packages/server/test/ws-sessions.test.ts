/**
 * Push sockets and their sessions (issue 18, found by the 10,000 idle sockets bench): every few seconds the hub
 * checks that each socket's session still exists (a device revoked from another process or node stops being served
 * even if it only listens). That check, and a socket's authentication, must survive the database being slow or
 * down: with ~3,000 sockets a node the old sweep issued one query per socket at once, the pool's 5 s wait for a
 * connection ran out and the rejection was unhandled — the node process died ("timeout exceeded when trying to
 * connect"). Here the pool is held busy on purpose (every connection in a long pg_sleep), which raises the same error.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { sql } from "kysely";
import { startTestServer, type TestServer } from "../src/testing/server.js";
import { DATABASE_KINDS, PG_URL } from "./helpers/databases.js";
import { login, type Session } from "./helpers/content.js";

/** Opens a socket and sends the auth frame; resolves with the socket and its first frame or close code. */
async function open(url: string, s: Session): Promise<{ ws: WebSocket; first: Promise<string> }> {
  const ws = new WebSocket(`${url.replace("http", "ws")}/v1/ws`);
  const first = new Promise<string>((resolve) => {
    ws.once("message", (d: Buffer) => resolve(String((JSON.parse(d.toString("utf8")) as { type: string }).type)));
    ws.once("close", (code: number) => resolve(`close ${code}`));
  });
  await new Promise<void>((ok, fail) => {
    ws.once("open", () => ok());
    ws.once("error", fail);
  });
  ws.send(JSON.stringify({ type: "auth", token: s.token }));
  return { ws, first };
}

function closed(ws: WebSocket): Promise<number> {
  if (ws.readyState === WebSocket.CLOSED) return Promise.resolve(-1);
  return new Promise((r) => ws.once("close", (code: number) => r(code)));
}

async function users(s: TestServer): Promise<Session[]> {
  const d = s.store.directory;
  await d.addUnit("HQ/ASIA-1", "SECRET/ASIA");
  const out: Session[] = [];
  for (const [h, dev] of [
    ["alice", "d-alice00001"],
    ["bob", "d-bob0000001"],
  ] as const) {
    await d.addUser({ handle: h, units: ["HQ/ASIA-1"], clearance: "SECRET/ASIA", role: "user" });
    out.push(await login(s.url, s.store, h, dev));
  }
  return out;
}

for (const kind of DATABASE_KINDS)
  test(`${kind}: an idle socket whose device is revoked behind the server's back is closed by the sweep; the others stay`, async () => {
    const s = await startTestServer(kind);
    const sockets: WebSocket[] = [];
    try {
      const [alice, bob] = (await users(s)) as [Session, Session];
      // Several sockets per device (tabs), so the sweep's grouping by session is exercised.
      const mine = await Promise.all([open(s.url, alice), open(s.url, alice), open(s.url, bob), open(s.url, bob)]);
      for (const m of mine) {
        sockets.push(m.ws);
        assert.equal(await m.first, "ready");
      }
      // Revoked directly in the store (as `valise admin device revoke` in another process does): no event reaches
      // this hub, only the sweep can notice.
      await s.store.directory.revokeDevice(bob.device);
      const t0 = Date.now();
      const codes = await Promise.race([
        Promise.all([closed(mine[2].ws), closed(mine[3].ws)]),
        new Promise<null>((r) => setTimeout(() => r(null), 10_000)),
      ]);
      assert.deepEqual(codes, [4001, 4001], `bob's sockets closed by the sweep (${Date.now() - t0} ms)`);
      assert.equal(mine[0].ws.readyState, WebSocket.OPEN, "alice's sockets stay open");
      assert.equal(mine[1].ws.readyState, WebSocket.OPEN);
    } finally {
      for (const ws of sockets) ws.terminate();
      await s.close();
    }
  });

test(
  "postgres: the session sweep and socket authentication survive a database pool that cannot serve them (no crash)",
  { skip: PG_URL ? false : "no PostgreSQL: set VALISE_TEST_DATABASE_URL" },
  async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (e: unknown) => void unhandled.push(e);
    process.on("unhandledRejection", onUnhandled);
    const s = await startTestServer("postgres");
    const sockets: WebSocket[] = [];
    try {
      const [alice, bob] = (await users(s)) as [Session, Session];
      const idle = await Promise.all(Array.from({ length: 20 }, () => open(s.url, alice)));
      for (const m of idle) {
        sockets.push(m.ws);
        assert.equal(await m.first, "ready");
      }
      // Every connection of the node's pool (10) busy for 9 s: whatever waits for one gets "timeout exceeded when
      // trying to connect" after 5 s. A sweep runs within 3 s of the start, so its wait times out before 8 s.
      const busy = Array.from({ length: 10 }, () => sql`SELECT pg_sleep(9)`.execute(s.store.handle.db));
      await new Promise((r) => setTimeout(r, 300));
      // A socket authenticating meanwhile: its session cannot be read; it is told to come back, not left hanging.
      const late = await open(s.url, bob);
      sockets.push(late.ws);
      assert.equal(await late.first, "close 1013", "try again later");
      await Promise.all(busy);
      await new Promise((r) => setTimeout(r, 500));
      assert.deepEqual(
        unhandled.map((e) => (e instanceof Error ? e.message : String(e))),
        [],
        "no unhandled rejection (in `valise serve` one ends the process)",
      );
      // A sweep that could not read the sessions closes nothing (an outage is not a revocation)…
      assert.equal(idle.filter((m) => m.ws.readyState === WebSocket.OPEN).length, 20);
      // …and the node serves again once its pool does.
      const again = await open(s.url, bob);
      sockets.push(again.ws);
      assert.equal(await again.first, "ready");
      assert.equal((await fetch(`${s.url}/healthz`)).status, 200);
    } finally {
      for (const ws of sockets) ws.terminate();
      process.off("unhandledRejection", onUnhandled);
      await s.close();
    }
  },
);
