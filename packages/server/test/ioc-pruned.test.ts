/**
 * An allied indicator imported after the audit log was pruned (retention by exported segments, issue 19) is still
 * matched against every entry the server holds: the retroactive search starts at the prune point instead of
 * stopping at the first missing (pruned) entry, and says where it started.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AuditEvent } from "@valise/core";
import { openStore, importStixObjects, IndicatorSet, retroScan, type MatchIndicator } from "@valise/server";

const T = "2026-11-01T00:00:00.000Z";

function event(n: number, source: string): AuditEvent {
  return {
    id: `e-${n.toString(16).padStart(20, "0")}`,
    time: new Date(Date.parse(T) + n * 60_000).toISOString(),
    actor: `user${n % 3}`,
    device: `d-user${n % 3}-0001`,
    source,
    client: "valise-cli/0.1",
    action: "document.read",
    object: `doc-${n}`,
    target_device: null,
    label: "CONFIDENTIAL",
    unit: "HQ/UNIT-1",
    bytes: 100,
    canary: false,
    outcome: "ok",
  };
}

test("retroactive match after a prune: entries above the prune point are searched", async () => {
  const dir = mkdtempSync(join(tmpdir(), "valise-ioc-pruned-"));
  const store = await openStore({ dataDir: dir });
  try {
    // 40 events; every tenth from the intruder's address (indexes 0, 10, 20, 30).
    await store.audit.appendEvents(
      Array.from({ length: 40 }, (_, n) => event(n, n % 10 === 0 ? "203.0.113.45" : "10.0.0.1")),
    );
    const size = await store.audit.size();
    const imp = importStixObjects([
      {
        type: "indicator",
        spec_version: "2.1",
        id: "indicator--00000000-0000-4000-8000-000000000001",
        created: T,
        modified: T,
        name: "VPS range",
        pattern: "[ipv4-addr:value ISSUBSET '203.0.113.0/24']",
        pattern_type: "stix",
        valid_from: T,
      },
    ]);
    const inds: MatchIndicator[] = imp.indicators.map((i) => ({
      id: i.id,
      name: i.name,
      partner: "test",
      networks: i.networks,
      techniques: i.techniques,
      validFrom: i.validFrom,
      validUntil: i.validUntil,
      fromIndex: size,
    }));
    const before = await retroScan(store.audit, new IndicatorSet(inds), 0, size);
    assert.equal(before.scanned, size);
    assert.equal(
      [...before.groups.values()].reduce((a, g) => a + g.events.length, 0),
      4,
    );

    // The first 15 entries exported and pruned: 20 and 30 remain to be found.
    await store.audit.pruneBefore(15);
    const after = await retroScan(store.audit, new IndicatorSet(inds), 0, size);
    assert.equal(after.prunedBefore, 15);
    assert.equal(after.scanned, size - 15);
    const idx = [...after.groups.values()].flatMap((g) => g.indexes).sort((a, b) => a - b);
    assert.deepEqual(idx, [20, 30]);
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
