/** A per-key token bucket: in memory for one node (`RateLimiter`), in PostgreSQL for several (`SharedRateLimiter`). */
export interface Limiter {
  /** Takes one token; false when none is left. */
  take(key: string): boolean | Promise<boolean>;
  /** True when `key` has no token left (nothing is taken). */
  exhausted(key: string): boolean | Promise<boolean>;
}

/**
 * Token bucket per key: source address for the unauthenticated endpoints (enrollment and login), device for
 * per-caller budgets (key-package claims, idempotency-key abuse). The buckets live in a bounded LRU: above `maxKeys`
 * the least recently used bucket is dropped (never all of them, so spraying addresses cannot reset a throttled one
 * that keeps trying: every attempt makes it the most recently used). IPv6 sources are keyed by their /64, the
 * smallest prefix a single client is normally given (see `sourceKey`).
 */
export class RateLimiter implements Limiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  constructor(
    private readonly perMinute: number,
    private readonly burst: number,
    private readonly now: () => number,
    private readonly maxKeys = 100_000,
  ) {}

  private refill(key: string): { tokens: number; at: number } {
    const t = this.now();
    const b = this.buckets.get(key) ?? { tokens: this.burst, at: t };
    b.tokens = Math.min(this.burst, b.tokens + (Math.max(0, t - b.at) / 60000) * this.perMinute);
    b.at = t;
    // Most recently used last (Map keeps insertion order).
    this.buckets.delete(key);
    this.buckets.set(key, b);
    while (this.buckets.size > this.maxKeys) {
      const oldest = this.buckets.keys().next().value as string;
      this.buckets.delete(oldest);
    }
    return b;
  }

  take(key: string): boolean {
    const b = this.refill(key);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  /**
   * True when `key` has no token left (nothing is taken). A key without a bucket has a full one: nothing to refill
   * or remember (asked on every message for the sending device, which almost never has one).
   */
  exhausted(key: string): boolean {
    if (!this.buckets.has(key)) return this.burst < 1;
    return this.refill(key).tokens < 1;
  }

  /** Number of buckets held (bounded by maxKeys). */
  get size(): number {
    return this.buckets.size;
  }
}

/** The rate-limit key of a source address: IPv4 as is, IPv6 (and IPv4-mapped IPv6) by its /64 prefix. */
export function sourceKey(ip: string): string {
  if (!ip.includes(":")) return ip;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped) return mapped[1]!;
  const [head, tail] = ip.split("::") as [string, string | undefined];
  const left = head ? head.split(":") : [];
  const right = tail ? tail.split(":") : [];
  const groups =
    tail === undefined
      ? left
      : [...left, ...Array<string>(Math.max(0, 8 - left.length - right.length)).fill("0"), ...right];
  return `${groups
    .slice(0, 4)
    .map((g) => (parseInt(g || "0", 16) || 0).toString(16))
    .join(":")}::/64`;
}
