/**
 * Live updates over the server's WebSocket: authenticate with the first frame, then every pushed event triggers a
 * catch-up (push is at-least-once and only a hint: the ordered log is the truth, and sync dedupes by sequence number).
 * The WebSocket constructor is injected: the browser's global, or `ws` on Node (see ./node/websocket.ts).
 */
import type { ServerAlert } from "./transport.js";

export interface MinimalWebSocket {
  send(data: string): void;
  close(): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: unknown) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}
export type WebSocketFactory = (url: string) => MinimalWebSocket;

export interface PushEvent {
  type: string;
  conversationId?: string;
  seq?: number;
}

/** A pushed detection alert (officers' sockets only): `{"type":"alert", …ServerAlert}`. */
export type AlertFrame = PushEvent & ServerAlert & { type: "alert" };

export function isAlertFrame(ev: PushEvent): ev is AlertFrame {
  const a = ev as Partial<AlertFrame>;
  return ev.type === "alert" && typeof a.id === "number" && typeof a.rule === "string" && Array.isArray(a.events);
}

export function pushUrl(serverUrl: string): string {
  const u = new URL("/v1/ws", serverUrl);
  u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
  return u.toString();
}

/** Opens the push channel; resolves once the server confirmed authentication. */
export function openPush(
  factory: WebSocketFactory,
  serverUrl: string,
  token: string,
  onEvent: (ev: PushEvent) => void,
): Promise<{ close(): void }> {
  return new Promise((resolve, reject) => {
    const ws = factory(pushUrl(serverUrl));
    let ready = false;
    ws.onopen = () => ws.send(JSON.stringify({ type: "auth", token }));
    ws.onmessage = (m) => {
      let ev: PushEvent;
      try {
        ev = JSON.parse(typeof m.data === "string" ? m.data : String(m.data)) as PushEvent;
      } catch {
        return; // a malformed frame is ignored: the log, not the push, is authoritative
      }
      if (!ready && ev.type === "ready") {
        ready = true;
        resolve({ close: () => ws.close() });
        return;
      }
      if (ready) onEvent(ev);
    };
    ws.onerror = () => {
      if (!ready) reject(new Error("push channel failed"));
    };
    ws.onclose = () => {
      if (!ready) reject(new Error("push channel closed before authentication"));
    };
  });
}
