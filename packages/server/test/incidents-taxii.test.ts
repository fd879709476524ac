/**
 * Allied sharing (issue 6, DESIGN T6), on every database: an officer turns alerts into an incident, exports it as a
 * STIX 2.1 bundle that passes the official schemas (vectors/stix2.1) and carries the ministry's identity,
 * a source-network indicator with a parseable pattern, sightings, observed data, ATT&CK attack patterns and the note
 * — but no handles, device ids, item ids or labels unless accounts are asked for; only officers may do any of it
 * (audited); shared incidents appear in the read-only TAXII 2.1 collection for partners holding an officer-issued
 * token, paged by date added (a second share is exactly what comes after the first's last date), with TAXII media
 * types, 401 without a token, 403 with a revoked one and 406 for a wrong Accept.
 *
 * Alerts are inserted straight into the `alerts` table (the detector is off here) over audit events this test
 * caused: real requests from 127.0.0.1 (internal: no network indicator) and events from 203.0.113.0/24 and
 * 198.51.100.0/24 appended to the audit log as the attacker's reads.
 */
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { parseAuditEvent, type AuditEvent } from "@valise/core";
import { DATABASE_KINDS } from "./helpers/databases.js";
import { startTestServer, type TestServer } from "./helpers/server.js";
import { call, jsonMls, login, type Session } from "./helpers/content.js";
import { stixValidator } from "./helpers/stix-validate.js";
import { parseStixPattern } from "./helpers/stix-pattern.js";
import { IncidentStore } from "../src/incidents/store.js";

const TAXII = "application/taxii+json;version=2.1";
const STIX = "application/stix+json;version=2.1";
const ORG = "Ministry of Foreign Affairs of Testland";
const v = stixValidator();

type Obj = Record<string, unknown> & { id: string; type: string };
interface Bundle {
  type: string;
  id: string;
  objects: Obj[];
}

async function taxii(url: string, path: string, token: string | null, accept: string | null = TAXII) {
  const headers: Record<string, string> = {};
  if (token !== null) headers.authorization = `Bearer ${token}`;
  if (accept !== null) headers.accept = accept;
  const r = await fetch(`${url}${path}`, { headers });
  const text = await r.text();
  return { status: r.status, headers: r.headers, json: (text ? JSON.parse(text) : {}) as Record<string, unknown> };
}

for (const kind of DATABASE_KINDS) {
  describe(`incidents, STIX export and TAXII on ${kind}`, () => {
    let srv: TestServer;
    let url: string;
    let olga: Session; // officer
    let alice: Session; // user whose credentials were stolen
    let root: Session; // administrator (not an officer)
    let realEvents: AuditEvent[] = [];
    let attackerA: AuditEvent[] = [];
    let attackerB: AuditEvent[] = [];
    let incidentId = "";
    let token = "";
    let tokenId = "";
    let colId = "";
    let versionedId = ""; // an object with two versions in the collection (from the versions test)

    const ev = (i: number, source: string, object: string, action = "document.read"): AuditEvent => ({
      id: `e-attack${String(i).padStart(14, "0")}`,
      time: new Date(Date.now() - 60_000 + i * 100).toISOString(),
      actor: "alice",
      device: "d-alice-ghost1",
      source,
      client: "valise-cli/0.1",
      action: action as AuditEvent["action"],
      object,
      target_device: null,
      label: "SECRET/ASIA",
      unit: "HQ/ASIA-1",
      bytes: 123_456,
      canary: false,
      outcome: "ok",
    });

    /** Inserts an alert row (what the detector would store) over the given events. */
    async function alert(id: number, rule: string, severity: string, events: AuditEvent[]) {
      const log = await srv.store.audit.query({ actor: "alice", limit: 1000 });
      const index = new Map(log.map((e) => [(parseAuditEvent(e.data) as { event: AuditEvent }).event.id, e.index]));
      const last = events[events.length - 1]!;
      await srv.store.handle.db
        .insertInto("alerts")
        .values({
          id,
          time: Date.parse(last.time),
          actor: "alice",
          rule,
          severity,
          reason: `alice read ${last.object} (${last.label ?? ""}) from ${last.source}`,
          events: JSON.stringify(events.map((e) => e.id)),
          trigger_event: last.id,
          log_index: index.get(last.id)!,
          created_at: Date.now(),
          acknowledged_by: null,
          acknowledged_at: null,
        })
        .execute();
    }

    before(async () => {
      srv = await startTestServer(kind, { mls: jsonMls, app: { orgName: ORG, detect: false } });
      url = srv.url;
      const d = srv.store.directory;
      await d.addUnit("HQ/ASIA-1", "SECRET/ASIA");
      await d.addUnit("HQ/SEC", "SECRET/ASIA");
      await d.addUser({ handle: "alice", units: ["HQ/ASIA-1"], clearance: "SECRET/ASIA", role: "user" });
      await d.addUser({ handle: "olga", units: ["HQ/SEC"], clearance: "SECRET/ASIA", role: "officer" });
      await d.addUser({ handle: "root", units: ["HQ/SEC"], clearance: "SECRET/ASIA", role: "admin" });
      alice = await login(url, srv.store, "alice", "d-alice00001");
      olga = await login(url, srv.store, "olga", "d-olga000001");
      root = await login(url, srv.store, "root", "d-root000001");
      // Real audited requests of alice's (document and cable listings).
      assert.equal((await call(url, alice, "GET", "/v1/documents")).status, 200);
      assert.equal((await call(url, alice, "GET", "/v1/cables")).status, 200);
      const mine = await srv.store.audit.query({ actor: "alice", limit: 100 });
      realEvents = mine
        .map((e) => parseAuditEvent(e.data))
        .flatMap((p) => (p.ok && p.event.action.endsWith(".list") ? [p.event] : []));
      assert.equal(realEvents.length, 2);
      attackerA = [1, 2, 3].map((i) => ev(i, `203.0.113.${70 + i}`, `doc-visit-programme-${i}`));
      attackerA.push(ev(4, "203.0.113.80", "cable-2026-000123", "cable.read"));
      attackerB = [5, 6].map((i) => ev(i, `198.51.100.${i}`, `doc-asia-brief-${i}`));
      await srv.store.audit.appendEvents([...attackerA, ...attackerB]);
      await alert(1, "new-device-new-network-read", "high", [...realEvents, ...attackerA.slice(0, 2)]);
      await alert(2, "new-compartment-collection", "high", attackerA);
      await alert(3, "canary-touch", "critical", attackerB);
    });
    after(async () => {
      await srv.close();
    });

    test("only officers use the incident API (admin and users get 403 forbidden, audited as denied)", async () => {
      for (const who of [alice, root]) {
        const c = await call(url, who, "POST", "/v1/incidents", { title: "x", alerts: [1] });
        assert.equal(c.status, 403, who.handle);
        assert.equal(c.json.code, "forbidden");
        assert.equal((await call(url, who, "GET", "/v1/incidents")).status, 403);
        assert.equal((await call(url, who, "POST", "/v1/taxii/tokens", { partner: "NATO" })).status, 403);
      }
      assert.equal((await call(url, null, "GET", "/v1/incidents")).status, 401);
      const denied = (await srv.store.audit.query({ actor: "root", action: "audit.read", limit: 10 }))
        .map((e) => parseAuditEvent(e.data))
        .flatMap((p) => (p.ok ? [p.event] : []));
      assert.ok(denied.some((e) => e.outcome === "denied" && e.object === "incidents"));
    });

    test("create, list and show an incident; bad input is 400, unknown alerts 404", async () => {
      assert.equal((await call(url, olga, "POST", "/v1/incidents", { title: "", alerts: [1] })).status, 400);
      assert.equal((await call(url, olga, "POST", "/v1/incidents", { title: "t", alerts: [] })).status, 400);
      assert.equal((await call(url, olga, "POST", "/v1/incidents", { title: "t", alerts: ["one"] })).status, 400);
      assert.equal((await call(url, olga, "POST", "/v1/incidents", { title: "t", alerts: [99] })).status, 404);
      const c = await call(url, olga, "POST", "/v1/incidents", {
        title: "Slow collection of ASIA documents",
        alerts: [1, 2],
        note: "Stolen credentials used from a router network abroad. Reported to the national CERT.",
      });
      assert.equal(c.status, 201, c.text);
      incidentId = c.json.id as string;
      assert.match(incidentId, /^inc-[0-9a-f]{16}$/);
      assert.deepEqual(c.json.alerts, [1, 2]);
      assert.equal(c.json.shared, false);
      const l = await call<{ incidents: { id: string }[] }>(url, olga, "GET", "/v1/incidents");
      assert.deepEqual(
        l.json.incidents.map((i) => i.id),
        [incidentId],
      );
      const s = await call<{ alertDetails: { rule: string }[] }>(url, olga, "GET", `/v1/incidents/${incidentId}`);
      assert.equal(s.status, 200);
      assert.deepEqual(
        s.json.alertDetails.map((a) => a.rule),
        ["new-device-new-network-read", "new-compartment-collection"],
      );
      assert.equal((await call(url, olga, "GET", "/v1/incidents/inc-0000000000000000")).status, 404);
      assert.equal((await call(url, olga, "GET", "/v1/incidents/nonsense")).status, 404);
    });

    test("the STIX export passes the official schemas and has identity, indicator, sighting, observed data, ATT&CK, note", async () => {
      const r = await call<Bundle>(url, olga, "GET", `/v1/incidents/${incidentId}/stix`);
      assert.equal(r.status, 200, r.text);
      assert.equal(r.headers.get("content-type"), STIX);
      const b = r.json;
      assert.deepEqual(v.validate(b), []);
      const of = (t: string) => b.objects.filter((o) => o.type === t);
      const [identity] = of("identity");
      assert.equal(identity?.name, ORG);
      const nets = of("indicator").filter((i) =>
        parseStixPattern(i.pattern as string).some((c) => c.objectType === "ipv4-addr" && c.op === "ISSUBSET"),
      );
      assert.deepEqual(
        nets.map((i) => parseStixPattern(i.pattern as string)[0]!.value),
        ["203.0.113.0/24"],
      );
      const sighting = of("sighting").find((s) => s.sighting_of_ref === nets[0]!.id)!;
      assert.equal(sighting.count, 4);
      assert.deepEqual(sighting.where_sighted_refs, [identity.id]);
      assert.equal(sighting.first_seen, attackerA[0]!.time);
      assert.equal(sighting.last_seen, attackerA[3]!.time);
      const od = of("observed-data").find((o) => o.id === (sighting.observed_data_refs as string[])[0])!;
      assert.equal(od.number_observed, 4);
      const addrs = (od.object_refs as string[]).map((ref) => b.objects.find((o) => o.id === ref)!.value);
      assert.deepEqual(addrs, ["203.0.113.71", "203.0.113.72", "203.0.113.73", "203.0.113.80"]);
      const techniques = of("attack-pattern").map(
        (a) => (a.external_references as { source_name: string; external_id: string }[])[0]!,
      );
      assert.ok(techniques.every((t) => t.source_name === "mitre-attack"));
      assert.deepEqual(
        techniques.map((t) => t.external_id),
        ["T1078", "T1114", "T1119", "T1213"],
      );
      assert.ok(of("relationship").some((x) => x.relationship_type === "indicates" && x.source_ref === nets[0]!.id));
      assert.equal(of("incident")[0]!.name, "Slow collection of ASIA documents");
      assert.match(of("note")[0]!.content as string, /national CERT/);
      // The device is an indicator too (pseudonymised).
      assert.ok(
        of("indicator").some((i) => /^\[x-valise-device:id = 'device-[0-9a-f]{16}'\]$/.test(i.pattern as string)),
      );
      // Same incident, same bundle.
      const again = await call(url, olga, "GET", `/v1/incidents/${incidentId}/stix`);
      assert.equal(again.text, r.text);
    });

    test("no handles, device ids, item ids, labels, units or internal addresses unless includeAccounts", async () => {
      const r = await call(url, olga, "GET", `/v1/incidents/${incidentId}/stix`);
      for (const leak of [
        "alice",
        "olga",
        "d-alice",
        "doc-visit",
        "cable-2026",
        "SECRET",
        "HQ/",
        "127.0.0.1",
        "e-attack0",
      ])
        assert.ok(!r.text.includes(leak), `${leak} in ${r.text}`);
      assert.ok(!r.text.includes("user-account"));
      const w = await call<Bundle>(url, olga, "GET", `/v1/incidents/${incidentId}/stix?includeAccounts=true`);
      assert.equal(w.status, 200);
      assert.deepEqual(v.validate(w.json), []);
      assert.deepEqual(
        w.json.objects.filter((o) => o.type === "user-account").map((o) => o.user_id),
        ["alice"],
      );
      assert.ok(w.text.includes("d-alice-ghost1"));
      for (const leak of ["doc-visit", "cable-2026", "SECRET", "127.0.0.1"]) assert.ok(!w.text.includes(leak), leak);
      assert.equal(
        (await call(url, olga, "GET", `/v1/incidents/${incidentId}/stix?includeAccounts=maybe`)).status,
        400,
      );
    });

    test("officer reads and changes are audited as audit.read with the incident as object", async () => {
      const mine = (await srv.store.audit.query({ actor: "olga", action: "audit.read", limit: 100 }))
        .map((e) => parseAuditEvent(e.data))
        .flatMap((p) => (p.ok ? [p.event.object] : []));
      assert.ok(mine.includes(`incident:${incidentId}:stix`));
      assert.ok(mine.includes(`incident:${incidentId}`));
      assert.ok(mine.includes("incidents"));
    });

    test("TAXII: tokens, discovery, API root, collections, media types, 401/403/406", async () => {
      const t = await call(url, olga, "POST", "/v1/taxii/tokens", { partner: "CERT-EU" });
      assert.equal(t.status, 201, t.text);
      token = t.json.token as string;
      tokenId = t.json.id as string;
      assert.match(token, /^taxii_/);
      const listed = await call(url, olga, "GET", "/v1/taxii/tokens");
      assert.ok(!listed.text.includes(token), "the token is shown once");
      const row = await srv.store.handle.db.selectFrom("taxii_tokens").selectAll().executeTakeFirstOrThrow();
      assert.notEqual(row.token_hash, token);

      const none = await taxii(url, "/taxii2/", null);
      assert.equal(none.status, 401);
      assert.equal(none.headers.get("content-type"), TAXII);
      assert.equal(none.json.http_status, "401");
      assert.equal((await taxii(url, "/taxii2/", "taxii_wrong")).status, 401);
      assert.equal((await taxii(url, "/taxii2/", olga.token)).status, 401, "a user session is not a partner token");
      assert.equal((await call(url, { ...olga, token }, "GET", "/v1/me")).status, 401, "nor the reverse");
      const wrong = await taxii(url, "/taxii2/", token, "application/json");
      assert.equal(wrong.status, 406);
      assert.equal(wrong.headers.get("content-type"), TAXII);
      assert.equal((await taxii(url, "/taxii2/", token, "application/taxii+json;version=2.0")).status, 406);

      const disc = await taxii(url, "/taxii2/", token);
      assert.equal(disc.status, 200);
      assert.equal(disc.headers.get("content-type"), TAXII);
      assert.deepEqual(disc.json.api_roots, ["/taxii2/valise/"]);
      const apiRoot = await taxii(url, "/taxii2/valise/", token, "application/taxii+json");
      assert.equal(apiRoot.status, 200);
      assert.deepEqual(apiRoot.json.versions, [TAXII]);
      const cols = await taxii(url, "/taxii2/valise/collections/", token);
      const [col] = cols.json.collections as Record<string, unknown>[];
      assert.equal(col?.can_read, true);
      assert.equal(col?.can_write, false);
      assert.deepEqual(col?.media_types, [STIX]);
      const one = await taxii(url, `/taxii2/valise/collections/${String(col.id)}/`, token);
      assert.deepEqual(one.json, col);
      assert.equal(
        (await taxii(url, "/taxii2/valise/collections/00000000-0000-4000-8000-000000000000/", token)).status,
        404,
      );
      const empty = await taxii(url, `/taxii2/valise/collections/${String(col.id)}/objects/`, token);
      assert.equal(empty.status, 200);
      assert.deepEqual(empty.json, { more: false });
    });

    test("TAXII objects: two shares, paging with limit/next, and added_after the first share's last date", async () => {
      const colId = ((await taxii(url, "/taxii2/valise/collections/", token)).json.collections as { id: string }[])[0]!
        .id;
      const objectsPath = `/taxii2/valise/collections/${colId}/objects/`;
      const s1 = await call(url, olga, "POST", `/v1/incidents/${incidentId}/share`, {});
      assert.equal(s1.status, 200, s1.text);
      assert.equal(s1.json.added, s1.json.objects);
      assert.equal((await call(url, olga, "GET", `/v1/incidents/${incidentId}`)).json.shared, true);
      const first = await taxii(url, `${objectsPath}?limit=1000`, token);
      assert.equal(first.status, 200);
      assert.equal(first.headers.get("content-type"), TAXII);
      const objs1 = first.json.objects as Obj[];
      assert.equal(objs1.length, s1.json.objects);
      assert.equal(first.json.more, false);
      assert.deepEqual(
        v.validate({ type: "bundle", id: "bundle--6d2b1a0e-6f1c-4d3e-9c43-0a3c1e1f2a3b", objects: objs1 }),
        [],
      );
      const last1 = first.headers.get("x-taxii-date-added-last")!;
      assert.match(first.headers.get("x-taxii-date-added-first")!, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      // Sharing again adds nothing new.
      assert.equal((await call(url, olga, "POST", `/v1/incidents/${incidentId}/share`, {})).json.added, 0);

      // Paging: limit 5 pages through the same objects with next.
      const seen: string[] = [];
      let next: string | undefined;
      for (let i = 0; i < 100; i++) {
        const p = await taxii(url, `${objectsPath}?limit=5${next ? `&next=${next}` : ""}`, token);
        seen.push(...(p.json.objects as Obj[]).map((o) => o.id));
        if (!p.json.more) break;
        next = p.json.next as string;
      }
      assert.deepEqual(
        seen,
        objs1.map((o) => o.id),
      );

      // A second incident (the canary alert, another network), shared: exactly its new objects come after last1.
      const c2 = await call(url, olga, "POST", "/v1/incidents", { title: "Canary opened", alerts: [3] });
      assert.equal(c2.status, 201);
      const s2 = await call(url, olga, "POST", `/v1/incidents/${c2.json.id as string}/share`, {});
      assert.equal(s2.status, 200);
      const after1 = await taxii(url, `${objectsPath}?added_after=${encodeURIComponent(last1)}`, token);
      const objs2 = after1.json.objects as Obj[];
      assert.equal(objs2.length, s2.json.added);
      assert.ok(after1.headers.get("x-taxii-date-added-first")! > last1);
      const ids1 = new Set(objs1.map((o) => o.id));
      assert.ok(
        objs2.every((o) => !ids1.has(o.id)),
        "identity and known attack patterns are not added twice",
      );
      const patterns = objs2.filter((o) => o.type === "indicator").map((o) => o.pattern as string);
      assert.ok(patterns.includes("[ipv4-addr:value ISSUBSET '198.51.100.0/24']"));
      const typed = await taxii(url, `${objectsPath}?match[type]=indicator`, token);
      assert.ok((typed.json.objects as Obj[]).every((o) => o.type === "indicator"));
      assert.equal((await taxii(url, `${objectsPath}?added_after=yesterday`, token)).status, 400);
      // The partner's reads are audited.
      const reads = (await srv.store.audit.query({ actor: "taxii:CERT-EU", limit: 100 })).length;
      assert.ok(reads >= 4);
    });

    /** Pages through `path` (which has a query) with `limit`, returning every page. */
    async function pages(path: string, limit: number) {
      const out: Awaited<ReturnType<typeof taxii>>[] = [];
      let next: string | undefined;
      for (let i = 0; i < 200; i++) {
        const p = await taxii(url, `${path}&limit=${limit}${next ? `&next=${next}` : ""}`, token);
        assert.equal(p.status, 200, JSON.stringify(p.json));
        out.push(p);
        if (!p.json.more) return out;
        next = p.json.next as string;
        assert.match(next, /^\d+$/);
      }
      throw new Error("paging did not end");
    }
    const versionOf = (o: Obj, dateAdded: string) =>
      typeof o.modified === "string" ? o.modified : typeof o.created === "string" ? o.created : dateAdded;
    interface Manifest {
      id: string;
      date_added: string;
      version: string;
      media_type: string;
    }

    test("TAXII manifest: records match the objects, and it pages exactly like objects (more, next, headers)", async () => {
      colId = ((await taxii(url, "/taxii2/valise/collections/", token)).json.collections as { id: string }[])[0]!.id;
      const base = `/taxii2/valise/collections/${colId}`;
      const all = await taxii(url, `${base}/objects/?limit=1000`, token);
      const objs = all.json.objects as Obj[];
      const man = await taxii(url, `${base}/manifest/?limit=1000`, token);
      assert.equal(man.status, 200);
      assert.equal(man.headers.get("content-type"), TAXII);
      assert.equal(man.json.more, false);
      const records = man.json.objects as Manifest[];
      assert.deepEqual(
        records.map((r) => r.id),
        objs.map((o) => o.id),
      );
      records.forEach((r, i) => {
        assert.match(r.date_added, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
        assert.equal(r.version, versionOf(objs[i]!, r.date_added), r.id);
        assert.equal(r.media_type, STIX);
      });
      assert.ok(
        records.some((r) => r.id.startsWith("ipv4-addr--")),
        "SCOs (version = date added) are listed",
      );
      assert.equal(man.headers.get("x-taxii-date-added-first"), records[0]!.date_added);
      assert.equal(man.headers.get("x-taxii-date-added-last"), records[records.length - 1]!.date_added);
      assert.deepEqual(
        records.map((r) => r.date_added),
        [...records.map((r) => r.date_added)].sort(),
        "oldest date added first",
      );

      // Same query, same pages: ids, more, next and the date-added headers, with and without filters.
      for (const [query, limit] of [
        ["", 7],
        ["match[type]=indicator,sighting", 2],
        [`added_after=${encodeURIComponent(records[10]!.date_added)}`, 4],
      ] as const) {
        const mp = await pages(`${base}/manifest/?${query}`, limit);
        const op = await pages(`${base}/objects/?${query}`, limit);
        assert.equal(mp.length, op.length, query);
        assert.ok(mp.length > 1, `${query}: more than one page`);
        mp.forEach((m, i) => {
          const o = op[i]!;
          assert.deepEqual(
            ((m.json.objects ?? []) as Manifest[]).map((r) => r.id),
            ((o.json.objects ?? []) as Obj[]).map((x) => x.id),
            `${query} page ${i}`,
          );
          assert.equal(m.json.more, o.json.more);
          assert.equal(m.json.next, o.json.next);
          for (const h of ["x-taxii-date-added-first", "x-taxii-date-added-last"]) {
            assert.equal(m.headers.get(h), o.headers.get(h), `${query} page ${i} ${h}`);
            const recs = (m.json.objects ?? []) as Manifest[];
            if (recs.length > 0)
              assert.equal(m.headers.get(h), h.endsWith("first") ? recs[0]!.date_added : recs.at(-1)!.date_added);
          }
          if (i < mp.length - 1) assert.equal(((m.json.objects ?? []) as unknown[]).length, limit);
        });
        const ids = mp.flatMap((m) => ((m.json.objects ?? []) as Manifest[]).map((r) => r.id));
        if (query.startsWith("match[type]")) {
          assert.ok(ids.every((id) => /^(indicator|sighting)--/.test(id)));
          assert.deepEqual(
            ids,
            objs.filter((o) => o.type === "indicator" || o.type === "sighting").map((o) => o.id),
          );
        }
        if (query.startsWith("added_after"))
          assert.deepEqual(
            ids,
            records.slice(11).map((r) => r.id),
          );
      }
      const one = await taxii(url, `${base}/manifest/?match[id]=${objs[3]!.id}`, token);
      assert.deepEqual(
        (one.json.objects as Manifest[]).map((r) => r.id),
        [objs[3]!.id],
      );

      const unknown = await taxii(
        url,
        "/taxii2/valise/collections/00000000-0000-4000-8000-000000000000/manifest/",
        token,
      );
      assert.equal(unknown.status, 404);
      assert.equal(unknown.headers.get("content-type"), TAXII);
      assert.equal(unknown.json.http_status, "404");
      assert.equal(typeof unknown.json.title, "string");
      const wrong = await taxii(url, `${base}/manifest/`, token, "application/json");
      assert.equal(wrong.status, 406);
      assert.equal(wrong.headers.get("content-type"), TAXII);
      assert.equal((await taxii(url, `${base}/manifest/?match[colour]=red`, token)).status, 400);
      assert.equal((await taxii(url, `${base}/manifest/?match[version]=yesterday`, token)).status, 400);
      const reads = (await srv.store.audit.query({ actor: "taxii:CERT-EU", limit: 1000 }))
        .map((e) => parseAuditEvent(e.data))
        .flatMap((p) => (p.ok ? [p.event] : []));
      assert.ok(reads.some((e) => e.object === `taxii:${colId}/manifest` && e.outcome === "ok" && e.bytes > 0));
      assert.ok(reads.some((e) => e.object.endsWith("/manifest") && e.outcome === "denied"));
    });

    test("TAXII get an object and its versions; match[version] last (default), first, all and timestamps", async () => {
      const base = `/taxii2/valise/collections/${colId}`;
      const before = (await taxii(url, `${base}/objects/?limit=1000`, token)).json.objects as Obj[];
      const incidentObj = before.find((o) => o.type === "incident")!;
      versionedId = incidentObj.id;
      const path = `${base}/objects/${versionedId}/`;

      const got = await taxii(url, path, token);
      assert.equal(got.status, 200);
      assert.equal(got.headers.get("content-type"), TAXII);
      assert.deepEqual(got.json, { more: false, objects: [incidentObj] });
      assert.ok(got.headers.get("x-taxii-date-added-first"));
      assert.equal(got.headers.get("x-taxii-date-added-first"), got.headers.get("x-taxii-date-added-last"));
      const v1 = incidentObj.modified as string;
      assert.deepEqual((await taxii(url, `${path}versions/`, token)).json, { more: false, versions: [v1] });

      // A second version of the incident object, added the way sharing adds objects.
      const store = new IncidentStore(srv.store.handle.db, srv.store.audit, () => Date.now());
      const inc = (await store.get(incidentId))!;
      const v2 = new Date(Date.parse(v1) + 86_400_000).toISOString();
      const updated = { ...incidentObj, modified: v2, description: "Updated: the network was blocked." };
      assert.equal(await store.share(inc, [updated], "olga"), 1);

      const ids = (r: Awaited<ReturnType<typeof taxii>>) =>
        ((r.json.objects ?? []) as Obj[]).map((o) => `${o.id}@${String(o.modified)}`);
      const at = (v: string) => [`${versionedId}@${v}`];
      assert.deepEqual(ids(await taxii(url, path, token)), at(v2), "last by default");
      assert.deepEqual(ids(await taxii(url, `${path}?match[version]=last`, token)), at(v2));
      assert.deepEqual(ids(await taxii(url, `${path}?match[version]=first`, token)), at(v1));
      assert.deepEqual(ids(await taxii(url, `${path}?match[version]=all`, token)), [...at(v1), ...at(v2)]);
      assert.deepEqual(ids(await taxii(url, `${path}?match[version]=first,last`, token)), [...at(v1), ...at(v2)]);
      assert.deepEqual(ids(await taxii(url, `${path}?match[version]=${encodeURIComponent(v1)}`, token)), at(v1));
      assert.deepEqual(
        ids(await taxii(url, `${path}?match[version]=${encodeURIComponent(v2.replace(".000Z", "Z"))}`, token)),
        at(v2),
        "the same instant without milliseconds",
      );
      assert.deepEqual((await taxii(url, `${path}?match[version]=2020-01-01T00:00:00Z`, token)).json, { more: false });
      const firstPage = await taxii(url, `${path}?match[version]=all&limit=1`, token);
      assert.deepEqual(ids(firstPage), at(v1));
      assert.equal(firstPage.json.more, true);
      const second = await taxii(url, `${path}?match[version]=all&limit=1&next=${String(firstPage.json.next)}`, token);
      assert.deepEqual(ids(second), at(v2));
      assert.equal(second.json.more, false);

      const versions = await taxii(url, `${path}versions/`, token);
      assert.equal(versions.status, 200);
      assert.equal(versions.headers.get("content-type"), TAXII);
      assert.deepEqual(versions.json, { more: false, versions: [v1, v2] });
      assert.ok(versions.headers.get("x-taxii-date-added-last")! > versions.headers.get("x-taxii-date-added-first")!);
      const vp = await taxii(url, `${path}versions/?limit=1`, token);
      assert.deepEqual(vp.json, { more: true, next: vp.json.next, versions: [v1] });
      assert.deepEqual((await taxii(url, `${path}versions/?limit=1&next=${String(vp.json.next)}`, token)).json, {
        more: false,
        versions: [v2],
      });
      assert.equal((await taxii(url, `${path}versions/?match[version]=all`, token)).status, 400);

      // On the collection: the default is the last version of each object; first/all reach the old one.
      const now = (await taxii(url, `${base}/objects/?limit=1000`, token)).json.objects as Obj[];
      assert.equal(now.length, before.length, "one object, still one entry");
      assert.deepEqual(
        now.filter((o) => o.id === versionedId).map((o) => o.modified),
        [v2],
      );
      assert.equal(now.at(-1)!.id, versionedId, "the new version was added last");
      const typed = async (q: string) =>
        ((await taxii(url, `${base}/objects/?match[type]=incident&${q}`, token)).json.objects as Obj[])
          .filter((o) => o.id === versionedId)
          .map((o) => o.modified);
      assert.deepEqual(await typed("match[version]=first"), [v1]);
      assert.deepEqual(await typed("match[version]=all"), [v1, v2]);
      assert.deepEqual(await typed(`match[version]=${encodeURIComponent(v1)}`), [v1]);
      const man = (await taxii(url, `${base}/manifest/?match[id]=${versionedId}&match[version]=all`, token)).json
        .objects as Manifest[];
      assert.deepEqual(
        man.map((r) => r.version),
        [v1, v2],
      );
      assert.deepEqual(
        ((await taxii(url, `${base}/manifest/?match[id]=${versionedId}`, token)).json.objects as Manifest[]).map(
          (r) => r.version,
        ),
        [v2],
      );

      // An SCO has one version, its date added; asking for that version finds it.
      const sco = (await taxii(url, `${base}/manifest/?match[type]=ipv4-addr&limit=1`, token)).json
        .objects as Manifest[];
      assert.equal(sco[0]!.version, sco[0]!.date_added);
      const scoGot = await taxii(
        url,
        `${base}/objects/${sco[0]!.id}/?match[version]=${encodeURIComponent(sco[0]!.version)}`,
        token,
      );
      assert.deepEqual(
        (scoGot.json.objects as Obj[]).map((o) => o.id),
        [sco[0]!.id],
      );
      assert.deepEqual((await taxii(url, `${base}/objects/${sco[0]!.id}/versions/`, token)).json.versions, [
        sco[0]!.date_added,
      ]);
      assert.equal(
        (await taxii(url, `${base}/objects/?match[spec_version]=2.0&limit=1000`, token)).json.objects,
        undefined,
      );
      assert.equal(
        ((await taxii(url, `${base}/objects/?match[spec_version]=2.1&limit=1000`, token)).json.objects as Obj[]).length,
        now.length,
      );

      // 404s (TAXII error bodies), 406, 400 and the status resource.
      for (const p of [
        `${base}/objects/indicator--00000000-0000-4000-8000-000000000000/`,
        `${base}/objects/indicator--00000000-0000-4000-8000-000000000000/versions/`,
        `${base}/objects/nonsense/`,
        `${base}/objects/nonsense/versions/`,
        `/taxii2/valise/collections/00000000-0000-4000-8000-000000000000/objects/${versionedId}/`,
        `/taxii2/valise/collections/00000000-0000-4000-8000-000000000000/objects/${versionedId}/versions/`,
        "/taxii2/valise/status/2d086da7-4bdc-4f91-900e-d77486753710/",
      ]) {
        const r = await taxii(url, p, token);
        assert.equal(r.status, 404, p);
        assert.equal(r.headers.get("content-type"), TAXII, p);
        assert.equal(r.json.http_status, "404", p);
        assert.equal(typeof r.json.description, "string", p);
      }
      for (const p of [path, `${path}versions/`]) {
        const r = await taxii(url, p, token, "application/stix+json;version=2.1");
        assert.equal(r.status, 406, p);
        assert.equal(r.json.http_status, "406");
      }
      assert.equal((await taxii(url, `${path}?match[type]=incident`, token)).status, 400);
      assert.equal((await taxii(url, `${path}?match[version]=latest`, token)).status, 400);
      assert.equal((await taxii(url, "/taxii2/valise/status/x/", null)).status, 401);

      const reads = (await srv.store.audit.query({ actor: "taxii:CERT-EU", limit: 1000 }))
        .map((e) => parseAuditEvent(e.data))
        .flatMap((p) => (p.ok ? [p.event] : []));
      assert.ok(reads.some((e) => e.object === `taxii:${colId}/objects/${versionedId}` && e.outcome === "ok"));
      assert.ok(reads.some((e) => e.object === `taxii:${colId}/objects/${versionedId}/versions` && e.outcome === "ok"));
    });

    test("TAXII never serves an object that was not shared (an unshared incident's ids are 404 and filtered out)", async () => {
      const base = `/taxii2/valise/collections/${colId}`;
      const c = await call(url, olga, "POST", "/v1/incidents", { title: "Not for partners", alerts: [2] });
      assert.equal(c.status, 201);
      const bundle = (await call<Bundle>(url, olga, "GET", `/v1/incidents/${c.json.id as string}/stix`)).json;
      const shared = new Set(
        ((await taxii(url, `${base}/manifest/?match[version]=all&limit=1000`, token)).json.objects as Manifest[]).map(
          (r) => r.id,
        ),
      );
      const secret = bundle.objects.filter((o) => !shared.has(o.id));
      assert.ok(secret.some((o) => o.type === "incident") && secret.some((o) => o.type === "note"));
      assert.ok(secret.some((o) => o.type === "indicator"));
      for (const o of secret) {
        for (const p of [`${base}/objects/${o.id}/`, `${base}/objects/${o.id}/versions/`]) {
          const r = await taxii(url, p, token);
          assert.equal(r.status, 404, `${o.type} ${p}`);
          assert.equal(r.json.http_status, "404");
          assert.ok(!JSON.stringify(r.json).includes("Not for partners"));
        }
      }
      const idList = secret.map((o) => o.id).join(",");
      for (const p of ["objects", "manifest"]) {
        const r = await taxii(url, `${base}/${p}/?match[id]=${idList}&match[version]=all`, token);
        assert.equal(r.status, 200);
        assert.deepEqual(r.json, { more: false }, p);
      }
      const everything = await taxii(url, `${base}/objects/?match[version]=all&limit=1000`, token);
      const text = JSON.stringify(everything.json);
      assert.ok(!text.includes("Not for partners"));
      assert.ok(secret.every((o) => !text.includes(o.id)));
      // The attempts are on record as denied.
      const denied = (await srv.store.audit.query({ actor: "taxii:CERT-EU", limit: 1000 }))
        .map((e) => parseAuditEvent(e.data))
        .flatMap((p) => (p.ok && p.event.outcome === "denied" ? [p.event.object] : []));
      assert.ok(secret.every((o) => denied.includes(`taxii:${colId}/objects/${o.id}`)));
    });

    test("a revoked token gets 403; revoking an unknown token is 404", async () => {
      const r = await call(url, olga, "DELETE", `/v1/taxii/tokens/${tokenId}`);
      assert.equal(r.status, 200, r.text);
      assert.ok(r.json.revokedAt);
      const after = await taxii(url, "/taxii2/valise/collections/", token);
      assert.equal(after.status, 403);
      assert.equal(after.headers.get("content-type"), TAXII);
      assert.equal(after.json.http_status, "403");
      assert.equal((await call(url, olga, "DELETE", "/v1/taxii/tokens/tt-0000000000000000")).status, 404);
      assert.equal((await call(url, alice, "DELETE", `/v1/taxii/tokens/${tokenId}`)).status, 403);
    });

    test("TAXII: a revoked token is 403 and no token 401 on every endpoint, with a TAXII error body", async () => {
      const base = `/taxii2/valise/collections/${colId}`;
      for (const p of [
        "/taxii2/",
        "/taxii2/valise/",
        `${base}/`,
        `${base}/objects/`,
        `${base}/objects/?match[type]=incident&match[version]=all`,
        `${base}/manifest/`,
        `${base}/manifest/?match[id]=${versionedId}`,
        `${base}/objects/${versionedId}/`,
        `${base}/objects/${versionedId}/?match[version]=first`,
        `${base}/objects/${versionedId}/versions/`,
        "/taxii2/valise/status/2d086da7-4bdc-4f91-900e-d77486753710/",
      ]) {
        const r = await taxii(url, p, token);
        assert.equal(r.status, 403, p);
        assert.equal(r.headers.get("content-type"), TAXII, p);
        assert.equal(r.json.http_status, "403", p);
        assert.ok(!JSON.stringify(r.json).includes(versionedId), p);
        const anon = await taxii(url, p, null);
        assert.equal(anon.status, 401, p);
        assert.equal(anon.json.http_status, "401", p);
      }
    });
  });
}
