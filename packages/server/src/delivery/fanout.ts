/**
 * Push fan-out between the writer and the WebSocket hubs: in-process for one node; with several server nodes sharing
 * one PostgreSQL, `NatsFanout` (nats-fanout.ts) carries the same events between nodes.
 */
import type { AlertView } from "../detect/alert-store.js";

export type FanoutEvent =
  | {
      type: "message";
      conversationId: string;
      seq: number;
      kind: string;
      epoch: number;
      sender: string;
      payload: string;
      createdAt: number;
    }
  | { type: "inbox"; deviceId: string; id: number; conversationId: string }
  | { type: "membership"; conversationId: string }
  | { type: "device-revoked"; deviceId: string }
  /**
   * The directory log's served checkpoint grew to `size` (directory-watch.ts): every socket is told, so clients read
   * the log now (key transparency: new devices, members, units).
   */
  | { type: "directory"; size: number }
  /** A stored detection alert, pushed to security officers' sockets (see detect/). */
  | { type: "alert"; alert: AlertView }
  /**
   * Pushes may have been lost (the NATS fan-out noticed a gap or reconnected): drop cached state and have every
   * socket catch up from its sequence numbers.
   */
  | { type: "resync"; reason: string };

export interface Fanout {
  publish(events: FanoutEvent[]): void;
  subscribe(fn: (ev: FanoutEvent) => void): () => void;
  close(): Promise<void>;
}

export class InProcessFanout implements Fanout {
  private readonly subs = new Set<(ev: FanoutEvent) => void>();
  publish(events: FanoutEvent[]): void {
    for (const ev of events) for (const fn of this.subs) fn(ev);
  }
  subscribe(fn: (ev: FanoutEvent) => void): () => void {
    this.subs.add(fn);
    return () => this.subs.delete(fn);
  }
  async close(): Promise<void> {
    this.subs.clear();
  }
}
