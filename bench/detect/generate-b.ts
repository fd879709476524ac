/**
 * Generator B: a second, independently modelled synthetic ministry for evaluating @valise/detect. It shares no code
 * with generate.ts (only the event type) and models the organisation differently, so that rules tuned on one can be
 * measured on the other:
 *  - the organisation's size and shape are drawn from the seed: 6-14 headquarters departments and 8-30 posts of very
 *    different sizes in IANA time zones from UTC-8 to UTC+12 (half hours included, daylight saving as the zone
 *    has it: office hours are local, so UTC hours move at the zone's changes), a 24/7 operations centre and a consular
 *    hotline working rotating shifts, posts on IPv6 as well as IPv4;
 *  - people have one to three devices, replace them at a given rate (the new device is enrolled from wherever the
 *    owner is, often while travelling, and usually acknowledged from the old one: `directory.device.ack`), travel at
 *    a given rate (to other posts' guest networks, conference hotels, home leave in another time zone), work from
 *    home, and a few are posted to another unit in the middle of the period (their first reads of the new unit);
 *  - reads are of conversations (`message.read` of a conversation id), cable series per originating unit, and unit
 *    document folders, with each person's own mix of units they follow;
 *  - officers mark canaries (a benign canary-flagged write); administrators do their work;
 *  - attack families (FAMILIES_B) have their parameters drawn at random per intrusion: attacker hours and time
 *    zone, volume, duration, networks (foreign routers, IPv6 hosting, domestic consumer ISPs), and the victim's own
 *    session collecting in breadth (a few items from each of many units the victim never read) rather than volume.
 * The ground truth is returned separately; the engine never sees it.
 */
import type { DetectEvent } from "@valise/detect";

export const FAMILIES_B = [
  "phished-device", // attacker enrols their own device with phished credentials and reads from it
  "session-breadth", // the victim's own session, device and network: a few items from each of many new units
  "stolen-key-foreign", // the victim's known device key replayed from a foreign network while the victim works
  "bulk-collection", // the victim's session pulls hundreds to thousands of items in a few hours
  "canary-open", // a canary document opened (several audited requests for one open)
  "probing", // refused reads across compartments, spread over minutes to hours
  "rogue-admin-device", // an administrator account adds a device to someone else; the device reads
  "clearance-widening", // an administrator account widens a clearance; the account collects in the new compartment
] as const;
export type FamilyB = (typeof FAMILIES_B)[number];

export interface IntrusionB {
  id: string;
  type: FamilyB;
  victim: string;
  start: number;
  events: string[];
  params: Record<string, string | number>;
}

export interface GenBOptions {
  seed: number;
  days: number;
  trainDays: number;
  perType: number;
  /** Staff count; 0: drawn from the seed (120-700). */
  users: number;
  /** Share of staff who replace a device during the period (default 0.12). */
  deviceReplaceRate?: number;
  /** Share of staff who travel during the evaluation period (default 0.18). */
  travelRate?: number;
  /** Share of staff posted to another unit during the evaluation period (default 0.03). */
  postingRate?: number;
}

export interface GeneratedB {
  events: DetectEvent[];
  intrusions: IntrusionB[];
  malicious: Map<string, string>;
  users: number;
  units: number;
  start: number;
  /** Benign lookalikes by kind (user-days), for the per-lookalike false-positive report. */
  lookalikes: Map<string, string>;
  /** The directory's unit time zones (IANA), as `valise admin unit tz` sets them and the server gives the engine. */
  timeZones: Record<string, string>;
}

// xoshiro128** seeded by splitmix32 (a different generator from generate.ts's mulberry32).
function prng(seed: number): () => number {
  let x = seed >>> 0;
  const sm = (): number => {
    x = (x + 0x9e3779b9) >>> 0;
    let z = x;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
  const s = [sm(), sm(), sm(), sm()];
  return () => {
    const result = Math.imul(((Math.imul(s[1]!, 5) << 7) | (Math.imul(s[1]!, 5) >>> 25)) >>> 0, 9) >>> 0;
    const t = (s[1]! << 9) >>> 0;
    s[2] = (s[2]! ^ s[0]!) >>> 0;
    s[3] = (s[3]! ^ s[1]!) >>> 0;
    s[1] = (s[1]! ^ s[2]) >>> 0;
    s[0] = (s[0]! ^ s[3]) >>> 0;
    s[2] = (s[2] ^ t) >>> 0;
    s[3] = ((s[3] << 11) | (s[3] >>> 21)) >>> 0;
    return result / 4294967296;
  };
}

const D = 86_400_000;
const H = 3_600_000;
const M = 60_000;
/** A Wednesday, so the period does not start on a week boundary as generate.ts's does. */
export const START_B = Date.parse("2026-04-01T00:00:00Z");

const COMPS = [
  "ASIA",
  "EUROPE",
  "AMERICAS",
  "AFRICA",
  "MIDEAST",
  "NATO",
  "ECON",
  "CONSULAR",
  "LEGAL",
  "CYBER",
  "ARCTIC",
];
const CITIES: [string, string, string][] = [
  ["BEIJING", "Asia/Shanghai", "ASIA"],
  ["TOKYO", "Asia/Tokyo", "ASIA"],
  ["SEOUL", "Asia/Seoul", "ASIA"],
  ["DELHI", "Asia/Kolkata", "ASIA"],
  ["HANOI", "Asia/Ho_Chi_Minh", "ASIA"],
  ["JAKARTA", "Asia/Jakarta", "ASIA"],
  ["CANBERRA", "Australia/Sydney", "ASIA"],
  ["WELLINGTON", "Pacific/Auckland", "ASIA"],
  ["ADELAIDE", "Australia/Adelaide", "ASIA"],
  ["KABUL", "Asia/Kabul", "MIDEAST"],
  ["TEHRAN", "Asia/Tehran", "MIDEAST"],
  ["RIYADH", "Asia/Riyadh", "MIDEAST"],
  ["ANKARA", "Europe/Istanbul", "MIDEAST"],
  ["CAIRO", "Africa/Cairo", "AFRICA"],
  ["NAIROBI", "Africa/Nairobi", "AFRICA"],
  ["LAGOS", "Africa/Lagos", "AFRICA"],
  ["PRETORIA", "Africa/Johannesburg", "AFRICA"],
  ["BRUSSELS", "Europe/Brussels", "NATO"],
  ["OSLO", "Europe/Oslo", "ARCTIC"],
  ["HELSINKI", "Europe/Helsinki", "ARCTIC"],
  ["LONDON", "Europe/London", "EUROPE"],
  ["PARIS", "Europe/Paris", "EUROPE"],
  ["WARSAW", "Europe/Warsaw", "EUROPE"],
  ["KYIV", "Europe/Kyiv", "EUROPE"],
  ["WASHINGTON", "America/New_York", "AMERICAS"],
  ["NEW-YORK", "America/New_York", "AMERICAS"],
  ["OTTAWA", "America/Toronto", "AMERICAS"],
  ["MEXICO", "America/Mexico_City", "AMERICAS"],
  ["BRASILIA", "America/Sao_Paulo", "AMERICAS"],
  ["SANTIAGO", "America/Santiago", "AMERICAS"],
  ["LOS-ANGELES", "America/Los_Angeles", "AMERICAS"],
  ["REYKJAVIK", "Atlantic/Reykjavik", "ARCTIC"],
];
const HQ_TZ = "Europe/Brussels";
const offsets = new Map<string, number>();
/**
 * The UTC offset in hours of IANA zone `zone` on day `d` of the period (at noon UTC), daylight saving included: the
 * ministry's posts keep local office hours, so their UTC hours move when their zone changes to or from summer time.
 */
function off(zone: string, d: number): number {
  const key = `${zone}|${d}`;
  let h = offsets.get(key);
  if (h === undefined) {
    const t = START_B + d * D + 12 * H;
    const p: Record<string, number> = {};
    const f = new Intl.DateTimeFormat("en-GB", {
      timeZone: zone,
      hourCycle: "h23",
      year: "numeric",
      month: "numeric",
      day: "numeric",
      hour: "numeric",
      minute: "numeric",
    });
    for (const x of f.formatToParts(t)) if (x.type !== "literal") p[x.type] = Number(x.value);
    h = (Date.UTC(p.year!, p.month! - 1, p.day, p.hour, p.minute) - t) / H;
    offsets.set(key, h);
  }
  return h;
}

interface UnitB {
  name: string;
  comp: string;
  also: string[];
  /** IANA time zone of the unit's office. */
  tz: string;
  /** Office network: an IPv4 prefix (three octets) or an IPv6 /48 prefix. */
  net: string;
  v6: boolean;
  guest: string;
  shift: boolean;
  size: number;
}

interface Person {
  handle: string;
  unit: UnitB;
  devices: string[];
  /** Device in daily use per slot: 0 desk, 1 mobile (index into devices). */
  home: string;
  mobile: string;
  start: number;
  length: number;
  rate: number;
  remote: number;
  mobileShare: number;
  weekend: number;
  follows: UnitB[];
  convs: string[];
  role: "staff" | "admin" | "officer";
  shiftOffset: number;
}

export function generateB(o: GenBOptions): GeneratedB {
  const r = prng(o.seed * 7919 + 17);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const int = (a: number, b: number): number => a + Math.floor(r() * (b - a + 1));
  const gauss = (): number => {
    let s = 0;
    for (let i = 0; i < 6; i++) s += r();
    return (s - 3) / Math.sqrt(0.5);
  };
  const shuffle = <T>(xs: T[]): T[] => {
    for (let i = xs.length - 1; i > 0; i--) {
      const j = Math.floor(r() * (i + 1));
      [xs[i], xs[j]] = [xs[j]!, xs[i]!];
    }
    return xs;
  };
  const events: DetectEvent[] = [];
  let n = 0;
  const emit = (p: Partial<DetectEvent> & { time: number; actor: string; action: string }): DetectEvent => {
    const t = Math.round(p.time);
    const e: DetectEvent = {
      id: `b${o.seed}-${(++n).toString(36)}`,
      timeText: new Date(t).toISOString(),
      device: null,
      source: "",
      client: "valise-sdk/0.1.0",
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
    events.push(e);
    return e;
  };
  const v4 = (): string => `${int(11, 223)}.${int(0, 255)}.${int(0, 255)}`;
  const v6 = (): string => `2a0${int(1, 9)}:${int(4096, 65535).toString(16)}:${int(1, 65535).toString(16)}`;
  const host = (net: string): string =>
    net.includes(":") ? `${net}::${int(1, 65535).toString(16)}` : `${net}.${int(2, 254)}`;

  // --- organisation ---
  const staffTarget = o.users > 0 ? o.users : pick([120, 180, 260, 400, 550, 700]);
  const nDept = int(6, 14);
  const nPost = int(8, Math.min(30, CITIES.length));
  const units: UnitB[] = [];
  const usedComps = shuffle([...COMPS]);
  for (let i = 0; i < nDept; i++) {
    const comp = usedComps[i % usedComps.length]!;
    units.push({
      name: `MFA/${comp}-${String.fromCharCode(65 + Math.floor(i / usedComps.length))}${i}`,
      comp,
      also: shuffle(COMPS.filter((c) => c !== comp)).slice(0, int(0, 2)),
      tz: HQ_TZ,
      net: `10.${100 + i}.${int(0, 7)}`,
      v6: false,
      guest: v4(),
      shift: false,
      size: Math.exp(1.2 + 0.8 * gauss()),
    });
  }
  for (const [city, tz, comp] of shuffle([...CITIES]).slice(0, nPost)) {
    const isV6 = r() < 0.3;
    units.push({
      name: `POST/${city}`,
      comp,
      also: shuffle(COMPS.filter((c) => c !== comp)).slice(0, int(1, 2)),
      tz,
      net: isV6 ? v6() : `172.${int(16, 31)}.${int(0, 255)}`,
      v6: isV6,
      guest: isV6 ? v6() : v4(),
      shift: false,
      size: Math.exp(0.6 + 0.6 * gauss()),
    });
  }
  const ops: UnitB = {
    name: "MFA/OPS-CENTRE",
    comp: "NATO",
    also: ["CONSULAR"],
    tz: HQ_TZ,
    net: "10.99.1",
    v6: false,
    guest: v4(),
    shift: true,
    size: 4,
  };
  const hotline: UnitB = {
    ...ops,
    name: "MFA/CONSULAR-HOTLINE",
    comp: "CONSULAR",
    also: ["LEGAL"],
    net: "10.99.2",
    size: 3,
  };
  units.push(ops, hotline);
  const itU: UnitB = { ...ops, name: "MFA/IT", comp: "IT", also: [], net: "10.98.1", shift: false, size: 0 };
  const secU: UnitB = {
    ...ops,
    name: "MFA/SECURITY",
    comp: "SECURITY",
    also: [],
    net: "10.98.2",
    shift: false,
    size: 0,
  };
  const totalSize = units.reduce((a, u) => a + u.size, 0);
  const byComp = (c: string): UnitB[] => units.filter((u) => u.comp === c);

  // --- people ---
  const people: Person[] = [];
  const mk = (unit: UnitB, role: Person["role"], i: number): Person => {
    const handle = `${unit.name
      .split("/")[1]!
      .toLowerCase()
      .replace(/[^a-z0-9]/g, "")}.${i}`;
    const nDev = r() < 0.15 ? 1 : r() < 0.8 ? 2 : 3;
    const devices = Array.from({ length: nDev }, (_, k) => `dv-${handle}-${k}`);
    const follows: UnitB[] = [unit];
    const related = shuffle(units.filter((u) => u !== unit && (u.comp === unit.comp || unit.also.includes(u.comp))));
    follows.push(...related.slice(0, int(1, 5)));
    if (r() < 0.3) follows.push(pick(units));
    return {
      handle,
      unit,
      devices,
      home: r() < 0.15 ? `${v6()}` : v4(),
      mobile: `${pick(["31.13", "46.19", "93.184", "176.10", "2a00:1450"])}${r() < 0.5 ? "" : ""}`,
      start: 6.5 + r() * 4,
      length: 6 + r() * 5,
      rate: Math.max(2, Math.round(Math.exp(Math.log(14) + 0.7 * gauss()))),
      remote: r() < 0.25 ? 0.3 + r() * 0.4 : r() * 0.1,
      mobileShare: nDev > 1 ? 0.05 + r() * 0.4 : 0,
      weekend: r() < 0.25 ? 0.3 : 0.02,
      follows,
      convs: [],
      role,
      shiftOffset: int(0, 2),
    };
  };
  for (const unit of units) {
    const k = Math.max(unit.shift ? 6 : 2, Math.round((staffTarget * unit.size) / totalSize));
    for (let i = 0; i < k; i++) people.push(mk(unit, "staff", i));
  }
  const admins = Array.from({ length: int(2, 6) }, (_, i) => ({ ...mk(itU, "admin", i), rate: 3 }));
  const officers = Array.from({ length: int(2, 4) }, (_, i) => ({ ...mk(secU, "officer", i), rate: 3 }));
  const staff = people.slice();
  people.push(...admins, ...officers);
  // Conversations: a channel per unit, and group conversations among people of related units.
  const convUnit = new Map<string, UnitB>();
  for (const u of units) convUnit.set(`c-ch-${u.name}`, u);
  for (const p of staff) p.convs.push(`c-ch-${p.unit.name}`);
  const nGroups = Math.round(staff.length / 3);
  for (let g = 0; g < nGroups; g++) {
    const owner = pick(staff);
    const id = `c-g${g}`;
    convUnit.set(id, owner.unit);
    owner.convs.push(id);
    const pool = staff.filter((p) => p.follows.includes(owner.unit));
    for (let k = int(1, 6); k > 0 && pool.length; k--) {
      const m = pick(pool);
      if (!m.convs.includes(id)) m.convs.push(id);
    }
  }

  // --- life events (evaluation period mostly; some during training so the engine sees their kind) ---
  const lookalikes = new Map<string, string>();
  const tag = (p: Person, d: number, kind: string): void => {
    const k = `${p.handle}|${Math.floor((START_B + d * D) / D)}`;
    if (!lookalikes.has(k)) lookalikes.set(k, kind);
  };
  type Trip = { from: number; to: number; tz: string; net: string };
  const trips = new Map<string, Trip>();
  const replace = new Map<string, { day: number; slot: number; ack: number | null }>();
  const postings = new Map<string, { day: number; to: UnitB }>();
  const travelRate = o.travelRate ?? 0.18;
  const replaceRate = o.deviceReplaceRate ?? 0.12;
  const postingRate = o.postingRate ?? 0.03;
  for (const p of staff) {
    if (r() < travelRate) {
      const from = int(2, o.days - 3);
      const kind = r();
      const dest = kind < 0.5 ? pick(units.filter((u) => u.name.startsWith("POST/"))) : null;
      trips.set(p.handle, {
        from,
        to: Math.min(o.days - 1, from + int(1, 7)),
        tz: dest
          ? dest.tz
          : kind < 0.8
            ? pick(["America/New_York", "Europe/London", "Europe/Brussels", "Asia/Dubai", "Asia/Singapore"])
            : pick(["America/Los_Angeles", "Europe/Moscow", "Australia/Brisbane"]),
        net: dest ? dest.guest : r() < 0.2 ? v6() : v4(),
      });
    }
    if (r() < replaceRate) {
      const trip = trips.get(p.handle);
      // A third of replacements happen on a trip (lost or broken phone abroad).
      const day = trip && r() < 0.35 ? int(trip.from, trip.to) : int(3, o.days - 2);
      replace.set(p.handle, {
        day,
        slot: p.devices.length > 1 ? int(0, p.devices.length - 1) : 0,
        ack: r() < 0.85 ? r() * 6 : null,
      });
    }
    if (r() < postingRate) {
      const to = pick(units.filter((u) => u !== p.unit && !u.shift));
      postings.set(p.handle, { day: int(o.trainDays, o.days - 4), to });
    }
  }

  // --- daily life ---
  const docOf = (u: UnitB): string => `doc-${u.name}-${Math.floor(Math.pow(r(), 2.5) * 600)}`;
  const cableOf = (u: UnitB, d: number): string => `cab-${u.name}-${d}-${int(0, 25)}`;
  const labelOf = (u: UnitB): string => `${r() < 0.6 ? "CONFIDENTIAL" : r() < 0.8 ? "RESTRICTED" : "SECRET"}/${u.comp}`;
  const personDay = (p: Person, d: number): void => {
    const dayStart = START_B + d * D;
    const dow = new Date(dayStart).getUTCDay();
    const weekend = dow === 0 || dow === 6;
    const trip = trips.get(p.handle);
    const away = trip !== undefined && d >= trip.from && d <= trip.to;
    const posting = postings.get(p.handle);
    const unit = posting && d >= posting.day ? posting.to : p.unit;
    if (posting && d >= posting.day && d < posting.day + 5) tag(p, d, "new-posting");
    if (away) tag(p, d, "travel");
    let start: number;
    let len: number;
    if (p.unit.shift && !(posting && d >= posting.day)) {
      // Rotating 8-hour shifts (06, 14, 22 local), one week each, 5 days on and 2 off.
      const week = Math.floor(d / 7) + p.shiftOffset;
      if ((d + p.shiftOffset) % 7 >= 5) return;
      start = [6, 14, 22][week % 3]!;
      len = 8;
    } else {
      if (weekend && r() > p.weekend) return;
      if (!weekend && r() < 0.05) return;
      start = p.start + gauss() * 0.5 + (weekend ? 3 : 0);
      len = weekend ? 1 + r() * 3 : p.length + gauss() * 0.7;
    }
    const tz = away ? trip.tz : unit.tz;
    const t0 = dayStart + (start - off(tz, d)) * H;
    const rep = replace.get(p.handle);
    const devices = p.devices.slice();
    if (rep && d >= rep.day) devices[rep.slot] = `${p.devices[rep.slot]}-new`;
    const remote = !away && r() < p.remote;
    const deskNet = away ? trip.net : remote ? p.home : unit.net;
    const deskSrc = host(deskNet);
    const mobileSrc = away
      ? host(trip.net)
      : p.mobile.includes(":")
        ? host(`${p.mobile}:${int(1, 999)}`)
        : `${p.mobile}.${int(0, 255)}.${int(1, 254)}`;
    if (rep && d === rep.day) {
      tag(p, d, away ? "new-device-travel" : "new-device");
      const te = t0 + r() * 2 * H;
      const newDev = devices[rep.slot]!;
      emit({
        time: te,
        actor: p.handle,
        action: "directory.device.add",
        device: newDev,
        target_device: newDev,
        object: p.handle,
        unit: unit.name,
        source: rep.slot === 0 ? deskSrc : mobileSrc,
        bytes: 1800,
      });
      if (rep.ack !== null) {
        const other = p.devices.find((_, k) => k !== rep.slot);
        // Acknowledged from the owner's other device, or (single-device users) from the new device itself.
        emit({
          time: te + 60_000 + rep.ack * H,
          actor: p.handle,
          action: "directory.device.ack",
          device: other ?? newDev,
          target_device: newDev,
          object: p.handle,
          unit: unit.name,
          source: other ? deskSrc : mobileSrc,
        });
      }
      if (r() < 0.6) {
        const a = pick(admins);
        emit({
          time: te + (4 + r() * 20) * H,
          actor: a.handle,
          action: "directory.device.revoke",
          device: a.devices[0]!,
          target_device: p.devices[rep.slot]!,
          object: p.handle,
          unit: unit.name,
          source: host(itU.net),
        });
      }
    }
    if (rep && d > rep.day && d <= rep.day + 3) tag(p, d, away ? "new-device-travel" : "new-device");
    const busy = r() < 0.04 ? 2.5 : 1;
    const count = Math.max(1, Math.round(p.rate * busy * (weekend ? 0.35 : 1) * (0.5 + r())));
    const used = new Set<string>();
    const when = (): number => t0 + r() * len * H;
    const read = (t: number, e: Partial<DetectEvent> & { action: string }): void => {
      const mobile = devices.length > 1 && r() < p.mobileShare;
      const dev = mobile ? devices[devices.length - 1]! : devices[0]!;
      const src = mobile ? mobileSrc : deskSrc;
      if (!used.has(dev)) {
        used.add(dev);
        emit({
          time: t - 1500,
          actor: p.handle,
          action: "login",
          device: dev,
          source: src,
          unit: unit.name,
          object: p.handle,
        });
      }
      emit({ time: t, actor: p.handle, device: dev, source: src, ...e });
    };
    const follows = posting && d >= posting.day ? [posting.to, ...p.follows.slice(1)] : p.follows;
    for (let k = 0; k < count; k++) {
      const t = when();
      const x = r();
      // Most reads in the person's first units; the tail of the list more rarely.
      const fu = follows[Math.min(follows.length - 1, Math.floor(Math.pow(r(), 2.2) * follows.length))]!;
      if (x < 0.45 && p.convs.length) {
        const c = r() < 0.5 ? p.convs[0]! : pick(p.convs);
        const cu = posting && d >= posting.day && c === p.convs[0] ? posting.to : convUnit.get(c)!;
        const cid = posting && d >= posting.day && c === p.convs[0] ? `c-ch-${posting.to.name}` : c;
        read(t, {
          action: "message.read",
          object: cid,
          label: `CONFIDENTIAL/${cu.comp}`,
          unit: cu.name,
          bytes: int(300, 9000),
        });
      } else if (x < 0.75) {
        read(t, {
          action: "cable.read",
          object: cableOf(fu, d),
          label: labelOf(fu),
          unit: fu.name,
          bytes: int(1500, 60000),
        });
      } else if (x < 0.96) {
        read(t, {
          action: "document.read",
          object: docOf(fu),
          label: labelOf(fu),
          unit: fu.name,
          bytes: Math.round(20000 + Math.exp(10.5 + 1.7 * gauss())),
        });
      } else {
        read(t, { action: r() < 0.5 ? "cable.list" : "document.list", object: fu.name, unit: fu.name, bytes: 2500 });
      }
    }
    // Occasional INFO cable from a unit nobody in the person's circle follows (benign breadth of one).
    if (r() < 0.08) {
      const u = pick(units);
      read(when(), {
        action: "cable.read",
        object: cableOf(u, d),
        label: labelOf(u),
        unit: u.name,
        bytes: int(1500, 30000),
      });
    }
    for (let k = int(0, 3); k > 0; k--)
      emit({
        time: when(),
        actor: p.handle,
        action: pick(["message.send", "message.send", "cable.send", "document.write"]),
        device: devices[0]!,
        source: deskSrc,
        object: `w-${int(0, 1e9)}`,
        label: `CONFIDENTIAL/${unit.comp}`,
        unit: unit.name,
        bytes: int(500, 80000),
      });
    if (r() < 0.02) {
      const u = pick(units.filter((x) => x.comp !== unit.comp));
      emit({
        time: when(),
        actor: p.handle,
        action: "document.read",
        device: devices[0]!,
        source: deskSrc,
        object: docOf(u),
        label: `SECRET/${u.comp}`,
        unit: u.name,
        outcome: "denied",
      });
    }
  };
  const canaryDocs = shuffle(units.filter((u) => u.comp === "ASIA" || u.comp === "NATO" || r() < 0.2))
    .slice(0, 4)
    .map((u) => ({
      id: `doc-${u.name}-canary-${int(1, 99)}`,
      unit: u,
    }));
  const adminDay = (a: Person, d: number): void => {
    const dayStart = START_B + d * D;
    const dow = new Date(dayStart).getUTCDay();
    if (dow === 0 || dow === 6 || r() < 0.08) return;
    const t0 = dayStart + (a.start - off(HQ_TZ, d)) * H;
    const src = host(itU.net);
    emit({
      time: t0,
      actor: a.handle,
      action: "login",
      device: a.devices[0]!,
      source: src,
      unit: itU.name,
      object: a.handle,
    });
    for (let k = int(0, 6); k > 0; k--) {
      const v = pick(staff);
      const action = pick([
        "directory.clearance.set",
        "directory.clearance.set",
        "directory.role.set",
        "directory.device.revoke",
      ]);
      emit({
        time: t0 + r() * a.length * H,
        actor: a.handle,
        action,
        device: a.devices[0]!,
        source: src,
        object: v.handle,
        target_device: action === "directory.device.revoke" ? v.devices[v.devices.length - 1]! : null,
        label: action === "directory.clearance.set" ? `SECRET/${v.unit.comp}` : null,
        unit: v.unit.name,
      });
    }
    for (let k = int(1, 5); k > 0; k--)
      emit({
        time: t0 + r() * a.length * H,
        actor: a.handle,
        action: "directory.read",
        device: a.devices[0]!,
        source: src,
        object: pick(staff).handle,
      });
  };
  const officerDay = (s: Person, d: number): void => {
    const dayStart = START_B + d * D;
    const dow = new Date(dayStart).getUTCDay();
    if (dow === 0 || dow === 6 || r() < 0.08) return;
    const t0 = dayStart + (s.start - off(HQ_TZ, d)) * H;
    const src = host(secU.net);
    emit({
      time: t0,
      actor: s.handle,
      action: "login",
      device: s.devices[0]!,
      source: src,
      unit: secU.name,
      object: s.handle,
    });
    for (let k = int(2, 8); k > 0; k--)
      emit({
        time: t0 + r() * s.length * H,
        actor: s.handle,
        action: "audit.read",
        device: s.devices[0]!,
        source: src,
        object: "audit",
        bytes: int(5000, 90000),
      });
    // Marking a canary (benign; the server flags the officer's own write as touching a canary).
    if (r() < 0.04) {
      const c = pick(canaryDocs);
      tag(s, d, "canary-marking");
      emit({
        time: t0 + r() * s.length * H,
        actor: s.handle,
        action: "document.write",
        device: s.devices[0]!,
        source: src,
        object: c.id,
        label: `CONFIDENTIAL/${c.unit.comp}`,
        unit: c.unit.name,
        canary: true,
      });
    }
  };
  for (let d = 0; d < o.days; d++) {
    for (const p of staff) personDay(p, d);
    for (const a of admins) adminDay(a, d);
    for (const s of officers) officerDay(s, d);
  }

  // --- intrusions, parameters drawn per intrusion ---
  const malicious = new Map<string, string>();
  const intrusions: IntrusionB[] = [];
  const victims = new Set<string>();
  const victim = (pool: Person[]): Person => {
    for (let k = 0; k < 200; k++) {
      const v = pick(pool);
      if (!victims.has(v.handle)) {
        victims.add(v.handle);
        return v;
      }
    }
    return pick(pool);
  };
  const foreignNet = (): string =>
    pick([
      () => `${pick(["45.142", "103.97", "185.220", "194.36", "119.28", "5.188"])}.${int(0, 255)}`,
      () => v6(),
      () => v4(), // a domestic consumer ISP: nothing marks it as foreign
    ])();
  const evalDays = o.days - o.trainDays;
  let slot = 0;
  const total = FAMILIES_B.length * o.perType;
  const order = shuffle(Array.from({ length: total }, (_, i) => i));
  for (const type of FAMILIES_B) {
    for (let i = 0; i < o.perType; i++) {
      const id = `${type}#${i}`;
      const mine: DetectEvent[] = [];
      const day = o.trainDays + 1 + Math.floor(((order[slot++]! + r()) / total) * (evalDays - 9));
      const params: Record<string, string | number> = { day };
      const add = (p: Partial<DetectEvent> & { time: number; actor: string; action: string }): void => {
        mine.push(emit(p));
      };
      const item = (u: UnitB, d: number): Partial<DetectEvent> & { action: string } => {
        const x = r();
        return x < 0.55
          ? {
              action: "document.read",
              object: docOf(u),
              label: labelOf(u),
              unit: u.name,
              bytes: Math.round(20000 + Math.exp(11 + gauss())),
            }
          : x < 0.85
            ? { action: "cable.read", object: cableOf(u, d), label: labelOf(u), unit: u.name, bytes: int(1500, 60000) }
            : {
                action: "message.read",
                object: `c-ch-${u.name}`,
                label: `CONFIDENTIAL/${u.comp}`,
                unit: u.name,
                bytes: int(300, 9000),
              };
      };
      const target = pick(["ASIA", "NATO", "ARCTIC", "EUROPE"]);
      const targetUnits = byComp(target).length ? byComp(target) : units;
      const attackerTz = pick([8, 7, 3, 1]);
      const atHours = (d: number, v: Person): number =>
        r() < 0.5
          ? START_B + d * D + (9 + r() * 8 - attackerTz) * H
          : START_B + d * D + (v.start + r() * v.length - off(v.unit.tz, d)) * H;
      let v: Person;
      switch (type) {
        case "phished-device": {
          v = victim(staff);
          const dev = `dv-${v.handle}-evil${i}`;
          const net = foreignNet();
          const days = int(1, 5);
          const perDay = int(5, 60);
          Object.assign(params, { net, days, perDay, attackerTz });
          const t = atHours(day, v);
          add({
            time: t,
            actor: v.handle,
            action: "directory.device.add",
            device: dev,
            target_device: dev,
            object: v.handle,
            unit: v.unit.name,
            source: host(net),
            bytes: 1800,
          });
          for (let d = day; d < day + days; d++)
            for (let j = int(Math.ceil(perDay / 2), perDay); j > 0; j--) {
              const u = r() < 0.5 ? pick(v.follows) : pick(targetUnits);
              add({
                time: Math.max(t + M, atHours(d, v)),
                actor: v.handle,
                device: dev,
                source: host(net),
                ...item(u, d),
              });
            }
          break;
        }
        case "session-breadth": {
          v = victim(staff.filter((p) => !p.unit.shift));
          const days = int(2, 8);
          const unitsPerDay = int(5, 16);
          const perUnit = int(1, 4);
          Object.assign(params, { days, unitsPerDay, perUnit });
          const fresh = shuffle(units.filter((u) => !v.follows.includes(u)));
          let next = 0;
          for (let d = day, done = 0; done < days; d++) {
            const dow = new Date(START_B + d * D).getUTCDay();
            if (dow === 0 || dow === 6) continue;
            done++;
            for (let k = 0; k < unitsPerDay; k++) {
              const u = fresh[next++ % fresh.length]!;
              for (let j = 0; j < perUnit; j++)
                add({
                  time: START_B + d * D + (v.start + r() * v.length - off(v.unit.tz, d)) * H,
                  actor: v.handle,
                  device: v.devices[0]!,
                  source: host(v.unit.net),
                  ...item(u, d),
                });
            }
          }
          break;
        }
        case "stolen-key-foreign": {
          v = victim(staff.filter((p) => !p.unit.shift));
          const net = foreignNet();
          const days = int(2, 7);
          const perDay = int(5, 30);
          Object.assign(params, { net, days, perDay });
          for (let d = day; d < day + days; d++)
            for (let j = int(Math.ceil(perDay / 2), perDay); j > 0; j--)
              add({
                time: START_B + d * D + (v.start + r() * v.length - off(v.unit.tz, d)) * H,
                actor: v.handle,
                device: v.devices[0]!,
                source: host(net),
                ...item(r() < 0.6 ? pick(targetUnits) : pick(v.follows), d),
              });
          break;
        }
        case "bulk-collection": {
          v = victim(staff);
          const own = r() < 0.5;
          const net = own ? v.unit.net : foreignNet();
          const count = int(150, 2500);
          const hours = 0.5 + r() * 4.5;
          Object.assign(params, { ownNetwork: own ? 1 : 0, count, hours });
          const t = atHours(day, v);
          for (let j = 0; j < count; j++) {
            const u = pick(v.follows);
            add({
              time: t + (j / count) * hours * H,
              actor: v.handle,
              device: v.devices[0]!,
              source: host(net),
              ...item(u, day),
              object: `${u.name}-old-${int(0, 1e9)}`,
            });
          }
          break;
        }
        case "canary-open": {
          v = victim(staff);
          const c = pick(canaryDocs);
          const requests = int(2, 4);
          Object.assign(params, { requests, canary: c.id });
          const t = START_B + day * D + (v.start + r() * v.length - off(v.unit.tz, day)) * H;
          const src = host(v.unit.net);
          add({
            time: t,
            actor: v.handle,
            action: "document.list",
            device: v.devices[0]!,
            source: src,
            object: c.unit.name,
            unit: c.unit.name,
            bytes: 2500,
          });
          add({
            time: t + 20_000,
            actor: v.handle,
            action: "document.read",
            device: v.devices[0]!,
            source: src,
            object: c.id,
            label: `CONFIDENTIAL/${c.unit.comp}`,
            unit: c.unit.name,
            canary: true,
          });
          for (let k = 1; k < requests; k++)
            add({
              time: t + 20_000 + k * 1500,
              actor: v.handle,
              action: "document.read",
              device: v.devices[0]!,
              source: src,
              object: `b-${c.id}-${k}`,
              label: `CONFIDENTIAL/${c.unit.comp}`,
              unit: c.unit.name,
              canary: true,
              bytes: 250_000,
            });
          break;
        }
        case "probing": {
          v = victim(staff);
          const count = int(5, 25);
          const span = (0.25 + r() * 5) * H;
          Object.assign(params, { count, spanHours: span / H });
          const t = START_B + day * D + (v.start + r() * 3 - off(v.unit.tz, day)) * H;
          for (let j = 0; j < count; j++) {
            const u = pick(units.filter((x) => x.comp !== v.unit.comp));
            add({
              time: t + (j * span) / count,
              actor: v.handle,
              device: v.devices[0]!,
              source: host(v.unit.net),
              ...item(u, day),
              outcome: "denied",
              bytes: 0,
            });
          }
          break;
        }
        case "rogue-admin-device": {
          const a = pick(admins);
          v = victim(staff);
          const dev = `dv-${v.handle}-ghost${i}`;
          const night = r() < 0.5;
          const adminNet = r() < 0.5 ? itU.net : foreignNet();
          const net = foreignNet();
          const reads = int(5, 40);
          Object.assign(params, { night: night ? 1 : 0, adminNet, net, reads });
          const t = START_B + day * D + (night ? 21 + r() * 6 : a.start + r() * 6) * H - off(HQ_TZ, day) * H;
          add({
            time: t,
            actor: a.handle,
            action: "directory.device.add",
            device: a.devices[0]!,
            source: host(adminNet),
            object: v.handle,
            target_device: dev,
            unit: v.unit.name,
          });
          for (let j = 0; j < reads; j++)
            add({
              time: t + (5 + j * (5 + r() * 60)) * M,
              actor: v.handle,
              device: dev,
              source: host(net),
              ...item(r() < 0.5 ? pick(v.follows) : pick(targetUnits), day),
            });
          break;
        }
        case "clearance-widening": {
          const a = pick(admins);
          v = victim(staff.filter((p) => p.unit.comp !== target && !p.unit.also.includes(target)));
          const days = int(2, 5);
          const perDay = int(5, 20);
          Object.assign(params, { days, perDay, compartment: target });
          const t = START_B + day * D + (a.start + r() * 6 - off(HQ_TZ, day)) * H;
          add({
            time: t,
            actor: a.handle,
            action: "directory.clearance.set",
            device: a.devices[0]!,
            source: host(itU.net),
            object: v.handle,
            label: `SECRET/${target}`,
            unit: v.unit.name,
          });
          for (let d = day; d < day + days; d++)
            for (let j = int(Math.ceil(perDay / 2), perDay); j > 0; j--)
              add({
                time: Math.max(t + 30 * M, START_B + d * D + (v.start + r() * v.length - off(v.unit.tz, d)) * H),
                actor: v.handle,
                device: v.devices[0]!,
                source: host(v.unit.net),
                ...item(pick(targetUnits), d),
              });
          break;
        }
      }
      mine.sort((a, b) => a.time - b.time);
      for (const e of mine) malicious.set(e.id, id);
      intrusions.push({ id, type, victim: v.handle, start: mine[0]!.time, events: mine.map((e) => e.id), params });
    }
  }
  events.sort((a, b) => a.time - b.time || (a.id < b.id ? -1 : 1));
  const timeZones = Object.fromEntries([...units, itU, secU].map((u) => [u.name, u.tz]));
  return {
    events,
    intrusions,
    malicious,
    users: people.length,
    units: units.length + 2,
    start: START_B,
    lookalikes,
    timeZones,
  };
}
