/**
 * Online detection (DESIGN.md §1 T3, §3 "Detection"): the engine of @valise/detect consumes the audit log as it is
 * written. The detector tails the log — every `intervalMs` (1 s), and soon after the audit recorder has written a
 * batch (a cheap notify, coalesced) — reads the entries after the last processed index in log order, parses them
 * (`parseAuditEvent`: only canonical leaves), pushes them into the engine, and stores the alerts it raises at once
 * (after each step of `chunk` entries), on their own (see AlertStore). Alerts actually stored (not already there)
 * are then handed to `publish` (WebSocket push to officers) and to the webhooks, neither of which can hold the
 * tailer up.
 *
 * The engine's snapshot and the position it belongs to are saved only every `stateIntervalMs` (and at shutdown),
 * never ahead of their alerts: the snapshot grows with the number of users (megabytes, serialised on the event
 * loop), so it is not written with every alert. Restart: the engine is restored from the stored snapshot and
 * continues at the stored index, so baselines are kept; a crash replays the stretch after the stored state, which
 * raises the same alerts again (the engine is deterministic; see the detector-save test), and those are dropped by
 * the unique key (rule, actor, triggering event) and so not published again.
 *
 * Training: the first `trainDays` UTC days from the first audit event only train the baselines, except that rules
 * of severity `critical` (the canary rule) alert from the first event on (EngineOptions.trainingSeverities).
 */
import { parseAuditEvent } from "@valise/core";
import type { AuditEvent } from "@valise/core";
import { DetectionEngine, parseEvent, type Alert, type EngineOptions, type Rule } from "@valise/detect";
import { promisify } from "node:util";
import { gunzip, gzip } from "node:zlib";
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import type { AuditLog } from "../storage/audit-log.js";
import { AlertStore, type AlertView, type NewAlert } from "./alert-store.js";
import type { WebhookSender } from "./webhooks.js";

export interface DetectorLog {
  info(msg: string, data?: Record<string, unknown>): void;
  warn(msg: string, data?: Record<string, unknown>): void;
  error(msg: string, data?: Record<string, unknown>): void;
}

export interface DetectorOptions {
  audit: AuditLog;
  alerts: AlertStore;
  rules: Rule[];
  /** UTC days from the first audit event that only train (default 14); critical rules alert anyway. */
  trainDays?: number;
  now: () => number;
  /** Called with every newly stored alert (after its transaction committed). Must not throw or block. */
  publish?: (alerts: AlertView[]) => void;
  webhooks?: WebhookSender;
  registry?: Registry;
  log?: DetectorLog;
  /** Poll interval (default 1000 ms). */
  intervalMs?: number;
  /** Delay between a notify and the tick it triggers (coalesces bursts; default 100 ms). */
  notifyDelayMs?: number;
  /**
   * Save the engine's state and position this often while events arrive (default 10 s); alerts are stored at once
   * regardless. A crash replays at most this stretch (plus the time of one save).
   */
  stateIntervalMs?: number;
  /**
   * Whether a user holds the officer role now. An officer's own write of a canary (marking it, `PUT
   * /v1/documents/:id/canary`, audited as a canary-flagged `document.write`) is not a touch: its canary-touch alert
   * is dropped. Reads stay alerts, whoever makes them.
   */
  isOfficer?: (handle: string) => Promise<boolean>;
  /**
   * Audit entries read and pushed per step (default 250, about 6 ms of engine work): the detector yields to the
   * event loop between steps, so requests are not held up behind a long backlog.
   */
  chunk?: number;
  /**
   * The directory's unit time zones (`valise admin unit tz`): unit → IANA zone. Read at start and again at most every
   * 10 s while events arrive; hours of day are profiled in the zone of each person's post.
   */
  timeZones?: () => Promise<Record<string, string>>;
  /** Allies' indicators (incidents/ioc-service.ts): matched against every event processed, from its index on. */
  iocs?: { liveMatch(e: AuditEvent, logIndex: number): Alert | null };
}

/**
 * The stored state's format: 2 = {"v":2,"engine":"<base64 of the gzip of the engine's snapshot JSON>"}; 1 (still
 * read) = {"v":1,"engine":<the snapshot>}. A server of before version 2 reads a v2 state as unusable (baselines
 * start afresh from its position), it does not fail.
 */
const SNAPSHOT_VERSION = 2;
/** The longest stretch of snapshot serialisation between two yields to the event loop (ms). */
const SLICE_MS = 10;
const gzipAsync = promisify(gzip);
const gunzipAsync = promisify(gunzip);

function detectMetrics(registry?: Registry) {
  const registers = registry ? [registry] : [];
  return {
    events: new Counter({
      name: "valise_detect_events_total",
      help: "Audit events pushed into the detection engine",
      registers,
    }),
    badEvents: new Counter({
      name: "valise_detect_bad_events_total",
      help: "Audit log entries the detector could not parse (skipped)",
      registers,
    }),
    alerts: new Counter({
      name: "valise_alerts_total",
      help: "Alerts stored",
      labelNames: ["severity"],
      registers,
    }),
    backlog: new Gauge({
      name: "valise_detect_backlog",
      help: "Audit log entries not yet processed by the detector",
      registers,
    }),
    delay: new Histogram({
      name: "valise_alert_delay_seconds",
      help: "From the triggering audit event's time to the alert being stored",
      buckets: [0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300],
      registers,
    }),
    errors: new Counter({
      name: "valise_detect_errors_total",
      help: "Detector ticks that failed (retried on the next tick)",
      registers,
    }),
    webhooks: new Counter({
      name: "valise_alert_webhook_total",
      help: "Alert webhook deliveries by outcome (ok, retry, failed, dropped)",
      labelNames: ["outcome"],
      registers,
    }),
  };
}
export type DetectMetrics = ReturnType<typeof detectMetrics>;

export interface DetectionLearning {
  /** The end of training (ISO), or null before the first audit event. */
  until: string | null;
  trainDays: number;
  /** Still learning: only critical rules alert. */
  active: boolean;
  /** How working hours are profiled. */
  hours: string;
}

const HOURS_NOTE =
  "working hours are profiled per person in the time zone of their post (valise admin unit tz; UTC for units " +
  "without one), daylight saving included";

export class Detector {
  readonly metrics: DetectMetrics;
  private engine!: DetectionEngine;
  private readonly engineOpts: EngineOptions;
  /** Audit entries below this index have been pushed into the engine. */
  private next = 0;
  /** The index of the stored state (what the next commit must find). */
  private saved = 0;
  private lastSave = 0;
  /** A state save being compressed and written (the tick goes on meanwhile). */
  private writing: Promise<void> | null = null;
  /** A background save found the stored state moved on: reload at the next tick. */
  private moved = false;
  /** Bumped by every reload: a background save of an older engine does not touch the new one's position. */
  private generation = 0;
  /** When the unit time zones were last read (-Infinity: never). */
  private lastZones = -Infinity;
  private pending: NewAlert[] = [];
  /** Alerts found outside the engine (the retroactive search of allies' indicators), stored on the next tick. */
  private external: NewAlert[] = [];
  private busy = false;
  private again = false;
  private current: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | null = null;
  private soon: NodeJS.Timeout | null = null;
  private stopping = false;
  private readonly intervalMs: number;
  private readonly notifyDelayMs: number;
  private readonly stateIntervalMs: number;
  private readonly chunk: number;

  constructor(private readonly o: DetectorOptions) {
    this.metrics = detectMetrics(o.registry);
    this.engineOpts = { rules: o.rules, trainDays: o.trainDays ?? 14, trainingSeverities: ["critical"] };
    this.intervalMs = o.intervalMs ?? 1000;
    this.notifyDelayMs = o.notifyDelayMs ?? 100;
    this.stateIntervalMs = o.stateIntervalMs ?? 10_000;
    this.chunk = o.chunk ?? 250;
  }

  /**
   * Whether the baselines are still learning (until the end of the training days counted from the first audit
   * event's UTC day; before any event, `until` is null): officers are shown "learning until DATE" next to alerts,
   * since only critical rules (canaries) alert until then.
   */
  learning(now: number): DetectionLearning {
    const until = this.engine?.trainUntil ?? null;
    return {
      until: until === null ? null : new Date(until).toISOString(),
      trainDays: this.engineOpts.trainDays ?? 14,
      active: until === null || now < until,
      hours: HOURS_NOTE,
    };
  }

  /** Stores alerts found elsewhere (retroactive indicator matches) with the detector's next commit; ticks soon. */
  addExternal(alerts: NewAlert[]): void {
    this.external.push(...alerts);
    this.kick();
  }

  /** The audit index up to which events have been processed. */
  get position(): number {
    return this.next;
  }

  /** Loads the stored state and starts tailing (the first catch-up runs in the background). */
  async start(): Promise<void> {
    this.stopping = false;
    await this.reload();
    this.timer = setInterval(() => this.kick(), this.intervalMs);
    this.timer.unref();
    this.kick();
  }

  /**
   * Loads the stored state without tailing: a node that is not the cluster's leader (only the leader runs the
   * detector) still answers "learning until" from the state the leader stored.
   */
  async peek(): Promise<void> {
    if (this.timer === null && !this.busy) await this.reload();
  }

  /** Whether the detector is tailing (started and not stopped). */
  get running(): boolean {
    return this.timer !== null;
  }

  /** The audit log has grown: tick soon (coalesced; cheap enough to call for every written batch). */
  notify(): void {
    if (this.soon !== null || this.stopping || this.timer === null) return;
    this.soon = setTimeout(() => {
      this.soon = null;
      this.kick();
    }, this.notifyDelayMs);
    this.soon.unref();
  }

  /** Processes everything written so far (for tests and shutdown); resolves when caught up. */
  async drain(): Promise<void> {
    this.kick();
    await this.current;
    if (this.busy || this.again) await this.drain();
    else if (this.writing) await this.writing;
  }

  /** Stops the webhook sender (at shutdown, after `stop(false)` or on a node that never ran the detector). */
  async close(): Promise<void> {
    await this.o.webhooks?.stop();
  }

  /**
   * Stops tailing and saves the state. `final` (default) also stops the webhook sender; a node that only lost the
   * cluster's leadership passes false (it may be elected again).
   */
  async stop(final = true): Promise<void> {
    this.stopping = true;
    if (this.timer) clearInterval(this.timer);
    if (this.soon) clearTimeout(this.soon);
    this.timer = this.soon = null;
    await this.current;
    try {
      // What was written up to now (requests are done by the time the app closes), if it is a short stretch.
      await this.catchUp(this.chunk * 10);
      await this.storePending();
      await this.saveState(true);
    } catch (e) {
      this.o.log?.error("detector: saving the state on shutdown failed", { err: String(e) });
    }
    if (final) await this.o.webhooks?.stop();
  }

  private kick(): void {
    if (this.busy) {
      this.again = true;
      return;
    }
    this.busy = true;
    this.current = (async () => {
      try {
        do {
          this.again = false;
          await this.catchUp();
        } while (this.again && !this.stopping);
      } catch (e) {
        this.metrics.errors.inc();
        this.o.log?.error("detector tick failed (retried)", { err: e instanceof Error ? e.message : String(e) });
      } finally {
        this.busy = false;
      }
    })();
  }

  private async reload(): Promise<void> {
    const st = await this.o.alerts.loadState();
    let engine: DetectionEngine | null = null;
    const snap = st.snapshot as { v?: number; engine?: unknown } | null;
    try {
      if (snap?.v === SNAPSHOT_VERSION && typeof snap.engine === "string") {
        const json = (await gunzipAsync(Buffer.from(snap.engine, "base64"))).toString("utf8");
        engine = DetectionEngine.restoreJson(json, this.engineOpts);
      } else if (snap?.v === 1 && snap.engine) {
        engine = DetectionEngine.restore(snap.engine, this.engineOpts);
      }
    } catch (e) {
      this.o.log?.warn("detector: stored engine state unusable; baselines start afresh", { err: String(e) });
    }
    this.generation += 1;
    this.moved = false;
    this.engine = engine ?? new DetectionEngine(this.engineOpts);
    this.lastZones = -Infinity;
    this.next = this.saved = st.nextIndex;
    this.pending = [];
    this.lastSave = this.o.now();
  }

  private async catchUp(max = Infinity): Promise<void> {
    if (this.moved) {
      // A background save found the stored state moved on (another detector): continue from that state.
      await this.writing;
      await this.reload();
    }
    if (this.external.length > 0) this.pending.push(...this.external.splice(0));
    const size = await this.o.audit.size();
    if (size - this.next > max) {
      await this.storePending();
      return;
    }
    if (this.o.timeZones && this.next < size && this.o.now() - this.lastZones >= 10_000) {
      this.lastZones = this.o.now();
      try {
        this.engine.setTimeZones(await this.o.timeZones());
      } catch (e) {
        this.o.log?.warn("detector: unit time zones not applied", { err: e instanceof Error ? e.message : String(e) });
      }
    }
    while (this.next < size) {
      const entries = await this.o.audit.entries(this.next, Math.min(this.chunk, size - this.next));
      if (entries.length === 0) break;
      const base = this.next;
      const found: NewAlert[] = [];
      const marking = new Set<NewAlert>();
      entries.forEach((data, i) => {
        const p = parseAuditEvent(data);
        const d = p.ok ? parseEvent(p.event) : p;
        if (!d.ok) {
          this.metrics.badEvents.inc();
          this.o.log?.warn("detector: skipped an audit entry it cannot parse", { index: base + i, reason: d.reason });
          return;
        }
        for (const alert of this.engine.push(d.event)) {
          const a = { alert, logIndex: base + i };
          found.push(a);
          if (alert.rule === "canary-touch" && d.event.action === "document.write") marking.add(a);
        }
        if (p.ok && this.o.iocs) {
          const hit = this.o.iocs.liveMatch(p.event, base + i);
          if (hit) found.push({ alert: hit, logIndex: base + i });
        }
      });
      for (const a of found) {
        if (marking.has(a) && this.o.isOfficer && (await this.o.isOfficer(a.alert.actor))) continue;
        this.pending.push(a);
      }
      this.next += entries.length;
      this.metrics.events.inc(entries.length);
      this.metrics.backlog.set(size - this.next);
      await this.storePending();
      if (this.o.now() - this.lastSave >= this.stateIntervalMs) await this.saveState();
      await new Promise<void>((r) => setImmediate(r));
    }
    this.metrics.backlog.set(Math.max(0, size - this.next));
    await this.storePending();
    if (this.next !== this.saved && this.o.now() - this.lastSave >= this.stateIntervalMs) await this.saveState();
  }

  /**
   * Stores the pending alerts (their own transaction, no engine state) and publishes those newly stored; alerts
   * already there (a replay) are neither stored nor published again. On failure they stay pending (next tick).
   */
  private async storePending(): Promise<void> {
    if (this.pending.length === 0) return;
    const stored = await this.o.alerts.storeAlerts(this.pending, this.o.now());
    const committed = this.o.now();
    this.pending = [];
    if (stored.length === 0) return;
    for (const a of stored) {
      this.metrics.alerts.inc({ severity: a.severity });
      // The triggering event's audit time → the alert stored (its transaction committed).
      this.metrics.delay.observe(Math.max(0, (committed - Date.parse(a.time)) / 1000));
      this.o.log?.warn("alert", { id: a.id, rule: a.rule, severity: a.severity, actor: a.actor });
    }
    try {
      this.o.publish?.(stored);
    } catch (e) {
      this.o.log?.error("detector: publishing alerts failed", { err: String(e) });
    }
    this.o.webhooks?.send(stored);
  }

  /**
   * Saves the engine's state as of `next` (every alert before it is stored: storePending runs first). The snapshot
   * is serialised here, in slices of about SLICE_MS with yields to the event loop in between (megabytes with a
   * ministry's staff: hundreds of ms in one piece); the engine is not pushed meanwhile, as this runs inside the
   * detector's tick. It is then compressed and written in the background (`writing`) while the tick goes on: at
   * most one such write at a time; `wait` (shutdown) waits for it, and for one already under way.
   */
  private async saveState(wait = false): Promise<void> {
    await this.storePending();
    if (this.writing) {
      if (!wait) return;
      await this.writing;
    }
    if (this.moved || this.next === this.saved) return;
    const now = this.o.now();
    const engine = this.engine;
    const at = this.next;
    const from = this.saved;
    const gen = this.generation;
    const parts: string[] = [];
    let t = performance.now();
    for (const p of engine.snapshotParts()) {
      parts.push(p);
      if (performance.now() - t >= SLICE_MS) {
        await new Promise<void>((r) => setImmediate(r));
        t = performance.now();
      }
    }
    // Reloaded meanwhile (peek() on a stopped detector): that state is not this one's to save.
    if (gen !== this.generation || engine !== this.engine || at !== this.next) return;
    this.lastSave = now;
    this.writing = this.write(from, at, parts.join(""), now, gen).finally(() => {
      this.writing = null;
    });
    if (wait) await this.writing;
  }

  /** Compresses (libuv's thread pool) and stores a serialised state; never rejects (a failure is retried). */
  private async write(from: number, to: number, json: string, now: number, gen: number): Promise<void> {
    try {
      // Gzip: about a third of the size as base64 (the synchronous SQLite write of 10 MB held the loop ~100 ms).
      const gz = await gzipAsync(json, { level: 1 });
      const snapshot = `{"v":${SNAPSHOT_VERSION},"engine":"${gz.toString("base64")}"}`;
      const ok = await this.o.alerts.saveState(from, to, snapshot, now);
      if (gen !== this.generation) return;
      if (ok) this.saved = to;
      else {
        // Another detector (another server process on this database) stored this stretch: the next tick continues
        // from its state.
        this.o.log?.info("detector: the stored state moved on (another server process); reloading it");
        this.moved = true;
        if (!this.stopping) this.kick();
      }
    } catch (e) {
      if (gen === this.generation) this.lastSave = -Infinity;
      this.metrics.errors.inc();
      this.o.log?.error("detector: saving the state failed (retried)", {
        err: e instanceof Error ? e.message : String(e),
      });
    }
  }
}

export { AlertStore };
