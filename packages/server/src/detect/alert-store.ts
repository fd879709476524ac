/**
 * Stored alerts and the detector's resumable state (migration 007): `detect_state` holds how far the audit log has
 * been pushed into the engine (`next_index`) and the engine's snapshot as of that index; they change together. Alerts
 * are stored on their own, as soon as the engine raises them (storeAlerts), and the state only now and then
 * (saveState, after the alerts of its stretch): the snapshot grows with the number of users (megabytes). The state
 * update is conditional on the index the writer started from (optimistic), so two detectors on one database
 * (several server processes) cannot both store a stretch: the loser reloads. A unique key on (rule, actor,
 * triggering event) makes storing the same alert twice a no-op: a replay from the stored state after a crash
 * recomputes the alerts already stored after it (the engine being deterministic), and only alerts actually inserted
 * are returned (and so published).
 *
 * On SQLite each write runs as one synchronous better-sqlite3 transaction (as the message appender does): a Kysely
 * transaction would hold the single connection across awaits and push the hot path onto its slow queue meanwhile.
 */
import type SQLite from "better-sqlite3";
import type { Kysely } from "kysely";
import type { Alert, Severity } from "@valise/detect";
import type { Database } from "../storage/schema.js";

/** An alert as the API, the WebSocket push and the webhooks show it. */
export interface AlertView {
  id: number;
  /** The triggering event's time (ISO 8601). */
  time: string;
  actor: string;
  rule: string;
  severity: Severity;
  reason: string;
  /** Audit event ids behind the alert, the triggering event last. */
  events: string[];
  /** When the detector stored it (ISO 8601). */
  createdAt: string;
  acknowledgedBy: string | null;
  acknowledgedAt: string | null;
}

/** An engine alert and where its triggering event is in the audit log. */
export interface NewAlert {
  alert: Alert;
  logIndex: number;
}

export interface AlertQuery {
  /** Only alerts with id > after. */
  after?: number | undefined;
  /** Only alerts of at least this severity. */
  minSeverity?: Severity | undefined;
  /** Only alerts whose triggering event is at or after this time (ms). */
  since?: number | undefined;
  limit: number;
}

const RANK: Record<Severity, number> = { low: 0, medium: 1, high: 2, critical: 3 };
const SEVERITY_LIST: Severity[] = ["low", "medium", "high", "critical"];

type Row = Database["alerts"];

function view(r: Row): AlertView {
  let events: string[] = [];
  try {
    const v: unknown = JSON.parse(r.events);
    if (Array.isArray(v)) events = v.map(String);
  } catch {
    /* stored by us; never malformed */
  }
  return {
    id: Number(r.id),
    time: new Date(Number(r.time)).toISOString(),
    actor: r.actor,
    rule: r.rule,
    severity: r.severity as Severity,
    reason: r.reason,
    events,
    createdAt: new Date(Number(r.created_at)).toISOString(),
    acknowledgedBy: r.acknowledged_by,
    acknowledgedAt: r.acknowledged_at === null ? null : new Date(Number(r.acknowledged_at)).toISOString(),
  };
}

function row(id: number, a: NewAlert, now: number): Row {
  const t = Date.parse(a.alert.time);
  return {
    id,
    time: Number.isNaN(t) ? now : t,
    actor: a.alert.actor,
    rule: a.alert.rule,
    severity: a.alert.severity,
    reason: a.alert.reason,
    events: JSON.stringify(a.alert.events),
    trigger_event: a.alert.events[a.alert.events.length - 1] ?? "",
    log_index: a.logIndex,
    created_at: now,
    acknowledged_by: null,
    acknowledged_at: null,
  };
}

const COLS = [
  "id",
  "time",
  "actor",
  "rule",
  "severity",
  "reason",
  "events",
  "trigger_event",
  "log_index",
  "created_at",
  "acknowledged_by",
  "acknowledged_at",
] as const;

export class AlertStore {
  private readonly stmts: {
    bump: SQLite.Statement;
    snap: SQLite.Statement;
    max: SQLite.Statement;
    ins: SQLite.Statement;
  } | null;
  private readonly fastAlerts: ((alerts: readonly NewAlert[], now: number) => Row[]) | null;
  private readonly fastState: ((from: number, to: number, snapshot: string, now: number) => boolean) | null;

  constructor(
    private readonly db: Kysely<Database>,
    private readonly sqlite?: SQLite.Database,
  ) {
    if (sqlite) {
      this.stmts = {
        bump: sqlite.prepare("UPDATE detect_state SET next_index = ?, updated_at = ? WHERE id = 1 AND next_index = ?"),
        snap: sqlite.prepare("UPDATE detect_state SET snapshot = ? WHERE id = 1"),
        max: sqlite.prepare("SELECT max(id) AS m FROM alerts"),
        ins: sqlite.prepare(
          `INSERT INTO alerts (${COLS.join(", ")}) VALUES (${COLS.map(() => "?").join(", ")}) ` +
            "ON CONFLICT (rule, actor, trigger_event) DO NOTHING",
        ),
      };
      // BEGIN IMMEDIATE (take the write lock first, waiting busy_timeout): see storage/db.ts
      const alerts = sqlite.transaction(this.insertSync.bind(this));
      this.fastAlerts = (a, now) => alerts.immediate(a, now);
      const state = sqlite.transaction(this.saveStateSync.bind(this));
      this.fastState = (from, to, snapshot, now) => state.immediate(from, to, snapshot, now);
    } else {
      this.stmts = null;
      this.fastAlerts = null;
      this.fastState = null;
    }
  }

  async loadState(): Promise<{ nextIndex: number; snapshot: unknown }> {
    const r = await this.db
      .selectFrom("detect_state")
      .select(["next_index", "snapshot"])
      .where("id", "=", 1)
      .executeTakeFirst();
    return {
      nextIndex: Number(r?.next_index ?? 0),
      snapshot: r?.snapshot ? (JSON.parse(r.snapshot) as unknown) : null,
    };
  }

  private insertSync(alerts: readonly NewAlert[], now: number): Row[] {
    const s = this.stmts!;
    let id = Number((s.max.get() as { m: number | null }).m ?? 0);
    const out: Row[] = [];
    for (const a of alerts) {
      const r = row(id + 1, a, now);
      if (s.ins.run(...COLS.map((c) => r[c])).changes > 0) {
        id += 1;
        out.push(r);
      }
    }
    return out;
  }

  private saveStateSync(from: number, to: number, snapshot: string, now: number): boolean {
    const s = this.stmts!;
    if (s.bump.run(to, now, from).changes === 0) return false;
    s.snap.run(snapshot);
    return true;
  }

  /**
   * Stores alerts in one transaction, without touching the detector's state: returns those actually stored, in
   * order; an alert whose key (rule, actor, triggering event) is already there is dropped (a replay after a restart
   * recomputes the alerts of the stretch after the stored state).
   */
  async storeAlerts(alerts: readonly NewAlert[], now: number): Promise<AlertView[]> {
    if (alerts.length === 0) return [];
    if (this.fastAlerts && !this.sqlite!.inTransaction) return this.fastAlerts(alerts, now).map(view);
    return this.db.transaction().execute(async (trx) => {
      // PostgreSQL: alert ids are max(id) + 1, so writers of alerts take turns on this row (as kt-reports.ts does;
      // a state save holds it for its update too). SQLite transactions are serialized already.
      if (!this.sqlite) await trx.selectFrom("detect_state").select("id").where("id", "=", 1).forUpdate().execute();
      const m = await trx
        .selectFrom("alerts")
        .select((eb) => eb.fn.max("id").as("m"))
        .executeTakeFirst();
      let id = Number(m?.m ?? 0);
      const out: AlertView[] = [];
      for (const a of alerts) {
        const stored = await trx
          .insertInto("alerts")
          .values(row(id + 1, a, now))
          .onConflict((oc) => oc.columns(["rule", "actor", "trigger_event"]).doNothing())
          .returningAll()
          .executeTakeFirst();
        if (stored) {
          id += 1;
          out.push(view(stored));
        }
      }
      return out;
    });
  }

  /**
   * Stores the engine's state (`snapshot`, JSON) as of audit index `to`, having started from `from`. False if the
   * stored state is no longer at `from` (another detector moved it): nothing was written then. The caller stores the
   * alerts of the stretch first (storeAlerts): a state is never saved ahead of its alerts.
   */
  async saveState(from: number, to: number, snapshot: string, now: number): Promise<boolean> {
    if (this.fastState && !this.sqlite!.inTransaction) return this.fastState(from, to, snapshot, now);
    const u = await this.db
      .updateTable("detect_state")
      .set({ next_index: to, updated_at: now, snapshot })
      .where("id", "=", 1)
      .where("next_index", "=", from)
      .executeTakeFirst();
    return Number(u.numUpdatedRows) > 0;
  }

  async list(q: AlertQuery): Promise<AlertView[]> {
    let s = this.db.selectFrom("alerts").selectAll();
    if (q.after !== undefined) s = s.where("id", ">", q.after);
    if (q.since !== undefined) s = s.where("time", ">=", q.since);
    if (q.minSeverity !== undefined && q.minSeverity !== "low")
      s = s.where(
        "severity",
        "in",
        SEVERITY_LIST.filter((x) => RANK[x] >= RANK[q.minSeverity!]),
      );
    const rows = await s.orderBy("id").limit(q.limit).execute();
    return rows.map(view);
  }

  async get(id: number): Promise<AlertView | null> {
    const r = await this.db.selectFrom("alerts").selectAll().where("id", "=", id).executeTakeFirst();
    return r ? view(r) : null;
  }

  /** Marks an alert acknowledged (the first acknowledgement stays); null if there is no such alert. */
  async acknowledge(id: number, by: string, now: number): Promise<AlertView | null> {
    await this.db
      .updateTable("alerts")
      .set({ acknowledged_by: by, acknowledged_at: now })
      .where("id", "=", id)
      .where("acknowledged_at", "is", null)
      .execute();
    return this.get(id);
  }
}

/** The API view of a stored alert row (also for alerts stored outside the detector: kt-reports.ts). */
export { view as alertView };
