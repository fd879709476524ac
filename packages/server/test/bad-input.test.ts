/**
 * Every endpoint gets bad input: malformed, wrong types, oversized, unauthenticated, replayed, wrong user, and random
 * garbage. Each must answer 4xx with a stable `code` — never a 5xx, never a crash. In-process (app.inject), no sockets.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { generateKeyPairSync, sign, randomBytes } from "node:crypto";
import fc from "fast-check";
import type { FastifyInstance } from "fastify";
import { buildApp, openStore, protocolServerMls, serveMetrics, type Store } from "../src/index.js";
import type { ServerContext } from "../src/http/context.js";
import { freshDb, type TestDb } from "./helpers/databases.js";

let db: TestDb;
let store: Store;
let app: FastifyInstance;
let ctx: ServerContext;
let token = "";
let otherToken = "";
const CONV = "c-conv00000001";

function newDeviceKey() {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  const raw = publicKey.export({ format: "der", type: "spki" }).subarray(12);
  return { raw: new Uint8Array(raw), privateKey };
}

async function enrollDirect(handle: string, id: string) {
  const k = newDeviceKey();
  const { enrollmentCode } = await store.directory.newEnrollmentCode(handle);
  await store.directory.redeemEnrollment(enrollmentCode, { id, name: "t", signaturePublicKey: k.raw }, [], () => {});
  const ch = await app.inject({ method: "POST", url: "/v1/auth/challenge", payload: { device: id } });
  const { challenge } = ch.json<{ challenge: string }>();
  const signature = sign(null, Buffer.from(`valise-login:${challenge}`), k.privateKey).toString("base64");
  const s = await app.inject({
    method: "POST",
    url: "/v1/auth/session",
    payload: { device: id, challenge, signature },
  });
  assert.equal(s.statusCode, 201);
  return { token: s.json<{ token: string }>().token, challenge, signature, key: k };
}

before(async () => {
  db = await freshDb("sqlite");
  store = await openStore({ dataDir: db.dataDir });
  ({ app, ctx } = await buildApp({ store, mls: protocolServerMls, loginRatePerMinute: 1000 }));
  await store.directory.addUnit("HQ/ASIA-1", "SECRET/ASIA");
  await store.directory.addUser({ handle: "alice", units: ["HQ/ASIA-1"], clearance: "SECRET/ASIA", role: "user" });
  await store.directory.addUser({ handle: "mallory", units: [], clearance: "UNCLASSIFIED", role: "user" });
  token = (await enrollDirect("alice", "d-alice00001")).token;
  otherToken = (await enrollDirect("mallory", "d-mallory001")).token;
  const r = await app.inject({
    method: "POST",
    url: "/v1/conversations",
    headers: { authorization: `Bearer ${token}` },
    payload: { id: CONV, kind: "group", label: "UNCLASSIFIED" },
  });
  assert.equal(r.statusCode, 201);
});
after(async () => {
  await app.close();
  await store.close();
  await db.dispose();
});

const ENDPOINTS: {
  method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
  url: string;
  auth: boolean;
  json?: boolean;
  binary?: boolean;
}[] = [
  { method: "POST", url: "/v1/enroll", auth: false, json: true },
  { method: "POST", url: "/v1/auth/challenge", auth: false, json: true },
  { method: "POST", url: "/v1/auth/session", auth: false, json: true },
  { method: "GET", url: "/v1/me", auth: true },
  { method: "GET", url: "/v1/users/alice", auth: true },
  { method: "GET", url: "/v1/units", auth: true },
  { method: "GET", url: "/v1/unit-members?unit=HQ/ASIA-1", auth: true },
  { method: "POST", url: "/v1/keypackages", auth: true, json: true },
  { method: "GET", url: "/v1/keypackages/count", auth: true },
  { method: "POST", url: "/v1/keypackages/claim", auth: true, json: true },
  { method: "POST", url: "/v1/conversations", auth: true, json: true },
  { method: "GET", url: "/v1/conversations", auth: true },
  { method: "GET", url: `/v1/conversations/${CONV}`, auth: true },
  { method: "GET", url: `/v1/conversations/${CONV}/messages?after=0`, auth: true },
  { method: "GET", url: `/v1/conversations/${CONV}/group-info`, auth: true },
  { method: "POST", url: `/v1/conversations/${CONV}/messages`, auth: true, binary: true },
  { method: "POST", url: `/v1/conversations/${CONV}/commits`, auth: true, json: true },
  { method: "GET", url: "/v1/inbox", auth: true },
  { method: "POST", url: "/v1/blobs", auth: true, json: true },
  { method: "GET", url: "/v1/blobs/b-unknown00001/status", auth: true },
  { method: "PATCH", url: "/v1/blobs/b-unknown00001", auth: true, binary: true },
  { method: "GET", url: "/v1/blobs/b-unknown00001", auth: true },
  { method: "POST", url: "/v1/documents", auth: true, json: true },
  { method: "GET", url: "/v1/documents", auth: true },
  { method: "GET", url: "/v1/documents/f-unknown00001", auth: true },
  { method: "POST", url: "/v1/documents/f-unknown00001/versions", auth: true, json: true },
  { method: "PUT", url: "/v1/documents/f-unknown00001/canary", auth: true, json: true },
  { method: "GET", url: "/v1/officer/canaries", auth: true },
  { method: "POST", url: "/v1/cables", auth: true, json: true },
  { method: "GET", url: "/v1/cables?limit=5&unit=HQ/ASIA-1", auth: true },
  { method: "GET", url: "/v1/cables/queue", auth: true },
  { method: "GET", url: "/v1/cables/k-unknown00001", auth: true },
  { method: "GET", url: "/v1/cables/by-reference?reference=HQ/ASIA-1%202026/000001", auth: true },
  { method: "POST", url: "/v1/cables/k-unknown00001/receipts", auth: true, json: true },
  { method: "GET", url: "/v1/audit/cables/by-reference?reference=HQ/ASIA-1%202026/000001", auth: true },
  { method: "PUT", url: "/v1/users/alice/clearance", auth: true, json: true },
  // Staff lifecycle (routes-lifecycle.ts) and key-transparency reports.
  { method: "GET", url: "/v1/users?unit=HQ%2FASIA-1", auth: true },
  { method: "GET", url: "/v1/users/alice/history", auth: true },
  { method: "GET", url: "/v1/units/HQ%2FASIA-1/members", auth: true },
  { method: "POST", url: "/v1/units/HQ%2FASIA-1/members", auth: true, json: true },
  { method: "DELETE", url: "/v1/units/HQ%2FASIA-1/members/alice", auth: true },
  { method: "POST", url: "/v1/users/alice/move", auth: true, json: true },
  { method: "PUT", url: "/v1/users/alice/role", auth: true, json: true },
  { method: "POST", url: "/v1/users/alice/disable", auth: true },
  { method: "POST", url: "/v1/users/alice/enable", auth: true },
  { method: "PUT", url: "/v1/units/HQ%2FASIA-1/max-label", auth: true, json: true },
  { method: "GET", url: "/v1/directory/changes?after=0&limit=10", auth: true },
  { method: "POST", url: "/v1/kt/reports", auth: true, json: true },
];

function assertClientError(r: { statusCode: number; body: string }, what: string, expected?: number) {
  assert.ok(r.statusCode >= 400 && r.statusCode < 500, `${what}: expected 4xx, got ${r.statusCode} ${r.body}`);
  if (expected) assert.equal(r.statusCode, expected, `${what}: ${r.body}`);
  const body = JSON.parse(r.body) as { code?: unknown; message?: unknown };
  assert.equal(typeof body.code, "string", `${what}: stable error code`);
  assert.equal(typeof body.message, "string", `${what}: human message`);
}

test("unauthenticated requests to authenticated endpoints are 401", async () => {
  for (const e of ENDPOINTS.filter((x) => x.auth)) {
    const r = await app.inject({ method: e.method, url: e.url, ...(e.json ? { payload: {} } : {}) });
    assertClientError(r, `${e.method} ${e.url}`, 401);
    const bad = await app.inject({ method: e.method, url: e.url, headers: { authorization: "Bearer nope" } });
    assertClientError(bad, `${e.method} ${e.url} bad token`, 401);
  }
});

test("malformed JSON, wrong shapes and extra fields are 400", async () => {
  for (const e of ENDPOINTS.filter((x) => x.json)) {
    const headers = { "content-type": "application/json", ...(e.auth ? { authorization: `Bearer ${token}` } : {}) };
    for (const payload of [
      '{"x":',
      "[]",
      '"str"',
      "{}",
      '{"id":5,"kind":"nope"}',
      JSON.stringify({ device: "d-alice00001", extra: 1 }),
    ]) {
      const r = await app.inject({ method: e.method, url: e.url, headers, payload });
      assertClientError(r, `${e.method} ${e.url} ${payload}`);
    }
  }
});

test("oversized bodies are 413", async () => {
  const big = randomBytes(300 * 1024);
  const r = await app.inject({
    method: "POST",
    url: `/v1/conversations/${CONV}/messages`,
    headers: {
      authorization: `Bearer ${token}`,
      "content-type": "application/octet-stream",
      "idempotency-key": "abcdefgh12",
    },
    payload: big,
  });
  assertClientError(r, "oversized message", 413);
  const r2 = await app.inject({
    method: "POST",
    url: "/v1/auth/challenge",
    headers: { "content-type": "application/json" },
    payload: JSON.stringify({ device: "x".repeat(2 * 1024 * 1024) }),
  });
  assertClientError(r2, "oversized json", 413);
});

test("binary message endpoint: garbage MLS, missing idempotency key, wrong content type are 400", async () => {
  const auth = { authorization: `Bearer ${token}` };
  const url = `/v1/conversations/${CONV}/messages`;
  assertClientError(
    await app.inject({
      method: "POST",
      url,
      headers: { ...auth, "content-type": "application/octet-stream", "idempotency-key": "abcdefgh12" },
      payload: randomBytes(100),
    }),
    "garbage mls",
    400,
  );
  assertClientError(
    await app.inject({
      method: "POST",
      url,
      headers: { ...auth, "content-type": "application/octet-stream" },
      payload: randomBytes(10),
    }),
    "no idem key",
    400,
  );
  assertClientError(
    await app.inject({
      method: "POST",
      url,
      headers: { ...auth, "content-type": "text/plain", "idempotency-key": "abcdefgh12" },
      payload: "hi",
    }),
    "text body",
  );
});

test("wrong user: another user's conversation is 404, another device's key packages are refused", async () => {
  const auth = { authorization: `Bearer ${otherToken}` };
  assertClientError(
    await app.inject({ method: "GET", url: `/v1/conversations/${CONV}`, headers: auth }),
    "foreign conversation",
    404,
  );
  assertClientError(
    await app.inject({ method: "GET", url: `/v1/conversations/${CONV}/messages`, headers: auth }),
    "foreign messages",
    404,
  );
  assertClientError(
    await app.inject({
      method: "POST",
      url: `/v1/conversations/${CONV}/messages`,
      headers: { ...auth, "content-type": "application/octet-stream", "idempotency-key": "abcdefgh12" },
      payload: randomBytes(64),
    }),
    "foreign post",
  );
  // Mallory (UNCLASSIFIED) may not open a CONFIDENTIAL conversation.
  assertClientError(
    await app.inject({
      method: "POST",
      url: "/v1/conversations",
      headers: auth,
      payload: { id: "c-mallory0001", kind: "group", label: "CONFIDENTIAL/ASIA" },
    }),
    "above clearance",
    403,
  );
  assertClientError(await app.inject({ method: "GET", url: "/v1/users/nobody", headers: auth }), "unknown user", 404);
  assertClientError(
    await app.inject({ method: "GET", url: "/v1/users/NOT_A_HANDLE", headers: auth }),
    "bad handle",
    400,
  );
  assertClientError(
    await app.inject({ method: "GET", url: "/v1/unit-members?unit=HQ/NOPE", headers: auth }),
    "unknown unit",
    404,
  );
});

test("replayed login: a used challenge or signature never opens a second session", async () => {
  const a = await enrollDirect("alice", "d-alice00002");
  const replay = await app.inject({
    method: "POST",
    url: "/v1/auth/session",
    payload: { device: "d-alice00002", challenge: a.challenge, signature: a.signature },
  });
  assertClientError(replay, "replayed challenge", 401);
  // A fresh challenge with a signature from another key fails too.
  const ch = (
    await app.inject({ method: "POST", url: "/v1/auth/challenge", payload: { device: "d-alice00002" } })
  ).json<{ challenge: string }>().challenge;
  const forged = sign(null, Buffer.from(`valise-login:${ch}`), newDeviceKey().privateKey).toString("base64");
  assertClientError(
    await app.inject({
      method: "POST",
      url: "/v1/auth/session",
      payload: { device: "d-alice00002", challenge: ch, signature: forged },
    }),
    "forged signature",
    401,
  );
  // Enrollment codes are one-time.
  const { enrollmentCode } = await store.directory.newEnrollmentCode("alice");
  const body = (id: string) => ({
    code: enrollmentCode,
    device: { id, name: "x", signaturePublicKey: Buffer.from(newDeviceKey().raw).toString("base64") },
    keyPackages: [],
  });
  assert.equal(
    (await app.inject({ method: "POST", url: "/v1/enroll", payload: body("d-alice00003") })).statusCode,
    201,
  );
  assertClientError(
    await app.inject({ method: "POST", url: "/v1/enroll", payload: body("d-alice00004") }),
    "reused enrollment code",
    403,
  );
});

test("login endpoints are rate-limited per source address (429)", async () => {
  const db2 = await freshDb("sqlite");
  const s2 = await openStore({ dataDir: db2.dataDir });
  const { app: a2 } = await buildApp({ store: s2, mls: protocolServerMls, loginRatePerMinute: 5 });
  try {
    const codes: number[] = [];
    for (let i = 0; i < 8; i++)
      codes.push(
        (await a2.inject({ method: "POST", url: "/v1/auth/challenge", payload: { device: "d-someone0001" } }))
          .statusCode,
      );
    assert.deepEqual(codes.slice(0, 5), [200, 200, 200, 200, 200]);
    assert.ok(codes.slice(5).every((c) => c === 429));
  } finally {
    await a2.close();
    await s2.close();
    await db2.dispose();
  }
});

test("random garbage to every endpoint never yields a 5xx", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom(...ENDPOINTS),
      fc.oneof(
        fc.json(),
        fc.uint8Array({ maxLength: 512 }).map((b) => Buffer.from(b).toString("latin1")),
      ),
      fc.constantFrom("application/json", "application/octet-stream", "text/plain"),
      fc.boolean(),
      async (e, payload, ctype, authed) => {
        const r = await app.inject({
          method: e.method,
          url: e.url,
          headers: {
            "content-type": ctype,
            "idempotency-key": "fuzzfuzz01",
            ...(authed ? { authorization: `Bearer ${token}` } : {}),
          },
          ...(e.method !== "GET" ? { payload } : {}),
        });
        assert.ok(r.statusCode < 500, `${e.method} ${e.url} → ${r.statusCode} ${r.body}`);
      },
    ),
    { numRuns: 300 },
  );
});

test("/healthz answers and /metrics exposes counters without content", async () => {
  const h = await app.inject({ method: "GET", url: "/healthz" });
  assert.equal(h.statusCode, 200);
  assert.deepEqual(h.json(), { ok: true });
  // Not on the API port without its token (issue 13 finding 10): on its own listener.
  assert.equal((await app.inject({ method: "GET", url: "/metrics" })).statusCode, 404);
  const listener = await serveMetrics(ctx, "127.0.0.1", 0);
  const r = await fetch(listener.url);
  const m = { statusCode: r.status, body: await r.text() };
  await listener.close();
  assert.equal(m.statusCode, 200);
  assert.match(m.body, /valise_http_requests_total/);
  assert.match(m.body, /valise_append_batch_size/);
  assert.ok(!m.body.includes(token), "no session token in metrics");
});
