/** Small deterministic helpers: quantiles, a 32-bit string hash, bounded rings and maps. */

/** Quantile by linear interpolation over an unsorted list (copied); NaN when empty. */
export function quantile(xs: readonly number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return s[lo]! + (s[hi]! - s[lo]!) * (pos - lo);
}

export function mean(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  let t = 0;
  for (const x of xs) t += x;
  return t / xs.length;
}

/** FNV-1a, 32 bits. */
export function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** Appends to a list kept at most `cap` long (oldest dropped). */
export function pushCapped<T>(xs: T[], x: T, cap: number): void {
  xs.push(x);
  if (xs.length > cap) xs.splice(0, xs.length - cap);
}

/** Sets a key as most recently used in an insertion-ordered Map, evicting the least recently used beyond `cap`. */
export function touchCapped<K, V>(m: Map<K, V>, k: K, v: V, cap: number): void {
  m.delete(k);
  m.set(k, v);
  while (m.size > cap) {
    const first = m.keys().next();
    if (first.done) break;
    m.delete(first.value);
  }
}

export const DAY_MS = 86_400_000;
export const HOUR_MS = 3_600_000;
export const dayOf = (t: number): number => Math.floor(t / DAY_MS);
export const hourOf = (t: number): number => Math.floor(t / HOUR_MS);

/** JSON replacer/reviver that keep Maps and Sets (for engine snapshots). */
export function replacer(_k: string, v: unknown): unknown {
  if (v instanceof Map) return { $map: [...v.entries()] };
  if (v instanceof Set) return { $set: [...v.values()] };
  return v;
}

export function reviver(_k: string, v: unknown): unknown {
  if (typeof v === "object" && v !== null && !Array.isArray(v)) {
    const o = v as Record<string, unknown>;
    if (Array.isArray(o.$map) && Object.keys(o).length === 1) return new Map(o.$map as [unknown, unknown][]);
    if (Array.isArray(o.$set) && Object.keys(o).length === 1) return new Set(o.$set as unknown[]);
  }
  return v;
}

const offsetCache = new Map<string, number>();
const formatters = new Map<string, Intl.DateTimeFormat>();

/** Whether `tz` is an IANA time zone name this runtime knows (e.g. Asia/Tokyo, Europe/Paris, UTC). */
export function isTimeZone(tz: string): boolean {
  if (tz.length === 0 || tz.length > 64) return false;
  try {
    new Intl.DateTimeFormat("en-GB", { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/**
 * The hour of day (0-23) of time `t` in the IANA zone `tz`, daylight saving included. The zone's UTC offset is
 * cached per zone and quarter hour (offsets only change on quarter hours), so the cost is one Map lookup per event.
 */
export function localHour(t: number, tz: string | null): number {
  if (tz === null || tz === "UTC") return new Date(t).getUTCHours();
  const q = Math.floor(t / 900_000);
  const key = `${tz}|${q}`;
  let off = offsetCache.get(key);
  if (off === undefined) {
    let f = formatters.get(tz);
    if (!f) {
      f = new Intl.DateTimeFormat("en-GB", {
        timeZone: tz,
        hourCycle: "h23",
        year: "numeric",
        month: "numeric",
        day: "numeric",
        hour: "numeric",
        minute: "numeric",
      });
      formatters.set(tz, f);
    }
    const p: Record<string, number> = {};
    for (const x of f.formatToParts(q * 900_000)) if (x.type !== "literal") p[x.type] = Number(x.value);
    off = Date.UTC(p.year!, p.month! - 1, p.day, p.hour, p.minute) - q * 900_000;
    if (offsetCache.size > 200_000) offsetCache.clear();
    offsetCache.set(key, off);
  }
  return new Date(t + off).getUTCHours();
}
