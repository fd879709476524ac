/**
 * Fan-out between several server nodes over NATS (`valise serve --nats URL`): every event a node publishes (message
 * pushes, inbox nudges, membership changes, alerts, …) is delivered to its own WebSocket hub at once and published on
 * one NATS subject; every other node hands what it receives to its hub. The events travel as the same JSON the hub
 * gets in-process: this layer never looks inside them.
 *
 * PostgreSQL stays the source of truth; NATS (core, at-most-once) only makes pushes prompt. A lost NATS message
 * only delays: each node numbers what it publishes and sends its counter as a heartbeat every `heartbeatMs`, so a
 * receiver notices a gap (a lost message, a dropped connection, a node that published while this one was cut off)
 * within a heartbeat, and then hands its hub a `resync` event: the hub drops its cached memberships and tells every
 * socket to catch up from its sequence numbers (clients read the ordered log, which has everything). The same
 * happens after every (re)connection to NATS. An event too large for the server's max_payload is not sent: the
 * receivers see its number missing and resync.
 */
import { randomBytes } from "node:crypto";
import { connect, Events, type NatsConnection, type Subscription } from "nats";
import type { Fanout, FanoutEvent } from "./fanout.js";

export const DEFAULT_NATS_SUBJECT = "valise.fanout";

export interface NatsFanoutOptions {
  /** NATS server URL(s), e.g. nats://127.0.0.1:4222 (comma-separated for several). */
  servers: string;
  /** The subject every node of one deployment shares; default "valise.fanout". */
  subject?: string;
  /** How often a node sends its counter (gap detection for a lost last message); default 1000 ms. */
  heartbeatMs?: number;
  /** Wait between reconnection attempts; default 500 ms. */
  reconnectWaitMs?: number;
  /** This node's name in NATS (monitoring); default valise-<random>. */
  name?: string;
  log?: {
    info(msg: string, data?: Record<string, unknown>): void;
    warn(msg: string, data?: Record<string, unknown>): void;
  };
}

interface Wire {
  /** The publishing node (random per process). */
  o: string;
  /** Its counter: the number of the last event batch it published (a heartbeat repeats it). */
  n: number;
  /** The events; absent in a heartbeat. */
  e?: FanoutEvent[];
}

const enc = new TextEncoder();
const dec = new TextDecoder();

export class NatsFanout implements Fanout {
  readonly nodeId = randomBytes(8).toString("hex");
  private readonly subs = new Set<(ev: FanoutEvent) => void>();
  private readonly subject: string;
  private nc: NatsConnection | null = null;
  private sub: Subscription | null = null;
  private counter = 0;
  /** Per publishing node: the last counter seen and when. */
  private readonly seen = new Map<string, { n: number; at: number }>();
  private heartbeat: NodeJS.Timeout | null = null;
  private closed = false;

  /** Gaps noticed and resyncs handed to the hub (tests, metrics). */
  gaps = 0;
  connected = false;

  constructor(private readonly o: NatsFanoutOptions) {
    this.subject = o.subject ?? DEFAULT_NATS_SUBJECT;
    // Connecting never holds the server up: until NATS answers, this node pushes to its own sockets only.
    void this.run().catch((e: unknown) =>
      o.log?.warn("NATS fan-out stopped", { err: e instanceof Error ? e.message : String(e) }),
    );
  }

  /** Resolves once connected to NATS the first time (or closed). */
  async ready(timeoutMs = 10_000): Promise<boolean> {
    const t0 = Date.now();
    while (!this.connected && !this.closed && Date.now() - t0 < timeoutMs) await new Promise((r) => setTimeout(r, 20));
    return this.connected;
  }

  private async run(): Promise<void> {
    const nc = await connect({
      servers: this.o.servers.split(",").map((s) => s.trim()),
      name: this.o.name ?? `valise-${this.nodeId}`,
      noEcho: true, // our own events were delivered locally already
      waitOnFirstConnect: true,
      maxReconnectAttempts: -1,
      reconnectTimeWait: this.o.reconnectWaitMs ?? 500,
      pingInterval: 5_000,
      maxPingOut: 2,
    });
    if (this.closed) {
      await nc.close();
      return;
    }
    this.nc = nc;
    this.connected = true;
    this.o.log?.info("NATS fan-out connected", { server: nc.getServer(), subject: this.subject });
    this.sub = nc.subscribe(this.subject, {
      callback: (err, msg) => {
        if (err) return;
        this.receive(msg.data);
      },
    });
    this.heartbeat = setInterval(() => this.send({ o: this.nodeId, n: this.counter }), this.o.heartbeatMs ?? 1000);
    this.heartbeat.unref();
    this.resync("connected");
    void (async () => {
      for await (const s of nc.status()) {
        if (this.closed) break;
        if (s.type === Events.Disconnect) {
          this.connected = false;
          this.o.log?.warn("NATS fan-out disconnected; pushes from other nodes wait for catch-up", {});
        } else if (s.type === Events.Reconnect) {
          this.connected = true;
          this.o.log?.info("NATS fan-out reconnected", { server: nc.getServer() });
          // Whatever other nodes published meanwhile is lost to us: have the clients catch up.
          this.seen.clear();
          this.resync("reconnected");
        }
      }
    })();
  }

  publish(events: FanoutEvent[]): void {
    if (events.length === 0) return;
    for (const ev of events) this.deliver(ev);
    if (!this.nc || this.closed) return;
    // Batches are split below the server's max_payload; an event that alone exceeds it is skipped (its number goes
    // unused, so receivers resync).
    const limit = Math.max(4096, (this.nc.info?.max_payload ?? 1024 * 1024) - 256);
    let batch: string[] = [];
    let size = 0;
    const flush = () => {
      if (batch.length === 0) return;
      const text = `{"o":"${this.nodeId}","n":${++this.counter},"e":[${batch.join(",")}]}`;
      batch = [];
      size = 0;
      this.sendRaw(text);
    };
    for (const ev of events) {
      const s = JSON.stringify(ev);
      if (s.length + 64 > limit) {
        flush();
        this.counter++; // a hole the receivers notice
        this.o.log?.warn("event too large for NATS max_payload; other nodes resync instead", { bytes: s.length });
        continue;
      }
      if (size + s.length + 64 > limit) flush();
      batch.push(s);
      size += s.length + 1;
    }
    flush();
  }

  subscribe(fn: (ev: FanoutEvent) => void): () => void {
    this.subs.add(fn);
    return () => this.subs.delete(fn);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.subs.clear();
    const nc = this.nc;
    this.nc = null;
    if (nc && !nc.isClosed()) await nc.drain().catch(() => nc.close());
    // Still trying to connect for the first time: run() closes the connection if it ever comes.
  }

  private deliver(ev: FanoutEvent): void {
    for (const fn of this.subs) {
      try {
        fn(ev);
      } catch (e) {
        this.o.log?.warn("fan-out subscriber failed", { err: e instanceof Error ? e.message : String(e) });
      }
    }
  }

  private resync(reason: string): void {
    this.gaps++;
    this.deliver({ type: "resync", reason });
  }

  private send(w: Wire): void {
    this.sendRaw(JSON.stringify(w));
  }

  private sendRaw(text: string): void {
    try {
      this.nc?.publish(this.subject, enc.encode(text));
    } catch (e) {
      // Closed or draining: the receivers notice the missing number and resync.
      this.o.log?.warn("NATS publish failed", { err: e instanceof Error ? e.message : String(e) });
    }
  }

  private receive(data: Uint8Array): void {
    let w: Wire;
    try {
      w = JSON.parse(dec.decode(data)) as Wire;
    } catch {
      return;
    }
    if (typeof w?.o !== "string" || !Number.isSafeInteger(w.n) || w.o === this.nodeId) return;
    const now = Date.now();
    const prev = this.seen.get(w.o);
    const events = Array.isArray(w.e) ? w.e : null;
    // A batch must be the next number; a heartbeat repeats the last one. A node seen for the first time (or again
    // after a long silence: a restarted node has a new id) sets the baseline.
    if (prev && w.n !== prev.n + (events ? 1 : 0) && w.n > prev.n) this.resync(`gap from node ${w.o}`);
    if (!prev || w.n > prev.n) this.seen.set(w.o, { n: w.n, at: now });
    else prev.at = now;
    if (this.seen.size > 64) for (const [k, v] of this.seen) if (now - v.at > 60_000) this.seen.delete(k);
    if (events) for (const ev of events) this.deliver(ev);
  }
}
