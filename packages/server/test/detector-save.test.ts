/**
 * The online detector stores alerts at once, without the engine's snapshot: the snapshot (megabytes with a
 * ministry's staff, serialised on the event loop) and the position it belongs to are saved only every
 * `stateIntervalMs` and at shutdown. After a crash a new detector restores the older snapshot and replays the stretch
 * after it: the engine raises the same alerts again (same rule, actor and triggering event), the unique key drops
 * them, and none is published a second time; the replayed engine goes on alerting new events. The alert delay
 * histogram runs from the triggering event's time to the alert's commit. SQLite and PostgreSQL.
 */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { gunzipSync } from "node:zlib";
import { Registry } from "prom-client";
import type { AuditEvent } from "@valise/core";
import { openStore, type Store } from "../src/index.js";
import { AlertStore, type AlertView } from "../src/detect/alert-store.js";
import { Detector } from "../src/detect/detector.js";
import { detectorRules } from "../src/detect/rules.js";
import { auditItem } from "../src/storage/audit-log.js";
import { DATABASE_KINDS, freshDb, type TestDb } from "./helpers/databases.js";

const T0 = Date.UTC(2026, 11, 7, 9, 0, 0);
const HOUR = 3_600_000;

function event(actor: string, t: number, over: Partial<AuditEvent> = {}): AuditEvent {
  return {
    id: randomUUID(),
    time: new Date(t).toISOString(),
    actor,
    device: `${actor}-laptop`,
    source: "10.1.2.3",
    client: "valise-web",
    action: "document.read",
    object: `doc-${actor}`,
    target_device: null,
    label: "CONFIDENTIAL/ASIA",
    unit: "EMB/TOKYO",
    bytes: 4000,
    canary: false,
    outcome: "ok",
    ...over,
  };
}

/** Benign reads by `users` people (a bigger engine state), then one canary read by each of `readers`. */
function batch(t: number, users: number, readers: string[]): AuditEvent[] {
  const out: AuditEvent[] = [];
  for (let i = 0; i < users; i++) out.push(event(`staff${i}`, t + i));
  readers.forEach((r, i) => out.push(event(r, t + users + i, { object: "doc-canary", canary: true })));
  return out;
}

interface State {
  next: number;
  snapshot: string | null;
}

/** The engine's snapshot JSON in a stored state (v2: gzip, base64). */
function engineJson(stored: string): string {
  const s = JSON.parse(stored) as { v: number; engine: string };
  assert.equal(s.v, 2);
  return gunzipSync(Buffer.from(s.engine, "base64")).toString("utf8");
}

for (const kind of DATABASE_KINDS)
  describe(`detector: alerts stored without the engine snapshot (${kind})`, () => {
    let db: TestDb;
    let store: Store;
    after(async () => {
      await store?.close();
      await db?.dispose();
    });

    const clock = { t: T0 };
    const state = async (): Promise<State> => {
      const r = await store.handle.db
        .selectFrom("detect_state")
        .select(["next_index", "snapshot"])
        .executeTakeFirstOrThrow();
      return { next: Number(r.next_index), snapshot: r.snapshot };
    };
    const append = (events: AuditEvent[]) => store.audit.appendBatch(events.map(auditItem));
    const stored = async () =>
      (await new AlertStore(store.handle.db, store.handle.sqlite).list({ limit: 1000 })).map((a) => [
        a.id,
        a.rule,
        a.actor,
        a.events.at(-1),
      ]);
    /** A detector as the server builds one (default rules), driven by drain() (no timer), publishing into `got`. */
    const detector = (got: AlertView[][], registry?: Registry, alerts?: AlertStore, logged?: string[]) =>
      new Detector({
        audit: store.audit,
        alerts: alerts ?? new AlertStore(store.handle.db, store.handle.sqlite),
        rules: detectorRules([], false),
        now: () => clock.t,
        publish: (a) => got.push(a),
        stateIntervalMs: HOUR,
        ...(registry ? { registry } : {}),
        ...(logged
          ? {
              log: {
                info: (m: string) => logged.push(m),
                warn: (m: string) => logged.push(m),
                error: (m: string) => logged.push(m),
              },
            }
          : {}),
      });

    test("alerts are committed and published at once; the snapshot and position only on the state cadence", async () => {
      db = await freshDb(kind);
      store = await openStore({ dataDir: db.dataDir, databaseUrl: db.databaseUrl });
      const got: AlertView[][] = [];
      const d = detector(got);
      await d.peek();

      // A first stretch with an alert: stored and published, while the stored state stays where it was.
      await append(batch(T0, 300, ["reader0"]));
      clock.t = T0 + 60_000;
      await d.drain();
      assert.equal(d.position, await store.audit.size());
      assert.deepEqual(
        got.flat().map((a) => [a.rule, a.actor]),
        [["canary-touch", "reader0"]],
      );
      assert.deepEqual((await stored()).length, 1, "the alert is committed");
      assert.deepEqual(await state(), { next: 0, snapshot: null }, "no snapshot saved with the alert");

      // More alert batches within the state interval: each stored and published, the state does not move.
      for (let k = 1; k <= 3; k++) {
        await append(batch(T0 + k * 600_000, 300, [`reader${k}`]));
        clock.t = T0 + k * 600_000 + 60_000;
        await d.drain();
        assert.equal(got.length, k + 1, `batch ${k} published`);
        assert.equal((await stored()).length, k + 1, `batch ${k} committed`);
        assert.deepEqual(await state(), { next: 0, snapshot: null }, `batch ${k}: no snapshot saved`);
      }

      // The state interval has passed: the next tick saves the snapshot as of the detector's position.
      clock.t = T0 + HOUR + 1;
      await d.drain();
      const st = await state();
      assert.equal(st.next, d.position);
      const json = engineJson(st.snapshot!);
      assert.ok(json.length > 10_000 && json.includes("staff299"), "the engine is saved");
      assert.ok(st.snapshot!.length < json.length / 3, "compressed");
      assert.equal(got.length, 4, "saving the state publishes nothing");
    });

    test("a crash after alerts but before the next save: the replay stores and publishes none of them again", async () => {
      // Continues on the store above: the state is saved at `saved`, every alert before it stored.
      const before = await state();
      const saved = before.next;
      const t1 = T0 + 2 * HOUR;
      clock.t = t1;
      const got1: AlertView[][] = [];
      const d1 = detector(got1);
      await d1.peek();
      assert.equal(d1.position, saved);

      // Alerts after the saved state, in two ticks (eve reads the canary again within 2 minutes: one open, one
      // alert; the engine's suppression must come out the same on replay).
      await append(batch(t1, 300, ["mallory", "eve"]));
      clock.t = t1 + 60_000;
      await d1.drain();
      await append([event("eve", t1 + 90_000, { object: "doc-canary", canary: true }), ...batch(t1 + 100_000, 50, [])]);
      clock.t = t1 + 120_000;
      await d1.drain();
      assert.deepEqual(
        got1.flat().map((a) => [a.rule, a.actor]),
        [
          ["canary-touch", "mallory"],
          ["canary-touch", "eve"],
        ],
      );
      const afterAlerts = await stored();
      assert.equal(afterAlerts.length, 6);
      assert.equal((await state()).next, saved, "the state was not saved with these alerts: a crash replays them");
      const end = await store.audit.size();
      assert.ok(end > saved);

      // Crash: d1 is dropped without stop(). A new detector restores the older snapshot and replays from it.
      const got2: AlertView[][] = [];
      let raised = 0;
      const counting = new AlertStore(store.handle.db, store.handle.sqlite);
      const storeAlerts = counting.storeAlerts.bind(counting);
      counting.storeAlerts = (alerts, now) => {
        raised += alerts.length;
        return storeAlerts(alerts, now);
      };
      const d2 = detector(got2, undefined, counting);
      await d2.peek();
      assert.equal(d2.position, saved, "restored from the older state");
      await d2.drain();
      assert.equal(d2.position, end);
      assert.equal(raised, 2, "the replay raised the same two alerts again");
      assert.equal(got2.length, 0, "nothing published twice");
      assert.deepEqual(await stored(), afterAlerts, "nothing stored twice");

      // The replayed engine carries on: a new canary read alerts once, with the next id.
      await append([event("trent", t1 + 200_000, { object: "doc-canary", canary: true })]);
      clock.t = t1 + 210_000;
      await d2.drain();
      assert.deepEqual(
        got2.flat().map((a) => [a.id, a.rule, a.actor]),
        [[7, "canary-touch", "trent"]],
      );
      await d2.stop();
      assert.equal((await state()).next, await store.audit.size(), "saved at shutdown");
      assert.equal((await stored()).length, 7);
    });

    test("a state stored in the previous format (v1: the snapshot as JSON) is restored", async () => {
      const st = await state();
      const v1 = `{"v":1,"engine":${engineJson(st.snapshot!)}}`;
      await store.handle.db.updateTable("detect_state").set({ snapshot: v1 }).execute();
      const got: AlertView[][] = [];
      const d = detector(got);
      await d.peek();
      assert.equal(d.position, st.next);
      assert.equal(d.learning(clock.t).until, new Date(Date.UTC(2026, 11, 21)).toISOString(), "baselines kept");
      // trent's open is still suppressed by the restored engine (within 2 minutes of the one it alerted).
      const t = T0 + 2 * HOUR + 230_000;
      await append([event("trent", t, { object: "doc-canary", canary: true })]);
      clock.t = t + 1000;
      await d.drain();
      assert.equal(got.length, 0);
      await d.stop();
      assert.ok(engineJson((await state()).snapshot!).includes('"trent"'), "saved again as v2");
    });

    test("two detectors on one database: the one whose save finds the state moved on reloads it; no alert twice", async () => {
      const t = T0 + 2 * HOUR + 600_000;
      clock.t = t;
      const gotA: AlertView[][] = [];
      const gotB: AlertView[][] = [];
      const a = detector(gotA);
      const logged: string[] = [];
      const b = detector(gotB, undefined, undefined, logged);
      await a.peek();
      await b.peek();
      const from = (await state()).next;
      await append(batch(t + 1000, 20, ["zed"]));
      clock.t = t + HOUR + 1;
      await a.drain();
      const end = await store.audit.size();
      assert.deepEqual(await state().then((x) => x.next), end, "a saved its state");
      assert.deepEqual(
        gotA.flat().map((x) => x.actor),
        ["zed"],
      );
      await b.drain(); // b raises zed's alert again (dropped) and its save from `from` finds the state moved on
      await b.drain(); // b continues from a's state
      assert.equal(gotB.length, 0, "b published nothing");
      assert.ok(
        logged.some((m) => m.includes("the stored state moved on")),
        logged.join("; "),
      );
      assert.equal(b.position, end);
      assert.equal((await state()).next, end);
      assert.ok(from < end);
      const keys = (await stored()).map(([, rule, actor, trig]) => `${rule}|${actor}|${trig}`);
      assert.equal(new Set(keys).size, keys.length);
      assert.equal(keys.filter((k) => k.includes("|zed|")).length, 1);
      await b.stop();
    });

    test("valise_alert_delay_seconds runs from the triggering event's time to the alert's commit", async () => {
      const registry = new Registry();
      const got: AlertView[][] = [];
      // Every write to the alert store takes 30 s on the detector's clock (a slow commit).
      const slow = new Proxy(new AlertStore(store.handle.db, store.handle.sqlite), {
        get(target, key, receiver) {
          const v: unknown = Reflect.get(target, key, receiver);
          if (typeof v !== "function" || key === "loadState") return v;
          return (...a: unknown[]) => {
            clock.t += 30_000;
            return (v as (...x: unknown[]) => unknown).apply(target, a);
          };
        },
      });
      const d = detector(got, registry, slow);
      await d.peek();
      const t = T0 + 3 * HOUR;
      await append([event("oscar", t, { object: "doc-canary", canary: true })]);
      clock.t = t + 1000;
      await d.drain();
      assert.deepEqual(
        got.flat().map((a) => a.actor),
        ["oscar"],
      );
      const text = await registry.getSingleMetricAsString("valise_alert_delay_seconds");
      const count = Number(/^valise_alert_delay_seconds_count (\S+)$/m.exec(text)?.[1]);
      const sum = Number(/^valise_alert_delay_seconds_sum (\S+)$/m.exec(text)?.[1]);
      assert.equal(count, 1);
      assert.ok(sum >= 31, `event time → commit includes the commit (observed ${sum} s)`);
    });
  });
