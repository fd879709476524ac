/**
 * The WebSocket send path (`{"type":"send",…}` frames) applies exactly the checks of POST …/messages: acks carry the
 * sequence number, bad frames get error frames with stable codes, idempotency keys dedupe, and a device revoked
 * from another process is cut off on its next frame.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { toBase64 } from "@valise/core";
import { world } from "./helpers.js";

type Frame = { type: string; ref?: number; seq?: number; code?: string; duplicate?: boolean };

function connect(
  url: string,
  token: string,
): Promise<{ ws: WebSocket; next(): Promise<Frame>; closed: Promise<number> }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${url.replace("http", "ws")}/v1/ws`);
    const queue: Frame[] = [];
    const waiters: ((f: Frame) => void)[] = [];
    const closed = new Promise<number>((r) => ws.on("close", (code) => r(code)));
    ws.on("message", (raw: Buffer) => {
      const f = JSON.parse(raw.toString("utf8")) as Frame;
      if (f.type === "ready") return resolve({ ws, next, closed });
      if (f.type === "message" || f.type === "inbox") return; // pushes are not answers
      const w = waiters.shift();
      if (w) w(f);
      else queue.push(f);
    });
    ws.once("open", () => ws.send(JSON.stringify({ type: "auth", token })));
    ws.once("error", reject);
    function next(): Promise<Frame> {
      const f = queue.shift();
      return f ? Promise.resolve(f) : new Promise((r) => waiters.push(r));
    }
  });
}

test(
  "WebSocket send: ack with seq, duplicate on retry, error frames for bad input, cut off after revocation",
  { timeout: 60_000 },
  async () => {
    const w = await world("sqlite", [
      { handle: "jnovak", units: ["HQ/ASIA-1"], clearance: "SECRET/ASIA" },
      { handle: "pdvorak", units: ["EMB/BEIJING"], clearance: "CONFIDENTIAL/ASIA" },
    ]);
    try {
      const a = await w.enroll("jnovak");
      const b = await w.enroll("pdvorak");
      const { conversation } = await a.send("pdvorak", "hello", "CONFIDENTIAL/ASIA");
      await b.sync();
      // A real MLS application message of a's, at the current epoch (the server cannot and does not decrypt it).
      const log = await w.server.store.conversations.fetch(conversation, 0, 100, { joinedSeq: 1, leftSeq: null });
      const app = log.filter((m) => m.kind === "application").at(-1)!;
      const c = await connect(w.server.url, a.transport.token!);
      const payload = toBase64(app.payload);
      c.ws.send(JSON.stringify({ type: "send", ref: 1, conversation, idempotencyKey: "ws-key-00001", payload }));
      const ack = await c.next();
      assert.equal(ack.type, "ack");
      assert.equal(ack.ref, 1);
      assert.equal(ack.seq, app.seq + 1);
      c.ws.send(JSON.stringify({ type: "send", ref: 2, conversation, idempotencyKey: "ws-key-00001", payload }));
      const dup = await c.next();
      assert.equal(dup.seq, ack.seq);
      assert.equal(dup.duplicate, true);

      const bad: [Record<string, unknown>, string][] = [
        [
          {
            type: "send",
            ref: 3,
            conversation,
            idempotencyKey: "ws-key-00003",
            payload: toBase64(new Uint8Array([1, 2, 3])),
          },
          "protocol_error",
        ],
        [{ type: "send", ref: 4, conversation, idempotencyKey: "ws-key-00004", payload: "!!!" }, "bad_encoding"],
        [
          { type: "send", ref: 5, conversation: "c-doesnotexist0", idempotencyKey: "ws-key-00005", payload },
          "bad_request",
        ],
        [{ type: "send", ref: 6, conversation, idempotencyKey: "short", payload }, "bad_request"],
        [{ type: "send", ref: 7, conversation }, "bad_request"],
      ];
      for (const [frame, code] of bad) {
        c.ws.send(JSON.stringify(frame));
        const e = await c.next();
        assert.equal(e.type, "error", JSON.stringify(frame));
        assert.equal(e.code, code, JSON.stringify(frame));
        assert.equal(e.ref, frame.ref);
      }
      // b is not allowed to post into a conversation it is not in… it is in this one; use a third party instead.
      await w.server.store.directory.revokeDevice(a.deviceId);
      c.ws.send(JSON.stringify({ type: "send", ref: 8, conversation, idempotencyKey: "ws-key-00008", payload }));
      assert.equal(await c.closed, 4001, "revoked device's socket is closed on its next frame");
      const head = (await w.server.store.conversations.get(conversation))!.headSeq;
      assert.equal(head, ack.seq, "nothing was appended after the revocation");
    } finally {
      await w.close();
    }
  },
);
