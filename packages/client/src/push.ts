/**
 * Live updates over the server's WebSocket: authenticate with the first frame; a pushed message carries the message
 * itself (`{type:"message", conversationId, seq, kind, epoch, sender, payload, createdAt}`), which the client applies
 * directly when it is the next one of that conversation (otherwise it fetches that conversation only). Push is
 * at-least-once and only a hint: the ordered log is the truth, and the client dedupes by sequence number.
 * The same socket sends MLS messages (`send` frames, answered by `ack`/`error` with the frame's `ref`).
 * The WebSocket constructor is injected: the browser's global, or `ws` on Node (see ./node/websocket.ts).
 */
import { ValiseError, fromBase64, toBase64, type ValiseErrorCode } from "@valise/core";
import type { AppendAnswer, ServerAlert, ServerMessage } from "./transport.js";

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
  kind?: string;
  epoch?: number;
  sender?: string;
  payload?: string;
  createdAt?: number;
}

/** The message a `message` push carries, if the frame is well formed (else null: fetch it instead). */
export function pushedMessage(ev: PushEvent): ServerMessage | null {
  const { seq, kind, epoch, sender, payload, createdAt } = ev;
  if (ev.type !== "message" || typeof ev.conversationId !== "string") return null;
  if (!Number.isSafeInteger(seq) || !Number.isSafeInteger(epoch) || !Number.isSafeInteger(createdAt)) return null;
  if (kind !== "application" && kind !== "commit" && kind !== "proposal") return null;
  if (typeof sender !== "string" || typeof payload !== "string") return null;
  try {
    return { seq: seq!, kind, epoch: epoch!, sender, payload: fromBase64(payload), createdAt: createdAt! };
  } catch {
    return null;
  }
}

/** An open push channel; it also sends MLS messages while open (see `sendMessage`). */
export interface PushChannel {
  close(): void;
  /** Open and authenticated: sends go over it. */
  readonly open: boolean;
  /**
   * Posts an MLS message as a `send` frame (the same acceptance as POST …/messages). Resolves with the server's ack;
   * rejects with the server's error (its code and details), or `transport_error` if the socket closes first.
   */
  sendMessage(conversation: string, message: Uint8Array, idempotencyKey: string): Promise<AppendAnswer>;
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
): Promise<PushChannel> {
  return new Promise((resolve, reject) => {
    const ws = factory(pushUrl(serverUrl));
    let ready = false;
    let open = false;
    let ref = 0;
    const pending = new Map<number, { resolve: (a: AppendAnswer) => void; reject: (e: Error) => void }>();
    const channel: PushChannel = {
      close: () => ws.close(),
      get open() {
        return open;
      },
      sendMessage(conversation, message, idempotencyKey) {
        if (!open) return Promise.reject(new ValiseError("transport_error", "the push channel is closed"));
        const r = ++ref;
        return new Promise<AppendAnswer>((res, rej) => {
          pending.set(r, { resolve: res, reject: rej });
          ws.send(JSON.stringify({ type: "send", ref: r, conversation, idempotencyKey, payload: toBase64(message) }));
        });
      },
    };
    ws.onopen = () => ws.send(JSON.stringify({ type: "auth", token }));
    ws.onmessage = (m) => {
      let ev: PushEvent & { ref?: unknown; code?: unknown; message?: unknown; duplicate?: unknown };
      try {
        ev = JSON.parse(typeof m.data === "string" ? m.data : String(m.data)) as typeof ev;
      } catch {
        return; // a malformed frame is ignored: the log, not the push, is authoritative
      }
      if (!ev || typeof ev !== "object") return;
      if (!ready && ev.type === "ready") {
        ready = open = true;
        resolve(channel);
        return;
      }
      if ((ev.type === "ack" || ev.type === "error") && typeof ev.ref === "number") {
        const p = pending.get(ev.ref);
        if (!p) return;
        pending.delete(ev.ref);
        if (ev.type === "ack" && Number.isSafeInteger(ev.seq) && Number.isSafeInteger(ev.epoch))
          p.resolve({ seq: ev.seq!, epoch: ev.epoch!, duplicate: ev.duplicate === true });
        else {
          const { type: _t, ref: _r, code, message, ...details } = ev;
          p.reject(
            new ValiseError(
              (typeof code === "string" ? code : "protocol_error") as ValiseErrorCode,
              typeof message === "string" ? message : "the server refused the message",
              details,
            ),
          );
        }
        return;
      }
      if (ready) onEvent(ev);
    };
    ws.onerror = () => {
      if (!ready) reject(new Error("push channel failed"));
    };
    ws.onclose = () => {
      open = false;
      for (const p of pending.values()) p.reject(new ValiseError("transport_error", "the push channel closed"));
      pending.clear();
      if (!ready) reject(new Error("push channel closed before authentication"));
    };
  });
}
