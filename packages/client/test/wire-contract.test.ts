/**
 * The wire contract (issue 17): HttpTransport checks the main endpoints' answers against the shared schemas
 * (@valise/core/wire, the ones the server validates requests with); a malformed answer is refused with a
 * `protocol_error` that names the endpoint and the field, never handed on as if it were a message.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { ValiseError } from "@valise/core";
import { CreateConversationBody, wireProblem } from "@valise/core/wire";
import { HttpTransport } from "@valise/client";

const CONV = "c-abcdefgh12345678";
const good = { seq: 3, kind: "application", epoch: 1, sender: "d-abcdefgh12345678", payload: "AAEC", createdAt: 1 };

function serving(body: unknown): HttpTransport {
  const f: typeof fetch = async () =>
    new Response(JSON.stringify(body), { status: 200, headers: { "content-type": "application/json" } });
  return new HttpTransport("http://127.0.0.1:1", f);
}

test("a well-formed answer passes; a malformed one is a protocol_error naming endpoint and field", async () => {
  const ok = await serving({ messages: [good] }).messages(CONV, 0);
  assert.deepEqual([...ok[0]!.payload], [0, 1, 2]);
  // A newer server may add fields to an answer.
  await serving({ messages: [{ ...good, extra: true }], more: 1 }).messages(CONV, 0);

  const bad: [unknown, RegExp][] = [
    [{ messages: [{ ...good, seq: "3" }] }, /\$\.messages\[0\]\.seq: expected a number/],
    [{ messages: [{ ...good, payload: "not base64!" }] }, /\$\.messages\[0\]\.payload: not of the expected form/],
    [{ messages: [{ ...good, kind: "welcome" }] }, /\$\.messages\[0\]\.kind/],
    [{ messages: [{ ...good, sender: undefined }] }, /\$\.messages\[0\]\.sender: missing/],
    [{ messages: {} }, /\$\.messages: expected an array/],
    [null, /\$: expected an object, got null/],
  ];
  for (const [body, why] of bad)
    await assert.rejects(
      serving(body).messages(CONV, 0),
      (e: unknown) =>
        e instanceof ValiseError &&
        e.code === "protocol_error" &&
        e.message.includes(`GET /v1/conversations/${CONV}/messages: malformed answer from the server`) &&
        why.test(e.message),
      JSON.stringify(body),
    );
  await assert.rejects(serving({ conversations: [{ id: "x" }] }).conversations(), /GET \/v1\/conversations: malformed/);
  await assert.rejects(
    serving({ seq: -1, epoch: 0, duplicate: false }).postMessage(CONV, new Uint8Array(1), "idem-key-1"),
    /POST \/v1\/conversations\/c-abcdefgh12345678\/messages: malformed answer from the server \(\$\.seq: below 0\)/,
  );
});

test("the request schemas the server validates with refuse what the server refuses", () => {
  assert.equal(wireProblem(CreateConversationBody, { id: CONV, kind: "direct", label: "UNCLASSIFIED" }), null);
  assert.match(
    wireProblem(CreateConversationBody, { id: CONV, kind: "direct", label: "U", x: 1 })!,
    /\$\.x: not allowed/,
  );
  assert.match(wireProblem(CreateConversationBody, { id: "c-!", kind: "direct", label: "U" })!, /\$\.id/);
});

// ---------------------------------------------------------------- every route, and a malicious server

const DEV = "d-abcdefgh12345678";
const u8 = (n: number) => new Uint8Array(n);
/** Arguments for the area methods that take more than ids (the others get id-like strings). */
const ARGS: Record<string, unknown[]> = {
  enroll: ["code-1234", { id: DEV, name: "laptop", signaturePublicKey: u8(32) }, []],
  session: [DEV, "challenge-0123456789", u8(64)],
  passkeySession: [{ device: DEV, challenge: "challenge-0123456789", signature: "x", credential: {} }],
  passkeyRegister: ["challenge-0123456789", {}],
  reportKt: [{ kind: "not_mine", subject: DEV, detail: "x" }],
  uploadKeyPackages: [[u8(4)]],
  claimKeyPackages: [[DEV], CONV],
  logEntry: [0],
  logInclusionProof: [0, 1],
  logConsistencyProof: [1, 2],
  messages: [CONV, 0],
  postMessage: [CONV, u8(1), "idem-key-1"],
  postCommit: [CONV, { commit: u8(1), groupInfo: u8(1), added: [], removed: [], idempotencyKey: "idem-key-1" }],
  inbox: [0],
  createBlob: [10],
  appendBlob: ["b-abcdefgh12345678", 0, u8(1)],
  createDocument: [{ id: "f-abcdefgh12345678", label: "U", to: { kind: "user", name: "bob" }, blob: "b-x" }],
  setCanary: ["f-abcdefgh12345678", true],
  releaseCable: [
    { id: "k-x", originator: "HQ", action: ["HQ"], info: [], precedence: "ROUTINE", label: "U", blob: "b" },
  ],
  cables: [{}],
  cableQueue: [10],
  cableReceipt: ["k-abcdefgh12345678", "read"],
  directoryChanges: [-1, 10],
  auditConsistencyProof: [1, 2],
  auditEntries: [0, 1],
  auditEvents: [{ limit: 1 }],
  alerts: [{ limit: 1 }],
  ackAlert: [1],
  createIncident: [{ title: "t", alerts: [1] }],
  incidents: [10],
  shareIncident: ["i-1", false, {}],
  addTaxiiPartner: [{ url: "https://p.example", token: "t", name: "p" }],
  importStixBundle: [{ type: "bundle", id: "bundle--1", objects: [] }],
};
/** Area methods whose answer is not JSON: a signed note, tile bytes, a blob stream, nothing (checked elsewhere). */
const NOT_JSON = new Set(["logCheckpoint", "logEntryBundle", "readBlob", "auditCheckpoint", "logout"]);

function areaMethods(t: HttpTransport): [string, string][] {
  const out: [string, string][] = [];
  for (const [area, api] of Object.entries(t.areas))
    for (const name of Object.getOwnPropertyNames(Object.getPrototypeOf(api)))
      if (name !== "constructor") out.push([area, name]);
  return out;
}

function answering(text: string, seen?: { method: string; url: string; auth: string | null }[]): HttpTransport {
  const f: typeof fetch = async (url, init) => {
    const h = new Headers(init?.headers);
    seen?.push({
      method: init?.method ?? "GET",
      url: typeof url === "string" ? url : url instanceof URL ? url.href : url.url,
      auth: h.get("authorization"),
    });
    return new Response(text, { status: 200, headers: { "content-type": "application/json" } });
  };
  const t = new HttpTransport("http://127.0.0.1:1", f);
  t.token = "session-token";
  return t;
}

const call = (t: HttpTransport, name: string) =>
  (t as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>)[name]!(
    ...(ARGS[name] ?? ["x-abcdefgh12345678", "y-abcdefgh12345678"]),
  );

test("every transport method is on the front, and every JSON answer is checked: a malformed one is a protocol_error", async () => {
  const methods = areaMethods(new HttpTransport("http://127.0.0.1:1"));
  assert.ok(methods.length >= 80, `only ${methods.length} methods`);
  for (const [area, name] of methods) {
    assert.equal(typeof (HttpTransport.prototype as unknown as Record<string, unknown>)[name], "function", name);
    if (NOT_JSON.has(name)) continue;
    // An array where an object is due, a key that reaches prototypes, text that is not JSON.
    for (const body of ["[]", '{"__proto__": {"polluted": true}}', "<html>"]) {
      const seen: { method: string; url: string; auth: string | null }[] = [];
      await assert.rejects(
        call(answering(body, seen), name),
        (e: unknown) => e instanceof ValiseError && e.code === "protocol_error" && /malformed answer/.test(e.message),
        `${area}.${name} accepted ${body}`,
      );
      assert.equal(seen.length, 1, `${area}.${name} sent one request`);
    }
  }
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
});

test("a malicious server: wrong types, oversized arrays and prototype keys are refused, the honest answer passes", async () => {
  const cable = {
    id: "k-abcdefgh12345678",
    reference: "HQ 2026/000001",
    originator: "HQ",
    sender: "alice",
    senderDevice: DEV,
    precedence: "ROUTINE",
    label: "UNCLASSIFIED",
    action: ["EMB/PARIS"],
    info: [],
    blob: "b-abcdefgh12345678",
    size: 10,
    corrects: null,
    createdAt: 1,
    receipts: [],
  };
  const alert = {
    id: 1,
    time: "2026-12-07T00:00:00.000Z",
    actor: "mallory",
    rule: "r",
    severity: "high",
    reason: "tried __proto__ and constructor.prototype in a request",
    events: [],
    createdAt: "2026-12-07T00:00:00.000Z",
    acknowledgedBy: null,
    acknowledgedAt: null,
  };
  const serve = (v: unknown) => answering(typeof v === "string" ? v : JSON.stringify(v));
  assert.equal((await serve({ cables: [cable] }).cableQueue())[0]!.id, cable.id);
  const refused: [string, (t: HttpTransport) => Promise<unknown>, unknown, RegExp][] = [
    ["size as text", (t) => t.cable(cable.id), { ...cable, size: "10" }, /\$\.size: expected a number/],
    ["receipts not a list", (t) => t.cable(cable.id), { ...cable, receipts: {} }, /\$\.receipts: expected an array/],
    ["a queue too long", (t) => t.cableQueue(), { cables: Array(10_001).fill(cable) }, /more than 10000 items/],
    [
      "too many messages",
      (t) => t.messages(CONV, 0),
      { messages: Array(1001).fill(good) },
      /\$\.messages: more than 1000 items/,
    ],
    ["a proof too long", (t) => t.logConsistencyProof(1, 2), { proof: Array(65).fill("AAAA") }, /more than 64/],
    [
      "an alert severity nobody defined",
      (t) => t.alerts(),
      { alerts: [{ ...alert, severity: "urgent" }] },
      /\$\.alerts\[0\]\.severity/,
    ],
    [
      "a user whose devices are a string",
      (t) => t.user("bob"),
      { handle: "bob", units: [], clearance: "U", role: "user", devices: "all of them" },
      /\$\.devices: expected an array/,
    ],
    [
      "__proto__ inside a STIX object (a part the schema leaves open)",
      (t) => t.incidentStix("i-1"),
      '{"type":"bundle","id":"bundle--1","objects":[{"type":"indicator","__proto__":{"isAdmin":true}}]}',
      /a "__proto__" key/,
    ],
    [
      "__proto__ spelled with escapes",
      (t) => t.incidentStix("i-1"),
      '{"type":"bundle","id":"bundle--1","objects":[{"\\u005f_proto__":{"isAdmin":true}}]}',
      /a "__proto__" key/,
    ],
    [
      "constructor.prototype",
      (t) => t.directoryChanges(),
      { size: 1, changes: [{ index: 0, time: "t", type: "x", entry: { type: "x", time: 1, constructor: {} } }] },
      /constructor/,
    ],
  ];
  for (const [what, f, body, why] of refused)
    await assert.rejects(
      f(serve(body)),
      (e: unknown) => e instanceof ValiseError && e.code === "protocol_error" && why.test(e.message),
      what,
    );
  assert.equal(({} as Record<string, unknown>).isAdmin, undefined);
  // The words themselves in a value are not keys: an alert about prototype pollution passes.
  assert.equal((await serve({ alerts: [alert] }).alerts())[0]!.reason, alert.reason);
});

test("login and enrollment are sent without a session token (an expired one would be refused); the rest with it", async () => {
  const seen: { method: string; url: string; auth: string | null }[] = [];
  const t = answering("{}", seen);
  for (const name of ["enroll", "challenge", "session", "passkeyOptions", "passkeySession"])
    await call(t, name).catch(() => undefined);
  assert.deepEqual(
    seen.map((s) => s.auth),
    [null, null, null, null, null],
  );
  seen.length = 0;
  await t.me().catch(() => undefined);
  assert.equal(seen[0]!.auth, "Bearer session-token");
});

test("a path that is not an instance of its contract route is a programming error, sent nowhere", async () => {
  const seen: { method: string; url: string; auth: string | null }[] = [];
  const t = answering("{}", seen);
  await assert.rejects(t.request("GET /v1/cables/:id", "/v1/documents/x"), /not an instance of GET \/v1\/cables\/:id/);
  assert.equal(seen.length, 0);
});
