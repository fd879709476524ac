/**
 * The enrollment bundle end to end through the CLI (issue 4 item 5): `valise admin user add|code --json` prints
 * the log key, witness keys and quorum with the code; `valise enroll --bundle` pins them in the profile; `valise
 * devices --json` lists own devices from the verified log and alerts; `valise sync` surfaces a new device as an alert;
 * `--ack` dismisses it. `--code` alone pins the server's log key on first use (and says so).
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFile, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { formatCosignatureVerifierKey, generateNoteKey, isValiseError } from "@valise/core";
import { bundleTrust, readBundle } from "../src/bundle.js";
import { freePort } from "@valise/server/testing/net";

const execFileP = promisify(execFile);
const CLI = fileURLToPath(new URL("../../bin/valise.js", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "valise-bundle-"));
const dataDir = join(dir, "data");
let child: ChildProcess | undefined;
after(() => {
  if (child && child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function valise(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ stdout: string; stderr: string }> {
  const env2 = { ...process.env, ...env };
  delete env2.VALISE_DATABASE_URL;
  return execFileP(process.execPath, [CLI, ...args], { timeout: 30_000, env: env2 });
}
async function json(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Record<string, unknown>> {
  return JSON.parse((await valise([...args, "--json"], env)).stdout) as Record<string, unknown>;
}

test(
  "enrollment bundle: admin prints trust anchors, enroll pins them, devices and sync report a new device",
  { timeout: 240_000 },
  async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    await valise(["admin", "--data", dataDir, "unit", "add", "HQ/ASIA-1"]);
    child = spawn(process.execPath, [CLI, "serve", "--data", dataDir, "--port", String(port), "--log-level", "warn"], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, VALISE_DATABASE_URL: "" },
    });
    let out = "";
    child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (out += d.toString())); // the banner (log key) is on stderr
    for (let i = 0; ; i++) {
      try {
        if ((await fetch(`${url}/healthz`)).ok) break;
      } catch {
        /* not yet */
      }
      if (i > 1200) throw new Error(`server did not start: ${out}`);
      await sleep(50);
    }

    // The bundle: code plus log key (the one the server prints and signs with), no witnesses → quorum 0, stated.
    const add = await json([
      "admin",
      "--data",
      dataDir,
      "user",
      "add",
      "jnovak",
      "--unit",
      "HQ/ASIA-1",
      "--clearance",
      "SECRET/ASIA",
    ]);
    const { vkey } = await json(["admin", "--data", dataDir, "log", "key"]);
    assert.equal(add.logKey, vkey);
    assert.ok(out.includes(String(vkey)), "valise serve printed the same log key");
    assert.deepEqual(add.witnesses, []);
    assert.equal(add.quorum, 0);
    assert.match(String(add.transparency), /quorum 0/);
    assert.equal(typeof add.enrollmentCode, "string");

    // Witnesses from flags (URL=VKEY as for valise serve, or a bare VKEY) or VALISE_WITNESSES; quorum defaults to all.
    const wkey = formatCosignatureVerifierKey("witness.example", new Uint8Array(32).fill(9));
    const code2 = await json([
      "admin",
      "--data",
      dataDir,
      "user",
      "code",
      "jnovak",
      "--witness",
      `https://w.example=${wkey}`,
    ]);
    assert.deepEqual([code2.witnesses, code2.quorum], [[wkey], 1]);

    // Enroll with the bundle file: the profile pins the anchors.
    const bundleFile = join(dir, "jnovak.json");
    writeFileSync(bundleFile, JSON.stringify(add));
    const p1 = join(dir, "laptop");
    const e1 = await json(["enroll", "--server", url, "--bundle", bundleFile, "--profile", p1, "--name", "laptop"]);
    assert.equal(e1.keyTransparency, true);
    const profile = JSON.parse(readFileSync(join(p1, "profile.json"), "utf8")) as { trust: unknown };
    assert.deepEqual(profile.trust, { logKey: vkey, witnesses: [], quorum: 0 });
    const d1 = await json(["devices", "--profile", p1]);
    assert.equal(d1.verified, true);
    assert.deepEqual(
      (d1.devices as { name: string; self: boolean }[]).map((d) => [d.name, d.self]),
      [["laptop", true]],
    );

    // A second device with an inline bundle (code2 requires a witness the server does not have: refused, code kept).
    await assert.rejects(
      valise([
        "enroll",
        "--server",
        url,
        "--bundle",
        JSON.stringify(code2),
        "--profile",
        join(dir, "x"),
        "--name",
        "x",
      ]),
      /does not verify with the enrollment bundle/,
    );
    const phoneBundle = { ...code2, witnesses: [], quorum: 0 };
    const e2 = await json([
      "enroll",
      "--server",
      url,
      "--bundle",
      JSON.stringify(phoneBundle),
      "--profile",
      join(dir, "phone"),
      "--name",
      "phone",
    ]);
    const phoneId = String(e2.device);

    // The laptop's sync reports it once the server's checkpoint covers it.
    let alert: { text: string } | undefined;
    for (let i = 0; i < 40 && !alert; i++) {
      const s = await json(["sync", "--profile", p1]);
      alert = (s.items as { type: string; text: string }[]).find((x) => x.type === "alert" && x.text.includes(phoneId));
      if (!alert) await sleep(150);
    }
    assert.ok(alert, "sync surfaced the new device");
    assert.match(alert.text, /New device added to your account: phone/);
    const d2 = await json(["devices", "--profile", p1, "--ack", phoneId]);
    assert.ok((d2.alerts as { device: string; acked: boolean }[]).every((a) => a.acked));
    assert.ok((d2.devices as { expected: boolean }[]).every((d) => d.expected));

    // The code alone pins the server's log key on first use (and says so): key transparency from then on.
    const code4 = await json(["admin", "--data", dataDir, "user", "code", "jnovak"]);
    const r = await valise([
      "enroll",
      "--server",
      url,
      "--code",
      String(code4.enrollmentCode),
      "--profile",
      join(dir, "old"),
      "--json",
    ]);
    const enrolled = JSON.parse(r.stdout) as { keyTransparency: boolean; pinnedOnFirstUse: boolean };
    assert.deepEqual([enrolled.keyTransparency, enrolled.pinnedOnFirstUse], [true, true]);
    assert.match(r.stderr, /no --bundle: pinned the server's directory log key on first use/);
    const pinned = JSON.parse(readFileSync(join(dir, "old", "profile.json"), "utf8")) as {
      trust: { logKey: string; firstUse: boolean };
    };
    assert.deepEqual([pinned.trust.logKey, pinned.trust.firstUse], [vkey, true]);
    // The first-use device monitors like the others: it is told of the account's devices from its own entry on.
    const dev = await json(["devices", "--profile", join(dir, "old")]);
    assert.equal(dev.verified, true);
  },
);

test("bundle trust anchors from the environment; bad bundles are refused with the reason", () => {
  const { vkey } = generateNoteKey("valise.example/directory");
  const w1 = formatCosignatureVerifierKey("w1.example", new Uint8Array(32).fill(1));
  const w2 = formatCosignatureVerifierKey("w2.example", new Uint8Array(32).fill(2));
  const t = bundleTrust(vkey, {}, { VALISE_WITNESSES: `https://w1.example/=${w1}, ${w2}`, VALISE_WITNESS_QUORUM: "1" });
  assert.deepEqual([t.logKey, t.witnesses, t.quorum], [vkey, [w1, w2], 1]);
  assert.match(t.note, /1 of these 2 witnesses/);
  assert.equal(bundleTrust(vkey, {}, {}).quorum, 0);
  assert.throws(() => bundleTrust(vkey, { quorum: "3" }, { VALISE_WITNESSES: w1 }), /quorum/);
  assert.throws(() => bundleTrust(vkey, { witness: ["https://x.example=nope"] }, {}), /not a witness verifier key/);
  const ok = readBundle(JSON.stringify({ enrollmentCode: "ABCDE-FGHIJ", logKey: vkey, witnesses: [w1], quorum: 1 }));
  assert.equal(ok.enrollmentCode, "ABCDE-FGHIJ");
  const bad = (b: unknown) => () => readBundle(JSON.stringify(b));
  assert.throws(bad({ logKey: "nope" }), (e) => isValiseError(e) && /logKey/.test(e.message));
  assert.throws(bad({ logKey: vkey, witnesses: [w1], quorum: 2 }), /quorum/);
  assert.throws(bad({ logKey: vkey, witnesses: [vkey] }), /witness/);
});
