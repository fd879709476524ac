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
