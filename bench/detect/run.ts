/**
 * Evaluation of @valise/detect on the synthetic ministry of generate.ts (`node bench/dist/detect/run.js`).
 *
 * For each seed: generate, replay every event through a fresh engine with the default rules (the first trainDays
 * only train), then score against the ground truth the engine never sees:
 *  - recall: intrusions with at least one alert whose events include one of the intrusion's events;
 *  - false-positive user-day rate: benign user-days (an actor's UTC day after training with no malicious event of
 *    theirs) with any alert, over all benign active user-days;
 *  - time to alert: from an intrusion's first malicious event to the first alert that names one of its events.
 * Development seeds were used while writing the rules; the held-out seed was run only for the final report.
 * Options: --seeds 1,2,3 --heldout 20260302 --users 300 --days 42 --train-days 14 --per-type 3 --jsonl FILE (write
 * the first seed's events as replay JSONL, e.g. for `valise detect`).
 */
import { writeFileSync } from "node:fs";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { DetectionEngine, checkRuleSet, parseRules, type Alert, type DetectEvent, type Rule } from "@valise/detect";
import { INTRUSION_TYPES, eventLine, generate } from "./generate.js";
import { FAMILIES_B, generateB } from "./generate-b.js";
import { percentile, printTable, writeResults } from "../lib/stats.js";

const DAY = 86_400_000;

function defaultRules(): Rule[] {
  const dir = join(dirname(fileURLToPath(import.meta.resolve("@valise/detect"))), "..", "..", "rules");
  const files = readdirSync(dir)
    .filter((f) => f.endsWith(".json"))
    .sort();
  return checkRuleSet(files.flatMap((f) => parseRules(readFileSync(join(dir, f), "utf8"), f)));
}

interface SeedResult {
  seed: number;
  events: number;
  users: number;
  units: number;
  days: number;
  trainDays: number;
  intrusions: number;
  detected: number;
  recall: number;
  benignUserDays: number;
  falsePositiveUserDays: number;
  falsePositiveUserDayRate: number;
  falsePositiveUserDayRateHighOrCritical: number;
  medianTimeToAlertSeconds: number;
  timesToAlertSeconds: number[];
  perType: Record<string, { intrusions: number; detected: number; medianTimeToAlertSeconds: number | null }>;
  perRule: Record<string, { alerts: number; truePositive: number; falsePositive: number }>;
  missed: string[];
  /** Benign lookalike user-days (generator B: travel, new device, new posting, canary marking) and those alerted. */
  lookalikes: Record<string, { userDays: number; alerted: number }>;
  /** Alerts per detected intrusion, per family (one canary open should be one alert). */
  alertsPerIntrusion: Record<string, number>;
  eventsPerSecond: number;
  falsePositiveExamples: Alert[];
}

interface Gen {
  events: DetectEvent[];
  intrusions: { id: string; type: string; victim: string; start: number }[];
  malicious: Map<string, string>;
  users: number;
  units: number;
  start: number;
  lookalikes?: Map<string, string>;
  /** Unit → IANA time zone (generator B's directory); generator A has none (UTC). */
  timeZones?: Record<string, string>;
}

function evaluate(
  o: { seed: number; days: number; trainDays: number },
  g: Gen,
  families: readonly string[],
): SeedResult {
  const rules = defaultRules();
  const engine = new DetectionEngine({ rules, trainDays: o.trainDays, timeZones: g.timeZones ?? {} });
  const alerts: Alert[] = [];
  const t0 = performance.now();
  for (const e of g.events) for (const a of engine.push(e)) alerts.push(a);
  alerts.push(...engine.flush());
  const seconds = (performance.now() - t0) / 1000;
  const trainUntil = g.start + o.trainDays * DAY;
  const key = (actor: string, t: number): string => `${actor}|${Math.floor(t / DAY)}`;
  // Benign user-days: active after training, with no malicious event by that actor that day.
  const active = new Set<string>();
  const dirty = new Set<string>();
  for (const e of g.events) {
    if (e.time < trainUntil) continue;
    const k = key(e.actor, e.time);
    active.add(k);
    if (g.malicious.has(e.id)) dirty.add(k);
  }
  const benign = [...active].filter((k) => !dirty.has(k));
  const fpDays = new Set<string>();
  const fpDaysHigh = new Set<string>();
  const firstAlert = new Map<string, number>();
  const perRule: SeedResult["perRule"] = {};
  const fpExamples: Alert[] = [];
  const alertCount = new Map<string, number>();
  for (const a of alerts) {
    const t = Date.parse(a.time);
    const hits = new Set(a.events.map((id) => g.malicious.get(id)).filter((x): x is string => x !== undefined));
    const pr = (perRule[a.rule] ??= { alerts: 0, truePositive: 0, falsePositive: 0 });
    pr.alerts++;
    if (hits.size > 0) {
      pr.truePositive++;
      for (const id of hits) alertCount.set(id, (alertCount.get(id) ?? 0) + 1);
      for (const id of hits) if (!firstAlert.has(id) || firstAlert.get(id)! > t) firstAlert.set(id, t);
    } else {
      const k = key(a.actor, t);
      if (!dirty.has(k)) {
        pr.falsePositive++;
        fpDays.add(k);
        if (a.severity === "high" || a.severity === "critical") fpDaysHigh.add(k);
        if (fpExamples.length < 8) fpExamples.push(a);
      }
    }
  }
  const tta: number[] = [];
  const perType: SeedResult["perType"] = {};
  const missed: string[] = [];
  for (const type of families) perType[type] = { intrusions: 0, detected: 0, medianTimeToAlertSeconds: null };
  const typeTimes = new Map<string, number[]>();
  for (const i of g.intrusions) {
    const p = perType[i.type]!;
    p.intrusions++;
    const at = firstAlert.get(i.id);
    if (at === undefined) {
      missed.push(`${i.id} (${i.victim})`);
      continue;
    }
    p.detected++;
    const s = Math.max(0, (at - i.start) / 1000);
    tta.push(s);
    typeTimes.set(i.type, [...(typeTimes.get(i.type) ?? []), s]);
  }
  for (const [type, xs] of typeTimes) perType[type]!.medianTimeToAlertSeconds = median(xs);
  const detected = g.intrusions.length - missed.length;
  const lookalikes: SeedResult["lookalikes"] = {};
  for (const k of benign) {
    const kind = g.lookalikes?.get(k);
    if (kind === undefined) continue;
    const l = (lookalikes[kind] ??= { userDays: 0, alerted: 0 });
    l.userDays++;
    if (fpDays.has(k)) l.alerted++;
  }
  const alertsPerIntrusion: Record<string, number> = {};
  for (const type of families) {
    const ids = g.intrusions.filter((i) => i.type === type && alertCount.has(i.id));
    alertsPerIntrusion[type] = ids.length ? ids.reduce((a, i) => a + alertCount.get(i.id)!, 0) / ids.length : 0;
  }
  return {
    seed: o.seed,
    events: g.events.length,
    users: g.users,
    units: g.units,
    days: o.days,
    trainDays: o.trainDays,
    intrusions: g.intrusions.length,
    detected,
    recall: detected / g.intrusions.length,
    benignUserDays: benign.length,
    falsePositiveUserDays: fpDays.size,
    falsePositiveUserDayRate: fpDays.size / benign.length,
    falsePositiveUserDayRateHighOrCritical: fpDaysHigh.size / benign.length,
    medianTimeToAlertSeconds: median(tta),
    timesToAlertSeconds: tta.sort((a, b) => a - b),
    perType,
    perRule,
    missed,
    lookalikes,
    alertsPerIntrusion,
    eventsPerSecond: Math.round(g.events.length / seconds),
    falsePositiveExamples: fpExamples,
  };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : Math.round(percentile(s, 50));
}

function pool(rs: SeedResult[], families: readonly string[]) {
  const intrusions = rs.reduce((a, r) => a + r.intrusions, 0);
  const detected = rs.reduce((a, r) => a + r.detected, 0);
  const benign = rs.reduce((a, r) => a + r.benignUserDays, 0);
  const fp = rs.reduce((a, r) => a + r.falsePositiveUserDays, 0);
  const fpHigh = rs.reduce((a, r) => a + r.falsePositiveUserDayRateHighOrCritical * r.benignUserDays, 0);
  const perType: Record<string, { intrusions: number; detected: number; recall: number }> = {};
  for (const t of families) {
    const i = rs.reduce((a, r) => a + r.perType[t]!.intrusions, 0);
    const d = rs.reduce((a, r) => a + r.perType[t]!.detected, 0);
    perType[t] = { intrusions: i, detected: d, recall: i ? d / i : NaN };
  }
  const perRule: Record<string, { alerts: number; truePositive: number; falsePositive: number }> = {};
  for (const r of rs)
    for (const [k, v] of Object.entries(r.perRule)) {
      const p = (perRule[k] ??= { alerts: 0, truePositive: 0, falsePositive: 0 });
      p.alerts += v.alerts;
      p.truePositive += v.truePositive;
      p.falsePositive += v.falsePositive;
    }
  const lookalikes: Record<string, { userDays: number; alerted: number; rate: number }> = {};
  for (const r of rs)
    for (const [k, v] of Object.entries(r.lookalikes)) {
      const l = (lookalikes[k] ??= { userDays: 0, alerted: 0, rate: 0 });
      l.userDays += v.userDays;
      l.alerted += v.alerted;
      l.rate = l.alerted / l.userDays;
    }
  return {
    recall: detected / intrusions,
    falsePositiveUserDayRate: fp / benign,
    falsePositiveUserDayRateHighOrCritical: fpHigh / benign,
    medianTimeToAlertSeconds: median(rs.flatMap((r) => r.timesToAlertSeconds)),
    intrusions,
    detected,
    benignUserDays: benign,
    falsePositiveUserDays: fp,
    perIntrusionTypeRecall: perType,
    perRuleAlerts: perRule,
    benignLookalikes: lookalikes,
  };
}

function main(): void {
  const { values } = parseArgs({
    options: {
      seeds: { type: "string", default: "1,2,3" },
      heldout: { type: "string", default: "20260302" },
      /** Generator B seeds declared as tuning seeds (looked at while changing the engine). */
      "b-tune-seeds": { type: "string", default: "101,301,302,303,304,305" },
      /** Generator B seeds held out: never run before the final report (issue 16 round 4: 401-410). */
      "b-seeds": { type: "string", default: "401,402,403,404,405,406,407,408,409,410" },
      users: { type: "string", default: "300" },
      "b-users": { type: "string", default: "0" },
      /** Staff per held-out B seed, in --b-seeds order (0: drawn from the seed, 120-700); default 60 and 1000 last. */
      "b-sizes": { type: "string", default: "0,0,0,0,0,0,0,0,60,1000" },
      days: { type: "string", default: "42" },
      "train-days": { type: "string", default: "14" },
      "per-type": { type: "string", default: "3" },
      jsonl: { type: "string" },
      out: { type: "string", default: "detect" },
      "no-write": { type: "boolean" },
    },
  });
  const base = {
    users: Number(values.users),
    days: Number(values.days),
    trainDays: Number(values["train-days"]),
    perType: Number(values["per-type"]),
  };
  const list = (s: string): number[] => s.split(",").filter(Boolean).map(Number);
  const devSeeds = list(values.seeds);
  const heldSeeds = list(values.heldout);
  const bSeeds = list(values["b-seeds"]);
  const bTuneSeeds = list(values["b-tune-seeds"]);
  if (values.jsonl) {
    const g = generate({ ...base, seed: devSeeds[0] ?? 1 });
    writeFileSync(values.jsonl, g.events.map((e) => `${eventLine(e)}\n`).join(""));
    console.log(`wrote ${g.events.length} events to ${values.jsonl}`);
  }
  const show = (label: string, r: SeedResult): void => {
    printTable(`bench/detect ${label} seed ${r.seed}`, [
      [
        "events / users / units / days (training)",
        `${r.events} / ${r.users} / ${r.units} / ${r.days} (${r.trainDays})`,
      ],
      ["recall", `${r.detected}/${r.intrusions} = ${(100 * r.recall).toFixed(1)} %`],
      [
        "false-positive user-days",
        `${r.falsePositiveUserDays}/${r.benignUserDays} = ${(100 * r.falsePositiveUserDayRate).toFixed(2)} %`,
      ],
      ["  of which high/critical", `${(100 * r.falsePositiveUserDayRateHighOrCritical).toFixed(2)} %`],
      ["median time to alert (s)", r.medianTimeToAlertSeconds],
      ["engine throughput (events/s)", r.eventsPerSecond],
      ["missed", r.missed.join(", ") || "none"],
    ]);
    for (const [t, p] of Object.entries(r.perType))
      console.log(
        `  family ${t.padEnd(32)} ${p.detected}/${p.intrusions}  alerts per detected intrusion ${r.alertsPerIntrusion[t]!.toFixed(1)}`,
      );
    for (const [k, v] of Object.entries(r.perRule))
      console.log(`  rule ${k.padEnd(34)} ${v.alerts} alerts, ${v.truePositive} TP, ${v.falsePositive} FP`);
    for (const [k, v] of Object.entries(r.lookalikes))
      console.log(`  benign lookalike ${k.padEnd(22)} ${v.alerted}/${v.userDays} user-days alerted`);
  };
  const runA = (seed: number): SeedResult => {
    const o = { ...base, seed };
    return evaluate(o, generate(o), INTRUSION_TYPES);
  };
  const bSizes = list(values["b-sizes"]);
  const runB = (seed: number, size = 0): SeedResult => {
    const o = { ...base, users: size || Number(values["b-users"]), seed };
    return evaluate(o, generateB(o), FAMILIES_B);
  };
  const dev = devSeeds.map(runA);
  dev.forEach((r) => show("generator A (tuning) development", r));
  const held = heldSeeds.map(runA);
  held.forEach((r) => show("generator A (tuning) held-out seed", r));
  const wall0 = performance.now();
  const bt = bTuneSeeds.map((s) => runB(s));
  bt.forEach((r) => show("generator B tuning seed (looked at while tuning)", r));
  const b = bSeeds.map((s, i) => runB(s, bSizes[i] ?? 0));
  b.forEach((r) => show("generator B held-out seed (NOT used for tuning)", r));
  const d = pool(dev, INTRUSION_TYPES);
  const h = held.length ? pool(held, INTRUSION_TYPES) : null;
  const pb = b.length ? pool(b, FAMILIES_B) : null;
  const pbt = bt.length ? pool(bt, FAMILIES_B) : null;
  const strip = (r: SeedResult) => ({ ...r, falsePositiveExamples: r.falsePositiveExamples.slice(0, 3) });
  const out = {
    benchmark: "detect",
    note:
      "Two independently modelled synthetic ministries. Generator A (bench/detect/generate.ts) was written with the " +
      "rules and the rules were tuned on it; generator B (bench/detect/generate-b.ts) was written separately for " +
      "issue 16 and is NOT used for tuning: its numbers are the ones that count. See 'method' for what was looked at.",
    method: METHOD,
    generatorB: {
      heldOut: pb
        ? { role: "held-out: never run before this report, not used for tuning", seeds: bSeeds, ...pb }
        : null,
      tuning: pbt
        ? { role: "declared tuning seeds (looked at while changing the engine)", seeds: bTuneSeeds, ...pbt }
        : null,
    },
    generatorA: {
      role: "tuning",
      development: { seeds: devSeeds, ...d },
      heldOutSeed: h ? { seeds: heldSeeds, ...h } : null,
    },
    sizes: { ...base, bUsers: b.map((r) => r.users), bUnits: b.map((r) => r.units), bEvents: b.map((r) => r.events) },
    heldOutPerSeed: b.map((r) => ({
      seed: r.seed,
      users: r.users,
      recall: r.recall,
      detected: r.detected,
      intrusions: r.intrusions,
      falsePositiveUserDayRate: r.falsePositiveUserDayRate,
      falsePositiveUserDays: r.falsePositiveUserDays,
      benignUserDays: r.benignUserDays,
      missed: r.missed,
    })),
    wallSecondsGeneratorB: Math.round((performance.now() - wall0) / 1000),
    command: `node bench/dist/detect/run.js ${process.argv.slice(2).join(" ")}`.trim(),
    targets: { recall: 0.95, falsePositiveUserDayRate: 0.01, on: "generatorB" },
    perSeed: [
      ...dev.map((r) => ({ set: "A-development", ...strip(r) })),
      ...held.map((r) => ({ set: "A-heldOutSeed", ...strip(r) })),
      ...bt.map((r) => ({ set: "B-tuning", ...strip(r) })),
      ...b.map((r) => ({ set: "B-heldOut", ...strip(r) })),
    ],
  };
  if (!values["no-write"]) console.log(`\nwrote ${writeResults(values.out, out)}`);
  const line = (name: string, p: ReturnType<typeof pool>): string =>
    `${name} recall ${(100 * p.recall).toFixed(1)} % (${p.detected}/${p.intrusions}), FP user-days ${(100 * p.falsePositiveUserDayRate).toFixed(2)} % (${p.falsePositiveUserDays}/${p.benignUserDays}), median TTA ${p.medianTimeToAlertSeconds} s`;
  console.log(`\n${line("A development:   ", d)}`);
  if (h) console.log(line("A held-out seed: ", h));
  if (h)
    for (const [t, p] of Object.entries(h.perIntrusionTypeRecall))
      console.log(`  A held-out ${t.padEnd(32)} ${p.detected}/${p.intrusions}`);
  for (const [t, p] of Object.entries(d.perIntrusionTypeRecall))
    console.log(`  A tuning   ${t.padEnd(32)} ${p.detected}/${p.intrusions}`);
  if (pbt) {
    console.log(line("B tuning seeds:  ", pbt));
    for (const [t, p] of Object.entries(pbt.perIntrusionTypeRecall))
      console.log(`  B tuning   ${t.padEnd(24)} ${p.detected}/${p.intrusions}`);
  }
  if (pb) {
    console.log(line("B held out:      ", pb));
    for (const [t, p] of Object.entries(pb.perIntrusionTypeRecall))
      console.log(`  B held-out ${t.padEnd(24)} ${p.detected}/${p.intrusions}`);
    for (const [k, v] of Object.entries(pb.benignLookalikes))
      console.log(`  B held-out benign lookalike ${k.padEnd(20)} ${v.alerted}/${v.userDays} user-days alerted`);
    for (const r of b)
      console.log(
        `  B held-out seed ${r.seed} (${r.users} staff): recall ${r.detected}/${r.intrusions}, FP user-days ${r.falsePositiveUserDays}/${r.benignUserDays} = ${(100 * r.falsePositiveUserDayRate).toFixed(2)} %${r.falsePositiveUserDayRate > 0.01 ? "  (above 1 %)" : ""}`,
      );
    console.log(
      `  generator B wall time (tuning + held-out seeds): ${Math.round((performance.now() - wall0) / 1000)} s`,
    );
    console.log(
      `targets on B held out (recall >= 0.95, FP user-days <= 1 %): ${pb.recall >= 0.95 && pb.falsePositiveUserDayRate <= 0.01 ? "MET" : "NOT met"}`,
    );
  }
}

/** What was looked at while tuning: kept with the results so nobody mistakes B's numbers for untouched ones. */
const METHOD = {
  tunedOn:
    "generator A only (its seed 1 for the breadth floors and the 7-day breadth multiplier); round 3 (h-det2) also " +
    "looked at generator B seed 101, declared a tuning seed",
  generatorB:
    "written for issue 16 after reading the issue, before any engine change; its parameters were not changed after " +
    "seeing the engine's results on it (round 3 did not change generate-b.ts at all)",
  generatorBBefore:
    "bench/results/detect-before-issue16.json: the engine and rules of main before issue 16 on B seeds " +
    "101,102,103: recall 66/72 = 0.917, false-positive user-days 248/13,419 = 1.85 % (new-device-new-network-read " +
    "the largest source; missed: stolen-key-foreign 7/9, clearance-widening 5/9)",
  seedsLookedAtDuringDevelopmentBeforeRound4:
    "B seed 101 was run once in round 2 after the device-acknowledgement, breadth and canary changes (recall 22/24, " +
    "FP 0.80 %) and once in round 3 after the approval window (recall 22/24, FP 0.68 %). B seeds 102, 103 (round 1) " +
    "and 201-203 (round 2, held out then: recall 63/72 = 0.875, FP 1.31 %) have been run before, so they are no " +
    "longer held out; round 3 did not run them. B seeds 301-305 had never been run before this report and were run " +
    "once, after the last engine change.",
  round3:
    "issue 16 part 2, what only Valise knows: how the device came to the user ($deviceEnrolment: 'code' = they " +
    "enrolled it themself with a one-time code, audited as directory.device.add by the owner from the new device; " +
    "'admin' = another account added it; 'unseen'), and whether the owner approved it from a device already trusted " +
    "for them ($deviceAcked; `valise devices approve` sends directory.device.ack after checking the device in the " +
    "key-transparency log). New: a self-enrolled device has 8 h (ackGraceHours, a value chosen from how long an " +
    "approval from the old phone plausibly takes, not fitted) to be approved; its reads over new networks are held " +
    "meanwhile and reported together as baseline.device-unacknowledged when the window ends without approval. " +
    "Cost: an unapproved phished enrolment is alerted up to 8 h after its first read instead of at it. Generator A " +
    "now models late (23 %) and missing (7 %) approvals of new phones. Nothing was added because a held-out case " +
    "missed.",
  round4:
    "issue 16 round 4 (det-eval). B seeds 301-305, held out in round 3, were analysed after that report and are " +
    "therefore TUNING data now (with 101). What their misses and false alerts showed, and the general change made " +
    "for each: (1) clearance-widening 7/15: the account's reads in the newly granted compartment were new to the " +
    "user but some member of their unit reads that compartment, so new-compartment-collection (which needs a " +
    "compartment nobody in the unit reads) stayed quiet -> new $clearanceWidened feature and rule " +
    "clearance-widened-first-use (3 different items within 7 days in a compartment a clearance change granted " +
    "within 14 days and the user never used); (2) stolen-key-foreign 14/15: the one miss read a few items an hour " +
    "from an org-new IPv6 network while the owner worked in the office, never 3 within one hour -> " +
    "device-two-networks counts its 3 reads over 8 h (each still within an hour of a use from another network); " +
    "(3) the seeds above 1 % (301: 1.10 %, 304: 1.24 %): 18 of 301's 58 false user-days were " +
    "new-device-new-network-read repeating daily for the same unapproved device (it stays untrusted while it " +
    "alerts) -> one alert per user and device for 14 days; 15 of 304's 32 were new-compartment-collection repeating " +
    "daily for two people on a new posting (their home unit stayed the old one, where nobody reads the new " +
    "compartment) -> $unitNewCompartment is judged against every current post (units of own-unit actions within " +
    "14 days). (4) Hours are profiled in the post's IANA time zone (EngineOptions.timeZones, from the directory's " +
    "unit tz); generator B's posts now keep local office hours in real IANA zones with daylight saving (their UTC " +
    "hours move at the zone's change) and pass the zones to the engine. Held-out B seeds 401-410 (409: 60 staff, " +
    "410: 1000 staff, the others drawn 120-700) were never run before this report and were run once, after the last " +
    "engine change.",
  rulesAddedAfterSeeingGeneratorB: [
    "clearance-widened-first-use (new rule) and the change to device-two-networks' window were made after " +
      "analysing misses on B seeds 301-305, which were held out at the time (round 3) and are tuning seeds since",
    "new-device-new-network-read grouped per user and device (14 d) and $unitNewCompartment over current posts: " +
      "made after analysing false alerts on B seeds 301 and 304 (same status)",
  ] as string[],
  designedFromTheIssueText:
    "owner-acknowledged devices ($deviceAcked), the approval window, the breadth baselines " +
    "(baseline.breadth-day/-week) and the officer's own canary marking come from issue 16's description of the " +
    "held-out misses and false alerts, not from B's output",
};

main();
