/**
 * A seeded, deterministic synthetic ministry for evaluating @valise/detect: a few hundred users in HQ desks and
 * embassies across time zones, with personal working hours, laptops and phones, home and mobile networks, travel,
 * new phones, month-end bursts, occasional refusals and weekend work; administrators and security officers doing
 * their jobs. Into the evaluation period it injects APT31-style intrusions (see INTRUSION_TYPES) and returns the
 * ground truth separately from the events (the engine never sees it).
 */
import type { DetectEvent } from "@valise/detect";

export const INTRUSION_TYPES = [
  "stolen-credentials-new-device", // phished enrollment: new device, router network abroad, reads at attacker hours
  "token-theft-router", // the victim's device key used from a compromised router, Asia collection in working hours
  "implant-slow-drip", // malware on the victim's own laptop and network: slow extra Asia reads over days
  "mailbox-dump", // mailbox-wide message reads in an hour or two with the victim's session
  "canary-touch", // browsing the Asia shared folder and opening the canary
  "probing", // a non-Asia account trying Asia items: refusals spread over an hour or two
  "ghost-device-by-admin", // a compromised administrator adds a device to an ambassador at night; it reads
  "clearance-escalation", // a compromised administrator widens a clerk's clearance; the clerk's account collects
] as const;
export type IntrusionType = (typeof INTRUSION_TYPES)[number];

export interface Intrusion {
  id: string;
  type: IntrusionType;
  victim: string;
  start: number;
  events: string[];
}

export interface GenOptions {
  seed: number;
  users: number;
  days: number;
  trainDays: number;
  /** Intrusions of each type. */
  perType: number;
}

export interface Generated {
  events: DetectEvent[];
  intrusions: Intrusion[];
  malicious: Map<string, string>;
  users: number;
  units: number;
  start: number;
}

/** mulberry32 */
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

const DAY = 86_400_000;
const HOUR = 3_600_000;
const MIN = 60_000;
export const START = Date.parse("2026-02-02T00:00:00Z"); // a Monday

interface Unit {
  name: string;
  comp: string;
  /** Other compartments its members read (INFO cables, shared work). */
  also: string[];
  tz: number;
  net: string;
  weight: number;
  monthEnd: boolean;
}

const UNITS: Unit[] = [
  { name: "HQ/ASIA-1", comp: "ASIA", also: ["ECON"], tz: 1, net: "10.20.3", weight: 3, monthEnd: false },
  { name: "HQ/ASIA-2", comp: "ASIA", also: ["CONSULAR"], tz: 1, net: "10.20.3", weight: 2, monthEnd: false },
  { name: "HQ/EUROPE-1", comp: "EUROPE", also: ["ECON"], tz: 1, net: "10.20.4", weight: 3, monthEnd: false },
  { name: "HQ/EUROPE-2", comp: "EUROPE", also: ["LEGAL"], tz: 1, net: "10.20.4", weight: 2, monthEnd: false },
  { name: "HQ/AMERICAS", comp: "AMERICAS", also: ["ECON"], tz: 1, net: "10.20.5", weight: 2, monthEnd: false },
  { name: "HQ/AFRICA-MIDEAST", comp: "AFRICA", also: ["MIDEAST"], tz: 1, net: "10.20.5", weight: 2, monthEnd: false },
  { name: "HQ/CONSULAR", comp: "CONSULAR", also: ["LEGAL"], tz: 1, net: "10.20.6", weight: 3, monthEnd: false },
  { name: "HQ/ECON", comp: "ECON", also: ["EUROPE"], tz: 1, net: "10.20.6", weight: 2, monthEnd: true },
  { name: "HQ/LEGAL", comp: "LEGAL", also: ["CONSULAR"], tz: 1, net: "10.20.7", weight: 2, monthEnd: true },
  { name: "HQ/BUDGET", comp: "BUDGET", also: ["ECON"], tz: 1, net: "10.20.7", weight: 2, monthEnd: true },
  { name: "EMB/BEIJING", comp: "ASIA", also: ["CONSULAR"], tz: 8, net: "10.41.1", weight: 2, monthEnd: false },
  { name: "EMB/TOKYO", comp: "ASIA", also: ["ECON"], tz: 9, net: "10.41.2", weight: 2, monthEnd: false },
  { name: "EMB/DELHI", comp: "ASIA", also: ["CONSULAR"], tz: 5, net: "10.41.3", weight: 1, monthEnd: false },
  { name: "EMB/CANBERRA", comp: "ASIA", also: ["ECON"], tz: 11, net: "10.41.4", weight: 1, monthEnd: false },
  { name: "EMB/WASHINGTON", comp: "AMERICAS", also: ["ECON"], tz: -5, net: "10.42.1", weight: 2, monthEnd: false },
  { name: "EMB/OTTAWA", comp: "AMERICAS", also: ["CONSULAR"], tz: -5, net: "10.42.2", weight: 1, monthEnd: false },
  { name: "EMB/BRASILIA", comp: "AMERICAS", also: ["ECON"], tz: -3, net: "10.42.3", weight: 1, monthEnd: false },
  { name: "EMB/BERLIN", comp: "EUROPE", also: ["ECON"], tz: 1, net: "10.43.1", weight: 2, monthEnd: false },
  { name: "EMB/PARIS", comp: "EUROPE", also: ["CONSULAR"], tz: 1, net: "10.43.2", weight: 1, monthEnd: false },
  { name: "EMB/LONDON", comp: "EUROPE", also: ["LEGAL"], tz: 0, net: "10.43.3", weight: 1, monthEnd: false },
  { name: "EMB/NAIROBI", comp: "AFRICA", also: ["CONSULAR"], tz: 3, net: "10.44.1", weight: 1, monthEnd: false },
  { name: "EMB/CAIRO", comp: "MIDEAST", also: ["CONSULAR"], tz: 2, net: "10.44.2", weight: 1, monthEnd: false },
];
const IT: Unit = { name: "HQ/IT", comp: "IT", also: [], tz: 1, net: "10.20.9", weight: 0, monthEnd: false };
const SEC: Unit = {
  name: "HQ/SECURITY",
  comp: "SECURITY",
  also: [],
  tz: 1,
  net: "10.20.9",
  weight: 0,
  monthEnd: false,
};

interface User {
  handle: string;
  unit: Unit;
  laptop: string;
  phone: string;
  home: string;
  mobile: string;
  /** Local start hour, day length (h). */
  start: number;
  length: number;
  reads: number;
  lateWorker: boolean;
  weekendProb: number;
  phoneShare: number;
  role: "staff" | "admin" | "officer";
  ambassador: boolean;
}

export function generate(o: GenOptions): Generated {
  const r = rng(o.seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const normal = (): number => {
    const u = Math.max(r(), 1e-9);
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * r());
  };
  const events: DetectEvent[] = [];
  let n = 0;
  const push = (p: Partial<DetectEvent> & { time: number; actor: string; action: string }): DetectEvent => {
    const t = Math.round(p.time);
    const e: DetectEvent = {
      id: `s${o.seed}-${(++n).toString(36)}`,
      timeText: new Date(t).toISOString(),
      device: null,
      source: "",
      client: "valise-desktop/1.0",
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

  // --- people ---
  const users: User[] = [];
  const totalW = UNITS.reduce((a, u) => a + u.weight, 0);
  const carriers = ["78.80", "88.100", "46.135"];
  const mkUser = (unit: Unit, role: User["role"], i: number): User => {
    const handle = `${unit.name
      .split("/")[1]!
      .toLowerCase()
      .replace(/[^a-z0-9]/g, "")}${i}`;
    return {
      handle,
      unit,
      laptop: `d-${handle}-l`,
      phone: `d-${handle}-p`,
      home: `83.${Math.floor(r() * 250)}.${Math.floor(r() * 250)}`,
      mobile: `${pick(carriers)}.${Math.floor(r() * 40)}`,
      start: 7.5 + normal() * 0.7,
      length: 8 + r() * 2,
      reads: Math.max(4, Math.round(Math.exp(Math.log(18) + 0.55 * normal()))),
      lateWorker: r() < 0.12,
      weekendProb: r() < 0.2 ? 0.25 : 0.03,
      phoneShare: 0.1 + r() * 0.25,
      role,
      ambassador: false,
    };
  };
  for (const unit of UNITS) {
    const k = Math.max(3, Math.round(((o.users - 8) * unit.weight) / totalW));
    for (let i = 0; i < k; i++) {
      const u = mkUser(unit, "staff", i);
      if (i === 0 && unit.name.startsWith("EMB/")) u.ambassador = true;
      users.push(u);
    }
  }
  for (let i = 0; i < 5; i++) users.push({ ...mkUser(IT, "admin", i), reads: 6 });
  for (let i = 0; i < 3; i++) users.push({ ...mkUser(SEC, "officer", i), reads: 6 });
  const staff = users.filter((u) => u.role === "staff");
  const admins = users.filter((u) => u.role === "admin");
  const officers = users.filter((u) => u.role === "officer");
  const byUnit = new Map<string, User[]>();
  for (const u of staff) byUnit.set(u.unit.name, [...(byUnit.get(u.unit.name) ?? []), u]);

  // Documents live in unit folders; a few canaries sit in the Asia folders.
  const docsOf = (unit: Unit, k: number): string => `doc-${unit.name.replace("/", "-")}-${k}`;
  const canaries = ["doc-HQ-ASIA-1-canary-visit-programme", "doc-EMB-BEIJING-canary-talking-points"];
  const unitsWithComp = (c: string): Unit[] => UNITS.filter((u) => u.comp === c);

  // --- life events ---
  const trips = new Map<string, { from: number; to: number; tz: number; net: string }>();
  const newPhone = new Map<string, number>();
  for (const u of staff) {
    if (r() < 0.06) {
      const from = o.trainDays + Math.floor(r() * (o.days - o.trainDays - 4));
      const dest = r() < 0.5 ? pick(UNITS) : null;
      trips.set(u.handle, {
        from,
        to: from + 2 + Math.floor(r() * 3),
        tz: dest ? dest.tz : Math.floor(r() * 10) - 2,
        // An embassy's guest network (known to the embassy's staff? no: a separate guest range) or a hotel.
        net: dest
          ? `${dest.net.replace(/^10\./, "172.")}`
          : `${100 + Math.floor(r() * 100)}.${Math.floor(r() * 250)}.${Math.floor(r() * 250)}`,
      });
    }
    if (r() < 0.04) newPhone.set(u.handle, 3 + Math.floor(r() * (o.days - 4)));
  }

  let cableSeq = 0;
  const workDay = (u: User, d: number): void => {
    const dayStart = START + d * DAY;
    const dow = new Date(dayStart).getUTCDay();
    const weekend = dow === 0 || dow === 6;
    if (weekend && r() > u.weekendProb) return;
    if (!weekend && r() < 0.04) return; // leave, sickness
    const trip = trips.get(u.handle);
    const travelling = trip !== undefined && d >= trip.from && d <= trip.to;
    const tz = travelling ? trip.tz : u.unit.tz;
    const startLocal = u.start + normal() * 0.4 + (weekend ? 2 : 0);
    const len = weekend ? 2 + r() * 2 : u.length + normal() * 0.5;
    const t0 = dayStart + (startLocal - tz) * HOUR;
    const phoneSince = newPhone.get(u.handle);
    const phone = phoneSince !== undefined && d >= phoneSince ? `${u.phone}2` : u.phone;
    if (phoneSince === d) {
      const t = t0 + r() * 2 * HOUR;
      push({
        time: t,
        actor: u.handle,
        action: "directory.device.add",
        device: phone,
        target_device: phone,
        object: u.handle,
        unit: u.unit.name,
        source: `${u.unit.net}.${20 + Math.floor(r() * 200)}`,
        bytes: 2400,
      });
      // The owner approves the new phone from their laptop (`valise devices approve`, audited as
      // directory.device.ack): most at once, some hours later (issue 16 part 2: the engine waits 8 h for it), a few
      // never (they forgot: the benign cost of the approval window).
      const ackDraw = r();
      const ackAfter = ackDraw < 0.7 ? 10 * MIN : ackDraw < 0.93 ? (1 + 5 * r()) * HOUR : null;
      if (ackAfter !== null)
        push({
          time: t + ackAfter,
          actor: u.handle,
          action: "directory.device.ack",
          device: u.laptop,
          target_device: phone,
          object: u.handle,
          unit: u.unit.name,
          source: `${u.unit.net}.25`,
        });
      const admin = pick(admins);
      push({
        time: t + 30 * MIN,
        actor: admin.handle,
        action: "directory.device.revoke",
        device: admin.laptop,
        target_device: u.phone,
        object: u.handle,
        unit: u.unit.name,
        source: `${IT.net}.${10 + Math.floor(r() * 5)}`,
      });
    }
    const officeSrc = travelling
      ? `${trip.net}.${Math.floor(r() * 250)}`
      : r() < 0.1
        ? `${u.home}.${2 + Math.floor(r() * 10)}`
        : `${u.unit.net}.${20 + Math.floor(r() * 200)}`;
    const mobileSrc = travelling ? officeSrc : `${u.mobile}.${Math.floor(r() * 250)}`;
    let scale = weekend ? 0.3 : 1;
    const dom = new Date(dayStart).getUTCDate();
    const dim = new Date(
      Date.UTC(new Date(dayStart).getUTCFullYear(), new Date(dayStart).getUTCMonth() + 1, 0),
    ).getUTCDate();
    if (u.unit.monthEnd && dim - dom < 3) scale *= 2.2;
    if (r() < 0.03) scale *= 2; // a busy day
    const nReads = Math.round(u.reads * scale * (0.6 + 0.8 * r()));
    const login = (t: number, dev: string, src: string): void => {
      push({
        time: t,
        actor: u.handle,
        action: "login",
        device: dev,
        source: src,
        unit: u.unit.name,
        object: u.handle,
      });
    };
    login(t0, u.laptop, officeSrc);
    let phoneLogged = false;
    const sessionTime = (): number => {
      let t = t0 + r() * len * HOUR;
      if (u.lateWorker && r() < 0.15) t = t0 + (len + 1 + r() * 3) * HOUR;
      return t;
    };
    for (let k = 0; k < nReads; k++) {
      const t = sessionTime();
      const onPhone = r() < u.phoneShare;
      const dev = onPhone ? phone : u.laptop;
      const src = onPhone ? mobileSrc : officeSrc;
      if (onPhone && !phoneLogged) {
        login(t - 2000, dev, src);
        phoneLogged = true;
      }
      const x = r();
      const comp = r() < 0.8 ? u.unit.comp : pick(u.unit.also);
      const owner =
        comp === u.unit.comp
          ? r() < 0.7
            ? u.unit
            : pick(unitsWithComp(comp))
          : pick(unitsWithComp(comp).length ? unitsWithComp(comp) : [u.unit]);
      const level = r() < 0.7 ? "CONFIDENTIAL" : "RESTRICTED";
      if (x < 0.4) {
        push({
          time: t,
          actor: u.handle,
          action: "message.read",
          device: dev,
          source: src,
          object: `msg-${u.unit.name}-${d}-${Math.floor(r() * 1e9)}`,
          label: `${level}/${u.unit.comp}`,
          unit: u.unit.name,
          bytes: 500 + Math.floor(r() * 5000),
        });
      } else if (x < 0.72) {
        push({
          time: t,
          actor: u.handle,
          action: "cable.read",
          device: dev,
          source: src,
          object: `cable-${owner.name}-${d}-${(cableSeq++ % 40) + Math.floor(r() * 3)}`,
          label: `${level}/${comp}`,
          unit: owner.name,
          bytes: 2000 + Math.floor(r() * 30000),
        });
      } else if (x < 0.95) {
        const docK = Math.floor(Math.pow(r(), 2) * 400);
        push({
          time: t,
          actor: u.handle,
          action: "document.read",
          device: dev,
          source: src,
          object: docsOf(owner, docK),
          label: `${level}/${comp}`,
          unit: owner.name,
          bytes: 30_000 + Math.floor(Math.exp(11 + 1.5 * normal())),
        });
      } else {
        push({
          time: t,
          actor: u.handle,
          action: r() < 0.5 ? "cable.list" : "document.list",
          device: dev,
          source: src,
          object: owner.name,
          label: null,
          unit: owner.name,
          bytes: 3000,
        });
      }
    }
    const sends = Math.floor(r() * 4 * scale);
    for (let k = 0; k < sends; k++)
      push({
        time: sessionTime(),
        actor: u.handle,
        action: r() < 0.7 ? "message.send" : r() < 0.5 ? "cable.send" : "document.write",
        device: u.laptop,
        source: officeSrc,
        object: `out-${Math.floor(r() * 1e9)}`,
        label: `CONFIDENTIAL/${u.unit.comp}`,
        unit: u.unit.name,
        bytes: 1000 + Math.floor(r() * 50000),
      });
    if (r() < 0.03) {
      const other = pick(UNITS.filter((x) => x.comp !== u.unit.comp && !u.unit.also.includes(x.comp)));
      push({
        time: sessionTime(),
        actor: u.handle,
        action: "cable.read",
        device: u.laptop,
        source: officeSrc,
        object: `cable-${other.name}-${d}-x`,
        label: `SECRET/${other.comp}`,
        unit: other.name,
        outcome: "denied",
      });
    }
  };
  const adminDay = (a: User, d: number): void => {
    const dayStart = START + d * DAY;
    const dow = new Date(dayStart).getUTCDay();
    if (dow === 0 || dow === 6 || r() < 0.05) return;
    const t0 = dayStart + (a.start - a.unit.tz) * HOUR;
    const src = `${IT.net}.${10 + Math.floor(r() * 5)}`;
    push({
      time: t0,
      actor: a.handle,
      action: "login",
      device: a.laptop,
      source: src,
      unit: a.unit.name,
      object: a.handle,
    });
    const changes = Math.floor(r() * 5);
    for (let k = 0; k < changes; k++) {
      const v = pick(staff);
      const action =
        r() < 0.6 ? "directory.clearance.set" : r() < 0.5 ? "directory.role.set" : "directory.device.revoke";
      push({
        time: t0 + r() * a.length * HOUR,
        actor: a.handle,
        action,
        device: a.laptop,
        source: src,
        object: v.handle,
        target_device: action === "directory.device.revoke" ? v.phone : null,
        unit: v.unit.name,
      });
    }
    for (let k = 0; k < 3; k++)
      push({
        time: t0 + r() * a.length * HOUR,
        actor: a.handle,
        action: "directory.read",
        device: a.laptop,
        source: src,
        object: pick(staff).handle,
      });
  };
  const officerDay = (s: User, d: number): void => {
    const dayStart = START + d * DAY;
    const dow = new Date(dayStart).getUTCDay();
    if (dow === 0 || dow === 6 || r() < 0.05) return;
    const t0 = dayStart + (s.start - s.unit.tz) * HOUR;
    const src = `${SEC.net}.${30 + Math.floor(r() * 5)}`;
    push({
      time: t0,
      actor: s.handle,
      action: "login",
      device: s.laptop,
      source: src,
      unit: s.unit.name,
      object: s.handle,
    });
    for (let k = 0; k < 5; k++)
      push({
        time: t0 + r() * s.length * HOUR,
        actor: s.handle,
        action: "audit.read",
        device: s.laptop,
        source: src,
        object: "audit",
        bytes: 20_000,
      });
  };
  for (let d = 0; d < o.days; d++) {
    for (const u of staff) workDay(u, d);
    for (const a of admins) adminDay(a, d);
    for (const s of officers) officerDay(s, d);
  }

  // --- intrusions ---
  const malicious = new Map<string, string>();
  const intrusions: Intrusion[] = [];
  const used = new Set<string>();
  const asiaStaff = staff.filter((u) => u.unit.comp === "ASIA");
  const nonAsia = staff.filter((u) => u.unit.comp !== "ASIA" && !u.unit.also.includes("ASIA"));
  const victimFrom = (pool: User[]): User => {
    for (let k = 0; k < 100; k++) {
      const v = pick(pool);
      if (!used.has(v.handle)) {
        used.add(v.handle);
        return v;
      }
    }
    return pick(pool);
  };
  // A compromised home/SOHO router: a /24 prefix (three octets); the host part is added where it is used.
  const router = (): string => `${pick(["45.152", "103.75", "185.174", "194.165", "61.219"])}.${Math.floor(r() * 250)}`;
  const evalDays = o.days - o.trainDays;
  let k = 0;
  for (const type of INTRUSION_TYPES) {
    for (let i = 0; i < o.perType; i++) {
      const id = `${type}#${i}`;
      const mine: DetectEvent[] = [];
      const day = o.trainDays + Math.floor(((k++ + r()) / (INTRUSION_TYPES.length * o.perType)) * (evalDays - 10));
      const attackerHours = (d: number): number => START + d * DAY + (1 + r() * 8) * HOUR; // 09-17 in Beijing
      const add = (p: Partial<DetectEvent> & { time: number; actor: string; action: string }): void => {
        mine.push(push(p));
      };
      const asiaItem = (v: User, d: number): Partial<DetectEvent> => {
        const owner = pick(unitsWithComp("ASIA"));
        return r() < 0.7
          ? {
              action: "document.read",
              object: docsOf(owner, Math.floor(r() * 400)),
              label: `CONFIDENTIAL/ASIA`,
              unit: owner.name,
              bytes: 40_000 + Math.floor(r() * 400_000),
            }
          : {
              action: "cable.read",
              object: `cable-${owner.name}-${d}-${Math.floor(r() * 40)}`,
              label: `CONFIDENTIAL/ASIA`,
              unit: owner.name,
              bytes: 5_000 + Math.floor(r() * 20_000),
            };
      };
      const ownItem = (v: User, d: number): Partial<DetectEvent> => {
        const owner = v.unit;
        return r() < 0.5
          ? {
              action: "document.read",
              object: docsOf(owner, Math.floor(r() * 400)),
              label: `CONFIDENTIAL/${owner.comp}`,
              unit: owner.name,
              bytes: 40_000 + Math.floor(r() * 400_000),
            }
          : {
              action: "cable.read",
              object: `cable-${owner.name}-${d}-${Math.floor(r() * 40)}`,
              label: `CONFIDENTIAL/${owner.comp}`,
              unit: owner.name,
              bytes: 5_000,
            };
      };
      let victim: User;
      switch (type) {
        case "stolen-credentials-new-device": {
          victim = victimFrom(staff);
          const dev = `d-${victim.handle}-x${i}`;
          const net = router();
          const t = attackerHours(day);
          add({
            time: t,
            actor: victim.handle,
            action: "directory.device.add",
            device: dev,
            target_device: dev,
            object: victim.handle,
            unit: victim.unit.name,
            source: `${net}.7`,
            bytes: 2400,
          });
          for (let d = day; d < day + 5; d++) {
            const m = 10 + Math.floor(r() * 25);
            for (let j = 0; j < m; j++) {
              const item = victim.unit.comp === "ASIA" && r() < 0.5 ? asiaItem(victim, d) : ownItem(victim, d);
              add({
                time: attackerHours(d) + (d === day ? HOUR : 0),
                actor: victim.handle,
                device: dev,
                source: `${net}.7`,
                ...item,
              } as DetectEvent);
            }
          }
          break;
        }
        case "token-theft-router": {
          victim = victimFrom(asiaStaff);
          const net = router();
          for (let d = day; d < day + 7; d++) {
            const m = 8 + Math.floor(r() * 15);
            for (let j = 0; j < m; j++)
              add({
                time: START + d * DAY + (victim.start - victim.unit.tz + r() * 8) * HOUR,
                actor: victim.handle,
                device: victim.laptop,
                source: `${net}.${9}`,
                ...asiaItem(victim, d),
              } as DetectEvent);
          }
          break;
        }
        case "implant-slow-drip": {
          victim = victimFrom(asiaStaff);
          for (let d = day; d < day + 10; d++) {
            const m = 12 + Math.floor(r() * 14);
            for (let j = 0; j < m; j++)
              add({
                time: START + d * DAY + (victim.start - victim.unit.tz + r() * 9) * HOUR,
                actor: victim.handle,
                device: victim.laptop,
                source: `${victim.unit.net}.${20 + Math.floor(r() * 200)}`,
                ...asiaItem(victim, d),
              } as DetectEvent);
          }
          break;
        }
        case "mailbox-dump": {
          victim = victimFrom(staff);
          const net = r() < 0.5 ? router() : victim.unit.net;
          const t = attackerHours(day);
          const m = 300 + Math.floor(r() * 1200);
          for (let j = 0; j < m; j++)
            add({
              time: t + (j * (1 + r() * 2) * HOUR) / m,
              actor: victim.handle,
              action: "message.read",
              device: victim.laptop,
              source: `${net}.${40}`,
              object: `msg-${victim.unit.name}-old-${Math.floor(r() * 1e9)}`,
              label: `CONFIDENTIAL/${victim.unit.comp}`,
              unit: victim.unit.name,
              bytes: 500 + Math.floor(r() * 5000),
            });
          break;
        }
        case "canary-touch": {
          victim = victimFrom(asiaStaff);
          const t = START + day * DAY + (victim.start - victim.unit.tz + 2 + r() * 5) * HOUR;
          const src = `${victim.unit.net}.${20 + Math.floor(r() * 200)}`;
          add({
            time: t,
            actor: victim.handle,
            action: "document.list",
            device: victim.laptop,
            source: src,
            object: "HQ/ASIA-1",
            unit: "HQ/ASIA-1",
            bytes: 3000,
          });
          for (let j = 0; j < 3; j++)
            add({
              time: t + (j + 1) * MIN,
              actor: victim.handle,
              device: victim.laptop,
              source: src,
              ...asiaItem(victim, day),
            } as DetectEvent);
          add({
            time: t + 5 * MIN,
            actor: victim.handle,
            action: "document.read",
            device: victim.laptop,
            source: src,
            object: pick(canaries),
            label: "CONFIDENTIAL/ASIA",
            unit: "HQ/ASIA-1",
            canary: true,
            bytes: 80_000,
          });
          break;
        }
        case "probing": {
          victim = victimFrom(nonAsia);
          const t = START + day * DAY + (victim.start - victim.unit.tz + 1 + r() * 6) * HOUR;
          const m = 8 + Math.floor(r() * 12);
          const span = (0.5 + r() * 1.5) * HOUR;
          for (let j = 0; j < m; j++)
            add({
              time: t + (j * span) / m,
              actor: victim.handle,
              device: victim.laptop,
              source: `${victim.unit.net}.${20 + Math.floor(r() * 200)}`,
              ...asiaItem(victim, day),
              outcome: "denied",
              bytes: 0,
            } as DetectEvent);
          break;
        }
        case "ghost-device-by-admin": {
          const admin = pick(admins);
          victim = victimFrom(staff.filter((u) => u.ambassador));
          const dev = `d-${victim.handle}-ghost${i}`;
          const net = router();
          const t = START + day * DAY + (22 - 1 + r() * 5) * HOUR; // 22:00-03:00 in Prague
          add({
            time: t,
            actor: admin.handle,
            action: "directory.device.add",
            device: admin.laptop,
            source: `${net}.3`,
            object: victim.handle,
            target_device: dev,
            unit: victim.unit.name,
          });
          for (let j = 0; j < 6 + Math.floor(r() * 10); j++)
            add({
              time: t + (10 + j * 7) * MIN,
              actor: victim.handle,
              device: dev,
              source: `${net}.3`,
              ...ownItem(victim, day),
            } as DetectEvent);
          break;
        }
        case "clearance-escalation": {
          const admin = pick(admins);
          victim = victimFrom(nonAsia);
          const t = START + day * DAY + (admin.start - 1 + 1 + r() * 6) * HOUR; // office hours, from the admin's laptop
          add({
            time: t,
            actor: admin.handle,
            action: "directory.clearance.set",
            device: admin.laptop,
            source: `${IT.net}.11`,
            object: victim.handle,
            label: "CONFIDENTIAL/ASIA",
            unit: victim.unit.name,
          });
          for (let d = day; d < day + 4; d++)
            for (let j = 0; j < 6 + Math.floor(r() * 10); j++)
              add({
                time: START + d * DAY + (victim.start - victim.unit.tz + r() * 8) * HOUR + (d === day ? 2 * HOUR : 0),
                actor: victim.handle,
                device: victim.laptop,
                source: `${victim.unit.net}.${20 + Math.floor(r() * 200)}`,
                ...asiaItem(victim, d),
              } as DetectEvent);
          break;
        }
      }
      mine.sort((a, b) => a.time - b.time);
      for (const e of mine) malicious.set(e.id, id);
      intrusions.push({ id, type, victim: victim.handle, start: mine[0]!.time, events: mine.map((e) => e.id) });
    }
  }
  events.sort((a, b) => a.time - b.time || (a.id < b.id ? -1 : 1));
  return { events, intrusions, malicious, users: users.length, units: UNITS.length + 2, start: START };
}

/** The replay line of an event (the JSONL shape). */
export function eventLine(e: DetectEvent): string {
  return JSON.stringify({
    id: e.id,
    time: e.timeText,
    actor: e.actor,
    device: e.device,
    source: e.source,
    action: e.action,
    object: e.object,
    target_device: e.target_device,
    label: e.label,
    unit: e.unit,
    bytes: e.bytes,
    canary: e.canary,
    outcome: e.outcome,
  });
}
