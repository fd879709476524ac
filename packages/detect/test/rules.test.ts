/** The rule format: the shipped rules load; malformed rules are rejected with errors naming file, rule and path. */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  DetectionEngine,
  ReorderBuffer,
  RuleError,
  checkRuleSet,
  compartmentsOf,
  networkOf,
  parseEventLine,
  parseRules,
  testCondition,
} from "../src/index.js";
import { T0, defaultRules, ev } from "./helpers.js";

const ok = {
  id: "x",
  title: "X",
  severity: "low",
  reason: "r",
  match: { action: "login" },
};
const bad = (patch: Record<string, unknown>, re: RegExp): void => {
  assert.throws(
    () => parseRules(JSON.stringify([{ ...ok, ...patch }]), "my.json"),
    (e: unknown) => {
      assert.ok(e instanceof RuleError);
      assert.match(e.message, re);
      return true;
    },
  );
};

describe("rules", () => {
  test("the shipped rules load, with unique ids", () => {
    const rules = defaultRules();
    assert.ok(rules.length >= 15);
    assert.ok(rules.some((r) => r.id === "canary-touch" && r.severity === "critical"));
  });
  test("a rule file may be one rule, a list, or {rules: [...]}; disabled rules are dropped", () => {
    assert.equal(parseRules(JSON.stringify(ok)).length, 1);
    assert.equal(parseRules(JSON.stringify([ok, { ...ok, id: "y" }])).length, 2);
    assert.equal(parseRules(JSON.stringify({ rules: [ok, { ...ok, id: "y", enabled: false }] })).length, 1);
  });
  test("malformed rules are rejected with clear errors", () => {
    assert.throws(() => parseRules("{oops", "f.json"), /f\.json: not JSON/);
    bad({ id: "Bad Id" }, /my\.json: rule\[0\]: id must be/);
    bad({ severity: "urgent" }, /rule\[0\] "x": severity: expected one of low, medium, high, critical/);
    bad({ match: { actr: "a" } }, /rule\[0\] "x": match\.actr: unknown field/);
    bad({ match: { bytes: "many" } }, /match\.bytes: expected a number/);
    bad({ match: { action: { regex: "." } } }, /match\.action\.regex: unknown operator/);
    bad({ match: { action: { gt: 3 } } }, /match\.action\.gt: gt applies to number fields only/);
    bad({ match: { canary: [] } }, /any-of list must not be empty/);
    bad({ match: {} }, /match: needs at least one condition/);
    bad({ threshold: { count: 0, windowSeconds: 60 } }, /threshold\.count: expected a positive integer/);
    bad({ threshold: { count: 3, windowSeconds: 60, distinct: "nope" } }, /threshold\.distinct/);
    bad({ threshold: { count: 3, windowSeconds: 99999999 } }, /windowSeconds: at most/);
    bad({ colour: "red" }, /unknown key colour/);
    bad({ risk: { score: 3, windowSeconds: 60 } }, /a risk rule takes no match/);
    bad({ anyOf: [] }, /anyOf: expected a non-empty list/);
    bad({ reason: "" }, /reason: expected a string/);
    assert.throws(
      () => checkRuleSet([...parseRules(JSON.stringify(ok), "a.json"), ...parseRules(JSON.stringify(ok), "b.json")]),
      /duplicate rule id "x" \(in a\.json and b\.json\)/,
    );
  });
  test("conditions", () => {
    assert.ok(testCondition("document.read", { startsWith: ["cable.", "document."] }));
    assert.ok(testCondition(5, { gte: 5, lt: 6 }));
    assert.ok(!testCondition(undefined, { lte: 5 }));
    assert.ok(testCondition(["ASIA", "NATO"], "NATO"));
    assert.ok(testCondition(null, { exists: false }));
    assert.ok(testCondition("ok", { not: "denied" }));
  });
  test("an officer's own rule works without a release", () => {
    const rules = parseRules(
      JSON.stringify({
        id: "night-audit",
        title: "Audit log read at night",
        severity: "medium",
        match: { action: "audit.read", outcome: "ok" },
        reason: "{actor} read the audit log at {time} from {$network}",
      }),
    );
    const engine = new DetectionEngine({ rules, trainUntil: T0 });
    const alerts = engine.push(ev({ time: T0 + 3600_000, actor: "o1", action: "audit.read", source: "10.1.2.3" }));
    assert.equal(alerts.length, 1);
    assert.equal(alerts[0]!.reason, "o1 read the audit log at 2026-03-02T01:00:00.000Z from 10.1.2.0/24");
  });
});

describe("events", () => {
  test("the issue's replay shape and the server's export shape both parse", () => {
    const a = parseEventLine(
      '{"id":"e1","time":"2026-03-02T09:14:03Z","actor":"jnovak","device":"d-7f3a","source":"10.20.3.14","action":"document.read","object":"doc-123","label":"CONFIDENTIAL/ASIA","unit":"HQ/ASIA-1","bytes":123456,"canary":false,"outcome":"ok","extra":1}',
    );
    assert.ok(a.ok);
    assert.equal(a.event.time, Date.parse("2026-03-02T09:14:03Z"));
    const b = parseEventLine(
      '{"id":"7","time":"2026-03-02T09:14:03.120Z","actor":"admin","device":null,"source":"127.0.0.1","client":null,"action":"directory.device.add","object":"jnovak","target_device":"d-1","label":null,"unit":"HQ/ASIA-1","bytes":0,"canary":false,"outcome":"ok"}',
    );
    assert.ok(b.ok);
    assert.equal(b.event.target_device, "d-1");
  });
  test("bad events say what is wrong", () => {
    const reason = (s: string): string => {
      const r = parseEventLine(s);
      return r.ok ? "ok" : r.reason;
    };
    assert.match(reason("nope"), /not JSON/);
    assert.match(reason("[]"), /must be a JSON object/);
    assert.match(reason('{"id":"1","actor":"a","action":"login"}'), /missing field time/);
    assert.match(reason('{"id":"1","time":"yesterday","actor":"a","action":"login"}'), /not an ISO 8601 time/);
    assert.match(
      reason('{"id":"1","time":"2026-03-02T09:14:03Z","actor":"a","action":"login","outcome":"maybe"}'),
      /outcome/,
    );
    assert.match(reason('{"id":"1","time":"2026-03-02T09:14:03Z","actor":"a","action":"login","bytes":-1}'), /bytes/);
    assert.match(
      reason('{"id":"1","time":"2026-03-02T09:14:03Z","actor":5,"action":"login"}'),
      /actor must be a string/,
    );
  });
  test("networks and compartments", () => {
    assert.equal(networkOf("10.20.3.14"), "10.20.3.0/24");
    assert.equal(networkOf("2001:db8:1:2::5"), "2001:db8:1::/48");
    assert.deepEqual(compartmentsOf("SECRET/ASIA/NATO"), ["ASIA", "NATO"]);
    assert.deepEqual(compartmentsOf("UNCLASSIFIED"), []);
  });
  test("the reorder buffer sorts within its tolerance and reports what it cannot place", () => {
    const buf = new ReorderBuffer(60_000);
    const out: string[] = [];
    for (const [id, s] of [
      ["a", 0],
      ["c", 30],
      ["b", 10],
      ["d", 100],
      ["e", 200],
    ] as const) {
      const r = buf.push(ev({ id, time: T0 + s * 1000, actor: "x", action: "login" }));
      assert.ok(r.ok);
      out.push(...r.ready.map((e) => e.id));
    }
    out.push(...buf.drain().map((e) => e.id));
    assert.deepEqual(out, ["a", "b", "c", "d", "e"]);
    const late = buf.push(ev({ id: "z", time: T0, actor: "x", action: "login" }));
    assert.ok(!late.ok && /sort the input by time first/.test(late.reason));
  });
});

describe("purity", () => {
  test("src imports nothing from node: (the engine runs anywhere, no I/O)", () => {
    const dir = fileURLToPath(new URL("../../src", import.meta.url));
    for (const f of readdirSync(dir).filter((n) => n.endsWith(".ts"))) {
      const text = readFileSync(join(dir, f), "utf8");
      assert.ok(!/from\s+["']node:|import\(["']node:|require\(/.test(text), `${f} imports node:`);
      assert.ok(!/Date\.now\(|new Date\(\)|Math\.random\(/.test(text), `${f} uses the wall clock or randomness`);
    }
  });
});
