/**
 * Online detection latency (issue 16's target "first alert ≤ 60 s after the triggering event"): one real server in
 * this process (buildApp on 127.0.0.1, SQLite in a temp dir, detection on with the default rules), its detector
 * tailing the audit log as in production, alerts pushed to an officer's WebSocket subscription (the SDK's
 * watchAlerts, as `valise alerts --follow` does).
 *
 * Setup (not measured):
 *  1. History with baselines: generator B (bench/detect/generate-b.ts, tuning seed 101 by default: the held-out seeds
 *     are not spent here) makes a ministry; its benign events of the first `--history-days` days are appended to the
 *     audit log before the server starts, shifted back by whole weeks (weekdays kept) to end in the week before
 *     today. The server
 *     trains for `--train-days` UTC days counted from the first audit event (the `detect.trainDays` option, `valise
 *     serve --detect-train-days`), so training has ended before today and the people have learned baselines. The
 *     detector catches up on that history when it starts (its time and the alerts it raises on history are reported,
 *     and those alerts are left out of the measurement).
 *  2. Real users for the HTTP part: a desk officer shares a document with a unit of three readers, the security
 *     officer marks it a canary (PUT /v1/documents/:id/canary), all through the SDK over HTTP.
 *
 * Live phase (measured), while background load runs — benign events of the generated day with today's weekday (and
 * the days after it, as needed) appended through the server's audit recorder (the batched, durable write every HTTP request's audit goes through) at `--rate`
 * events/s, stamped now:
 *  (a) each reader opens the canary document through the SDK (real HTTP requests: document, blob, chunks);
 *  (b) generator-B intrusions of the families in `--families` replayed into the audit log through the same recorder,
 *      stamped now, at `--pace` events/s (at most `--max-events` each): bulk collection and session breadth fire
 *      the volume and breadth baselines of victims with history, probing the refusal rules, clearance widening and
 *      the rogue administrator's device their rules, canary opens the canary rule.
 * The recorder is instrumented (wrapped in this process, not changed) to note, per audit event id, when it was
 * stamped and when its batch was durable. Per alert, the triggering event is the last of its events; measured:
 *  - stored: when the detector's transaction storing the alert had committed (observed as its hand-over to the
 *    fan-out, which the detector does right after the commit returns) − the triggering event's durable append; the
 *    alert's createdAt is stamped when the detector's write of it begins (before 2026-12-07 that write also
 *    serialised the engine snapshot and stored it in the same transaction): reported too, with the write between;
 *  - WebSocket: when the officer's socket delivered the alert frame to the SDK callback − the same append;
 *  - for the HTTP canary opens also from the start of the reader's open (client side).
 * Also: the detector backlog (audit entries not yet processed: log size − detector position, sampled every 100 ms),
 * the server's own valise_alert_delay_seconds histogram over the live phase (event time → the alert's commit; before
 * 2026-12-07 → createdAt), the detector's writes and snapshot serialisations (each call timed, by method), and the
 * event loop's delay (perf_hooks.monitorEventLoopDelay: every HTTP request waits behind a long synchronous step).
 * The bench's own load, the SDK clients and the server share this process's event loop.
 *
 *   node bench/dist/detect-online.js [--users 200] [--rate 100] [--families bulk-collection,...] [--per-type 2]
 */
import { cpus, loadavg } from "node:os";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { gunzipSync } from "node:zlib";
import { randomBytes } from "node:crypto";
import { parseArgs } from "node:util";
import type { AuditEvent } from "@valise/core";
import { DetectionEngine, type DetectEvent } from "@valise/detect";
import { setCryptoProvider } from "@valise/protocol";
import { nodeCryptoProvider } from "@valise/protocol/node/provider";
import { bytesSource, collect, MemoryKeyStore, ValiseClient } from "@valise/client";
import { nodeStreamCipher } from "@valise/client/node/docstream";
import { nodeWebSocket } from "@valise/client/node/websocket";
import { AlertStore, Detector, buildApp, openStore, protocolServerMls, type AlertView } from "@valise/server";
import { freshDb } from "@valise/server/testing/databases";
import { FAMILIES_B, START_B, generateB, type FamilyB } from "./detect/generate-b.js";
import { percentile, printTable, writeResults } from "./lib/stats.js";

const { values: args } = parseArgs({
  options: {
    seed: { type: "string", default: "101" },
    users: { type: "string", default: "200" },
    "history-days": { type: "string", default: "10" },
    "train-days": { type: "string", default: "7" },
    /** Background benign audit events per second during the live phase. */
    rate: { type: "string", default: "100" },
    families: {
      type: "string",
      default: "canary-open,probing,bulk-collection,session-breadth,clearance-widening,rogue-admin-device",
    },
    "per-type": { type: "string", default: "2" },
    /** Replay pace of an intrusion (events/s) and the most events replayed per intrusion. */
    pace: { type: "string", default: "100" },
    "max-events": { type: "string", default: "200" },
    /** Seconds between two triggers (intrusion replays and canary opens start one after the other). */
    spacing: { type: "string", default: "2.5" },
    readers: { type: "string", default: "3" },
    /** Hard bound on the whole run (seconds): past it the process exits with status 2. */
    limit: { type: "string", default: "170" },
    "no-write": { type: "boolean" },
  },
});
const SEED = Number(args.seed);
const USERS = Number(args.users);
const HISTORY_DAYS = Number(args["history-days"]);
const TRAIN_DAYS = Number(args["train-days"]);
const RATE = Number(args.rate);
const FAMILIES = args.families.split(",").filter(Boolean) as FamilyB[];
for (const f of FAMILIES) if (!FAMILIES_B.includes(f)) throw new Error(`unknown family ${f}`);
const PER_TYPE = Number(args["per-type"]);
const PACE = Number(args.pace);
const MAX_EVENTS = Number(args["max-events"]);
const SPACING_MS = Number(args.spacing) * 1000;
const READERS = Number(args.readers);
if (TRAIN_DAYS >= HISTORY_DAYS) throw new Error("--train-days must be below --history-days (baselines must exist)");

const D = 86_400_000;
/** Hard bounds: the whole run, and the wait for alerts after the last trigger. */
const RUN_LIMIT_MS = Number(args.limit) * 1000;
const GRACE_MS = 30_000;
const wallStart = Date.now();
const hardStop = setTimeout(() => {
  console.error(`bench/detect-online: still running after ${RUN_LIMIT_MS / 1000} s; stopping`);
  process.exit(2);
}, RUN_LIMIT_MS);
hardStop.unref();

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;
const load0 = loadavg();

setCryptoProvider(nodeCryptoProvider);

// --- generated ministry: history, the live day's benign events, intrusions ---
// History is shifted by whole weeks (hours of the week keep their weekday) to end on or before today's 00:00 UTC;
// the live day is the generated day with today's weekday, and the background load takes benign events from it on.
const todayStart = Math.floor(Date.now() / D) * D;
const shift = Math.floor((todayStart - (START_B + HISTORY_DAYS * D)) / (7 * D)) * 7 * D;
const liveDay = Math.round((todayStart - shift - START_B) / D);
const g = generateB({ seed: SEED, days: liveDay + 3, trainDays: TRAIN_DAYS, perType: PER_TYPE, users: USERS });
const history = g.events.filter((e) => e.time < START_B + HISTORY_DAYS * D && !g.malicious.has(e.id));
const background = g.events.filter((e) => e.time >= START_B + liveDay * D && !g.malicious.has(e.id));
const byId = new Map(g.events.map((e) => [e.id, e]));
const intrusions = g.intrusions.filter((i) => FAMILIES.includes(i.type));

const toAudit = (e: DetectEvent): AuditEvent => ({
  id: `h-${e.id}`,
  time: new Date(e.time + shift).toISOString(),
  actor: e.actor,
  device: e.device,
  source: e.source,
  client: e.client,
  action: e.action as AuditEvent["action"],
  object: e.object,
  target_device: e.target_device,
  label: e.label,
  unit: e.unit,
  bytes: e.bytes,
  canary: e.canary,
  outcome: e.outcome,
});

const db = await freshDb("sqlite");
const store = await openStore({ dataDir: db.dataDir, databaseUrl: undefined });
const tSeed = performance.now();
for (let i = 0; i < history.length; i += 2000) await store.audit.appendEvents(history.slice(i, i + 2000).map(toAudit));
const seedSeconds = (performance.now() - tSeed) / 1000;

// --- the server ---
const ASIA = "CONFIDENTIAL/ASIA";
const d = store.directory;
for (const u of ["HQ/ASIA-1", "EMB/BEIJING", "HQ/SECURITY"]) await d.addUnit(u, "SECRET/ASIA,NATO");
await d.addUser({ handle: "desk", units: ["HQ/ASIA-1"], clearance: "SECRET/ASIA", role: "user" });
await d.addUser({ handle: "olga", units: ["HQ/SECURITY"], clearance: "SECRET/ASIA,NATO", role: "officer" });
const readers = Array.from({ length: READERS }, (_, i) => `reader${i}`);
for (const h of readers) await d.addUser({ handle: h, units: ["EMB/BEIJING"], clearance: ASIA, role: "user" });

const { app, ctx } = await buildApp({
  store,
  mls: protocolServerMls,
  logger: { level: "error" },
  loginRatePerMinute: 1_000_000,
  detect: { trainDays: TRAIN_DAYS },
});
const detector = ctx.detector!;
const alertStore = new AlertStore(store.handle.db, store.handle.sqlite);

// Instrumentation of the audit recorder (the server's code path is unchanged): per event id, when it was stamped
// and when its batch was durable, and which part of this bench caused it.
interface Noted {
  tag: string;
  actor: string;
  canary: boolean;
  stamped: number;
  durable: number | null;
}
const noted = new Map<string, Noted>();
let tag: string | null = null;
{
  const rec = ctx.audit;
  const event = rec.event.bind(rec);
  const record = rec.record.bind(rec);
  let last: AuditEvent | null = null;
  rec.event = (r) => (last = event(r));
  rec.record = (r) => {
    const p = record(r);
    const e = last!;
    const n: Noted = {
      tag: tag ?? "server",
      actor: e.actor,
      canary: e.canary,
      stamped: Date.parse(e.time),
      durable: null,
    };
    noted.set(e.id, n);
    p.then(
      () => (n.durable = Date.now()),
      () => undefined,
    );
    return p;
  };
}

// When the detector handed each stored alert to the fan-out (WebSocket push to officers).
const published = new Map<number, number>();
{
  const fanout = ctx.fanout;
  const publish = fanout.publish.bind(fanout);
  fanout.publish = (events) => {
    const at = Date.now();
    for (const e of events) if (e.type === "alert" && !published.has(e.alert.id)) published.set(e.alert.id, at);
    publish(events);
  };
}

// The detector's writes and the engine's serialisation, timed per method (wrapped on the prototypes, not changed):
// whatever of these the detector calls (alert inserts, state saves, snapshots), with the time each call took until
// its promise settled (on SQLite the write itself is synchronous, on the event loop).
const timed = new Map<string, number[]>();
let timing = false;
function timeMethods(proto: object, names: string[], prefix: string): void {
  const o = proto as Record<string, unknown>;
  for (const name of names) {
    const fn = o[name];
    if (typeof fn !== "function") continue;
    o[name] = function (this: unknown, ...a: unknown[]) {
      const t0 = performance.now();
      const note = () => {
        if (!timing) return;
        const k = `${prefix}.${name}`;
        if (!timed.has(k)) timed.set(k, []);
        timed.get(k)!.push(performance.now() - t0);
      };
      const r: unknown = (fn as (...x: unknown[]) => unknown).apply(this, a);
      if (r instanceof Promise) return r.finally(note);
      note();
      return r;
    };
  }
}
timeMethods(AlertStore.prototype, ["commit", "storeAlerts", "saveState"], "AlertStore");
timeMethods(DetectionEngine.prototype, ["snapshot", "snapshotJson"], "engine");
// The detector's whole state save (slices of serialisation, compression, write): its tick processes no events meanwhile.
timeMethods(Detector.prototype, ["saveState"], "Detector");
// How long the event loop was held up (every request waits behind it), over the live phase.
const loopDelay = monitorEventLoopDelay({ resolution: 10 });

const tStart = performance.now();
const url = await app.listen({ port: 0, host: "127.0.0.1" });
const backlogNow = async () => (await store.audit.size()) - detector.position;
for (;;) {
  if ((await backlogNow()) === 0) break;
  await sleep(50);
}
const catchUpSeconds = (performance.now() - tStart) / 1000;
const learning = detector.learning(Date.now());
if (learning.active) throw new Error(`detection still learning until ${learning.until}: the history is too short`);

const cipher = nodeStreamCipher(undefined, { workers: 0 });
const enroll = async (handle: string) => {
  const { enrollmentCode } = await d.newEnrollmentCode(handle);
  return ValiseClient.enroll({
    serverUrl: url,
    code: enrollmentCode,
    deviceName: "laptop",
    store: new MemoryKeyStore(),
    cipher,
  });
};
const desk = await enroll("desk");
const officer = await enroll("olga");
const readerClients = await Promise.all(readers.map(enroll));
const put = await desk.documents.put({
  to: "EMB/BEIJING",
  label: ASIA,
  name: "visit-programme.pdf",
  source: bytesSource(randomBytes(4000)),
});
await officer.documents.setCanary(put.id, true);
for (const r of readerClients) await r.sync();
await detector.drain();
const before = await allAlerts(0);
const historyAlerts = before.length;
const lastIdBefore = before.reduce((m, a) => Math.max(m, a.id), 0);

const pushed = new Map<number, number>();
const watch = await officer.watchAlerts(nodeWebSocket, (a) => {
  if (!pushed.has(a.id)) pushed.set(a.id, Date.now());
});
// The subscription is in place once the server has taken the socket: give it a moment (it answers nothing).
await sleep(300);

const histBefore = await histogram();
const load1 = loadavg();

// --- live phase ---
const liveStarted = Date.now();
timing = true;
loopDelay.enable();
const backlog: number[] = [];
let sampling = true;
const sampler = (async () => {
  while (sampling) {
    backlog.push(await backlogNow());
    await sleep(100);
  }
})();

let stopBackground = false;
let backgroundSent = 0;
const backgroundRun = (async () => {
  const t0 = Date.now();
  const pending: Promise<void>[] = [];
  for (const e of background) {
    if (stopBackground) break;
    const due = t0 + (backgroundSent * 1000) / RATE;
    if (due > Date.now()) await sleep(due - Date.now());
    tag = "background";
    pending.push(ctx.audit.record(recordOf(e)));
    tag = null;
    backgroundSent++;
  }
  await Promise.all(pending);
})();

const canaryOpens = new Map<string, number>(); // reader → start of the open
async function replay(i: (typeof intrusions)[number]): Promise<number> {
  const events = i.events
    .map((id) => byId.get(id)!)
    .sort((a, b) => a.time - b.time)
    .slice(0, MAX_EVENTS);
  const t0 = Date.now();
  const pending: Promise<void>[] = [];
  for (let k = 0; k < events.length; k++) {
    const due = t0 + (k * 1000) / PACE;
    if (due > Date.now()) await sleep(due - Date.now());
    tag = `intrusion:${i.id}`;
    pending.push(ctx.audit.record(recordOf(events[k]!)));
    tag = null;
  }
  await Promise.all(pending);
  return events.length;
}
const replayed = new Map<string, number>();
const triggers: (() => Promise<void>)[] = [
  ...intrusions.map((i) => async () => void replayed.set(i.id, await replay(i))),
  ...readerClients.map((c, k) => async () => {
    canaryOpens.set(readers[k]!, Date.now());
    await collect((await c.documents.get(put.id)).bytes);
  }),
];
// Interleave: canary opens spread among the intrusions.
const order = interleave(triggers.slice(0, intrusions.length), triggers.slice(intrusions.length));
await sleep(2000); // background load first
const running: Promise<void>[] = [];
for (const t of order) {
  running.push(t());
  await sleep(SPACING_MS);
}
await Promise.all(running);
const triggersDone = Date.now();
// Wait until the detector is caught up and every stored alert has been pushed (bounded).
for (;;) {
  const stored = (await allAlerts(lastIdBefore)).filter((a) => Date.parse(a.createdAt) <= Date.now());
  const caughtUp = (await backlogNow()) === 0;
  if (caughtUp && stored.every((a) => pushed.has(a.id)) && Date.now() - triggersDone > 3000) break;
  if (Date.now() - triggersDone > GRACE_MS) break;
  await sleep(200);
}
stopBackground = true;
await backgroundRun;
await detector.drain();
timing = false;
loopDelay.disable();
sampling = false;
await sampler;
const liveSeconds = (Date.now() - triggersDone) / 1000;
const livePhaseSeconds = (Date.now() - liveStarted) / 1000;
const load2 = loadavg();
const histAfter = await histogram();
const live = await allAlerts(lastIdBefore);
/** The engine snapshot the detector serialises and stores with each state save (characters of JSON). */
const storedState = (await alertStore.loadState()).snapshot as { v?: number; engine?: unknown } | null;
const storedChars = JSON.stringify(storedState).length;
const snapshotChars =
  storedState?.v === 2 && typeof storedState.engine === "string"
    ? gunzipSync(Buffer.from(storedState.engine, "base64")).length
    : storedChars;
watch.close();

// --- results ---
interface Row {
  id: number;
  rule: string;
  kind: "intrusion" | "http-canary" | "background" | "other";
  trigger: string;
  /** Triggering event durable → alert committed (handed to the fan-out right after). */
  storedMs: number | null;
  /** Triggering event durable → the alert's createdAt (the start of the detector's write). */
  createdAtMs: number | null;
  /** createdAt → committed: the detector's write (before 2026-12-07 with the engine snapshot). */
  saveMs: number | null;
  /** Triggering event durable → the officer's SDK callback. */
  wsMs: number | null;
  /** Committed → the officer's SDK callback. */
  publishedToWsMs: number | null;
  /** The triggering event stamped (its time) → durable (the recorder's batch commit). */
  stampToDurableMs: number | null;
  fromOpenStoredMs?: number;
  fromOpenWsMs?: number;
}
const familyOf = new Map(intrusions.map((i) => [i.id, i.type]));
const rows: Row[] = live.map((a) => {
  const trig = a.events.at(-1) ?? "";
  const n = noted.get(trig);
  const created = Date.parse(a.createdAt);
  const stored = published.get(a.id) ?? null;
  const durable = n?.durable ?? null;
  const ws = pushed.get(a.id) ?? null;
  let kind: Row["kind"] = "other";
  let trigger = n?.tag ?? "unknown";
  if (n?.tag.startsWith("intrusion:")) {
    kind = "intrusion";
    const id = n.tag.slice("intrusion:".length);
    trigger = `${familyOf.get(id)} ${id}`;
  } else if (n?.tag === "background") kind = "background";
  else if (n?.tag === "server" && n.canary && canaryOpens.has(n.actor)) {
    kind = "http-canary";
    trigger = `canary open by ${n.actor} (HTTP)`;
  }
  const row: Row = {
    id: a.id,
    rule: a.rule,
    kind,
    trigger,
    storedMs: durable !== null && stored !== null ? stored - durable : null,
    createdAtMs: durable !== null ? created - durable : null,
    saveMs: stored !== null ? stored - created : null,
    wsMs: durable !== null && ws !== null ? ws - durable : null,
    publishedToWsMs: stored !== null && ws !== null ? ws - stored : null,
    stampToDurableMs: durable !== null ? durable - Date.parse(a.time) : null,
  };
  if (kind === "http-canary") {
    const open = canaryOpens.get(n!.actor)!;
    if (stored !== null) row.fromOpenStoredMs = stored - open;
    if (ws !== null) row.fromOpenWsMs = ws - open;
  }
  return row;
});

const stats = (xs: (number | null | undefined)[]) => {
  const s = xs.filter((x): x is number => typeof x === "number").sort((a, b) => a - b);
  return {
    count: s.length,
    p50Ms: s.length ? percentile(s, 50) : null,
    p99Ms: s.length ? percentile(s, 99) : null,
    maxMs: s.length ? s[s.length - 1]! : null,
  };
};
const triggered = rows.filter((r) => r.kind === "intrusion" || r.kind === "http-canary");
const firstPerTrigger = new Map<string, Row>();
for (const r of triggered)
  if (!firstPerTrigger.has(r.trigger) || firstPerTrigger.get(r.trigger)!.id > r.id) firstPerTrigger.set(r.trigger, r);
const firsts = [...firstPerTrigger.values()];
const bg = rows.filter((r) => r.kind === "background");
const sortedBacklog = [...backlog].sort((a, b) => a - b);
const perIntrusion = intrusions.map((i) => {
  const mine = triggered.filter((r) => r.trigger === `${i.type} ${i.id}`);
  return {
    id: i.id,
    family: i.type,
    replayedEvents: replayed.get(i.id) ?? 0,
    alerts: mine.length,
    rules: [...new Set(mine.map((r) => r.rule))],
    /** The first alert (lowest id): its triggering event's durable append → committed. */
    firstStoredMs: firstPerTrigger.get(`${i.type} ${i.id}`)?.storedMs ?? null,
  };
});
const canaryHttp = readers.map((h) => {
  const r = triggered.find((x) => x.trigger === `canary open by ${h} (HTTP)`);
  return {
    reader: h,
    alerted: !!r,
    fromOpenStoredMs: r?.fromOpenStoredMs ?? null,
    fromOpenWsMs: r?.fromOpenWsMs ?? null,
  };
});
const result = {
  benchmark: "detect-online",
  note:
    "One real server in the bench process (buildApp, SQLite, 127.0.0.1, detection on, default rules, trainDays " +
    `${TRAIN_DAYS}). History: generator B seed ${SEED} (${g.users} staff), ${history.length} benign events of ` +
    `${HISTORY_DAYS} days appended to the audit log before the server started, shifted by whole weeks to end in the ` +
    "week before today (training over, baselines learned). Live phase: benign events of the generated day with " +
    "today's weekday (and the days after it, as needed) appended through the server's " +
    `audit recorder at ${RATE}/s (stamped now) while (a) ${READERS} readers opened a canary document through the ` +
    "SDK over HTTP and (b) generator-B intrusions were replayed through the same audit recorder stamped now " +
    `(${PACE} events/s, at most ${MAX_EVENTS} each). Per alert: stored = when the detector's transaction storing it ` +
    "had committed (seen as its hand-over to the fan-out, done right after the commit) − the durable audit append " +
    "of its triggering event (the last event it names; durable = the recorder's batch committed); createdAt is " +
    "stamped when the detector's write of the alert begins (triggeredAlertsStages); WebSocket = when the officer's SDK subscription received the " +
    "alert frame − that append (client and server share this process and its event loop). 'first per trigger' = the " +
    "first alert per intrusion or canary open. Backlog = audit log size − detector position, sampled every 100 ms. " +
    "Background alerts: raised on the benign replay (a day's events squeezed into a minute at one hour of the day), " +
    "measured the same way and reported apart. The alerts raised while catching up on the history are excluded.",
  target: { firstAlertWithinSeconds: 60 },
  params: {
    seed: SEED,
    staff: g.users,
    historyDays: HISTORY_DAYS,
    trainDays: TRAIN_DAYS,
    backgroundRatePerSecond: RATE,
    families: FAMILIES,
    perType: PER_TYPE,
    replayPacePerSecond: PACE,
    maxEventsPerIntrusion: MAX_EVENTS,
    spacingSeconds: SPACING_MS / 1000,
    readers: READERS,
  },
  setup: {
    historyEvents: history.length,
    historySeedSeconds: round(seedSeconds, 2),
    detectorCatchUpSeconds: round(catchUpSeconds, 2),
    detectorCatchUpEventsPerSecond: Math.round(history.length / catchUpSeconds),
    historyAlertsExcluded: historyAlerts,
  },
  live: {
    backgroundEvents: backgroundSent,
    intrusionsReplayed: intrusions.length,
    intrusionEventsReplayed: [...replayed.values()].reduce((a, b) => a + b, 0),
    canaryOpensHttp: READERS,
    seconds: round(livePhaseSeconds),
    waitAfterLastTriggerSeconds: round(liveSeconds),
  },
  latency: {
    triggeredAlerts: {
      count: triggered.length,
      toStored: stats(triggered.map((r) => r.storedMs)),
      toWebSocket: stats(triggered.map((r) => r.wsMs)),
    },
    triggeredAlertsStages: {
      eventStampedToDurable: stats(triggered.map((r) => r.stampToDurableMs)),
      durableToCreatedAt: stats(triggered.map((r) => r.createdAtMs)),
      detectorSave: stats(triggered.map((r) => r.saveMs)),
      storedToWebSocket: stats(triggered.map((r) => r.publishedToWsMs)),
    },
    firstAlertPerTrigger: {
      triggers: intrusions.length + READERS,
      alerted: firsts.length,
      toStored: stats(firsts.map((r) => r.storedMs)),
      toWebSocket: stats(firsts.map((r) => r.wsMs)),
    },
    httpCanaryFromOpenStart: {
      toStored: stats(canaryHttp.map((c) => c.fromOpenStoredMs)),
      toWebSocket: stats(canaryHttp.map((c) => c.fromOpenWsMs)),
    },
    backgroundAlerts: {
      count: bg.length,
      rules: countBy(bg.map((r) => r.rule)),
      toStored: stats(bg.map((r) => r.storedMs)),
      toWebSocket: stats(bg.map((r) => r.wsMs)),
    },
    otherAlerts: rows.filter((r) => r.kind === "other").map((r) => ({ rule: r.rule, trigger: r.trigger })),
    alertsNotPushed: rows.filter((r) => !pushed.has(r.id)).length,
  },
  detectorSnapshotChars: snapshotChars,
  detectorStoredStateChars: storedChars,
  /** Calls made during the live phase: durations (ms) until each settled. */
  detectorCallsLivePhase: Object.fromEntries(
    [...timed].map(([k, xs]) => {
      const s = [...xs].sort((a, b) => a - b);
      return [
        k,
        {
          count: s.length,
          p50Ms: round(percentile(s, 50)),
          maxMs: round(s.at(-1)!),
          totalMs: round(s.reduce((a, b) => a + b, 0)),
        },
      ];
    }),
  ),
  eventLoopDelayLivePhase: {
    note: "perf_hooks.monitorEventLoopDelay (resolution 10 ms) over the live phase: how late timers ran, i.e. how long the loop was held",
    p50Ms: round(loopDelay.percentile(50) / 1e6),
    p99Ms: round(loopDelay.percentile(99) / 1e6),
    maxMs: round(loopDelay.max / 1e6),
  },
  backlog: {
    samples: backlog.length,
    p50: percentile(sortedBacklog, 50),
    p99: percentile(sortedBacklog, 99),
    max: sortedBacklog.at(-1) ?? 0,
  },
  serverHistogramLivePhase: {
    metric:
      "valise_alert_delay_seconds, live phase only (difference of two scrapes): the server observes event time → the " +
      "alert's commit (before 2026-12-07: → createdAt, the start of the save)",
    buckets: diffBuckets(histBefore, histAfter),
  },
  perIntrusion,
  canaryHttp,
  alerts: rows,
  loadavg: {
    start: load0.map((x) => round(x, 2)),
    liveStart: load1.map((x) => round(x, 2)),
    end: load2.map((x) => round(x, 2)),
  },
  cpus: cpus().length,
  wallSeconds: round((Date.now() - wallStart) / 1000),
  command: `node bench/dist/detect-online.js ${process.argv.slice(2).join(" ")}`.trim(),
  date: new Date().toISOString(),
};

const f = (s: { count: number; p50Ms: number | null; p99Ms: number | null; maxMs: number | null }) =>
  s.count === 0 ? "none" : `${s.p50Ms} / ${s.p99Ms} / ${s.maxMs} ms (n=${s.count})`;
const L = result.latency;
printTable("bench/detect-online: triggering event's durable audit append → alert (p50 / p99 / max)", [
  [
    "history (seeded, detector catch-up)",
    `${history.length} events, ${g.users} staff, ${HISTORY_DAYS} days (${TRAIN_DAYS} training); catch-up ${round(catchUpSeconds, 2)} s, ${historyAlerts} history alerts excluded`,
  ],
  [
    "background load",
    `${backgroundSent} benign events at ${RATE}/s through the audit recorder (live phase ${round(livePhaseSeconds)} s)`,
  ],
  ["triggers", `${intrusions.length} intrusions replayed (${FAMILIES.join(", ")}), ${READERS} canary opens over HTTP`],
  ["triggers alerted", `${firsts.length}/${intrusions.length + READERS}`],
  ["all triggered alerts → stored", f(L.triggeredAlerts.toStored)],
  ["all triggered alerts → officer WebSocket", f(L.triggeredAlerts.toWebSocket)],
  ["  stage: durable → createdAt (write begins)", f(L.triggeredAlertsStages.durableToCreatedAt)],
  ["  stage: detector write (createdAt → commit)", f(L.triggeredAlertsStages.detectorSave)],
  ["  stage: committed → officer's SDK callback", f(L.triggeredAlertsStages.storedToWebSocket)],
  ["first alert per trigger → stored", f(L.firstAlertPerTrigger.toStored)],
  ["first alert per trigger → officer WebSocket", f(L.firstAlertPerTrigger.toWebSocket)],
  ["HTTP canary open start → stored", f(L.httpCanaryFromOpenStart.toStored)],
  ["HTTP canary open start → officer WebSocket", f(L.httpCanaryFromOpenStart.toWebSocket)],
  ["background alerts → stored", f(L.backgroundAlerts.toStored)],
  ["alerts stored but not pushed", L.alertsNotPushed],
  [
    "engine snapshot (JSON / as stored)",
    `${(snapshotChars / 1e6).toFixed(1)} MB / ${(storedChars / 1e6).toFixed(1)} MB`,
  ],
  ...[...Object.entries(result.detectorCallsLivePhase)].map(([k, v]): [string, string] => [
    `  live: ${k}`,
    `${v.count} calls, p50 ${v.p50Ms} / max ${v.maxMs} ms, total ${v.totalMs} ms`,
  ]),
  [
    "event loop delay p50 / p99 / max (live)",
    `${result.eventLoopDelayLivePhase.p50Ms} / ${result.eventLoopDelayLivePhase.p99Ms} / ${result.eventLoopDelayLivePhase.maxMs} ms`,
  ],
  ["detector backlog p50 / p99 / max", `${result.backlog.p50} / ${result.backlog.p99} / ${result.backlog.max} entries`],
  ["target (first alert ≤ 60 s)", (L.firstAlertPerTrigger.toWebSocket.maxMs ?? Infinity) <= 60_000 ? "MET" : "NOT met"],
  ["wall time", `${result.wallSeconds} s`],
  [
    "load average (start / live / end, 1 min)",
    `${result.loadavg.start[0]} / ${result.loadavg.liveStart[0]} / ${result.loadavg.end[0]} on ${cpus().length} cores`,
  ],
]);
for (const p of perIntrusion)
  console.log(
    `  ${p.family.padEnd(20)} ${p.id.padEnd(8)} ${String(p.replayedEvents).padStart(4)} events  ${p.alerts} alerts ${p.rules.join(", ") || "-"}  first stored ${p.firstStoredMs ?? "-"} ms`,
  );
if (!args["no-write"]) console.log(`\nwrote ${writeResults("detect-online", result)}`);

await app.close();
await store.close();
await db.dispose();
clearTimeout(hardStop);

// --- helpers ---
function recordOf(e: DetectEvent): Parameters<typeof ctx.audit.record>[0] {
  return {
    actor: e.actor,
    device: e.device,
    source: e.source,
    client: e.client,
    action: e.action as AuditEvent["action"],
    object: e.object,
    targetDevice: e.target_device,
    label: e.label,
    unit: e.unit,
    bytes: e.bytes,
    outcome: e.outcome,
    canary: e.canary,
  };
}

/** Alerts stored after id `after`, straight from the detector's store (what GET /v1/alerts answers). */
async function allAlerts(after: number): Promise<AlertView[]> {
  return alertStore.list({ after, limit: 1_000_000 });
}

async function histogram(): Promise<Map<string, number>> {
  const m = await detector.metrics.delay.get();
  return new Map(m.values.filter((v) => v.metricName?.endsWith("_bucket")).map((v) => [String(v.labels.le), v.value]));
}

function diffBuckets(a: Map<string, number>, b: Map<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [le, v] of b) out[`le ${le}`] = v - (a.get(le) ?? 0);
  return out;
}

function countBy(xs: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const x of xs) out[x] = (out[x] ?? 0) + 1;
  return out;
}

function interleave<T>(a: T[], b: T[]): T[] {
  const out: T[] = [];
  const step = b.length ? Math.max(1, Math.floor(a.length / (b.length + 1))) : Infinity;
  let j = 0;
  a.forEach((x, i) => {
    out.push(x);
    if ((i + 1) % step === 0 && j < b.length) out.push(b[j++]!);
  });
  while (j < b.length) out.push(b[j++]!);
  return out;
}
