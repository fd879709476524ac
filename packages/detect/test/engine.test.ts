/**
 * Each rule and baseline fires on its attack and stays quiet on the benign lookalike; state survives snapshot and
 * restore unchanged. The office of test/helpers.ts trains for 14 days, then day 15 (a Tuesday) carries the change.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { DetectionEngine, type Alert, type DetectEvent } from "../src/index.js";
import {
  DAY,
  HOUR,
  ADMIN,
  PEOPLE,
  T0,
  defaultRules,
  ev,
  office,
  person,
  rng,
  run,
  sortEvents,
  workDay,
} from "./helpers.js";

const D = 15; // Tuesday of the third week: the day under test
const at = (hour: number, min = 0): number => T0 + D * DAY + hour * HOUR + min * 60_000;
const world = (extra: DetectEvent[], days = 21): DetectEvent[] => sortEvents([...office(days), ...extra]);
const rulesOf = (alerts: Alert[]): string[] => [...new Set(alerts.map((a) => a.rule))].sort();
const reads = (
  actor: string,
  n: number,
  t0: number,
  p: Partial<DetectEvent> & { every?: number; action?: string },
): DetectEvent[] => {
  const out: DetectEvent[] = [];
  for (let i = 0; i < n; i++) {
    out.push(
      ev({
        action: "document.read",
        label: "CONFIDENTIAL/ASIA",
        unit: "HQ/ASIA-1",
        bytes: 50_000,
        object: `${actor}-x-${t0}-${i}`,
        ...p,
        time: t0 + i * (p.every ?? 60_000),
        actor,
      }),
    );
  }
  return out;
};

describe("benign office", () => {
  test("three weeks of ordinary work raise no alert after training", () => {
    const { alerts } = run(office(35));
    assert.deepEqual(alerts, []);
  });
});

describe("canary", () => {
  test("any touch of a canary raises a critical alert at once, naming the event", () => {
    const e = ev({
      time: at(10),
      actor: "europe1",
      action: "document.read",
      device: "d-europe1",
      source: "10.20.4.20",
      object: "doc-canary",
      canary: true,
      id: "canary-1",
    });
    const { alerts } = run(world([e]));
    assert.equal(alerts.length, 1);
    assert.deepEqual(
      { rule: alerts[0]!.rule, severity: alerts[0]!.severity, events: alerts[0]!.events, time: alerts[0]!.time },
      { rule: "canary-touch", severity: "critical", events: ["canary-1"], time: e.timeText },
    );
    assert.match(alerts[0]!.reason, /europe1 touched the canary item doc-canary/);
  });
  test("during training only trainingSeverities rules alert (the server passes critical: canaries on day one)", () => {
    const e = ev({
      time: T0 + 3 * DAY + 10 * HOUR,
      actor: "europe1",
      action: "document.read",
      object: "doc-c",
      canary: true,
    });
    assert.deepEqual(run(world([e])).alerts, []);
    const { alerts } = run(world([e]), { trainingSeverities: ["critical"] });
    assert.deepEqual(
      alerts.map((a) => [a.rule, a.events]),
      [["canary-touch", [e.id]]],
    );
  });
  test("the non-canary document next to it is quiet", () => {
    const e = ev({ time: at(10), actor: "europe1", action: "document.read", device: "d-europe1", object: "doc-near" });
    assert.deepEqual(run(world([{ ...e, source: "10.20.4.20" }])).alerts, []);
  });
});

describe("new device", () => {
  test("stolen credentials: device added, then reads from a router network abroad → high alert on the first read", () => {
    const add = ev({
      time: at(2),
      actor: "asia2",
      action: "directory.device.add",
      device: "d-evil",
      target_device: "d-evil",
      object: "asia2",
      source: "185.12.40.7",
      unit: "HQ/ASIA-1",
    });
    const rd = reads("asia2", 10, at(2, 5), { device: "d-evil", source: "185.12.40.7" });
    // Without the approval window (ackGraceHours 0, the behaviour before issue 16 part 2): the first read alerts.
    const { alerts } = run(world([add, ...rd]), { ackGraceHours: 0 });
    const a = alerts.find((x) => x.rule === "new-device-new-network-read");
    assert.ok(a, JSON.stringify(alerts));
    assert.equal(a.severity, "high");
    assert.deepEqual(a.events, [rd[0]!.id]);
    assert.match(a.reason, /not yet trusted/);
    // By default the owner has 8 h to approve the device they enrolled; without approval, one alert with all reads.
    const held = run(world([add, ...rd])).alerts.filter((x) => x.rule === "baseline.device-unacknowledged");
    assert.equal(held.length, 1);
    assert.deepEqual(
      held[0]!.events,
      rd.map((e) => e.id),
    );
    assert.ok(Date.parse(held[0]!.time) >= at(10));
  });
  test("a new phone enrolled and used from the office network raises no alert", () => {
    const add = ev({
      time: at(9),
      actor: "asia2",
      action: "directory.device.add",
      device: "d-phone",
      target_device: "d-phone",
      object: "asia2",
      source: "10.20.3.44",
      unit: "HQ/ASIA-1",
    });
    const rd = reads("asia2", 5, at(9, 30), { device: "d-phone", source: "10.20.3.44", every: 20 * 60_000 });
    assert.deepEqual(run(world([add, ...rd])).alerts, []);
  });
  test("travel: the usual laptop from a guest network abroad for three days raises no alert", () => {
    const extra: DetectEvent[] = [];
    const r = rng(9);
    for (let d = D; d < D + 3; d++)
      extra.push(
        ...workDay(person("europe3"), d, r).map((e) => ({ ...e, id: `trip-${e.id}`, source: "91.198.22.14" })),
      );
    const events = sortEvents([...office(21).filter((e) => !(e.actor === "europe3" && e.time >= at(0))), ...extra]);
    assert.deepEqual(run(events).alerts, []);
  });
});

describe("concurrent networks", () => {
  test("the owner's laptop read from a router abroad while the owner works in the office → high alert", () => {
    const own = reads("asia4", 6, at(10), { device: "d-asia4", source: "10.20.3.50", every: 10 * 60_000 });
    const thief = reads("asia4", 4, at(10, 5), { device: "d-asia4", source: "45.152.7.9", every: 10 * 60_000 });
    const { alerts } = run(world([...own, ...thief]));
    const a = alerts.find((x) => x.rule === "device-two-networks");
    assert.ok(a, rulesOf(alerts).join());
    assert.ok(a.events.every((id) => thief.some((e) => e.id === id)));
  });
  test("office in the morning, a hotel network in the evening is quiet", () => {
    const own = reads("asia4", 6, at(8), { device: "d-asia4", source: "10.20.3.50", every: 10 * 60_000 });
    const hotel = reads("asia4", 4, at(19), { device: "d-asia4", source: "91.198.22.14", every: 10 * 60_000 });
    assert.deepEqual(
      run(world([...own, ...hotel])).alerts.filter((a) => a.rule === "device-two-networks"),
      [],
    );
  });
});

describe("compartments and units", () => {
  test("a consular account reading ASIA documents raises an alert on day one", () => {
    const rd = reads("consular1", 8, at(11), { device: "d-consular1", source: "10.20.5.30", every: 15 * 60_000 });
    const { alerts } = run(world(rd));
    const a = alerts.find((x) => x.rule === "new-compartment-collection");
    assert.ok(a, JSON.stringify(alerts));
    assert.equal(a.events.length, 5);
    assert.match(a.reason, /compartments they never used before \(ASIA\)/);
  });
  test("an ASIA desk officer reading ASIA documents is quiet", () => {
    const rd = reads("asia1", 8, at(11), { device: "d-asia1", source: "10.20.3.30", every: 15 * 60_000 });
    assert.deepEqual(run(world(rd)).alerts, []);
  });
});

describe("volume", () => {
  test("mailbox-wide reads (400 messages in 40 minutes) raise a burst alert", () => {
    const rd = reads("europe2", 400, at(12), {
      action: "message.read",
      device: "d-europe2",
      source: "10.20.4.31",
      label: "CONFIDENTIAL/EUROPE",
      unit: "HQ/EUROPE",
      every: 6_000,
    });
    const { alerts } = run(world(rd));
    assert.ok(
      alerts.some((a) => a.rule === "baseline.volume-burst" && a.severity === "high"),
      rulesOf(alerts).join(),
    );
    const a = alerts.find((x) => x.rule === "baseline.volume-burst")!;
    const ours = new Set(rd.map((e) => e.id));
    assert.ok(a.events.filter((id) => ours.has(id)).length >= 0.8 * a.events.length, a.events.join());
  });
  test("month-end: the whole unit reads twice as much for three days, quietly", () => {
    const r = rng(5);
    const base = office(21).filter((e) => !(e.unit === "HQ/EUROPE" && e.time >= at(0) && e.time < at(0) + 3 * DAY));
    const extra: DetectEvent[] = [];
    for (let d = D; d < D + 3; d++)
      for (const p of PEOPLE.filter((q) => q.unit === "HQ/EUROPE")) extra.push(...workDay(p, d, r, 2.2));
    assert.deepEqual(run(sortEvents([...base, ...extra])).alerts, []);
  });
  test("slow-and-low: 25 extra ASIA documents a day by an ASIA officer trips the 7-day baseline", () => {
    const extra: DetectEvent[] = [];
    for (let d = D; d < D + 10; d++)
      extra.push(
        ...reads("asia0", 25, T0 + d * DAY + 8 * HOUR, { device: "d-asia0", source: "10.20.3.77", every: 15 * 60_000 }),
      );
    const { alerts } = run(world(extra, 28));
    const a = alerts.find((x) => x.rule.startsWith("baseline.volume"));
    assert.ok(a, JSON.stringify(rulesOf(alerts)));
    assert.ok(Date.parse(a.time) < T0 + (D + 7) * DAY, `too late: ${a.time}`);
  });
});

describe("hours, probing, directory", () => {
  test("thirty reads at 03:00 by a day worker raise an unusual-hour alert", () => {
    const rd = reads("europe0", 30, at(3), {
      action: "cable.read",
      device: "d-europe0",
      source: "10.20.4.12",
      label: "CONFIDENTIAL/EUROPE",
    });
    const { alerts } = run(world(rd));
    assert.ok(
      alerts.some((a) => a.rule === "unusual-hour-reads"),
      rulesOf(alerts).join(),
    );
  });
  test("the same reads at the person's usual hour are quiet", () => {
    const rd = reads("europe0", 30, at(10), {
      action: "cable.read",
      device: "d-europe0",
      source: "10.20.4.12",
      label: "CONFIDENTIAL/EUROPE",
      unit: "HQ/EUROPE",
      every: 5 * 60_000,
    });
    assert.deepEqual(run(world(rd)).alerts, []);
  });
  test("a burst of refused requests is probing", () => {
    const rd = reads("consular2", 8, at(10), {
      device: "d-consular2",
      source: "10.20.5.8",
      outcome: "denied",
      label: "SECRET/NATO",
      every: 30_000,
    });
    const { alerts } = run(world(rd));
    const a = alerts.find((x) => x.rule === "denied-burst");
    assert.ok(a, rulesOf(alerts).join());
    assert.equal(a.events.length, 6);
  });
  test("two refusals in a day are normal", () => {
    const rd = reads("consular2", 2, at(10), { device: "d-consular2", source: "10.20.5.8", outcome: "denied" });
    assert.deepEqual(run(world(rd)).alerts, []);
  });
  test("an administrator adding a device for the ambassador at 02:30 is a directory anomaly", () => {
    const e = ev({
      time: at(2, 30),
      actor: ADMIN.handle,
      action: "directory.device.add",
      device: ADMIN.device,
      source: `${ADMIN.net}.5`,
      object: "europe4",
      target_device: "d-ghost",
      unit: "HQ/EUROPE",
    });
    const { alerts } = run(world([e]));
    assert.ok(
      alerts.some((a) => a.rule === "directory-change-unusual" && a.events[0] === e.id),
      rulesOf(alerts).join(),
    );
  });
  test("the same change at 10:30 from the usual device and network is quiet", () => {
    const e = ev({
      time: at(10, 30),
      actor: ADMIN.handle,
      action: "directory.device.add",
      device: ADMIN.device,
      source: `${ADMIN.net}.5`,
      object: "europe4",
      target_device: "d-new",
      unit: "HQ/EUROPE",
    });
    assert.deepEqual(run(world([e])).alerts, []);
  });
  test("clearance changes for fifteen users within the hour are a burst", () => {
    const es = PEOPLE.map((p, i) =>
      ev({
        time: at(11, i * 3),
        actor: ADMIN.handle,
        action: "directory.clearance.set",
        device: ADMIN.device,
        source: `${ADMIN.net}.5`,
        object: p.handle,
        unit: p.unit,
      }),
    );
    const { alerts } = run(world(es));
    assert.ok(
      alerts.some((a) => a.rule === "directory-burst"),
      rulesOf(alerts).join(),
    );
  });
});

describe("baseline poisoning", () => {
  test("an intruder who grows 8 % a day from a normal day is still caught", () => {
    // asia3 normally reads ~21 items a day. From day 14 on, an intruder adds reads that grow 8 % a day, starting
    // at 4: small enough each day to pass the daily limits if baselines followed them.
    const extra: DetectEvent[] = [];
    let first = Infinity;
    for (let d = 14; d < 70; d++) {
      const dow = new Date(T0 + d * DAY).getUTCDay();
      if (dow === 0 || dow === 6) continue;
      const n = Math.round(4 * Math.pow(1.08, d - 14));
      const rd = reads("asia3", n, T0 + d * DAY + 9 * HOUR, {
        device: "d-asia3",
        source: "10.20.3.99",
        every: Math.floor((7 * HOUR) / Math.max(n, 1)),
      });
      first = Math.min(first, rd[0]?.time ?? Infinity);
      extra.push(...rd);
    }
    const { alerts } = run(sortEvents([...office(70), ...extra]));
    const mine = alerts.filter((a) => a.actor === "asia3");
    assert.ok(mine.length > 0, "no alert for the slow intruder");
    const t = Date.parse(mine[0]!.time);
    const day = Math.floor((t - T0) / DAY);
    const perDay = Math.round(4 * Math.pow(1.08, day - 14));
    // Caught while the intruder's daily volume is still below 4× the user's own normal day.
    assert.ok(perDay < 4 * 21, `caught only at ${perDay} extra reads/day (day ${day})`);
    // Without the defences (no ceiling, unlimited growth, no clean-day rule) the same intruder goes further.
    const naive = run(sortEvents([...office(70), ...extra]), { growthCap: 1e9, ceilingMult: 1e9 }).alerts;
    const naiveFirst = naive.find((a) => a.actor === "asia3");
    assert.ok(!naiveFirst || Date.parse(naiveFirst.time) >= t, "the defences should not make detection later");
  });
});

describe("state", () => {
  test("snapshot and restore through JSON continue exactly like an uninterrupted run", () => {
    const rd = reads("consular1", 8, at(11), { device: "d-consular1", source: "10.20.5.30", every: 15 * 60_000 });
    const events = world([...rd]);
    const full = run(events).alerts;
    assert.ok(full.length > 0);
    const half = Math.floor(events.length * 0.7);
    const a = new DetectionEngine({ rules: defaultRules(), trainUntil: T0 + 14 * DAY });
    const out: Alert[] = [];
    for (const e of events.slice(0, half)) out.push(...a.push(e));
    const snap = JSON.parse(JSON.stringify(a.snapshot())) as unknown;
    const b = DetectionEngine.restore(snap, { rules: defaultRules(), trainUntil: T0 + 14 * DAY });
    for (const e of events.slice(half)) out.push(...b.push(e));
    out.push(...b.flush());
    assert.deepEqual(out, full);
  });
  test("the snapshot in pieces is the same JSON as in one piece, and restores", () => {
    const rd = reads("consular1", 8, at(11), { device: "d-consular1", source: "10.20.5.30", every: 15 * 60_000 });
    const events = world([...rd]);
    const a = new DetectionEngine({ rules: defaultRules(), trainUntil: T0 + 14 * DAY });
    assert.equal([...a.snapshotParts()].join(""), a.snapshotJson(), "an empty engine");
    for (const e of events) a.push(e);
    const parts = [...a.snapshotParts()];
    assert.ok(parts.length > 10, "the maps come entry by entry");
    assert.equal(parts.join(""), a.snapshotJson());
    assert.deepEqual(JSON.parse(parts.join("")), a.snapshot());
    const b = DetectionEngine.restoreJson(parts.join(""), { rules: defaultRules(), trainUntil: T0 + 14 * DAY });
    assert.equal(b.snapshotJson(), a.snapshotJson());
  });
  test("deterministic: the same input gives the same alerts", () => {
    const rd = reads("consular1", 8, at(11), { device: "d-consular1", every: 15 * 60_000 });
    assert.deepEqual(run(world(rd)).alerts, run(world(rd)).alerts);
  });
  test("trainDays defaults to 14 days from the first event's day", () => {
    const e = new DetectionEngine({ rules: defaultRules() });
    e.push(ev({ time: T0 + 5 * HOUR, actor: "a", action: "login" }));
    assert.equal(e.trainUntil, T0 + 14 * DAY);
  });
});
