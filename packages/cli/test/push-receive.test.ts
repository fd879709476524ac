/**
 * Receiving what is pushed (issue 17): a listening device applies a pushed message from the frame itself — no
 * request to the server between the push and the message being handed over — while a message that arrives after a
 * gap is fetched for its conversation only; the sending device's own socket gets no push of its message; and a
 * listening device sends over its WebSocket (no POST …/messages).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import type { MinimalWebSocket, WebSocketFactory } from "@valise/client";
import { world, texts } from "./helpers.js";

const ASIA = "CONFIDENTIAL/ASIA";
const people = [
  { handle: "jnovak", units: ["HQ/ASIA"], clearance: "SECRET/ASIA" },
  { handle: "pdvorak", units: ["EMB/BEIJING"], clearance: "SECRET/ASIA" },
];

/** A WebSocket factory that logs every frame received and sent (by type). */
function spying(inner: WebSocketFactory, got: Record<string, unknown>[], sent: string[]): WebSocketFactory {
  return (url) => {
    const ws = inner(url);
    const w: MinimalWebSocket = {
      send: (d) => {
        sent.push((JSON.parse(d) as { type: string }).type);
        ws.send(d);
      },
      close: () => ws.close(),
      onopen: null,
      onmessage: null,
      onclose: null,
      onerror: null,
    };
    ws.onopen = (e) => w.onopen?.(e);
    ws.onmessage = (e) => {
      got.push(JSON.parse(String(e.data)) as Record<string, unknown>);
      w.onmessage?.(e);
    };
    ws.onclose = (e) => w.onclose?.(e);
    ws.onerror = (e) => w.onerror?.(e);
    return w;
  };
}

test(
  "a pushed message is applied from the frame; the sender's socket gets no echo; sends go over the socket",
  {
    timeout: 60_000,
  },
  async () => {
    const { nodeWebSocket } = await import("@valise/client/node/websocket");
    const w = await world("sqlite", people);
    const requests: { who: string; method: string; path: string }[] = [];
    const recording =
      (who: string): typeof fetch =>
      async (input, init) => {
        const u = new URL(typeof input === "string" ? input : input instanceof URL ? input.href : input.url);
        requests.push({ who, method: init?.method ?? "GET", path: u.pathname });
        return fetch(input, init);
      };
    const closers: { close(): void }[] = [];
    try {
      const a = await w.enroll("jnovak", "laptop", recording("a"));
      const b = await w.enroll("pdvorak", "laptop", recording("b"));
      const setup = await a.send("pdvorak", "setup", ASIA);
      await b.sync();

      const aGot: Record<string, unknown>[] = [];
      const aSent: string[] = [];
      const bGot: Record<string, unknown>[] = [];
      const received: string[] = [];
      let wake: (() => void) | undefined;
      closers.push(await a.listen(spying(nodeWebSocket, aGot, aSent), () => {}));
      closers.push(
        await b.listen(spying(nodeWebSocket, bGot, []), (items) => {
          received.push(...texts(items));
          wake?.();
        }),
      );
      const until = async (n: number) => {
        const deadline = Date.now() + 20_000;
        while (received.length < n && Date.now() < deadline) await new Promise<void>((r) => (wake = r));
      };
      // The catch-ups on connecting are done: no request from either device for half a second.
      for (let seen = -1, i = 0; seen !== requests.length && i < 100; i++) {
        seen = requests.length;
        await new Promise((r) => setTimeout(r, 500));
      }

      requests.length = 0;
      await a.send("pdvorak", "pushed", ASIA);
      await until(1);
      assert.deepEqual(received, ["pushed"]);
      const bRequests = requests.filter((r) => r.who === "b");
      assert.deepEqual(bRequests, [], "the receiver asked the server nothing: the push carried the message");
      assert.ok(
        !requests.some((r) => r.who === "a" && r.method === "POST" && r.path.endsWith("/messages")),
        "the listening sender sent over its socket, not POST …/messages",
      );
      assert.ok(aSent.includes("send"), "a send frame went over the socket");
      assert.ok(
        !aGot.some((f) => f.type === "message" && f.conversationId === setup.conversation),
        "the sending device's socket got no push of its own message",
      );
      assert.ok(bGot.some((f) => f.type === "message" && f.conversationId === setup.conversation));

      // A message the receiver missed (sent while its socket did not deliver): the next push fetches that conversation
      // only — the missed message and the new one, in order.
      closers.pop()!.close();
      await a.send("pdvorak", "missed", ASIA);
      closers.push(
        await b.listen(spying(nodeWebSocket, bGot, []), (items) => {
          received.push(...texts(items));
          wake?.();
        }),
      );
      await until(2); // the catch-up on (re)connecting delivers it
      assert.deepEqual(received, ["pushed", "missed"]);
      await a.send("pdvorak", "after", ASIA);
      await until(3);
      assert.deepEqual(received, ["pushed", "missed", "after"]);
    } finally {
      for (const c of closers) c.close();
      await w.close();
    }
  },
);
