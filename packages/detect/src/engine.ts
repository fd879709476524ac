/**
 * The detection engine: a deterministic, event-time-driven stream processor over audit events (no wall clock, no
 * I/O). For every event it (1) closes any finished UTC day, letting per-user and per-unit baselines learn from the
 * user-days that raised no alert, (2) derives `$` features from the baselines as they were before this event (new
 * device, new network, unusual hour, …), (3) evaluates the rules (data) and the built-in volume baselines, and
 * (4) updates its windows and counters. Memory per user is bounded (capped maps and rings).
 *
 * Resisting a slow intruder who tries to train the baselines (baseline poisoning):
 *  - a user-day with any alert for that user is never learned (no volume sample, no hour profile, no trust);
 *  - first-seen things (device, network, unit, compartment, action) stay "new" until seen on `quarantineDays`
 *    separate clean days, so a new device keeps firing its rules while it raises alerts;
 *  - a learned day counts at most `(1 + growthCap)` × the current reference (capped growth per day);
 *  - a user's reference is clamped to max(their reference when training ended, `ceilingMult` × their unit's), and
 *    the unit's reference is a high quantile over all members' clean days, which one user cannot move much;
 *  - the 7-day volume check compares a user's cumulative reads with both their own and their unit's weekly
 *    references, so slow-and-low collection that stays under the daily threshold still crosses the weekly one.
 */
import {
  DIRECTORY_CHANGE_ACTIONS,
  OWN_UNIT_ACTIONS,
  READ_ACTIONS,
  compartmentsOf,
  networkOf,
  affectedUser,
  type DetectEvent,
} from "./event.js";
import { renderReason, testMatch, type FieldValue, type Rule, type Severity } from "./rules.js";
import {
  DAY_MS,
  HOUR_MS,
  dayOf,
  hash32,
  hourOf,
  isTimeZone,
  localHour,
  pushCapped,
  quantile,
  replacer,
  reviver,
  touchCapped,
} from "./stats.js";

export interface Alert {
  /** The time of the event that triggered the alert, as given in the input. */
  time: string;
  actor: string;
  /** The rule id, or `baseline.<name>` for a built-in baseline. */
  rule: string;
  severity: Severity;
  reason: string;
  /** Ids of the events behind the alert (at most `maxAlertEvents`, the triggering event last). */
  events: string[];
}

type Metric = "reads" | "bytes" | "novel" | "docs";
const METRICS: readonly Metric[] = ["reads", "bytes", "novel", "docs"];
const METRIC_WORDS: Record<Metric, string> = {
  reads: "items read",
  bytes: "bytes read",
  novel: "distinct items new to them",
  docs: "distinct documents they never opened before",
};

export interface VolumeOptions {
  /** Floors under which no volume alert fires, per metric, for the 1 h / 24 h / 7 d windows. */
  floorHour: Record<Metric, number>;
  floorDay: Record<Metric, number>;
  floorWeek: Record<Metric, number>;
  /** 1 h: more than `hourUserMult` × the user's usual day and `hourUnitMult` × the unit's usual heavy day. */
  hourUserMult: number;
  hourUnitMult: number;
  dayUserMult: number;
  dayUnitMult: number;
  weekUserMult: number;
  weekUnitMult: number;
  /** Multiplies every threshold for the bytes metric (document sizes vary far more than counts). */
  bytesMult: number;
  severityHour: Severity;
  severityDay: Severity;
  severityWeek: Severity;
}

export interface EngineOptions {
  rules: Rule[];
  /** Events before this time (ms since epoch or ISO) only train. */
  trainUntil?: number | string;
  /** Alternatively: train for this many UTC days from the first event's day (default 14 when trainUntil unset). */
  trainDays?: number;
  /** Clean days a first-seen device/network/unit/compartment/action must be seen on before it is trusted. */
  quarantineDays?: number;
  /** Learned days kept per user (volume references). */
  historyDays?: number;
  /** Days of history before a user's own volume/hour baseline is used (before that: the unit's). */
  minHistoryDays?: number;
  growthCap?: number;
  ceilingMult?: number;
  /** Active days at an hour (±1) below this share are unusual. */
  unusualHourShare?: number;
  volume?: Partial<VolumeOptions>;
  breadth?: Partial<BreadthOptions>;
  maxAlertEvents?: number;
  /**
   * Rules of these severities alert during training too (default none: training only learns). The server passes
   * `["critical"]`, so a canary touch alerts on day one; baseline (volume) alerts still wait for the end of training.
   */
  trainingSeverities?: readonly Severity[];
  /**
   * Hours a device the user enrolled themself with a one-time code (`directory.device.add` by the owner, from the new
   * device) has for its owner to approve it from a device already trusted for them (`valise devices approve`,
   * audited as `directory.device.ack`). Within them, reads from it over a new network are held, not alerted; when
   * they end without approval and the device was used, `baseline.device-unacknowledged` fires with those reads.
   * A device added by another account, or never seen enrolled, gets no grace. 0 disables the grace.
   */
  ackGraceHours?: number;
  /**
   * IANA time zones of units (the directory's unit `tz`, e.g. {"EMB/TOKYO": "Asia/Tokyo"}): hours of day are profiled
   * in the zone of the user's post (daylight saving included), taken from the event's own `tz` if it carries one,
   * else from the user's current unit here, else UTC. Days still close at 00:00 UTC.
   */
  timeZones?: Readonly<Record<string, string>>;
  /** Days after a clearance change that a first read in a newly granted compartment counts as its first use (14). */
  grantDays?: number;
}

const DEFAULT_VOLUME: VolumeOptions = {
  floorHour: { reads: 60, bytes: 200e6, novel: 40, docs: 25 },
  floorDay: { reads: 120, bytes: 500e6, novel: 80, docs: 30 },
  floorWeek: { reads: 400, bytes: 2e9, novel: 200, docs: 50 },
  hourUserMult: 1.5,
  hourUnitMult: 1,
  dayUserMult: 3,
  dayUnitMult: 2,
  weekUserMult: 2,
  weekUnitMult: 1.6,
  bytesMult: 2,
  severityHour: "high",
  severityDay: "medium",
  severityWeek: "medium",
};

export interface BreadthOptions {
  /** Distinct first touches in a UTC day under which no breadth alert fires. */
  floorDay: number;
  dayUserMult: number;
  dayUnitMult: number;
  /** Over 7 days: more than `weekMult` × 7 × the user's mean day (or half the unit's reference) and `floorWeek`. */
  floorWeek: number;
  weekMult: number;
  severity: Severity;
}

const DEFAULT_BREADTH: BreadthOptions = {
  floorDay: 8,
  dayUserMult: 3,
  dayUnitMult: 2,
  floorWeek: 30,
  weekMult: 4,
  severity: "high",
};

interface Trust {
  clean: number;
  last: number;
}

/** Reads from a self-enrolled device awaiting its owner's approval (see EngineOptions.ackGraceHours). */
interface PendingDevice {
  actor: string;
  device: string;
  deadline: number;
  first: string;
  networks: string[];
  ids: string[];
}

type Triple = Record<Metric, number>;
const zero = (): Triple => ({ reads: 0, bytes: 0, novel: 0, docs: 0 });
const unset = (): Triple => ({ reads: -1, bytes: -1, novel: -1, docs: -1 });
const lists = (): Record<Metric, number[]> => ({ reads: [], bytes: [], novel: [], docs: [] });

interface UserState {
  units: Map<string, number>;
  ents: Map<string, Trust>;
  today: Set<string>;
  todayHours: number[];
  todayVol: Triple;
  dirtyDay: number;
  active: boolean;
  hourHist: number[];
  hourDays: number;
  days: Record<Metric, number[]>;
  weeks: Record<Metric, number[]>;
  historyDays: number;
  trained: Triple | null;
  /** Cached at each day close: own quantiles of learned days and weeks (-1: not enough history). */
  refDay: Triple;
  refWeek: Triple;
  bHour: number[];
  bVol: Record<Metric, number[]>;
  objs: Map<number, number>;
  recent: [number, string][];
  added: Map<string, number>;
  /** How a device was enrolled: "code" (by its owner, redeeming a one-time code), "admin" (by another account). */
  enrolment: Map<string, string>;
  /** The device's audited enrolment method (device.enrolment): "code:ISSUER", "passkey" or both ("code:X+passkey"). */
  method: Map<string, string>;
  /** Devices their owner acknowledged from another, trusted device (directory.device.ack): device → time. */
  acked: Map<string, number>;
  /** Conversations first seen (kept apart from `ents`, so many conversations never evict a trusted device). */
  convs: Map<string, Trust>;
  /** The user read the audit log successfully (only officers can). */
  officer: boolean;
  /** Distinct first touches today (units, conversations, compartments, cable series not yet trusted). */
  todayFirst: Set<string>;
  /** First touches per learned day (breadth reference). */
  breadthDays: number[];
  /** The events of today's first touches (the last few). */
  firstIds: string[];
  /** First touches of the last 7 days, learned or not: [day, count]. */
  breadthWeek: [number, number][];
  /** Per device: the last few (time, network) uses, for concurrent use from two networks. */
  devNets: Map<string, [number, string][]>;
  /** The time zone the user's events last carried (null: none seen). */
  tz: string | null;
  /** Units of the user's own-unit actions (login, send, write) → the last UTC day of one: their current posts. */
  unitSeen: Map<string, number>;
  /** Compartments a clearance change granted the user while not yet trusted for them → time of the change. */
  granted: Map<string, number>;
  risk: { t: number; score: number; rule: string; ids: string[] }[];
}

interface UnitState {
  samples: Record<Metric, number[]>;
  weeks: Record<Metric, number[]>;
  totals: number[];
  bHour: number[];
  bReads: number[];
  todayReads: number;
  comps: Set<string>;
  /** Members' first touches per clean active day. */
  breadth: number[];
  members: number;
  /** Cached at each day close. */
  refDay: Triple;
  refWeek: Triple;
  usualTotal: number;
}

interface WindowState {
  t: number[];
  ids: string[];
  vals: string[];
}

interface State {
  version: 1;
  firstDay: number | null;
  trainUntil: number | null;
  curDay: number | null;
  now: number;
  trainedFrozen: boolean;
  users: Map<string, UserState>;
  units: Map<string, UnitState>;
  orgNets: Map<string, number>;
  windows: Map<string, WindowState>;
  suppress: Map<string, number>;
  /** actor|device → reads awaiting the owner's approval of a self-enrolled device. */
  pending: Map<string, PendingDevice>;
}

const ENT_CAP = 256;
const OBJ_CAP = 3000;
const OBJ_MEMORY_DAYS = 30;
const RECENT_CAP = 200;
const WINDOW_CAP = 2000;
const UNIT_SAMPLE_CAP = 2000;
const ORG_NET_CAP = 50_000;
const WEEK_HOURS = 168;

/** How a device was enrolled, for an alert's reason. */
function methodText(m: string | undefined): string {
  if (!m) return "";
  const issuer = /^code:([^+]*)/.exec(m)?.[1];
  const parts = [issuer ? `with a one-time code issued by ${issuer}` : "", m.includes("passkey") ? "a passkey" : ""];
  return ` (${parts.filter(Boolean).join(", with ")})`;
}

export class DetectionEngine {
  private readonly rules: Rule[];
  private readonly o: Required<
    Omit<
      EngineOptions,
      | "rules"
      | "trainUntil"
      | "trainDays"
      | "volume"
      | "breadth"
      | "trainingSeverities"
      | "ackGraceHours"
      | "timeZones"
      | "grantDays"
    >
  > & {
    timeZones: Map<string, string>;
    grantMs: number;
    volume: VolumeOptions;
    breadth: BreadthOptions;
    trainDays: number;
    ackGraceMs: number;
  };
  private s: State;
  features = new Map<string, FieldValue>();
  /** The rules that alert during training (see EngineOptions.trainingSeverities). */
  private readonly trainingRules: Rule[];

  constructor(opts: EngineOptions) {
    this.rules = opts.rules;
    const ts = new Set(opts.trainingSeverities ?? []);
    this.trainingRules = opts.rules.filter((r) => ts.has(r.severity) && r.score === undefined && !r.risk);
    this.o = {
      quarantineDays: opts.quarantineDays ?? 2,
      historyDays: opts.historyDays ?? 28,
      minHistoryDays: opts.minHistoryDays ?? 7,
      growthCap: opts.growthCap ?? 0.25,
      ceilingMult: opts.ceilingMult ?? 1.5,
      unusualHourShare: opts.unusualHourShare ?? 0.04,
      maxAlertEvents: opts.maxAlertEvents ?? 50,
      trainDays: opts.trainDays ?? 14,
      ackGraceMs: (opts.ackGraceHours ?? 8) * HOUR_MS,
      timeZones: new Map(),
      grantMs: (opts.grantDays ?? 14) * DAY_MS,
      volume: { ...DEFAULT_VOLUME, ...opts.volume },
      breadth: { ...DEFAULT_BREADTH, ...opts.breadth },
    };
    this.setTimeZones(opts.timeZones ?? {});
    const tu = opts.trainUntil;
    this.s = {
      version: 1,
      firstDay: null,
      trainUntil: tu === undefined ? null : typeof tu === "number" ? tu : Date.parse(tu),
      curDay: null,
      now: -Infinity,
      trainedFrozen: false,
      users: new Map(),
      units: new Map(),
      orgNets: new Map(),
      windows: new Map(),
      suppress: new Map(),
      pending: new Map(),
    };
    if (this.s.trainUntil !== null && Number.isNaN(this.s.trainUntil)) throw new RangeError("trainUntil is not a time");
  }

  /**
   * Replaces the units' time zones (the directory changed: `valise admin unit tz`). Hours already learned stay where
   * they were counted. Throws a RangeError, changing nothing, if a zone is not an IANA time zone.
   */
  setTimeZones(timeZones: Readonly<Record<string, string>>): void {
    for (const [unit, tz] of Object.entries(timeZones))
      if (!isTimeZone(tz)) throw new RangeError(`time zone of unit ${unit} is not an IANA time zone: ${tz}`);
    this.o.timeZones = new Map(Object.entries(timeZones));
  }

  /** The time before which events only train (known after the first event when trainDays is used). */
  get trainUntil(): number | null {
    return this.s.trainUntil;
  }

  /** Feeds one event (in time order; slightly late events are treated as happening now). Returns new alerts. */
  push(e: DetectEvent): Alert[] {
    const s = this.s;
    const t = Math.max(e.time, s.now);
    s.now = t;
    const day = dayOf(t);
    if (s.firstDay === null) {
      s.firstDay = day;
      s.curDay = day;
      if (s.trainUntil === null) s.trainUntil = (day + this.o.trainDays) * DAY_MS;
    }
    while (s.curDay! < day) {
      // A long gap: close the day that ended, then jump (zero-activity days beyond 31 are not replayed).
      this.closeDay(s.curDay!);
      s.curDay = day - s.curDay! > 31 ? day : s.curDay! + 1;
    }
    const training = t < s.trainUntil!;
    if (!training && !s.trainedFrozen) this.freezeTrained();
    const alerts: Alert[] = [];
    this.expirePending(t, e.timeText, alerts);
    const u = this.user(e.actor);
    const f = this.derive(e, u, t);
    if (!training) {
      this.evalRules(e, u, t, alerts);
    } else if (this.trainingRules.length > 0) {
      this.evalRules(e, u, t, alerts, this.trainingRules);
    }
    this.learnEvent(e, u, t, f);
    if (!training && READ_ACTIONS.has(e.action) && e.outcome === "ok") {
      this.holdPending(e, f, t);
      this.evalVolume(e, u, t, alerts);
      this.evalBreadth(e, u, t, alerts);
    }
    for (const a of alerts) {
      const au = this.user(a.actor);
      au.dirtyDay = day;
    }
    return alerts;
  }

  /** Closes the current day so its clean user-days are learned; no alert is pending, so returns none. */
  flush(): Alert[] {
    const alerts: Alert[] = [];
    if (this.s.curDay !== null) {
      // The end of the input: devices still awaiting approval at their deadline are reported now.
      const end = Math.max(this.s.now, ...[...this.s.pending.values()].map((p) => p.deadline));
      if (Number.isFinite(end)) this.expirePending(end, new Date(end).toISOString(), alerts);
      for (const a of alerts) this.user(a.actor).dirtyDay = this.s.curDay;
      this.closeDay(this.s.curDay);
      this.s.curDay += 1;
    }
    return alerts;
  }

  /** A JSON-serialisable copy of the whole state (rules are not included: pass them again to restore). */
  snapshot(): unknown {
    return JSON.parse(this.snapshotJson());
  }

  /** The snapshot as JSON text (what `snapshot()` returns, serialised in one pass: no intermediate copy). */
  snapshotJson(): string {
    return JSON.stringify(this.snapshotRoot(), replacer);
  }

  /**
   * The same JSON text as `snapshotJson()`, in pieces (joined with ""): the maps of the state (people, units, ...)
   * one entry per piece, so a caller can yield between pieces (a state of megabytes takes hundreds of ms to
   * serialise). The engine must not be pushed until the last piece is taken.
   */
  *snapshotParts(): Generator<string> {
    let sep = "{";
    for (const [k, v] of Object.entries(this.snapshotRoot())) {
      if (v instanceof Map) {
        yield `${sep}${JSON.stringify(k)}:{"$map":[`;
        let first = true;
        for (const entry of v) {
          yield (first ? "" : ",") + JSON.stringify(entry, replacer);
          first = false;
        }
        yield "]}";
      } else {
        const j = JSON.stringify(v, replacer) as string | undefined;
        if (j === undefined) continue;
        yield `${sep}${JSON.stringify(k)}:${j}`;
      }
      sep = ",";
    }
    yield sep === "{" ? "{}" : "}";
  }

  private snapshotRoot(): Record<string, unknown> {
    return { ...this.s, now: Number.isFinite(this.s.now) ? this.s.now : null };
  }

  static restore(snapshot: unknown, opts: EngineOptions): DetectionEngine {
    return DetectionEngine.restoreJson(JSON.stringify(snapshot), opts);
  }

  /** Restores from the snapshot's JSON text (`snapshotJson()`, or `snapshotParts()` joined). */
  static restoreJson(json: string, opts: EngineOptions): DetectionEngine {
    const e = new DetectionEngine(opts);
    const s = JSON.parse(json, reviver) as State & { now: number | null };
    if (s.version !== 1) throw new RangeError("unsupported detection snapshot version");
    e.s = { ...s, now: s.now ?? -Infinity };
    // State written before the device-acknowledgement and breadth baselines existed.
    e.s.pending ??= new Map();
    for (const u of e.s.users.values()) {
      u.enrolment ??= new Map();
      u.method ??= new Map();
      u.acked ??= new Map();
      u.convs ??= new Map();
      u.officer ??= false;
      u.todayFirst ??= new Set();
      u.breadthDays ??= [];
      u.firstIds ??= [];
      u.breadthWeek ??= [];
      u.tz ??= null;
      u.unitSeen ??= new Map();
      u.granted ??= new Map();
    }
    for (const n of e.s.units.values()) n.breadth ??= [];
    return e;
  }

  // --- state ---

  private user(handle: string): UserState {
    let u = this.s.users.get(handle);
    if (!u) {
      u = {
        units: new Map(),
        ents: new Map(),
        today: new Set(),
        todayHours: new Array<number>(24).fill(0),
        todayVol: zero(),
        dirtyDay: -1,
        active: false,
        hourHist: new Array<number>(24).fill(0),
        hourDays: 0,
        days: lists(),
        weeks: lists(),
        historyDays: 0,
        trained: null,
        refDay: unset(),
        refWeek: unset(),
        bHour: new Array<number>(WEEK_HOURS).fill(-1),
        bVol: {
          reads: new Array<number>(WEEK_HOURS).fill(0),
          bytes: new Array<number>(WEEK_HOURS).fill(0),
          novel: new Array<number>(WEEK_HOURS).fill(0),
          docs: new Array<number>(WEEK_HOURS).fill(0),
        },
        objs: new Map(),
        recent: [],
        added: new Map(),
        enrolment: new Map(),
        method: new Map(),
        acked: new Map(),
        convs: new Map(),
        officer: false,
        todayFirst: new Set(),
        breadthDays: [],
        firstIds: [],
        breadthWeek: [],
        devNets: new Map(),
        risk: [],
        tz: null,
        unitSeen: new Map(),
        granted: new Map(),
      };
      this.s.users.set(handle, u);
    }
    return u;
  }

  private unit(name: string): UnitState {
    let n = this.s.units.get(name);
    if (!n) {
      n = {
        samples: lists(),
        weeks: lists(),
        totals: [],
        bHour: new Array<number>(24).fill(-1),
        bReads: new Array<number>(24).fill(0),
        todayReads: 0,
        comps: new Set(),
        breadth: [],
        members: 0,
        refDay: zero(),
        refWeek: zero(),
        usualTotal: 0,
      };
      this.s.units.set(name, n);
    }
    return n;
  }

  private homeUnit(u: UserState): string | null {
    let best: string | null = null;
    let n = -1;
    for (const [k, v] of u.units) if (v > n || (v === n && best !== null && k < best)) [best, n] = [k, v];
    return best;
  }

  /** The user's current posts: their home unit and every unit of an own-unit action within the last 14 days. */
  private ownUnits(u: UserState, day: number): string[] {
    const home = this.homeUnit(u);
    const out = home !== null ? [home] : [];
    for (const [unit, d] of u.unitSeen) if (unit !== home && day - d <= 14) out.push(unit);
    return out;
  }

  /** The IANA zone the user's hours are profiled in: the event's, else the one last seen, else their post's. */
  private zoneOf(u: UserState, e: DetectEvent): string | null {
    if (e.tz) return e.tz;
    if (u.tz !== null) return u.tz;
    if (this.o.timeZones.size === 0) return null;
    let best: string | null = null;
    let last = -1;
    for (const [unit, d] of u.unitSeen) if (d > last && this.o.timeZones.has(unit)) [best, last] = [unit, d];
    const home = best ?? this.homeUnit(u);
    return home !== null ? (this.o.timeZones.get(home) ?? null) : null;
  }

  private trusted(u: UserState, key: string): boolean {
    const x = entsOf(u, key).get(key);
    return x !== undefined && x.clean >= this.o.quarantineDays;
  }

  // --- features ---

  private derive(e: DetectEvent, u: UserState, t: number): Map<string, FieldValue> {
    const f = this.features;
    f.clear();
    const net = networkOf(e.source);
    const comps = compartmentsOf(e.label);
    const isRead = READ_ACTIONS.has(e.action);
    const dirChange = DIRECTORY_CHANGE_ACTIONS.has(e.action);
    const affected = affectedUser(e);
    f.set("$read", isRead);
    f.set("$directoryChange", dirChange);
    f.set("$selfChange", dirChange && affected === e.actor);
    f.set("$network", net);
    f.set("$compartments", comps);
    const newDevice = e.device !== null && !this.trusted(u, `d:${e.device}`);
    f.set("$newDevice", newDevice);
    f.set("$knownDevice", e.device !== null && !newDevice);
    const acked = e.device !== null && u.acked.has(e.device);
    f.set("$deviceAcked", acked);
    const how = e.device !== null ? u.enrolment.get(e.device) : undefined;
    f.set("$deviceEnrolment", e.device === null ? undefined : (how ?? "unseen"));
    const method = e.device !== null ? (u.method.get(e.device) ?? "") : "";
    f.set("$deviceCodeIssuer", /^code:([^+]*)/.exec(method)?.[1]);
    f.set("$devicePasskey", method.includes("passkey"));
    const enrolledAt = e.device !== null ? u.added.get(e.device) : undefined;
    f.set(
      "$deviceAckPending",
      how === "code" && !acked && enrolledAt !== undefined && t - enrolledAt < this.o.ackGraceMs,
    );
    f.set("$officer", u.officer);
    f.set("$newNetwork", e.source !== "" && !this.trusted(u, `n:${net}`));
    f.set("$orgNewNetwork", e.source !== "" && (this.s.orgNets.get(net) ?? 0) < this.o.quarantineDays);
    f.set("$newUnit", e.unit !== null && !this.trusted(u, `u:${e.unit}`));
    f.set(
      "$newCompartment",
      comps.some((c) => !this.trusted(u, `c:${c}`)),
    );
    // Against every current post of the user (a new posting reads its new unit's compartments like its members).
    const own = this.ownUnits(u, dayOf(t)).map((n) => this.s.units.get(n));
    f.set(
      "$unitNewCompartment",
      comps.some((c) => !own.some((n) => n?.comps.has(c))),
    );
    f.set(
      "$clearanceWidened",
      comps.some((c) => {
        const at = u.granted.get(c);
        return at !== undefined && t - at < this.o.grantMs && !this.trusted(u, `c:${c}`);
      }),
    );
    const zone = this.zoneOf(u, e);
    f.set("$localHour", localHour(t, zone));
    f.set("$timeZone", zone ?? "UTC");
    f.set("$newAction", !this.trusted(u, `a:${e.action}`));
    f.set("$newTargetUnit", dirChange && e.unit !== null && !this.trusted(u, `t:${e.unit}`));
    f.set("$outsideUnits", e.unit !== null && u.units.size > 0 && !u.units.has(e.unit));
    f.set("$unusualHour", this.unusualHour(u, f.get("$localHour") as number));
    const added = e.device !== null ? u.added.get(e.device) : undefined;
    f.set("$deviceAddedAgo", added !== undefined ? Math.max(0, Math.round((t - added) / 1000)) : undefined);
    f.set("$historyDays", u.historyDays);
    if (e.device !== null && e.source !== "") {
      const nets = new Set([net]);
      for (const [dt, dn] of u.devNets.get(e.device) ?? []) if (dt > t - HOUR_MS) nets.add(dn);
      f.set("$deviceNetworks1h", nets.size);
    } else f.set("$deviceNetworks1h", 0);
    return f;
  }

  /** Whether the user is rarely active at local hour `h` (±1 h) of their post's time zone on learned days. */
  private unusualHour(u: UserState, h: number): boolean {
    if (u.hourDays < this.o.minHistoryDays) return false;
    const share = (u.hourHist[(h + 23) % 24]! + u.hourHist[h]! + u.hourHist[(h + 1) % 24]!) / u.hourDays;
    return share < this.o.unusualHourShare;
  }

  private field(e: DetectEvent, name: string): FieldValue {
    if (name.startsWith("$")) return this.features.get(name);
    switch (name) {
      case "id":
        return e.id;
      case "actor":
        return e.actor;
      case "device":
        return e.device;
      case "source":
        return e.source;
      case "client":
        return e.client;
      case "action":
        return e.action;
      case "object":
        return e.object;
      case "target_device":
        return e.target_device;
      case "label":
        return e.label;
      case "unit":
        return e.unit;
      case "bytes":
        return e.bytes;
      case "canary":
        return e.canary;
      case "outcome":
        return e.outcome;
      default:
        return undefined;
    }
  }

  // --- rules ---

  private suppressed(key: string, t: number): boolean {
    const until = this.s.suppress.get(key);
    return until !== undefined && t < until;
  }

  private evalRules(e: DetectEvent, u: UserState, t: number, out: Alert[], rules = this.rules): void {
    const get = (n: string): FieldValue => this.field(e, n);
    let signalled = false;
    for (const r of rules) {
      if (r.risk) continue;
      if (!testMatch(get, r.match)) continue;
      if (r.anyOf && !r.anyOf.some((m) => testMatch(get, m))) continue;
      if (r.exclude && Object.keys(r.exclude).length > 0 && testMatch(get, r.exclude)) continue;
      let ids = [e.id];
      let count = 1;
      let key = e.actor;
      if (r.threshold) {
        const th = r.threshold;
        key = th.groupBy.map((g) => JSON.stringify(get(g) ?? null)).join("|");
        const wkey = `${r.id}|${key}`;
        let w = this.s.windows.get(wkey);
        if (!w) {
          w = { t: [], ids: [], vals: [] };
          this.s.windows.set(wkey, w);
        }
        const from = t - th.windowSeconds * 1000;
        let drop = 0;
        while (drop < w.t.length && w.t[drop]! <= from) drop++;
        if (drop > 0 || w.t.length >= WINDOW_CAP) {
          drop = Math.max(drop, w.t.length + 1 - WINDOW_CAP);
          w.t.splice(0, drop);
          w.ids.splice(0, drop);
          w.vals.splice(0, drop);
        }
        w.t.push(t);
        w.ids.push(e.id);
        w.vals.push(th.distinct ? JSON.stringify(get(th.distinct) ?? null) : "");
        count = th.distinct ? new Set(w.vals).size : w.t.length;
        if (count < th.count) continue;
        ids = w.ids.slice(-this.o.maxAlertEvents);
        this.s.windows.delete(wkey);
      }
      const skey = `${r.id}|${key}`;
      if (this.suppressed(skey, t)) continue;
      if (r.suppressSeconds > 0) this.s.suppress.set(skey, t + r.suppressSeconds * 1000);
      const window = r.threshold ? fmtDuration(r.threshold.windowSeconds) : "";
      const reason = renderReason(r.reason, (n) =>
        n === "count" ? count : n === "window" ? window : n === "time" ? e.timeText : get(n),
      );
      if (r.score !== undefined) {
        u.risk.push({ t, score: r.score, rule: r.id, ids });
        signalled = true;
        continue;
      }
      out.push({ time: e.timeText, actor: e.actor, rule: r.id, severity: r.severity, reason, events: ids });
    }
    if (signalled) this.evalRisk(e, u, t, out);
  }

  private evalRisk(e: DetectEvent, u: UserState, t: number, out: Alert[]): void {
    const maxWindow = Math.max(0, ...this.rules.map((r) => (r.risk ? r.risk.windowSeconds * 1000 : 0)));
    u.risk = u.risk.filter((x) => x.t > t - maxWindow);
    for (const r of this.rules) {
      if (!r.risk) continue;
      const inWin = u.risk.filter((x) => x.t > t - r.risk!.windowSeconds * 1000);
      const score = inWin.reduce((a, x) => a + x.score, 0);
      if (score < r.risk.score) continue;
      const skey = `${r.id}|${e.actor}`;
      if (this.suppressed(skey, t)) continue;
      this.s.suppress.set(skey, t + r.suppressSeconds * 1000);
      const signals = inWin.map((x) => `${x.rule} (+${x.score})`).join(", ");
      const ids = [...new Set(inWin.flatMap((x) => x.ids))].slice(-this.o.maxAlertEvents);
      const reason = renderReason(r.reason, (n) =>
        n === "score" ? score : n === "signals" ? signals : n === "time" ? e.timeText : this.field(e, n),
      );
      out.push({ time: e.timeText, actor: e.actor, rule: r.id, severity: r.severity, reason, events: ids });
    }
  }

  // --- devices awaiting their owner's approval ---

  /** A read over a new network from a self-enrolled device its owner has not approved yet: held until the deadline. */
  private holdPending(e: DetectEvent, f: Map<string, FieldValue>, t: number): void {
    if (e.device === null || f.get("$deviceAckPending") !== true) return;
    if (f.get("$newDevice") !== true || f.get("$newNetwork") !== true) return;
    const key = `${e.actor}|${e.device}`;
    let p = this.s.pending.get(key);
    if (!p) {
      const enrolledAt = this.user(e.actor).added.get(e.device) ?? t;
      p = {
        actor: e.actor,
        device: e.device,
        deadline: enrolledAt + this.o.ackGraceMs,
        first: e.timeText,
        networks: [],
        ids: [],
      };
      if (this.s.pending.size >= WINDOW_CAP) return;
      this.s.pending.set(key, p);
    }
    const net = f.get("$network") as string;
    if (!p.networks.includes(net) && p.networks.length < 8) p.networks.push(net);
    pushCapped(p.ids, e.id, this.o.maxAlertEvents);
  }

  /** Devices whose approval deadline passed without approval: one alert each, with the reads held for it. */
  private expirePending(t: number, timeText: string, out: Alert[]): void {
    if (this.s.pending.size === 0) return;
    for (const [key, p] of this.s.pending) {
      if (p.deadline > t) continue;
      this.s.pending.delete(key);
      const u = this.user(p.actor);
      if (u.acked.has(p.device)) continue;
      const rule = "baseline.device-unacknowledged";
      // The same fact as new-device-new-network-read (grouped by actor and device): that rule stays quiet for it.
      this.s.suppress.set(
        `new-device-new-network-read|${JSON.stringify(p.actor)}|${JSON.stringify(p.device)}`,
        t + 14 * DAY_MS,
      );
      this.s.suppress.set(`${rule}|${p.actor}`, t + DAY_MS);
      out.push({
        time: timeText,
        actor: p.actor,
        rule,
        severity: "high",
        reason:
          `${p.actor} enrolled device ${p.device}${methodText(u.method.get(p.device))} and read ${p.ids.length} ` +
          `item(s) from it over network(s) new to ` +
          `them (${p.networks.join(", ")}) from ${p.first}, but did not approve it from a device they already use ` +
          `within ${Math.round(this.o.ackGraceMs / HOUR_MS)} h (valise devices approve): stolen credentials or a ` +
          `phished enrollment code`,
        events: [...p.ids],
      });
      u.dirtyDay = dayOf(t);
    }
  }

  // --- volume baselines ---

  private windowSum(u: UserState, m: Metric, hours: number, h: number): number {
    let total = 0;
    for (let k = 0; k < hours; k++) {
      const i = (((h - k) % WEEK_HOURS) + WEEK_HOURS) % WEEK_HOURS;
      if (u.bHour[i] === h - k) total += u.bVol[m][i]!;
    }
    return total;
  }

  /** The user's daily reference for a metric: a high quantile of learned days, clamped against the unit's. */
  private userDayRef(u: UserState, m: Metric, unitRef: number): number {
    if (u.historyDays < this.o.minHistoryDays || u.refDay[m] < 0) return unitRef;
    const ceiling = Math.max(u.trained?.[m] ?? 0, unitRef * this.o.ceilingMult);
    return Math.min(u.refDay[m], ceiling);
  }

  private userWeekRef(u: UserState, m: Metric, unitRef: number): number {
    if (u.historyDays < this.o.minHistoryDays || u.refWeek[m] < 0) return unitRef;
    return Math.min(u.refWeek[m], unitRef * this.o.ceilingMult);
  }

  private unitRefs(home: string | null): { day: Triple; week: Triple } {
    const n = home !== null ? this.s.units.get(home) : undefined;
    return n ? { day: n.refDay, week: n.refWeek } : { day: zero(), week: zero() };
  }

  /** How busy the user's unit is now compared to its usual day (month-end reporting lifts everyone). */
  private surge(home: string | null, u: UserState, h: number): number {
    const n = home !== null ? this.s.units.get(home) : undefined;
    if (!n || n.totals.length < this.o.minHistoryDays || n.members < 3) return 1;
    let unit24 = 0;
    for (let k = 0; k < 24; k++) {
      const i = (((h - k) % 24) + 24) % 24;
      if (n.bHour[i] === h - k) unit24 += n.bReads[i]!;
    }
    const others = unit24 - this.windowSum(u, "reads", 24, h);
    const usual = n.usualTotal * (1 - 1 / n.members);
    if (!(usual > 0)) return 1;
    return Math.min(3, Math.max(1, others / usual));
  }

  /** After the read was counted: does a 1 h / 24 h / 7 d window now exceed the user's and the unit's limits? */
  private evalVolume(e: DetectEvent, u: UserState, t: number, out: Alert[]): void {
    const v = this.o.volume;
    const h = hourOf(t);
    const home = this.homeUnit(u);
    const refs = this.unitRefs(home);
    const surge = this.surge(home, u, h);
    const checks: [string, number, Record<Metric, number>, Severity, (m: Metric) => number, string][] = [
      [
        "volume-burst",
        1,
        v.floorHour,
        v.severityHour,
        (m) => Math.max(v.hourUserMult * this.userDayRef(u, m, refs.day[m]), v.hourUnitMult * refs.day[m]),
        "in one hour",
      ],
      [
        "volume-day",
        24,
        v.floorDay,
        v.severityDay,
        (m) => Math.max(v.dayUserMult * this.userDayRef(u, m, refs.day[m]), v.dayUnitMult * refs.day[m]),
        "in 24 hours",
      ],
      [
        "volume-week",
        WEEK_HOURS,
        v.floorWeek,
        v.severityWeek,
        (m) => Math.max(v.weekUserMult * this.userWeekRef(u, m, refs.week[m]), v.weekUnitMult * refs.week[m]),
        "in 7 days",
      ],
    ];
    for (const [name, hours, floors, severity, thresholdOf, span] of checks) {
      const rule = `baseline.${name}`;
      const skey = `${rule}|${e.actor}`;
      if (this.suppressed(skey, t)) continue;
      for (const m of METRICS) {
        const mult = m === "bytes" ? v.bytesMult : 1;
        const threshold = Math.max(floors[m], thresholdOf(m)) * surge * mult;
        const value = this.windowSum(u, m, hours, h);
        if (value <= threshold) continue;
        const since = t - hours * HOUR_MS;
        const ids = u.recent.filter(([rt]) => rt > since).map(([, id]) => id);
        const shown = ids.slice(-this.o.maxAlertEvents);
        const amount = m === "bytes" ? fmtBytes(value) : String(value);
        const limit = m === "bytes" ? fmtBytes(threshold) : String(Math.round(threshold));
        const reason =
          `${e.actor} read ${amount} ${METRIC_WORDS[m]} ${span}, above the limit of ${limit} from their own ` +
          `baseline and that of their unit ${home ?? "(unknown)"}` +
          (surge > 1 ? ` (already raised ×${surge.toFixed(1)} because the unit is busy)` : "");
        out.push({ time: e.timeText, actor: e.actor, rule, severity, reason, events: shown });
        this.s.suppress.set(skey, t + Math.max(hours, 24) * HOUR_MS);
        break;
      }
    }
  }

  // --- breadth baseline ---

  /**
   * Breadth, not volume: the number of distinct first touches (units other than the user's own, conversations and
   * compartments not yet trusted for them; a cable series is its originating unit) today and over 7 days, against
   * the user's own learned days and their home unit's members'. Collection spread thinly over many units keeps the
   * volume normal but touches far more new places than anyone does; a new posting touches one new unit, its
   * channel and perhaps a compartment.
   */
  private evalBreadth(e: DetectEvent, u: UserState, t: number, out: Alert[]): void {
    const today = u.todayFirst.size;
    if (today === 0) return;
    const home = this.homeUnit(u);
    const hn = home !== null ? this.s.units.get(home) : undefined;
    const unitRef = hn && hn.breadth.length >= 5 ? quantile(hn.breadth, 0.95) : 0;
    const own = u.breadthDays.length >= this.o.minHistoryDays ? quantile(u.breadthDays, 0.9) : unitRef;
    const userRef = Math.min(own, Math.max(unitRef * this.o.ceilingMult, 2));
    const b = this.o.breadth;
    const day = dayOf(t);
    const checks: [string, number, number][] = [
      ["breadth-day", today, Math.max(b.floorDay, b.dayUserMult * userRef, b.dayUnitMult * unitRef)],
    ];
    let week = today;
    for (const [d, c] of u.breadthWeek) if (d > day - 7 && d < day) week += c;
    const meanOwn = u.breadthDays.length > 0 ? u.breadthDays.reduce((a, x) => a + x, 0) / u.breadthDays.length : 0;
    checks.push(["breadth-week", week, Math.max(b.floorWeek, b.weekMult * 7 * Math.max(meanOwn, unitRef / 2))]);
    for (const [name, value, threshold] of checks) {
      if (value <= threshold) continue;
      const rule = `baseline.${name}`;
      const skey = `${rule}|${e.actor}`;
      if (this.suppressed(skey, t)) continue;
      this.s.suppress.set(skey, t + (name === "breadth-day" ? 24 : 72) * HOUR_MS);
      const kinds = { u: 0, k: 0, c: 0 };
      for (const k of u.todayFirst) kinds[k[0] as "u" | "k" | "c"]++;
      const reason =
        `${e.actor} touched ${value} places new to them ${name === "breadth-day" ? "today" : "in 7 days"} ` +
        `(today: ${kinds.u} units, ${kinds.k} conversations, ${kinds.c} compartments), above the limit of ` +
        `${Math.round(threshold)} from their own baseline and that of their unit ${home ?? "(unknown)"}; last: ` +
        `${e.action} ${e.object} (${e.unit ?? "no unit"}) from ${e.source}`;
      out.push({ time: e.timeText, actor: e.actor, rule, severity: b.severity, reason, events: [...u.firstIds] });
      break;
    }
  }

  // --- learning ---

  private learnEvent(e: DetectEvent, u: UserState, t: number, f: Map<string, FieldValue>): void {
    const day = dayOf(t);
    u.active = true;
    u.todayHours[f.get("$localHour") as number]! += 1;
    if (e.tz) u.tz = e.tz;
    const affected = affectedUser(e);
    if (e.action === "directory.clearance.set" && e.outcome === "ok" && affected !== null) {
      // A clearance change: compartments it grants that the user has not used yet, for $clearanceWidened.
      const owner = this.user(affected);
      for (const c of f.get("$compartments") as string[])
        if (!this.trusted(owner, `c:${c}`)) touchCapped(owner.granted, c, t, 16);
    }
    if (e.action === "directory.device.add" && e.outcome === "ok" && affected !== null) {
      const dev = e.target_device ?? e.device;
      if (dev !== null) {
        const owner = this.user(affected);
        touchCapped(owner.added, dev, t, 16);
        // Enrolled by its owner from the device itself (a one-time code redeemed), or added by another account.
        const how = e.actor === affected && (e.device === null || e.device === dev) ? "code" : "admin";
        touchCapped(owner.enrolment, dev, how, 16);
      }
    }
    if (e.action === "device.enrolment" && e.outcome === "ok" && e.target_device !== null) {
      // The audited method (issue 16): a one-time code and its issuer, a passkey. A code enrolment is the owner's
      // own ("code": the approval window applies) even when its directory.device.add was not seen.
      const dev = e.target_device;
      const m = u.method.get(dev) ?? "";
      const passkey = e.object === "passkey" || m.includes("passkey");
      const code = e.object.startsWith("code:") ? e.object : (/^code:[^+]*/.exec(m)?.[0] ?? "");
      touchCapped(u.method, dev, [code, passkey ? "passkey" : ""].filter(Boolean).join("+"), 16);
      if (code && !u.enrolment.has(dev)) {
        touchCapped(u.enrolment, dev, "code", 16);
        if (!u.added.has(dev)) touchCapped(u.added, dev, t, 16);
      }
    }
    if (e.device !== null && e.source !== "") {
      const net = f.get("$network") as string;
      const list = u.devNets.get(e.device) ?? [];
      const last = list[list.length - 1];
      if (last && last[1] === net) last[0] = t;
      else pushCapped(list, [t, net], 6);
      touchCapped(u.devNets, e.device, list, 8);
    }
    if (e.outcome !== "ok") return;
    if (e.action === "audit.read") u.officer = true;
    if (
      e.action === "directory.device.ack" &&
      affected === e.actor &&
      e.device !== null &&
      e.target_device !== null &&
      e.device !== e.target_device &&
      this.trusted(u, `d:${e.device}`)
    ) {
      touchCapped(u.acked, e.target_device, t, 16);
      this.s.pending.delete(`${e.actor}|${e.target_device}`);
    }
    const ents: string[] = [`a:${e.action}`];
    if (e.device !== null) ents.push(`d:${e.device}`);
    if (e.source !== "") ents.push(`n:${f.get("$network") as string}`);
    if (e.unit !== null) {
      if (OWN_UNIT_ACTIONS.has(e.action)) {
        touchCapped(u.units, e.unit, (u.units.get(e.unit) ?? 0) + 1, 16);
        touchCapped(u.unitSeen, e.unit, day, 8);
      } else if (DIRECTORY_CHANGE_ACTIONS.has(e.action)) ents.push(`t:${e.unit}`);
      else ents.push(`u:${e.unit}`);
    }
    for (const c of f.get("$compartments") as string[]) ents.push(`c:${c}`);
    if (e.action === "message.read" && e.object !== "") ents.push(`k:${e.object}`);
    if (READ_ACTIONS.has(e.action))
      for (const k of ents) {
        // A first touch: a unit other than the user's own, a conversation or a compartment not yet trusted for them.
        const scope = k.startsWith("u:") || k.startsWith("k:") || k.startsWith("c:");
        if (!scope || this.trusted(u, k) || u.todayFirst.has(k)) continue;
        if (u.todayFirst.size < 500) u.todayFirst.add(k);
        pushCapped(u.firstIds, e.id, this.o.maxAlertEvents);
      }
    for (const k of ents) {
      u.today.add(k);
      const map = entsOf(u, k);
      const x = map.get(k) ?? { clean: 0, last: day };
      x.last = day;
      touchCapped(map, k, x, ENT_CAP);
    }
    if (!READ_ACTIONS.has(e.action)) return;
    const h = hourOf(t);
    const i = h % WEEK_HOURS;
    if (u.bHour[i] !== h) {
      u.bHour[i] = h;
      for (const m of METRICS) u.bVol[m][i] = 0;
    }
    const oh = hash32(e.object);
    const seen = u.objs.get(oh);
    const novel = seen === undefined || day - seen > OBJ_MEMORY_DAYS ? 1 : 0;
    touchCapped(u.objs, oh, day, OBJ_CAP);
    u.bVol.reads[i]! += 1;
    u.bVol.bytes[i]! += e.bytes;
    u.bVol.novel[i]! += novel;
    const doc = e.action === "document.read" ? novel : 0;
    u.bVol.docs[i]! += doc;
    u.todayVol.reads += 1;
    u.todayVol.bytes += e.bytes;
    u.todayVol.novel += novel;
    u.todayVol.docs += doc;
    pushCapped(u.recent, [t, e.id], RECENT_CAP);
    const home = this.homeUnit(u);
    if (home !== null) {
      const n = this.unit(home);
      const j = h % 24;
      if (n.bHour[j] !== h) {
        n.bHour[j] = h;
        n.bReads[j] = 0;
      }
      n.bReads[j]! += 1;
      n.todayReads += 1;
    }
  }

  private freezeTrained(): void {
    this.s.trainedFrozen = true;
    for (const u of this.s.users.values()) {
      if (u.historyDays < this.o.minHistoryDays) continue;
      u.trained = zero();
      for (const m of METRICS) u.trained[m] = u.refDay[m];
    }
  }

  /** Learns the user-days of `day` that raised no alert, and the unit and organisation profiles from them. */
  private closeDay(day: number): void {
    const s = this.s;
    const members = new Map<string, number>();
    const endHour = hourOf((day + 1) * DAY_MS) - 1;
    for (const [, u] of s.users) {
      const clean = u.dirtyDay !== day;
      const home = this.homeUnit(u);
      if (home !== null) members.set(home, (members.get(home) ?? 0) + 1);
      if (clean && (u.active || u.historyDays > 0)) {
        const hn = home !== null ? this.unit(home) : undefined;
        for (const m of METRICS) {
          const unitRef = hn && hn.samples[m].length >= 5 ? hn.refDay[m] : Infinity;
          const ref = u.refDay[m] >= 0 && u.days[m].length >= this.o.minHistoryDays ? u.refDay[m] : unitRef;
          const cap = Math.max((1 + this.o.growthCap) * ref, this.o.volume.floorDay[m] / 4);
          const v = Math.min(u.todayVol[m], cap);
          pushCapped(u.days[m], v, this.o.historyDays);
          if (u.todayVol[m] > 0 && hn) pushCapped(hn.samples[m], v, UNIT_SAMPLE_CAP);
          if (day % 7 === 0 || u.weeks[m].length < 4) {
            const wk = Math.min(this.windowSum(u, m, WEEK_HOURS, endHour), u.weeks[m].length >= 4 ? cap * 7 : Infinity);
            if (u.historyDays >= 6) {
              pushCapped(u.weeks[m], wk, 8);
              if (wk > 0 && hn) pushCapped(hn.weeks[m], wk, UNIT_SAMPLE_CAP);
            }
          }
        }
        if (u.active) {
          pushCapped(u.breadthDays, u.todayFirst.size, this.o.historyDays);
          if (hn && u.historyDays >= this.o.minHistoryDays) pushCapped(hn.breadth, u.todayFirst.size, UNIT_SAMPLE_CAP);
        }
        u.historyDays += 1;
        if (u.active) {
          const decay = 0.98;
          for (let h = 0; h < 24; h++) u.hourHist[h] = u.hourHist[h]! * decay + (u.todayHours[h]! > 0 ? 1 : 0);
          u.hourDays = u.hourDays * decay + 1;
        }
        for (const k of u.today) {
          const x = entsOf(u, k).get(k);
          if (x) x.clean += 1;
          if (k.startsWith("n:")) touchCapped(s.orgNets, k.slice(2), (s.orgNets.get(k.slice(2)) ?? 0) + 1, ORG_NET_CAP);
          if (k.startsWith("c:") && hn && this.trusted(u, k)) hn.comps.add(k.slice(2));
        }
      }
      if (clean)
        for (const m of METRICS) {
          u.refDay[m] = u.days[m].length >= this.o.minHistoryDays ? quantile(u.days[m], 0.9) : -1;
          u.refWeek[m] = u.weeks[m].length > 0 ? quantile(u.weeks[m], 0.9) : -1;
        }
      if (u.active) {
        pushCapped(u.breadthWeek, [day, u.todayFirst.size], 7);
      }
      u.todayFirst.clear();
      u.firstIds = [];
      u.today.clear();
      u.todayHours.fill(0);
      u.todayVol = zero();
      u.active = false;
    }
    for (const [name, n] of s.units) {
      n.members = members.get(name) ?? 0;
      pushCapped(n.totals, n.todayReads, this.o.historyDays);
      n.todayReads = 0;
      n.usualTotal = n.totals.length > 0 ? quantile(n.totals, 0.75) : 0;
      for (const m of METRICS) {
        n.refDay[m] = n.samples[m].length >= 5 ? quantile(n.samples[m], 0.95) : 0;
        n.refWeek[m] = n.weeks[m].length >= 5 ? quantile(n.weeks[m], 0.9) : 0;
      }
    }
    const now = (day + 1) * DAY_MS;
    for (const [k, until] of s.suppress) if (until <= now) s.suppress.delete(k);
    for (const [k, w] of s.windows)
      if (w.t.length === 0 || w.t[w.t.length - 1]! < now - 31 * DAY_MS) s.windows.delete(k);
  }
}

function entsOf(u: UserState, key: string): Map<string, Trust> {
  return key.startsWith("k:") ? u.convs : u.ents;
}

function fmtDuration(seconds: number): string {
  if (seconds % 86400 === 0) return `${seconds / 86400} d`;
  if (seconds % 3600 === 0) return `${seconds / 3600} h`;
  if (seconds % 60 === 0) return `${seconds / 60} min`;
  return `${seconds} s`;
}

function fmtBytes(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(1)} GB`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} MB`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} kB`;
  return `${n} B`;
}
