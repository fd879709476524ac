/**
 * Allies both ways (issue 16, part 5), on every database: an officer adds a partner's TAXII 2.1 collection; a poll
 * imports its STIX 2.1 indicators (IPv4 address, IPv6 network, ATT&CK references through `indicates`), refuses bad
 * objects with their id and reason (schema-invalid, oversized, unsupported or too broad patterns), searches the
 * stored audit log and alerts with the matching events (retroactive); a later event from an indicator's network
 * alerts live; the next poll asks only for what was added after the last one. A page over the size limit is
 * refused. Our own TAXII server keeps per-partner collections: a partner sees the common collection and its own,
 * never another partner's, and each share carries the TLP 2.0 marking chosen for it.
 *
 * The partner's TAXII server is a small HTTP server in this test (so it can also misbehave); our audit log gets
 * the attacker's requests appended directly (the requests of a stolen session from 203.0.113.45 and 2001:db8:aa::7).
 */
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { AuditEvent } from "@valise/core";
import { DATABASE_KINDS } from "./helpers/databases.js";
import { startTestServer, type TestServer } from "./helpers/server.js";
import { call, jsonMls, login, type Session } from "./helpers/content.js";

const TAXII = "application/taxii+json;version=2.1";
const uuid = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, "0")}`;
const T0 = "2026-11-01T00:00:00.000Z";

function indicator(n: number, pattern: string, extra: Record<string, unknown> = {}) {
  return {
    type: "indicator",
    spec_version: "2.1",
    id: `indicator--${uuid(n)}`,
    created: T0,
    modified: T0,
    name: `APT31 infrastructure ${n}`,
    pattern,
    pattern_type: "stix",
    valid_from: T0,
    ...extra,
  };
}

const attackPattern = {
  type: "attack-pattern",
  spec_version: "2.1",
  id: `attack-pattern--${uuid(900)}`,
  created: T0,
  modified: T0,
  name: "Valid Accounts",
  external_references: [{ source_name: "mitre-attack", external_id: "T1078" }],
};

/** The partner's collection: pages of objects by date added. */
interface PartnerServer {
  url: string;
  token: string;
  requests: URL[];
  objects: { added: string; object: unknown }[];
  huge: boolean;
  close(): Promise<void>;
}

async function partnerServer(): Promise<PartnerServer> {
  const p: PartnerServer = {
    url: "",
    token: "norway-token-123456",
    requests: [],
    objects: [],
    huge: false,
    close: async () => undefined,
  };
  const server: Server = createServer((req, res) => {
    const u = new URL(req.url ?? "/", "http://127.0.0.1");
    p.requests.push(u);
    if (req.headers.authorization !== `Bearer ${p.token}`) {
      res.writeHead(401, { "content-type": TAXII }).end(JSON.stringify({ title: "Unauthorized" }));
      return;
    }
    if (p.huge) {
      res.writeHead(200, { "content-type": TAXII });
      const chunk = "x".repeat(1 << 20);
      res.write('{"objects":[{"type":"indicator","id":"indicator--huge","pattern":"');
      for (let i = 0; i < 11; i++) res.write(chunk);
      res.end('"}]}');
      return;
    }
    const after = u.searchParams.get("added_after");
    const next = u.searchParams.get("next");
    let list = p.objects.filter((o) => after === null || o.added > after);
    if (next !== null) list = list.slice(Number(next));
    const page = list.slice(0, 3);
    const more = list.length > 3;
    const headers: Record<string, string> = { "content-type": TAXII };
    if (page.length > 0) headers["x-taxii-date-added-last"] = page[page.length - 1]!.added;
    res.writeHead(200, headers).end(
      JSON.stringify({
        more,
        ...(more ? { next: String(Number(next ?? 0) + 3) } : {}),
        ...(page.length ? { objects: page.map((o) => o.object) } : {}),
      }),
    );
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  p.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/taxii2/api/collections/${uuid(1)}/`;
  p.close = () => new Promise((r) => server.close(() => r()));
  return p;
}

interface AlertRow {
  id: number;
  actor: string;
  rule: string;
  severity: string;
  reason: string;
  events: string[];
}

for (const kind of DATABASE_KINDS) {
  describe(`allied indicators and per-partner TAXII on ${kind}`, () => {
    let srv: TestServer;
    let olga: Session;
    let alice: Session;
    let partner: PartnerServer;
    let partnerId = "";
    const attack: AuditEvent[] = [];

    const ev = (i: number, source: string, minutesAgo: number, actor = "alice"): AuditEvent => ({
      id: `e-ioc${kind.slice(0, 2)}${String(i).padStart(13, "0")}`,
      time: new Date(Date.now() - minutesAgo * 60_000).toISOString(),
      actor,
      device: `d-${actor}0000001`,
      source,
      client: "valise-cli/0.1",
      action: "document.read",
      object: `doc-${i}`,
      target_device: null,
      label: "SECRET/ASIA",
      unit: "HQ/ASIA-1",
      bytes: 1000,
      canary: false,
      outcome: "ok",
    });

    async function alerts(): Promise<AlertRow[]> {
      const r = await call<{ alerts: AlertRow[] }>(srv.url, olga, "GET", "/v1/alerts?limit=1000");
      assert.equal(r.status, 200, r.text);
      return r.json.alerts;
    }
    async function waitFor(pred: (a: AlertRow[]) => AlertRow | undefined): Promise<AlertRow> {
      for (let i = 0; i < 100; i++) {
        const hit = pred(await alerts());
        if (hit) return hit;
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.fail("the alert did not come");
    }

    before(async () => {
      srv = await startTestServer(kind, { mls: jsonMls, app: { taxiiPollMs: 0, detect: { intervalMs: 50 } } });
      const d = srv.store.directory;
      await d.addUnit("HQ/ASIA-1", "SECRET/ASIA");
      await d.addUnit("HQ/SEC", "SECRET/ASIA");
      await d.addUser({ handle: "alice", units: ["HQ/ASIA-1"], clearance: "SECRET/ASIA", role: "user" });
      await d.addUser({ handle: "bob", units: ["HQ/ASIA-1"], clearance: "SECRET/ASIA", role: "user" });
      await d.addUser({ handle: "olga", units: ["HQ/SEC"], clearance: "SECRET/ASIA", role: "officer" });
      alice = await login(srv.url, srv.store, "alice", "d-alice00001");
      olga = await login(srv.url, srv.store, "olga", "d-olga000001");
      // Months ago: alice's stolen session read documents from the attacker's IPv4 address and IPv6 network; bob
      // worked from an ordinary address nearby (not in any indicator).
      attack.push(ev(1, "203.0.113.45", 90 * 24 * 60), ev(2, "203.0.113.45", 89 * 24 * 60));
      attack.push(ev(3, "2001:db8:aa:1::7", 60 * 24 * 60));
      await srv.store.audit.appendEvents([...attack, ev(4, "203.0.113.46", 50 * 24 * 60, "bob")]);
      partner = await partnerServer();
      const big = indicator(16, "[ipv4-addr:value = '198.51.100.1']", { description: "y".repeat(70_000) });
      const list: unknown[] = [
        attackPattern,
        indicator(10, "[ipv4-addr:value = '203.0.113.45']"),
        {
          type: "relationship",
          spec_version: "2.1",
          id: `relationship--${uuid(11)}`,
          created: T0,
          modified: T0,
          relationship_type: "indicates",
          source_ref: `indicator--${uuid(10)}`,
          target_ref: attackPattern.id,
        },
        indicator(12, "[ipv6-addr:value ISSUBSET '2001:db8:aa::/48'] OR [ipv4-addr:value = '192.0.2.200']", {
          external_references: [{ source_name: "mitre-attack", external_id: "T1133" }],
        }),
        indicator(13, "[file:hashes.MD5 = 'd41d8cd98f00b204e9800998ecf8427e']"),
        indicator(14, "[ipv4-addr:value = '203.0.113.45' AND ipv4-addr:value = '203.0.113.46']"),
        indicator(15, "[ipv4-addr:value ISSUBSET '10.0.0.0/8']"),
        big,
        { ...indicator(17, "[ipv4-addr:value = '198.51.100.2']"), valid_from: "yesterday" },
        { type: "indicator", spec_version: "2.1", id: `malware--${uuid(18)}`, created: T0, modified: T0 },
      ];
      partner.objects = list.map((object, i) => ({ added: `2026-11-02T00:00:0${i}.000Z`, object }));
    });

    after(async () => {
      await partner.close();
      await srv.close();
    });

    test("only officers manage partners; the token is never shown back", async () => {
      const denied = await call(srv.url, alice, "POST", "/v1/taxii/partners", {
        url: partner.url,
        token: partner.token,
        name: "Norway",
      });
      assert.equal(denied.status, 403);
      const r = await call<{ id: string; name: string }>(srv.url, olga, "POST", "/v1/taxii/partners", {
        url: partner.url,
        token: partner.token,
        name: "Norway",
      });
      assert.equal(r.status, 201, r.text);
      assert.ok(!r.text.includes(partner.token));
      partnerId = r.json.id;
      const list = await call(srv.url, olga, "GET", "/v1/taxii/partners");
      assert.equal(list.status, 200);
      assert.ok(!list.text.includes(partner.token));
      assert.equal((await call(srv.url, alice, "GET", "/v1/taxii/partners")).status, 403);
    });

    test("poll → import (bad objects refused with id and reason) → retroactive match → alert with the events", async () => {
      const r = await call<{
        report: {
          imported: number;
          refused: { id: string; reason: string }[];
          retro: { matches: { actor: string; events: number }[] }[];
        };
        addedAfter: string;
      }>(srv.url, olga, "POST", `/v1/taxii/partners/${partnerId}/poll`);
      assert.equal(r.status, 200, r.text);
      const rep = r.json.report;
      assert.equal(rep.imported, 2, JSON.stringify(rep));
      const why = new Map(rep.refused.map((x) => [x.id, x.reason]));
      assert.match(why.get(`indicator--${uuid(13)}`) ?? "", /only ipv4-addr and ipv6-addr/);
      assert.match(why.get(`indicator--${uuid(14)}`) ?? "", /AND is not supported/);
      assert.match(why.get(`indicator--${uuid(15)}`) ?? "", /wider than \/16/);
      assert.match(why.get(`indicator--${uuid(16)}`) ?? "", /over the limit/);
      assert.match(why.get(`indicator--${uuid(17)}`) ?? "", /schema: valid_from/);
      assert.match(why.get(`malware--${uuid(18)}`) ?? "", /schema: id/);
      assert.equal(rep.refused.length, 6);
      // Paged by the partner (3 a page), the cursor is the last page's date added.
      assert.equal(r.json.addedAfter, partner.objects[partner.objects.length - 1]!.added);
      const matches = rep.retro.flatMap((x) => x.matches);
      assert.deepEqual(
        matches.map((m) => [m.actor, m.events]),
        [["alice", 3]],
      );
      const a = await waitFor((l) => l.find((x) => x.rule === "ioc-match" && x.actor === "alice"));
      assert.equal(a.severity, "high");
      assert.deepEqual(
        a.events,
        attack.map((e) => e.id),
      );
      assert.match(a.reason, /Norway/);
      assert.match(a.reason, /T1078/);
      assert.match(a.reason, /T1133/);
      assert.match(a.reason, /searching the stored audit log/);
      assert.ok(
        !(await alerts()).some((x) => x.rule === "ioc-match" && x.actor === "bob"),
        "bob's address is not listed",
      );
      const inds = await call<{ indicators: { id: string; retroMatches: number; techniques: string[] }[] }>(
        srv.url,
        olga,
        "GET",
        "/v1/taxii/indicators",
      );
      const i10 = inds.json.indicators.find((i) => i.id === `indicator--${uuid(10)}`)!;
      assert.deepEqual(i10.techniques, ["T1078"]);
      assert.equal(i10.retroMatches, 2);
    });

    test("a later event from an indicator's network alerts live, once", async () => {
      const live = [ev(20, "2001:db8:aa:ffff::1", 0), ev(21, "2001:db8:aa:ffff::1", 0)];
      await srv.store.audit.appendEvents(live);
      const a = await waitFor((l) => l.find((x) => x.rule === "ioc-match" && x.events.includes(live[0]!.id)));
      assert.match(a.reason, /2001:db8:aa::\/48/);
      assert.doesNotMatch(a.reason, /searching the stored audit log/);
      await new Promise((r) => setTimeout(r, 300));
      assert.ok(
        !(await alerts()).some((x) => x.events.includes(live[1]!.id)),
        "one alert per indicator and actor per hour",
      );
    });

    test("the next poll asks for what was added after the last; nothing is imported twice", async () => {
      const before = partner.requests.length;
      const r = await call<{ report: { imported: number; unchanged: number } }>(
        srv.url,
        olga,
        "POST",
        `/v1/taxii/partners/${partnerId}/poll`,
      );
      assert.equal(r.status, 200, r.text);
      const asked = partner.requests.slice(before);
      assert.equal(asked[0]!.searchParams.get("added_after"), partner.objects[partner.objects.length - 1]!.added);
      assert.equal(r.json.report.imported, 0);
    });

    test("a huge answer is refused; a bundle file with bad objects is refused object by object", async () => {
      partner.huge = true;
      const r = await call<{ lastError: string; report: { refused: { id: string; reason: string }[] } }>(
        srv.url,
        olga,
        "POST",
        `/v1/taxii/partners/${partnerId}/poll`,
      );
      partner.huge = false;
      assert.equal(r.status, 200, r.text);
      assert.match(r.json.lastError, /over the limit/);
      assert.equal(r.json.report.refused[0]!.id, "(page)");
      const bundle = {
        type: "bundle",
        id: `bundle--${uuid(30)}`,
        objects: [
          indicator(31, "[ipv4-addr:value = '198.51.100.77']"),
          { ...indicator(32, "[ipv4-addr:value = '198.51.100.78']"), spec_version: "2.0" },
          indicator(33, "[ipv4-addr:value = '198.51.100.79'] WITHIN 10 SECONDS"),
          { ...indicator(34, "x"), pattern_type: "sigma" },
        ],
      };
      const imp = await call<{ imported: number; refused: { id: string; reason: string }[] }>(
        srv.url,
        olga,
        "POST",
        "/v1/taxii/import",
        bundle,
      );
      assert.equal(imp.status, 200, imp.text);
      assert.equal(imp.json.imported, 1);
      const why = new Map(imp.json.refused.map((x) => [x.id, x.reason]));
      assert.match(why.get(`indicator--${uuid(32)}`) ?? "", /spec_version/);
      assert.match(why.get(`indicator--${uuid(33)}`) ?? "", /qualifiers are not supported/);
      assert.match(why.get(`indicator--${uuid(34)}`) ?? "", /unsupported pattern_type/);
      assert.equal((await call(srv.url, olga, "POST", "/v1/taxii/import", { objects: [] })).status, 400);
      assert.equal((await call(srv.url, alice, "POST", "/v1/taxii/import", bundle)).status, 403);
    });

    test("per-partner collections: each partner sees its own share with its TLP, never another's", async () => {
      const a = (await alerts()).find((x) => x.rule === "ioc-match")!;
      const inc = await call<{ id: string }>(srv.url, olga, "POST", "/v1/incidents", {
        title: "APT31 via allied indicators",
        alerts: [a.id],
      });
      assert.equal(inc.status, 201, inc.text);
      const tok = async (p: string) =>
        (await call<{ token: string }>(srv.url, olga, "POST", "/v1/taxii/tokens", { partner: p })).json.token;
      const norway = await tok("Norway");
      const finland = await tok("Finland");
      const share = async (partnerName: string, tlp: string) => {
        const r = await call<{ collection: string; tlp: string }>(
          srv.url,
          olga,
          "POST",
          `/v1/incidents/${inc.json.id}/share`,
          { partner: partnerName, tlp },
        );
        assert.equal(r.status, 200, r.text);
        return r.json.collection;
      };
      const colN = await share("Norway", "amber+strict");
      const colF = await share("Finland", "green");
      assert.notEqual(colN, colF);
      assert.equal(
        (await call(srv.url, olga, "POST", `/v1/incidents/${inc.json.id}/share`, { partner: "Sweden", tlp: "red" }))
          .status,
        404,
      );
      assert.equal(
        (await call(srv.url, olga, "POST", `/v1/incidents/${inc.json.id}/share`, { tlp: "white" })).status,
        400,
      );
      const get = async (token: string, path: string) => {
        const r = await fetch(`${srv.url}/taxii2/valise/${path}`, {
          headers: { authorization: `Bearer ${token}`, accept: TAXII },
        });
        return { status: r.status, json: (await r.json()) as Record<string, unknown> };
      };
      const cols = (await get(norway, "collections/")).json.collections as { id: string }[];
      assert.ok(cols.some((c) => c.id === colN));
      assert.ok(!cols.some((c) => c.id === colF));
      const objsN = (await get(norway, `collections/${colN}/objects/`)).json.objects as Record<string, unknown>[];
      const objsF = (await get(finland, `collections/${colF}/objects/`)).json.objects as Record<string, unknown>[];
      assert.ok(objsN.length > 0 && objsF.length > 0);
      const amberStrict = "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003";
      const green = "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb";
      const incN = objsN.find((o) => o.type === "incident")!;
      const incF = objsF.find((o) => o.type === "incident")!;
      assert.deepEqual(incN.object_marking_refs, [amberStrict]);
      assert.deepEqual(incF.object_marking_refs, [green]);
      const mark = objsN.find((o) => o.id === amberStrict)!;
      assert.equal(mark.name, "TLP:AMBER+STRICT");
      // Never another partner's objects: not listed, not readable by id, not in the common collection.
      assert.equal((await get(norway, `collections/${colF}/objects/`)).status, 404);
      assert.equal((await get(norway, `collections/${colF}/`)).status, 404);
      assert.equal((await get(norway, `collections/${colF}/objects/${incF.id as string}/`)).status, 404);
      assert.ok(!objsN.some((o) => o.id === incF.id));
      const common = cols.find((c) => c.id !== colN)!;
      const objsC = ((await get(norway, `collections/${common.id}/objects/`)).json.objects ?? []) as unknown[];
      assert.equal(objsC.length, 0);
    });
  });
}
