/** A tiny deterministic office for the detection tests: a few units, users with steady habits, then one deviation. */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { DetectionEngine, checkRuleSet, parseRules, type Alert, type DetectEvent, type Rule } from "../src/index.js";

export const RULES_DIR = fileURLToPath(new URL("../../rules", import.meta.url));

export function defaultRules(): Rule[] {
  const files = readdirSync(RULES_DIR)
    .filter((f) => f.endsWith(".json"))
    .sort();
  return checkRuleSet(files.flatMap((f) => parseRules(readFileSync(join(RULES_DIR, f), "utf8"), f)));
}

/** Deterministic PRNG (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const T0 = Date.parse("2026-03-02T00:00:00Z"); // a Monday
export const DAY = 86_400_000;
export const HOUR = 3_600_000;

let seq = 0;
export function ev(p: Partial<DetectEvent> & { time: number; actor: string; action: string }): DetectEvent {
  const t = p.time;
  return {
    id: p.id ?? `e${++seq}`,
    timeText: new Date(t).toISOString(),
    device: null,
    source: "10.0.0.1",
    client: null,
    object: "",
    target_device: null,
    label: null,
    unit: null,
    bytes: 0,
    canary: false,
    outcome: "ok",
    ...p,
    time: t,
  };
}

export interface Person {
  handle: string;
  unit: string;
  comp: string;
  device: string;
  net: string;
  /** First working hour (UTC). */
  start: number;
  reads: number;
}

export const PEOPLE: Person[] = [];
for (const [unit, comp, net] of [
  ["HQ/ASIA-1", "ASIA", "10.20.3"],
  ["HQ/EUROPE", "EUROPE", "10.20.4"],
  ["HQ/CONSULAR", "CONSULAR", "10.20.5"],
] as const) {
  for (let i = 0; i < 5; i++) {
    const handle = `${comp.toLowerCase()}${i}`;
    PEOPLE.push({ handle, unit, comp, device: `d-${handle}`, net, start: 7 + (i % 3), reads: 12 + 3 * i });
  }
}

/** One ordinary working day of one person (none on weekends). `scale` multiplies their reads. */
export function workDay(p: Person, day: number, r: () => number, scale = 1): DetectEvent[] {
  const dow = new Date(T0 + day * DAY).getUTCDay();
  if (dow === 0 || dow === 6) return [];
  const base = T0 + day * DAY + p.start * HOUR;
  const src = `${p.net}.${10 + Math.floor(r() * 50)}`;
  const out: DetectEvent[] = [
    ev({ time: base, actor: p.handle, action: "login", device: p.device, source: src, unit: p.unit }),
  ];
  const n = Math.round(p.reads * scale * (0.8 + 0.4 * r()));
  for (let k = 0; k < n; k++) {
    const t = base + 10 * 60_000 + Math.floor(r() * 8 * HOUR);
    const kind = r() < 0.5 ? "cable" : "document";
    out.push(
      ev({
        time: t,
        actor: p.handle,
        action: `${kind}.read`,
        device: p.device,
        source: src,
        object: `${kind}-${p.unit}-${day}-${Math.floor(r() * 1e6)}`,
        label: `CONFIDENTIAL/${p.comp}`,
        unit: p.unit,
        bytes: 20_000 + Math.floor(r() * 200_000),
      }),
    );
  }
  if (r() < 0.5)
    out.push(
      ev({ time: base + 3 * HOUR, actor: p.handle, action: "cable.send", device: p.device, source: src, unit: p.unit }),
    );
  return out;
}

/** An administrator who adds devices and sets clearances on weekday mornings from the IT network. */
export const ADMIN = { handle: "itadmin", device: "d-itadmin", net: "10.20.9" };
export function adminDay(day: number, r: () => number): DetectEvent[] {
  const dow = new Date(T0 + day * DAY).getUTCDay();
  if (dow === 0 || dow === 6) return [];
  const base = T0 + day * DAY + 9 * HOUR;
  const out: DetectEvent[] = [
    ev({
      time: base,
      actor: ADMIN.handle,
      action: "login",
      device: ADMIN.device,
      source: `${ADMIN.net}.5`,
      unit: "HQ/IT",
    }),
  ];
  for (let k = 0; k < 2; k++) {
    const p = PEOPLE[Math.floor(r() * PEOPLE.length)]!;
    out.push(
      ev({
        time: base + (1 + k) * HOUR,
        actor: ADMIN.handle,
        action: r() < 0.5 ? "directory.clearance.set" : "directory.device.revoke",
        device: ADMIN.device,
        source: `${ADMIN.net}.5`,
        object: p.handle,
        unit: p.unit,
      }),
    );
  }
  return out;
}

/** `days` days of ordinary work for everyone (plus the admin), sorted by time. */
export function office(days: number, seed = 1, from = 0): DetectEvent[] {
  const r = rng(seed);
  const out: DetectEvent[] = [];
  for (let d = from; d < from + days; d++) {
    for (const p of PEOPLE) out.push(...workDay(p, d, r));
    out.push(...adminDay(d, r));
  }
  return sortEvents(out);
}

export function sortEvents(es: DetectEvent[]): DetectEvent[] {
  return es.sort((a, b) => a.time - b.time);
}

export function run(events: DetectEvent[], opts: Partial<ConstructorParameters<typeof DetectionEngine>[0]> = {}) {
  const engine = new DetectionEngine({ rules: defaultRules(), trainUntil: T0 + 14 * DAY, ...opts });
  const alerts: Alert[] = [];
  for (const e of events) alerts.push(...engine.push(e));
  alerts.push(...engine.flush());
  return { engine, alerts };
}

export const person = (handle: string): Person => PEOPLE.find((p) => p.handle === handle)!;
