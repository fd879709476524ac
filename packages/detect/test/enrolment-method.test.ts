/**
 * Issue 16 part 2, the audited enrolment method (`device.enrolment`: `code:ISSUER` when a one-time code is redeemed,
 * `passkey` when the browser device registers its passkey): exposed to rules as $deviceCodeIssuer and
 * $devicePasskey, named in the unacknowledged-device alert, and a code enrolment counts as the owner's own (the
 * approval window applies) even when its directory.device.add was not seen by the engine.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { parseRules, type DetectEvent } from "../src/index.js";
import { DAY, HOUR, T0, defaultRules, ev, office, run, sortEvents } from "./helpers.js";

const D = 15;
const at = (hour: number, min = 0, day = D): number => T0 + day * DAY + hour * HOUR + min * 60_000;
const SRC = "91.198.22.14";
const PHONE = "d-asia2-phone2";

/** asia2's new device, enrolled with a code issued by sec1 (and a passkey), read from a hotel network abroad. */
function enrolled(opts: { add: boolean; passkey: boolean; ack: boolean }): DetectEvent[] {
  const base = { actor: "asia2", device: PHONE, target_device: PHONE, source: SRC, unit: "HQ/ASIA-1" };
  const out: DetectEvent[] = [ev({ ...base, time: at(8), action: "device.enrolment", object: "code:sec1" })];
  if (opts.add) out.push(ev({ ...base, time: at(8, 0) + 1, action: "directory.device.add", object: "asia2" }));
  if (opts.passkey) out.push(ev({ ...base, time: at(8, 1), action: "device.enrolment", object: "passkey" }));
  if (opts.ack)
    out.push(ev({ ...base, time: at(8, 5), action: "directory.device.ack", device: "d-asia2", object: "asia2" }));
  for (let i = 0; i < 6; i++)
    out.push(
      ev({
        ...base,
        time: at(9, 10 * i),
        action: "cable.read",
        target_device: null,
        object: `cable-HQ/ASIA-1-${D}-m${i}`,
        label: "CONFIDENTIAL/ASIA",
        bytes: 20_000,
      }),
    );
  return out;
}
const world = (extra: DetectEvent[]) => sortEvents([...office(21), ...extra]);

describe("enrolment method as a signal", () => {
  test("officer-issued code, never acknowledged: baseline.device-unacknowledged naming the issuer and the passkey", () => {
    // Failed on the old code: the reason did not say how the device was enrolled.
    const { alerts } = run(world(enrolled({ add: true, passkey: true, ack: false })));
    const a = alerts.filter((x) => x.rule === "baseline.device-unacknowledged");
    assert.equal(a.length, 1, JSON.stringify(alerts));
    assert.match(
      a[0]!.reason,
      /enrolled device d-asia2-phone2 \(with a one-time code issued by sec1, with a passkey\)/,
    );
  });

  test("only the device.enrolment event seen (no directory.device.add): still held for the approval window", () => {
    // Failed on the old code: the device counted as never seen enrolled, so the first read alerted at once
    // (new-device-new-network-read) instead of the window's one alert with the held reads.
    const { alerts } = run(world(enrolled({ add: false, passkey: false, ack: false })));
    assert.deepEqual(
      [...new Set(alerts.map((x) => x.rule))],
      ["baseline.device-unacknowledged"],
      JSON.stringify(alerts),
    );
    assert.equal(alerts[0]!.events.length, 6);
    assert.ok(Date.parse(alerts[0]!.time) >= at(16));
  });

  test("benign lookalike: the same passkey-backed device approved from the owner's laptop is quiet", () => {
    assert.deepEqual(run(world(enrolled({ add: false, passkey: true, ack: true }))).alerts, []);
    assert.deepEqual(run(world(enrolled({ add: true, passkey: true, ack: true }))).alerts, []);
  });

  test("rules see $deviceCodeIssuer and $devicePasskey", () => {
    const rules = [
      ...defaultRules(),
      ...parseRules(
        JSON.stringify({
          rules: [
            {
              id: "t.issuer",
              title: "t",
              severity: "low",
              match: { action: "cable.read", $deviceCodeIssuer: "sec1" },
              suppressSeconds: 86400,
              reason: "{actor}",
            },
            {
              id: "t.passkey",
              title: "t",
              severity: "low",
              match: { action: "cable.read", $devicePasskey: true },
              suppressSeconds: 86400,
              reason: "{actor}",
            },
          ],
        }),
      ),
    ];
    const fired = (ev: DetectEvent[]) => [...new Set(run(world(ev), { rules }).alerts.map((a) => a.rule))].sort();
    assert.deepEqual(fired(enrolled({ add: true, passkey: true, ack: true })), ["t.issuer", "t.passkey"]);
    assert.deepEqual(fired(enrolled({ add: true, passkey: false, ack: true })), ["t.issuer"]);
    // Other users' usual devices (no device.enrolment seen) match neither.
    assert.deepEqual(fired([]), []);
  });
});
