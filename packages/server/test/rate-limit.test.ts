/** The rate limiter's buckets (issue 13 finding 10): a bounded LRU, never "clear everything above 100k keys". */
import { test } from "node:test";
import assert from "node:assert/strict";
import { RateLimiter, sourceKey } from "../src/http/rate-limit.js";

test("spraying 100k+ source addresses does not reset a throttled address that keeps trying", () => {
  let t = 0;
  const lim = new RateLimiter(1, 1, () => t);
  assert.equal(lim.take("203.0.113.7"), true);
  assert.equal(lim.take("203.0.113.7"), false);
  for (let i = 0; i < 150_000; i++) {
    lim.take(`2001:db8:${(i >> 16).toString(16)}:${(i & 0xffff).toString(16)}::1`);
    // The attacker keeps hammering between sprayed addresses: always refused.
    if (i % 1000 === 0) assert.equal(lim.take("203.0.113.7"), false, `reset after ${i} sprayed keys`);
  }
  assert.equal(lim.take("203.0.113.7"), false);
  t += 60_000; // and the bucket still refills as time passes
  assert.equal(lim.take("203.0.113.7"), true);
});

test("memory is bounded: least recently used buckets are dropped one by one", () => {
  const lim = new RateLimiter(60, 60, () => 0, 1000);
  for (let i = 0; i < 5000; i++) lim.take(`k${i}`);
  assert.equal(lim.size, 1000);
});

test("IPv6 sources share one bucket per /64", () => {
  assert.equal(sourceKey("2001:db8:1:2:aaaa::1"), sourceKey("2001:db8:1:2:bbbb:cccc:dddd:eeee"));
  assert.notEqual(sourceKey("2001:db8:1:2::1"), sourceKey("2001:db8:1:3::1"));
  assert.equal(sourceKey("::ffff:192.0.2.1"), "192.0.2.1");
  assert.equal(sourceKey("192.0.2.1"), "192.0.2.1");
  assert.equal(sourceKey("::1"), "0:0:0:0::/64");
});

test("exhausted() on a key without a bucket: not exhausted, and no bucket is made; a throttled key still is", () => {
  let now = 0;
  const rl = new RateLimiter(10, 2, () => now);
  for (let i = 0; i < 1000; i++) assert.equal(rl.exhausted(`d-${i}`), false);
  assert.equal(rl.size, 0, "asking creates no bucket");
  assert.equal(rl.take("d-1"), true);
  assert.equal(rl.exhausted("d-1"), false);
  assert.equal(rl.take("d-1"), true);
  assert.equal(rl.exhausted("d-1"), true, "both tokens taken");
  now += 6_000; // one token back at 10 a minute
  assert.equal(rl.exhausted("d-1"), false);
  assert.equal(
    new RateLimiter(10, 0, () => now).exhausted("x"),
    true,
    "a bucket of no tokens is exhausted from the start",
  );
});
