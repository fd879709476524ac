/**
 * SCENARIOS.md 8/9 end to end through the CLI: a canary document is read, the server's detector raises a critical
 * alert, the officer turns it into an incident (`valise incident create`), exports it as a STIX 2.1 file
 * (`valise incident export --out`), shares it, issues a partner token (`valise taxii token issue`), the partner reads
 * the TAXII collection, the token is revoked (`valise taxii token revoke`) and the partner gets 403. The bundle's
 * schema validity is tested in packages/server/test (stix.test, incidents-taxii.test); here: its parts, the org
 * name from the server option, and that the reader's handle and the document's name and id are not in it.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { bytesSource, collect, MemoryKeyStore, ValiseClient } from "@valise/client";
import { FileKeyStore } from "@valise/client/node/file-store";
import { nodeStreamCipher } from "@valise/client/node/docstream";
import { startTestServer } from "@valise/server/testing/server";
import { runCli } from "./cli-process.js";

const ASIA = "SECRET/ASIA";
const TAXII = "application/taxii+json;version=2.1";

async function until<T>(what: string, fn: () => Promise<T | undefined>, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test("valise incident create/export/share and valise taxii token issue/revoke, from a real canary alert", async () => {
  const srv = await startTestServer("sqlite", { app: { orgName: "Ministry of Foreign Affairs of Testland" } });
  const dir = mkdtempSync(join(tmpdir(), "valise-incident-"));
  try {
    const d = srv.store.directory;
    for (const u of ["HQ/ASIA-1", "EMB/BEIJING", "HQ/SECURITY"]) await d.addUnit(u, ASIA);
    await d.addUser({ handle: "jnovak", units: ["HQ/ASIA-1"], clearance: ASIA, role: "user" });
    await d.addUser({ handle: "pdvorak", units: ["EMB/BEIJING"], clearance: ASIA, role: "user" });
    await d.addUser({ handle: "olga", units: ["HQ/SECURITY"], clearance: ASIA, role: "officer" });
    const enroll = async (handle: string, profile?: string) =>
      ValiseClient.enroll({
        serverUrl: srv.url,
        code: (await d.newEnrollmentCode(handle)).enrollmentCode,
        deviceName: "laptop",
        store: profile ? new FileKeyStore(profile) : new MemoryKeyStore(),
        cipher: nodeStreamCipher(undefined, { workers: 0 }), // no worker pool: it would keep the test process alive
      });
    const olgaDir = join(dir, "olga");
    const [desk, reader, officer] = [await enroll("jnovak"), await enroll("pdvorak"), await enroll("olga", olgaDir)];
    const name = "visit-programme-vice-minister.pdf";
    const put = await desk.documents.put({ to: "pdvorak", label: ASIA, name, source: bytesSource(randomBytes(2000)) });
    await officer.documents.setCanary(put.id, true);
    await reader.sync();
    await collect((await reader.documents.get(put.id)).bytes);
    const alert = await until("the canary alert", async () =>
      (await officer.alerts({ severity: "critical" })).find((a) => a.rule === "canary-touch" && a.actor === "pdvorak"),
    );

    const p = ["--profile", olgaDir];
    const created = JSON.parse(
      (
        await runCli([
          "incident",
          "create",
          ...p,
          "--alert",
          String(alert.id),
          "--title",
          "Canary opened",
          "--note",
          "Reported to the national CERT.",
          "--json",
        ])
      ).stdout,
    ) as { id: string; alerts: number[] };
    assert.deepEqual(created.alerts, [alert.id]);
    const listed = await runCli(["incident", "list", ...p]);
    assert.match(listed.stdout, new RegExp(`${created.id}.*Canary opened.*not shared`));
    const shown = await runCli(["incident", "show", created.id, ...p]);
    assert.match(shown.stdout, /canary-touch/);

    const out = join(dir, "incident.stix.json");
    await runCli(["incident", "export", created.id, ...p, "--out", out]);
    assert.equal(statSync(out).mode & 0o777, 0o600);
    const text = readFileSync(out, "utf8");
    const bundle = JSON.parse(text) as { type: string; objects: Record<string, unknown>[] };
    assert.equal(bundle.type, "bundle");
    const types = new Set(bundle.objects.map((o) => o.type));
    for (const t of ["identity", "indicator", "sighting", "attack-pattern", "incident", "note"])
      assert.ok(types.has(t), t);
    assert.equal(bundle.objects.find((o) => o.type === "identity")!.name, "Ministry of Foreign Affairs of Testland");
    const ext = bundle.objects
      .filter((o) => o.type === "attack-pattern")
      .map((o) => (o.external_references as { external_id: string }[])[0]!.external_id);
    assert.ok(ext.includes("T1213"), ext.join());
    for (const leak of ["pdvorak", "jnovak", "olga", name, put.id, ASIA]) assert.ok(!text.includes(leak), leak);
    const withAccounts = (await runCli(["incident", "export", created.id, ...p, "--include-accounts"])).stdout;
    assert.ok(withAccounts.includes('"user_id": "pdvorak"'));

    const shared = await runCli(["incident", "share", created.id, ...p, "--json"]);
    const s = JSON.parse(shared.stdout) as { added: number; objects: number; collection: string };
    assert.equal(s.added, s.objects);
    const issued = JSON.parse(
      (await runCli(["taxii", "token", "issue", "--partner", "CERT-EU", ...p, "--json"])).stdout,
    ) as {
      id: string;
      token: string;
    };
    const get = (path: string) =>
      fetch(`${srv.url}${path}`, { headers: { authorization: `Bearer ${issued.token}`, accept: TAXII } });
    const r = await get(`/taxii2/valise/collections/${s.collection}/objects/`);
    assert.equal(r.status, 200);
    assert.equal(r.headers.get("content-type"), TAXII);
    assert.equal(((await r.json()) as { objects: unknown[] }).objects.length, s.objects);
    const revoked = await runCli(["taxii", "token", "revoke", issued.id, ...p]);
    assert.match(revoked.stdout, /REVOKED/);
    assert.equal((await get("/taxii2/")).status, 403);

    // Not an officer: refused, with the stable code.
    const deskDir = join(dir, "desk");
    await enroll("jnovak", deskDir);
    await assert.rejects(runCli(["incident", "list", "--profile", deskDir]), (e: { stderr: string }) =>
      e.stderr.includes("[forbidden]"),
    );
  } finally {
    await srv.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
