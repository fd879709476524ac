/**
 * Key-transparency push (issue 18): when the directory log's served (witness-cosigned) checkpoint grows, the server
 * pushes `{"type":"directory","size":N}` to every socket; a listening device with key transparency reads the log at
 * once — a new device of its own account is reported within seconds, not at its next timer (set to 10 minutes here)
 * — and does nothing else for that frame (no conversation catch-up, no cable queue read).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import type { MinimalWebSocket, ReceivedItem, WebSocketFactory } from "@valise/client";
import { world } from "./helpers.js";

/** A WebSocket factory that logs every frame received. */
function spying(inner: WebSocketFactory, got: Record<string, unknown>[]): WebSocketFactory {
  return (url) => {
    const ws = inner(url);
    const w: MinimalWebSocket = {
      send: (d) => ws.send(d),
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
  "a new device of the listening user is reported as soon as the log's checkpoint grows (pushed), by a log read only",
  {
    timeout: 60_000,
  },
  async () => {
    const { nodeWebSocket } = await import("@valise/client/node/websocket");
    const w = await world("sqlite", [{ handle: "pdvorak", units: ["EMB/BEIJING"], clearance: "SECRET/ASIA" }], {
      transparency: true,
    });
    const requests: { at: number; path: string }[] = [];
    const recording: typeof fetch = async (input, init) => {
      const u = new URL(typeof input === "string" ? input : input instanceof URL ? input.href : input.url);
      requests.push({ at: Date.now(), path: u.pathname });
      return fetch(input, init);
    };
    let sub: { close(): void } | undefined;
    try {
      const laptop = await w.enroll("pdvorak", "laptop", recording);
      await laptop.sync();
      const frames: Record<string, unknown>[] = [];
      const items: ReceivedItem[] = [];
      let wake: (() => void) | undefined;
      sub = await laptop.listen(
        spying(nodeWebSocket, frames),
        (got) => {
          items.push(...got);
          wake?.();
        },
        { monitorMs: 600_000 },
      );
      // The connect catch-up settles first.
      await new Promise((r) => setTimeout(r, 500));
      const t0 = Date.now();
      const phone = await w.enroll("pdvorak", "phone");
      const alert = () => items.find((i) => i.type === "alert" && i.text.includes(phone.deviceId));
      const deadline = Date.now() + 15_000;
      while (!alert() && Date.now() < deadline)
        await new Promise<void>((r) => {
          wake = r;
          setTimeout(r, 100);
        });
      assert.ok(alert(), `new device reported: ${JSON.stringify(items)} frames ${JSON.stringify(frames)}`);
      const frame = frames.find((f) => f.type === "directory");
      assert.ok(frame && typeof frame.size === "number", `a directory frame: ${JSON.stringify(frames)}`);
      // What the laptop asked for after the push: the log (and its session), not a full catch-up.
      const after = requests.filter((r) => r.at >= t0).map((r) => r.path);
      assert.ok(after.length > 0 && after.some((p) => p.startsWith("/v1/log/")), after.join(" "));
      assert.deepEqual(
        after.filter((p) => p === "/v1/conversations" || p.startsWith("/v1/cables") || p.startsWith("/v1/inbox")),
        [],
        after.join(" "),
      );
    } finally {
      sub?.close();
      await w.close();
    }
  },
);
