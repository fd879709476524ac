/**
 * Issue 14 part 1 (history for a user's own new device) and issue 15 part 3 (search), with the CLI as separate
 * processes against `valise serve`:
 *  - a second device enrolled after a message and a cable shows neither (history, search, cable) until one of the
 *    user's devices approves it, then both (and the message the first device sent);
 *  - an interrupted approval leaves the new device's history marked incomplete, and running it again completes it;
 *  - a batch altered on the server (the operator flips a byte of the blob) is refused: the history says incomplete;
 *  - a revoked device is sent nothing (no manifest, no blob).
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execFile } from "node:child_process";
import { CLI, cliEnv, runCli, startServeProcess } from "./cli-process.js";

const dir = mkdtempSync(join(tmpdir(), "valise-hist-"));
const dataDir = join(dir, "data");
let stopServer = () => {};
after(() => {
  stopServer();
  rmSync(dir, { recursive: true, force: true });
});

const profile = (h: string) => join(dir, h);
function run(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { timeout: 120_000, env: cliEnv(env) }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, stdout, stderr });
    });
  });
}
async function json<T = Record<string, unknown>>(args: string[], env: NodeJS.ProcessEnv = {}): Promise<T> {
  const r = await run([...args, "--json"], env);
  assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}
type Item = { type: string; from: string; text: string };
type History = {
  conversations?: { conversation: string; count: number }[];
  messages?: { text: string; from: string; label: string; seq: number }[];
  complete: boolean;
  transfers: { complete: boolean; received: number; batches: number; refused: { why: string }[] }[];
};
const sync = async (p: string) => (await json<{ items: Item[] }>(["sync", "--profile", p])).items;
const admin = (...a: string[]) => json(["admin", "--data", dataDir, ...a]);
const allTexts = async (p: string) => {
  const h = await json<History>(["history", "--profile", p]);
  const out: string[] = [];
  for (const c of h.conversations ?? [])
    out.push(...((await json<History>(["history", c.conversation, "--profile", p])).messages ?? []).map((m) => m.text));
  return { texts: out.sort(), complete: h.complete, transfers: h.transfers };
};
const search = async (p: string, q: string) =>
  (await json<{ results: { kind: string; title: string; snippet: string }[] }>(["search", q, "--profile", p])).results;

let url = "";
async function enroll(handle: string, unit: string, p = profile(handle), code = false): Promise<string> {
  const bundle = code
    ? await admin("user", "code", handle)
    : await admin("user", "add", handle, "--unit", unit, "--clearance", "SECRET/ASIA");
  const file = join(dir, `${handle}-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(file, JSON.stringify(bundle));
  await runCli(["enroll", "--server", url, "--bundle", file, "--profile", p, "--name", "dev"]);
  return (await json<{ devices: { id: string; self: boolean }[] }>(["devices", "--profile", p])).devices.find(
    (d) => d.self,
  )!.id;
}
const newDevice = (name: string) => enroll("pdvorak", "", profile(name), true);

function blobFiles(): { path: string; mtime: number }[] {
  const out: { path: string; mtime: number }[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.push({ path: p, mtime: statSync(p).mtimeMs });
    }
  };
  walk(join(dataDir, "blobs"));
  return out;
}

let ready: Promise<void> | null = null;
const setUp = () =>
  (ready ??= (async () => {
    await admin("unit", "add", "HQ/ASIA-1", "--max-label", "SECRET/ASIA");
    await admin("unit", "add", "EMB/BEIJING", "--max-label", "SECRET/ASIA");
    const server = await startServeProcess(dataDir);
    stopServer = () => server.kill();
    url = server.url;
    await enroll("jnovak", "HQ/ASIA-1");
    await enroll("pdvorak", "EMB/BEIJING");
    await json([
      "send",
      "--profile",
      profile("jnovak"),
      "--to",
      "pdvorak",
      "--label",
      "SECRET/ASIA",
      "The Tōkyō negotiation is on",
    ]);
    await json([
      "cable",
      "send",
      "--profile",
      profile("jnovak"),
      "--action",
      "EMB/BEIJING",
      "--precedence",
      "IMMEDIATE",
      "--label",
      "CONFIDENTIAL/ASIA",
      "--subject",
      "Visa policy",
      "--body",
      "Courier arrives Thursday",
    ]);
    const items = await sync(profile("pdvorak"));
    assert.ok(items.some((i) => i.type === "message"));
    assert.ok(items.some((i) => i.type === "cable"));
    await json([
      "send",
      "--profile",
      profile("pdvorak"),
      "--to",
      "jnovak",
      "--label",
      "SECRET/ASIA",
      "Understood, thanks",
    ]);
    await json(["send", "--profile", profile("pdvorak"), "--to", "jnovak", "third message"]);
  })());

test(
  "the first device's own history and search: sync and send are recorded, sealed at rest",
  { timeout: 900_000 },
  async () => {
    await setUp();
    const h = await allTexts(profile("pdvorak"));
    assert.deepEqual(h.texts, ["The Tōkyō negotiation is on", "Understood, thanks", "third message"]);
    assert.equal(h.complete, true);
    assert.deepEqual(
      (await search(profile("pdvorak"), "tokyo nego")).map((r) => r.kind),
      ["message"],
    );
    assert.deepEqual(
      (await search(profile("pdvorak"), "visa")).map((r) => r.kind),
      ["cable"],
    );
    const raw = readFileSync(join(profile("pdvorak"), "history.sealed"));
    assert.ok(!raw.includes(Buffer.from("negotiation")) && !raw.includes(Buffer.from("Visa")), "ciphertext at rest");
  },
);

test("a new device shows neither message nor cable until approved, then both", { timeout: 900_000 }, async () => {
  await setUp();
  const phone = profile("phone");
  const phoneId = await newDevice("phone");
  await sync(phone);
  const before = await allTexts(phone);
  assert.deepEqual(before.texts, [], "an unapproved device gets nothing old");
  assert.deepEqual(await search(phone, "negotiation"), []);
  assert.equal((await run(["cable", "show", "--profile", phone, "EMB/BEIJING-0", "--json"])).code !== 0, true);

  const approved = await run(["devices", "approve", phoneId, "--profile", profile("pdvorak"), "--json"], {
    VALISE_TEST_HISTORY_BATCH: "1",
  });
  assert.equal(approved.code, 0, approved.stderr);
  assert.match(approved.stderr, /history: signed manifest sent \(3 messages\)/);
  assert.match(approved.stderr, /history: 3\/3 batches uploaded/);
  const a = JSON.parse(approved.stdout) as { history: { messages: number; batches: number } };
  assert.deepEqual([a.history.messages, a.history.batches], [3, 3]);

  const items = await sync(phone);
  assert.deepEqual(
    items.filter((i) => i.type === "cable").map((i) => i.text),
    ["Visa policy"],
  );
  assert.deepEqual(
    items.filter((i) => i.type === "alert"),
    [],
  );
  const after = await allTexts(phone);
  assert.deepEqual(after.texts, ["The Tōkyō negotiation is on", "Understood, thanks", "third message"]);
  assert.equal(after.complete, true);
  assert.deepEqual(
    after.transfers.map((t) => [t.received, t.batches, t.complete]),
    [[3, 3, true]],
  );
  assert.deepEqual(
    (await search(phone, "negotiation")).map((r) => r.kind),
    ["message"],
  );
  assert.deepEqual(
    (await search(phone, "visa")).map((r) => r.title),
    ["Visa policy"],
  );
});

test(
  "an interrupted transfer is incomplete until resumed; an altered batch is refused",
  { timeout: 900_000 },
  async () => {
    await setUp();
    // Interrupted after the first of three batches: the manifest arrived, one batch did.
    const tab = profile("tablet");
    const tabId = await newDevice("tablet");
    const cut = await run(["devices", "approve", tabId, "--profile", profile("pdvorak")], {
      VALISE_TEST_HISTORY_BATCH: "1",
      VALISE_TEST_HISTORY_STOP_AFTER: "1",
    });
    assert.equal(cut.code, 3, cut.stderr);
    await sync(tab);
    const partial = await run(["history", "--profile", tab, "--json"]);
    assert.equal(partial.code, 0, partial.stderr);
    assert.match(partial.stderr, /INCOMPLETE: 1 of 3 batches/);
    const ph = JSON.parse(partial.stdout) as History;
    assert.equal(ph.complete, false);
    const s = await run(["search", "thanks", "--profile", tab, "--json"]);
    assert.equal((JSON.parse(s.stdout) as { complete: boolean }).complete, false);
    // Run again: resumes the same transfer.
    const resumed = await json<{ history: { resumed: boolean; batches: number } }>(
      ["devices", "approve", tabId, "--profile", profile("pdvorak")],
      { VALISE_TEST_HISTORY_BATCH: "1" },
    );
    assert.equal(resumed.history.resumed, true);
    await sync(tab);
    const done = await allTexts(tab);
    assert.equal(done.complete, true);
    assert.deepEqual(done.texts, ["The Tōkyō negotiation is on", "Understood, thanks", "third message"]);

    // Altered on the server: the operator flips one byte of each batch uploaded for this device.
    const desk = profile("desk");
    const deskId = await newDevice("desk");
    const t0 = Date.now();
    await json(["devices", "approve", deskId, "--profile", profile("pdvorak")], { VALISE_TEST_HISTORY_BATCH: "1" });
    const fresh = blobFiles().filter((f) => f.mtime >= t0 - 50);
    assert.ok(fresh.length >= 3, `batches on disk: ${fresh.length}`);
    const victim = fresh[1]!.path;
    const bytes = readFileSync(victim);
    bytes[bytes.length - 40]! ^= 0x01;
    writeFileSync(victim, bytes);
    const items = await sync(desk);
    const alerts = items.filter((i) => i.type === "alert").map((i) => i.text);
    assert.equal(alerts.length, 1, JSON.stringify(alerts));
    assert.match(alerts[0]!, /batch \d of 3 (does not decrypt|does not match).*incomplete/);
    const tampered = await run(["history", "--profile", desk, "--json"]);
    assert.match(tampered.stderr, /INCOMPLETE: 2 of 3 batches/);
    assert.equal((JSON.parse(tampered.stdout) as History).complete, false);
  },
);

test("a revoked device is sent no history", { timeout: 900_000 }, async () => {
  await setUp();
  const oldId = await newDevice("old-phone");
  await admin("device", "revoke", oldId);
  const n = blobFiles().length;
  const r = await run(["devices", "approve", oldId, "--profile", profile("pdvorak"), "--json"]);
  assert.notEqual(r.code, 0);
  assert.match(r.stdout + r.stderr, /revoked/);
  assert.equal(blobFiles().length, n, "no batch was uploaded");
});
