/**
 * Issue 16, round 4: hours profiled in the post's time zone (daylight saving included), and the general signals
 * added after analysing the misses and false alerts on generator B seeds 301-305 (clearance change followed by first
 * reads in the newly granted compartment; a known device replayed slowly from a second network; one alert per user
 * and device; a new posting's compartments judged against the new unit). Each fires on its attack and stays quiet
 * on its benign lookalike.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { DetectionEngine, isTimeZone, localHour, parseEvent, parseRules, type DetectEvent } from "../src/index.js";
import { DAY, HOUR, T0, defaultRules, ev, office, person, rng, run, sortEvents, workDay } from "./helpers.js";

const D = 15; // Tuesday of the third week (2026-03-17)
const at = (hour: number, min = 0, day = D): number => T0 + day * DAY + hour * HOUR + min * 60_000;
const world = (extra: DetectEvent[], days = 21): DetectEvent[] => sortEvents([...office(days), ...extra]);

describe("time zones", () => {
  test("localHour follows the zone's daylight saving (Paris, 29 March 2026) and Tokyo's fixed +9", () => {
    assert.equal(localHour(Date.parse("2026-03-29T00:30:00Z"), "Europe/Paris"), 1); // CET, UTC+1
    assert.equal(localHour(Date.parse("2026-03-29T01:30:00Z"), "Europe/Paris"), 3); // CEST, UTC+2
    assert.equal(localHour(Date.parse("2026-03-17T23:00:00Z"), "Asia/Tokyo"), 8);
    assert.equal(localHour(Date.parse("2026-03-17T17:00:00Z"), "Asia/Tokyo"), 2);
    assert.equal(localHour(Date.parse("2026-03-17T04:00:00Z"), "Asia/Kolkata"), 9); // +5:30
    assert.equal(localHour(Date.parse("2026-03-17T23:00:00Z"), null), 23);
    assert.ok(isTimeZone("Asia/Tokyo") && !isTimeZone("Mars/Olympus") && !isTimeZone(""));
  });

  test("an event may carry its post's tz; an unknown zone is refused with a reason", () => {
    const base = { id: "x", time: "2026-03-17T23:00:00Z", actor: "a", action: "cable.read" };
    const ok = parseEvent({ ...base, tz: "Asia/Tokyo" });
    assert.ok(ok.ok && ok.event.tz === "Asia/Tokyo");
    const none = parseEvent(base);
    assert.ok(none.ok && none.event.tz === undefined);
    assert.deepEqual(parseEvent({ ...base, tz: "Mars/Olympus" }), {
      ok: false,
      reason: "field tz is not an IANA time zone: Mars/Olympus",
    });
    assert.throws(
      () => new DetectionEngine({ rules: [], timeZones: { "EMB/TOKYO": "Tokyo" } }),
      /EMB\/TOKYO is not an IANA time zone/,
    );
  });

  // A night rule in local time: three different items read between 22:00 and 05:59 at the post within two hours.
  const nightRule = parseRules(
    JSON.stringify({
      rules: [
        {
          id: "night-reads",
          title: "Reads in the post's night",
          severity: "medium",
          match: { $read: true, outcome: "ok" },
          anyOf: [{ $localHour: { gte: 22 } }, { $localHour: { lte: 5 } }],
          threshold: { count: 3, windowSeconds: 7200, distinct: "object" },
          reason: "{actor} read {count} items at {$localHour}:00 {$timeZone}",
        },
      ],
    }),
  );
  // A Tokyo embassy clerk: 09:00-17:00 JST is 00:00-08:00 UTC.
  const tokyoDay = (day: number, localStart: number, n: number, tag: string): DetectEvent[] =>
    Array.from({ length: n }, (_, i) =>
      ev({
        time: T0 + day * DAY + (localStart - 9) * HOUR + i * 10 * 60_000,
        actor: "tokyo0",
        action: "cable.read",
        device: "d-tokyo0",
        source: "203.0.113.7",
        object: `cab-EMB/TOKYO-${day}-${tag}${i}`,
        label: "CONFIDENTIAL/ASIA",
        unit: "EMB/TOKYO",
        bytes: 9000,
      }),
    );
  const tokyoLogin = (day: number, localStart: number): DetectEvent =>
    ev({
      time: T0 + day * DAY + (localStart - 9) * HOUR - 60_000,
      actor: "tokyo0",
      action: "login",
      device: "d-tokyo0",
      source: "203.0.113.7",
      unit: "EMB/TOKYO",
    });
  const tz: Record<string, string> = { "EMB/TOKYO": "Asia/Tokyo" };
  const night = (events: DetectEvent[], opts: { timeZones: Record<string, string> } = { timeZones: tz }) =>
    run(sortEvents(events), { rules: nightRule, ...opts }).alerts.filter((a) => a.rule === "night-reads");

  test("a night rule fires on reads in Tokyo's night (02:00 JST = 17:00 UTC), from the unit's zone", () => {
    // Failed on the old code: no $localHour (the rule file was refused); in UTC 17:00 is no night.
    const alerts = night([tokyoLogin(D, 2), ...tokyoDay(D, 2, 4, "n")]);
    assert.equal(alerts.length, 1, JSON.stringify(alerts));
    assert.match(alerts[0]!.reason, /at 2:00 Asia\/Tokyo/);
  });
  test("…and stays quiet on a Tokyo morning that is UTC night (08:00 JST = 23:00 UTC the day before)", () => {
    assert.deepEqual(night([tokyoLogin(D, 8), ...tokyoDay(D, 8, 6, "m")]), []);
    // The same morning profiled in UTC would be night: what the old code did.
    assert.equal(night([tokyoLogin(D, 8), ...tokyoDay(D, 8, 6, "m")], { timeZones: {} }).length, 1);
  });
  test("the event's own tz wins over the engine's table", () => {
    const events = [tokyoLogin(D, 8), ...tokyoDay(D, 8, 6, "m")].map((e) => ({ ...e, tz: "Asia/Tokyo" }));
    assert.deepEqual(night(events, { timeZones: {} }), []);
  });

  /** europe3 works 08:00-17:00 in Paris for three weeks, then is posted to Tokyo and keeps local office hours. */
  function posted(tokyoStart: number): DetectEvent[] {
    const r = rng(5);
    const out = office(21, 1).filter((e) => !(e.actor === "europe3" && e.time >= at(0)));
    for (let d = D; d < 21; d++) {
      const dow = new Date(T0 + d * DAY).getUTCDay();
      if (dow === 0 || dow === 6) continue;
      const base = T0 + d * DAY + (tokyoStart - 9) * HOUR;
      out.push(
        ev({
          time: base,
          actor: "europe3",
          action: "login",
          device: "d-europe3",
          source: "10.20.4.9",
          unit: "HQ/ASIA-1",
        }),
      );
      for (let i = 0; i < 30; i++)
        out.push(
          ev({
            time: base + 5 * 60_000 + i * 3 * 60_000,
            actor: "europe3",
            action: "cable.read",
            device: "d-europe3",
            source: "10.20.4.9",
            object: `cable-HQ/EUROPE-${d}-t${i}-${Math.floor(r() * 1e6)}`,
            label: "CONFIDENTIAL/EUROPE",
            unit: "HQ/EUROPE",
            bytes: 9000,
          }),
        );
    }
    return sortEvents(out);
  }
  // HQ/EUROPE's people start 07:00-09:00 UTC = 08:00-10:00 CET; europe3 is moved to a unit in Tokyo ("HQ/ASIA-1"
  // stands for the embassy here: only its zone matters).
  const zones = { "HQ/EUROPE": "Europe/Paris", "HQ/CONSULAR": "Europe/Paris", "HQ/ASIA-1": "Asia/Tokyo" };
  const unusual = (events: DetectEvent[], timeZones: Record<string, string>) =>
    run(events, { timeZones }).alerts.filter((a) => a.rule === "unusual-hour-reads" && a.actor === "europe3");

  test("posted to Tokyo, office hours there (09:00 JST = 00:00 UTC) are usual in the post's time zone", () => {
    assert.deepEqual(unusual(posted(9), zones), []);
    // Profiled in UTC (the old code), the same mornings were an unusual hour.
    assert.ok(unusual(posted(9), {}).length >= 1);
  });
  test("posted to Tokyo, reading at 01:00 JST (16:00 UTC, office hours in Paris) is unusual", () => {
    assert.ok(unusual(posted(1), zones).length >= 1);
    // In UTC the old code saw europe3's usual Paris afternoon and stayed quiet.
    assert.deepEqual(unusual(posted(1), {}), []);
  });
});

describe("clearance widened, then first reads in the new compartment", () => {
  const clearance = (label: string): DetectEvent =>
    ev({
      time: at(10),
      actor: "itadmin",
      action: "directory.clearance.set",
      device: "d-itadmin",
      source: "10.20.9.5",
      object: "consular1",
      label,
      unit: "HQ/CONSULAR",
    });
  const reads = (comp: string, unit: string, n: number, day = D): DetectEvent[] =>
    Array.from({ length: n }, (_, i) =>
      ev({
        time: at(11 + i, 0, day),
        actor: "consular1",
        action: "document.read",
        device: "d-consular1",
        source: "10.20.5.30",
        object: `doc-${unit}-${day}-${i}`,
        label: `SECRET/${comp}`,
        unit,
        bytes: 40_000,
      }),
    );
  const rule = "clearance-widened-first-use";

  test("raised into ARCTIC by an administrator, then four ARCTIC documents over two days: one alert", () => {
    // Failed on the old code: four items stay under new-compartment-collection's five and no rule joined the two.
    const { alerts } = run(
      world([
        clearance("SECRET/ARCTIC"),
        ...reads("ARCTIC", "HQ/ARCTIC", 2),
        ...reads("ARCTIC", "HQ/ARCTIC", 2, D + 1),
      ]),
    );
    const hit = alerts.filter((a) => a.rule === rule);
    assert.equal(hit.length, 1, JSON.stringify(alerts));
    assert.equal(hit[0]!.actor, "consular1");
    assert.equal(hit[0]!.severity, "high");
    assert.match(hit[0]!.reason, /granted to them by a clearance change/);
  });
  test("a legitimate raise in the user's own compartment, followed by normal reads: quiet", () => {
    const { alerts } = run(world([clearance("SECRET/CONSULAR"), ...reads("CONSULAR", "HQ/CONSULAR", 6)]));
    assert.deepEqual(alerts, []);
  });
  test("the same reads in a new compartment without a clearance change are not this rule", () => {
    const { alerts } = run(world(reads("ARCTIC", "HQ/ARCTIC", 4)));
    assert.equal(
      alerts.some((a) => a.rule === rule),
      false,
    );
  });
  test("a grant older than grantDays (14) no longer counts", () => {
    const old = { ...clearance("SECRET/ARCTIC"), time: at(10, 0, D - 15) };
    const { alerts } = run(world([old, ...reads("ARCTIC", "HQ/ARCTIC", 4)]), { trainUntil: T0 + 14 * DAY });
    assert.equal(
      alerts.some((a) => a.rule === rule),
      false,
    );
  });
});

describe("a known device's key replayed from a second network, slowly", () => {
  // asia2 works in the office all day on their laptop; the laptop's key is also used from a host abroad, one read an
  // hour: never three within one hour (the old window), each within the hour of an office read.
  const stolen = (): DetectEvent[] =>
    Array.from({ length: 5 }, (_, i) =>
      ev({
        time: at(8 + i, 40),
        actor: "asia2",
        action: "document.read",
        device: "d-asia2",
        source: "185.220.101.4",
        object: `doc-HQ/EUROPE-x${i}`,
        label: "CONFIDENTIAL/EUROPE",
        unit: "HQ/EUROPE",
        bytes: 80_000,
      }),
    );
  test("one read an hour from an unknown network while the owner works in the office: device-two-networks", () => {
    // Failed on the old code (three reads within one hour required).
    const office7 = workDay(person("asia2"), D, rng(3)).map((e) => ({ ...e, id: `o-${e.id}` }));
    const { alerts } = run(
      sortEvents([
        ...office(21).filter((e) => !(e.actor === "asia2" && e.time >= at(0) && e.time < at(0, 0, D + 1))),
        ...office7,
        ...stolen(),
      ]),
    );
    const hit = alerts.filter((a) => a.rule === "device-two-networks");
    assert.equal(hit.length, 1, JSON.stringify(alerts));
    assert.ok(
      hit[0]!.events.every((id) => !id.startsWith("o-")),
      "the office reads are not the evidence",
    );
  });
  test("travel with the known laptop (a hotel network all day, no office use): quiet", () => {
    const trip = stolen().map((e, i) => ({
      ...e,
      object: `cable-HQ/ASIA-1-${D}-h${i}`,
      label: "CONFIDENTIAL/ASIA",
      unit: "HQ/ASIA-1",
    }));
    const events = sortEvents([
      ...office(21).filter((e) => !(e.actor === "asia2" && e.time >= at(0) && e.time < at(0, 0, D + 1))),
      ...trip,
    ]);
    assert.deepEqual(run(events).alerts, []);
  });
});

describe("one alert per user and device", () => {
  test("a device an administrator added, never approved, read from new networks on three days: one alert", () => {
    // Failed on the old code: new-device-new-network-read fired once a day (the device stays untrusted while it alerts).
    const extra: DetectEvent[] = [
      ev({
        time: at(9),
        actor: "itadmin",
        action: "directory.device.add",
        device: "d-itadmin",
        source: "10.20.9.5",
        object: "asia2",
        target_device: "d-asia2-x",
        unit: "HQ/ASIA-1",
      }),
    ];
    for (let d = D; d < D + 3; d++)
      extra.push(
        ev({
          time: at(12, 0, d),
          actor: "asia2",
          action: "cable.read",
          device: "d-asia2-x",
          source: `198.51.${100 + d}.7`,
          object: `cable-HQ/ASIA-1-${d}-x`,
          label: "CONFIDENTIAL/ASIA",
          unit: "HQ/ASIA-1",
          bytes: 9000,
        }),
      );
    const { alerts } = run(world(extra));
    const hit = alerts.filter((a) => a.rule === "new-device-new-network-read");
    assert.equal(hit.length, 1, JSON.stringify(hit));
    assert.equal(hit[0]!.time, new Date(at(12)).toISOString());
  });
});

describe("a new posting's first reads of its new unit", () => {
  test("consular1 posted to HQ/ASIA-1 reads ASIA items there: no compartment alert (the new unit reads ASIA)", () => {
    // Failed on the old code: the home unit stayed HQ/CONSULAR (more past actions there), where nobody reads ASIA,
    // so new-compartment-collection fired every day of the first weeks of the posting.
    const r = rng(13);
    const p = { ...person("consular1"), unit: "HQ/ASIA-1", comp: "ASIA" };
    const extra: DetectEvent[] = [];
    for (let d = D; d < D + 5; d++) for (const e of workDay(p, d, r)) extra.push({ ...e, id: `post-${e.id}` });
    const events = sortEvents([...office(21).filter((e) => !(e.actor === "consular1" && e.time >= at(0))), ...extra]);
    const { alerts } = run(events);
    assert.deepEqual(
      alerts.filter((a) => a.rule === "new-compartment-collection"),
      [],
    );
  });
  test("the same reads by someone not posted there (their own-unit actions stay in CONSULAR): the alert stands", () => {
    const r = rng(13);
    const p = { ...person("consular1"), unit: "HQ/ASIA-1", comp: "ASIA" };
    const extra: DetectEvent[] = [];
    for (let d = D; d < D + 2; d++)
      for (const e of workDay(p, d, r))
        extra.push({
          ...e,
          id: `post-${e.id}`,
          unit: e.action === "login" || e.action === "cable.send" ? "HQ/CONSULAR" : e.unit,
        });
    const events = sortEvents([
      ...office(21).filter((e) => !(e.actor === "consular1" && e.time >= at(0) && e.time < at(0, 0, D + 2))),
      ...extra,
    ]);
    const { alerts } = run(events);
    assert.ok(alerts.some((a) => a.rule === "new-compartment-collection" && a.actor === "consular1"));
  });
});

test("default rules still parse with the new fields", () => {
  assert.ok(defaultRules().some((r) => r.id === "clearance-widened-first-use"));
});
