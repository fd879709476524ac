/**
 * Post time zones (issue 16): `valise admin unit tz` and `unit add --tz` as separate processes on a data directory.
 * The zone is validated (IANA names only), listed, cleared with `none`, audited as `directory.unit.tz` (actor
 * admin-cli), kept out of the directory log (it changes no key), and handed to detection by
 * `directory.unitTimeZones()`, which the server's detector reads.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execFile } from "node:child_process";
import { parseAuditEvent, parseDirectoryEntry } from "@valise/core";
import { openStore } from "@valise/server";
import { CLI, cliEnv } from "./cli-process.js";

let dir: string;
let data: string;

function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { timeout: 60_000, env: cliEnv() }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === "number" ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}
const admin = (...args: string[]) => run(["admin", "--data", data, ...args]);

before(() => {
  dir = mkdtempSync(join(tmpdir(), "valise-unit-tz-"));
  data = join(dir, "data");
});
after(() => rmSync(dir, { recursive: true, force: true }));

test(
  "unit add --tz, unit tz, unit list: IANA zones only, cleared with none, audited, not in the directory log",
  { timeout: 300_000 },
  async () => {
    const added = await admin("unit", "add", "EMB/TOKYO", "--tz", "Asia/Tokyo", "--json");
    assert.equal(added.code, 0, added.stderr);
    assert.deepEqual(JSON.parse(added.stdout), { unit: "EMB/TOKYO", tz: "Asia/Tokyo" });
    assert.equal((await admin("unit", "add", "HQ/ASIA-1", "--json")).code, 0);
    const bad = await admin("unit", "add", "EMB/MARS", "--tz", "Mars/Olympus");
    assert.equal(bad.code, 2, "a usage error");
    assert.match(bad.stderr, /Mars\/Olympus is not an IANA time zone/);

    const set = await admin("unit", "tz", "HQ/ASIA-1", "Europe/Paris", "--json");
    assert.equal(set.code, 0, set.stderr);
    assert.deepEqual(JSON.parse(set.stdout), { unit: "HQ/ASIA-1", tz: "Europe/Paris" });
    const refused = await admin("unit", "tz", "HQ/ASIA-1", "Tokyo");
    assert.equal(refused.code, 2);
    const missing = await admin("unit", "tz", "HQ/NOWHERE", "Asia/Tokyo", "--json");
    assert.equal(missing.code, 1);
    assert.equal((JSON.parse(missing.stdout) as { error: { code: string } }).error.code, "not_found");

    const list = await admin("unit", "list", "--json");
    assert.deepEqual((JSON.parse(list.stdout) as { units: unknown[] }).units, [
      { name: "EMB/TOKYO", maxLabel: "SECRET", tz: "Asia/Tokyo" },
      { name: "HQ/ASIA-1", maxLabel: "SECRET", tz: "Europe/Paris" },
    ]);
    const text = await admin("unit", "list");
    assert.match(text.stdout, /^EMB\/TOKYO\t\(max SECRET, Asia\/Tokyo\)$/m);

    const cleared = await admin("unit", "tz", "HQ/ASIA-1", "none", "--json");
    assert.deepEqual(JSON.parse(cleared.stdout), { unit: "HQ/ASIA-1", tz: null });

    const store = await openStore({ dataDir: data });
    try {
      assert.deepEqual(await store.directory.unitTimeZones(), { "EMB/TOKYO": "Asia/Tokyo" });
      const audit = (await store.audit.entries(0, await store.audit.size())).flatMap((d) => {
        const p = parseAuditEvent(d);
        return p.ok ? [p.event] : [];
      });
      const tz = audit.filter((e) => e.action === "directory.unit.tz").map((e) => [e.actor, e.object, e.outcome]);
      assert.deepEqual(tz, [
        ["admin-cli", "EMB/TOKYO", "ok"],
        ["admin-cli", "HQ/ASIA-1", "ok"],
        ["admin-cli", "HQ/ASIA-1", "ok"],
      ]);
      const log = store.directory.log;
      const types = (await log.entries(0, await log.size())).map((d) => {
        const p = parseDirectoryEntry(d);
        assert.ok(p.ok);
        return p.entry.type;
      });
      assert.deepEqual(types, ["unit.add", "unit.add"], "no directory log entry for a time zone");
    } finally {
      await store.close();
    }
  },
);
