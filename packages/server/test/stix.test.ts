/**
 * STIX 2.1 (vectors/stix2.1): the Ajv 8 recipe accepts the upstream examples and the local valid fixture,
 * and reports exactly the three errors of `invalid-three-errors.json` (the validator works); then the incident
 * bundle builder's output passes the official schemas object by object, has parseable patterns, and leaks no
 * handles unless asked to.
 */
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import type { AuditEvent } from "@valise/core";
import { incidentBundle, networkOfSource, uuidv5, type IncidentInput } from "../src/incidents/stix.js";
import { stixPath, stixValidator } from "./helpers/stix-validate.js";
import { parseStixPattern } from "./helpers/stix-pattern.js";

const v = stixValidator();
const readJson = (...p: string[]) => JSON.parse(readFileSync(stixPath(...p), "utf8")) as unknown;

describe("STIX 2.1 schemas (official vectors)", () => {
  test("all 57 schemas load", () => assert.equal(v.schemaCount, 57));

  test("upstream examples and the local valid fixture validate (per object and bundle.json)", () => {
    const files = readdirSync(stixPath("examples")).filter((f) => f.endsWith(".json"));
    assert.equal(files.length, 3);
    for (const f of files) {
      const b = readJson("examples", f);
      assert.deepEqual(v.validate(b), [], f);
      assert.ok(v.bundleSchemaValid(b), f);
    }
    const ok = readJson("local-fixtures", "valid-identity-indicator-relationship.json");
    assert.deepEqual(v.validate(ok), []);
  });

  test("invalid-three-errors.json fails with its three errors", () => {
    const errs = v.validate(readJson("local-fixtures", "invalid-three-errors.json"));
    assert.deepEqual(errs, [
      'objects[0] (identity)/created must match pattern "T\\d{2}:\\d{2}:\\d{2}\\.\\d{3,}Z$"',
      "objects[1] (indicator) must have required property 'pattern_type'",
      "objects[2] (relationship)/source_ref must NOT be valid",
    ]);
  });
});

function ev(id: string, time: string, actor: string, device: string, source: string, action: string, object: string) {
  return {
    id,
    time,
    actor,
    device,
    source,
    client: "valise-cli/0.1",
    action,
    object,
    target_device: null,
    label: "SECRET/ASIA",
    unit: "HQ/ASIA-1",
    bytes: 4096,
    canary: false,
    outcome: "ok",
  } as AuditEvent;
}

const INCIDENT: IncidentInput = {
  id: "inc-1",
  title: "Slow collection of ASIA documents",
  note: "Stolen credentials used from a router network abroad; reported to the national CERT.",
  createdAt: Date.parse("2026-03-03T10:00:00.000Z"),
  alerts: [
    {
      id: "7",
      time: "2026-03-02T09:15:00.000Z",
      actor: "jnovak",
      rule: "new-device-new-network-read",
      severity: "high",
      events: ["e-1", "e-2", "e-missing"],
    },
    {
      id: "8",
      time: "2026-03-02T09:30:00.000Z",
      actor: "jnovak",
      rule: "new-compartment-collection",
      severity: "high",
      events: ["e-2", "e-3", "e-4"],
    },
  ],
  events: [
    ev(
      "e-1",
      "2026-03-02T09:14:03.120Z",
      "jnovak",
      "d-jnovak-laptop2",
      "203.0.113.77",
      "document.read",
      "doc-visit-programme",
    ),
    ev("e-2", "2026-03-02T09:20:00.000Z", "jnovak", "d-jnovak-laptop2", "203.0.113.78", "document.read", "doc-2"),
    ev("e-3", "2026-03-02T09:25:00.000Z", "jnovak", "d-jnovak-laptop2", "2001:db8:5:1::9", "cable.read", "cab-3"),
    ev("e-4", "2026-03-02T09:29:00.000Z", "jnovak", "d-jnovak-phone", "10.1.2.3", "document.read", "doc-4"),
  ],
};
const pseudonym = (k: "user" | "device", s: string) =>
  `${k}-${uuidv5("00abedb4-aa42-466c-9c01-fed23315a9b7", s).slice(0, 8)}`;

describe("incident bundle builder", () => {
  test("validates against the official schemas and has every part", () => {
    const b = incidentBundle(INCIDENT, { orgName: "Ministry of Foreign Affairs", pseudonym });
    assert.deepEqual(v.validate(b), []);
    const of = (t: string) => b.objects.filter((o) => o.type === t);
    assert.equal(of("identity").length, 1);
    assert.equal(of("identity")[0]!.name, "Ministry of Foreign Affairs");
    const patterns = of("indicator").map((i) => parseStixPattern(i.pattern as string));
    const nets = patterns.flat().filter((c) => c.op === "ISSUBSET");
    assert.deepEqual(nets.map((c) => `${c.objectType} ${String(c.value)}`).sort(), [
      "ipv4-addr 203.0.113.0/24",
      "ipv6-addr 2001:db8:5::/48",
    ]);
    assert.equal(of("indicator").length, 4); // two networks, two devices (10.x is internal: no network)
    const net = of("indicator").find((i) => (i.pattern as string).includes("203.0.113.0/24"))!;
    const s = of("sighting").find((x) => x.sighting_of_ref === net.id)!;
    assert.equal(s.count, 2);
    assert.equal(s.first_seen, "2026-03-02T09:14:03.120Z");
    assert.equal(s.last_seen, "2026-03-02T09:20:00.000Z");
    assert.deepEqual(s.where_sighted_refs, [of("identity")[0]!.id]);
    const od = of("observed-data").find((o) => o.id === (s.observed_data_refs as string[])[0])!;
    const refs = od.object_refs as string[];
    assert.deepEqual(
      refs.map((r) => b.objects.find((o) => o.id === r)?.value),
      ["203.0.113.77", "203.0.113.78"],
    );
    const ext = of("attack-pattern").map((a) => (a.external_references as { external_id: string }[])[0]!.external_id);
    assert.deepEqual(ext, ["T1078", "T1114", "T1119", "T1213"]);
    assert.ok(of("relationship").some((r) => r.relationship_type === "indicates" && r.source_ref === net.id));
    assert.equal(of("incident").length, 1);
    assert.equal(of("note")[0]!.content, INCIDENT.note);
    assert.equal(of("user-account").length, 0);
  });

  test("no handles, device ids, object ids, labels or internal addresses unless accounts are included", () => {
    const text = JSON.stringify(incidentBundle(INCIDENT, { orgName: "MFA", pseudonym }));
    for (const secret of ["jnovak", "d-jnovak", "doc-visit-programme", "cab-3", "SECRET/ASIA", "HQ/ASIA-1", "10.1.2.3"])
      assert.ok(!text.includes(secret), secret);
    const withAccounts = incidentBundle(INCIDENT, { orgName: "MFA", pseudonym, includeAccounts: true });
    assert.deepEqual(v.validate(withAccounts), []);
    const accounts = withAccounts.objects.filter((o) => o.type === "user-account");
    assert.deepEqual(
      accounts.map((a) => a.user_id),
      ["jnovak"],
    );
    const t2 = JSON.stringify(withAccounts);
    assert.ok(t2.includes("d-jnovak-laptop2"));
    for (const secret of ["doc-visit-programme", "SECRET/ASIA", "10.1.2.3"]) assert.ok(!t2.includes(secret), secret);
  });

  test("deterministic: same input, same bytes; SCO ids follow the spec's namespace", () => {
    const a = JSON.stringify(incidentBundle(INCIDENT, { orgName: "MFA", pseudonym }));
    const b = JSON.stringify(incidentBundle(INCIDENT, { orgName: "MFA", pseudonym }));
    assert.equal(a, b);
    // STIX 2.1 §2.9 worked example style: ipv4-addr id = UUIDv5(SCO namespace, '{"value":"…"}').
    const bundle = incidentBundle(INCIDENT, { orgName: "MFA", pseudonym });
    const ip = bundle.objects.find((o) => o.type === "ipv4-addr" && o.value === "203.0.113.77")!;
    assert.equal(ip.id, `ipv4-addr--${uuidv5("00abedb4-aa42-466c-9c01-fed23315a9b7", '{"value":"203.0.113.77"}')}`);
    assert.match(ip.id, /^ipv4-addr--[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });

  test("networks: IPv4 /24, IPv6 /48, v4-mapped v6, non-IP sources", () => {
    assert.equal(networkOfSource("198.51.100.7")?.cidr, "198.51.100.0/24");
    assert.equal(networkOfSource("2001:db8:0:1::1")?.cidr, "2001:db8:0::/48");
    assert.equal(networkOfSource("::ffff:192.0.2.1")?.cidr, "192.0.2.0/24");
    assert.equal(networkOfSource("local"), null);
    assert.equal(networkOfSource("300.1.1.1"), null);
  });
});
