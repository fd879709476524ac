/**
 * Valise-Directory-Size (issue 17 item 5): the directory log's head size a successful write's answer carries is
 * kept with the time it came, used only while recent, and taken only when it is a plain decimal number — a server's
 * malformed value or an error answer's header is ignored.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { HttpTransport } from "@valise/client";

function serverSaying(status: number, size: string | null): typeof fetch {
  return async () =>
    new Response(JSON.stringify({ id: "b-aaaaaaaaaaaaaaaaaaaaaaaaaa", size: 10, received: 0, complete: false }), {
      status,
      headers: { "content-type": "application/json", ...(size === null ? {} : { "valise-directory-size": size }) },
    });
}

test("the size a write's answer carries: kept while recent, only a decimal number, never from an error", async () => {
  for (const [status, header, want] of [
    [201, "42", 42],
    [201, "0", 0],
    [201, null, null],
    [201, "-1", null],
    [201, "1e3", null],
    [201, "042", null],
    [201, "9".repeat(16), null],
    [403, "42", null],
  ] as const) {
    const t = new HttpTransport("http://127.0.0.1:1", serverSaying(status, header));
    t.token = "t".repeat(20);
    await t.send("POST /v1/blobs", "/v1/blobs", { body: { size: 10 }, retry: false });
    assert.equal(t.recentDirectorySize(250), want, `status ${status}, header ${String(header)}`);
  }
  const t = new HttpTransport("http://127.0.0.1:1", serverSaying(201, "7"));
  await t.send("POST /v1/blobs", "/v1/blobs", { body: { size: 10 }, retry: false });
  assert.equal(t.recentDirectorySize(250), 7);
  t.directorySize = { size: 7, at: Date.now() - 251 };
  assert.equal(t.recentDirectorySize(250), null, "too old: asked for again");
});
