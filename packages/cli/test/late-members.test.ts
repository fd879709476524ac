/**
 * Issue 14 part 2, keys for members who join later, against `valise serve` with the CLI as separate processes
 * (profiles enrolled with the bundle: the directory comes from the witnessed log):
 *  - a user created in a unit after two of its cables, and a user posted to it (member add), open both once a
 *    member's device has synced — after a restart (SIGKILL) of the server between the cables and that sync (it adds them to the unit's groups and forwards the keys, audited as a key forward);
 *  - a user whose clearance is below a cable's label never receives its key and is told nobody will send it
 *    (no "yet"); before the forward, the late member is told who can send it;
 *  - forged forwards from a modified client (the SDK on a member's profile) are refused and alerted: for another
 *    unit, from a user the log does not show as a member of the item's units, with a wrong key or subject, and a
 *    forward that would replace an original's metadata; the originals stay readable.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execFile } from "node:child_process";
import { ValiseClient, type CablePayload, type DocumentPayload } from "@valise/client";
import { FileKeyStore } from "@valise/client/node/file-store";
import { nodeStreamCipher } from "@valise/client/node/docstream";
import { parseAuditEvent, toBase64 } from "@valise/core";
import { openStore } from "@valise/server";
import { CLI, cliEnv, runCli, startServeProcess } from "./cli-process.js";

const dir = mkdtempSync(join(tmpdir(), "valise-late-"));
const dataDir = join(dir, "data");
let stopServer = () => {};
after(() => {
  stopServer();
  rmSync(dir, { recursive: true, force: true });
});

const profile = (h: string) => join(dir, h);
function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { timeout: 120_000, env: cliEnv() }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, stdout, stderr });
    });
  });
}
async function json<T = Record<string, unknown>>(args: string[]): Promise<T> {
  const r = await run([...args, "--json"]);
  assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}
type Item = { type: string; from: string; text: string; reference?: string; id?: string };
const sync = async (h: string) => (await json<{ items: Item[] }>(["sync", "--profile", profile(h)])).items;
const show = (h: string, ref: string) => run(["cable", "show", "--profile", profile(h), ref, "--json"]);
const admin = (...a: string[]) => json(["admin", "--data", dataDir, ...a]);

let url = "";
let server: Awaited<ReturnType<typeof startServeProcess>> | undefined;
async function enroll(handle: string, unit: string, clearance: string): Promise<void> {
  const bundle = await admin("user", "add", handle, "--unit", unit, "--clearance", clearance);
  const file = join(dir, `${handle}.json`);
  writeFileSync(file, JSON.stringify(bundle));
  await runCli(["enroll", "--server", url, "--bundle", file, "--profile", profile(handle), "--name", "laptop"]);
}

let ready: Promise<void> | null = null;
const setUp = () =>
  (ready ??= (async () => {
    await admin("unit", "add", "HQ/ASIA-1", "--max-label", "SECRET/ASIA");
    await admin("unit", "add", "EMB/BEIJING", "--max-label", "SECRET/ASIA");
    await admin("unit", "add", "EMB/TOKYO", "--max-label", "SECRET/ASIA");
    server = await startServeProcess(dataDir);
    stopServer = () => server?.kill();
    url = server.url;
    await enroll("jnovak", "HQ/ASIA-1", "SECRET/ASIA");
    await enroll("pdvorak", "EMB/BEIJING", "SECRET/ASIA");
    await enroll("ksvoboda", "EMB/TOKYO", "SECRET/ASIA");
    await enroll("mcerny", "HQ/ASIA-1", "SECRET/ASIA");
  })());

const cable = (label: string, subject: string, action = "EMB/BEIJING") =>
  json<{ reference: string; id: string }>([
    "cable",
    "send",
    "--profile",
    profile("jnovak"),
    "--action",
    action,
    "--precedence",
    "IMMEDIATE",
    "--label",
    label,
    "--subject",
    subject,
    "--body",
    `body of ${subject}`,
  ]);

let conf: { reference: string; id: string };
let secret: { reference: string; id: string };

test(
  "a late member, a posted member and a lower-cleared member: keys forwarded within clearance",
  { timeout: 600_000 },
  async () => {
    await setUp();
    conf = await cable("CONFIDENTIAL/ASIA", "Visa policy");
    secret = await cable("SECRET/ASIA", "Asset list");
    const first = await sync("pdvorak");
    assert.deepEqual(
      first
        .filter((i) => i.type === "cable")
        .map((i) => i.text)
        .sort(),
      ["Asset list", "Visa policy"],
    );

    // After both cables: a new user at SECRET/ASIA, a new user at CONFIDENTIAL/ASIA, a posting (member add).
    await enroll("late1", "EMB/BEIJING", "SECRET/ASIA");
    await enroll("low1", "EMB/BEIJING", "CONFIDENTIAL/ASIA");
    await admin("unit", "member", "add", "EMB/BEIJING", "ksvoboda");

    // Before any member synced: the late member is told who can send the key ("yet"); the lower-cleared one that
    // nobody will (no "yet").
    const before = await show("late1", conf.reference);
    assert.equal(before.code, 1);
    assert.match(before.stderr, /no key for cable .* yet: .*pdvorak.* can forward it/s);
    const low = await show("low1", secret.reference);
    assert.equal(low.code, 1);
    // The server does not even show this cable to someone not cleared for it; nothing says "yet".
    assert.match(low.stderr, /your clearance does not cover cable/);
    assert.doesNotMatch(low.stderr, /\byet\b/);

    // Through a restart of the server (issue 14 item 4): killed (SIGKILL) and started again on its data directory
    // and port; everything the forwards need is in the database.
    const old = server!;
    const exited = new Promise((r) => old.child.once("exit", r));
    old.kill();
    await exited;
    server = await startServeProcess(dataDir, [], {}, old.port);
    assert.equal(server.url, url);

    // A member's device syncs: it adds them to the groups that carried the cables and forwards what each may read.
    await sync("pdvorak");

    const late = await sync("late1");
    assert.deepEqual(
      late
        .filter((i) => i.type === "cable")
        .map((i) => i.text)
        .sort(),
      ["Asset list", "Visa policy"],
    );
    assert.deepEqual(
      late.filter((i) => i.type === "alert"),
      [],
    );
    for (const [c, subject] of [
      [conf, "Visa policy"],
      [secret, "Asset list"],
    ] as const) {
      const r = await show("late1", c.reference);
      assert.equal(r.code, 0, r.stderr);
      const o = JSON.parse(r.stdout) as { subject: string; body: string };
      assert.equal(o.subject, subject);
      assert.equal(o.body, `body of ${subject}`);
    }

    const posted = await sync("ksvoboda");
    assert.deepEqual(
      posted
        .filter((i) => i.type === "cable")
        .map((i) => i.text)
        .sort(),
      ["Asset list", "Visa policy"],
    );
    assert.equal((await show("ksvoboda", secret.reference)).code, 0);

    const lowItems = await sync("low1");
    assert.deepEqual(
      lowItems.filter((i) => i.type === "cable").map((i) => i.text),
      ["Visa policy"],
    );
    assert.equal((await show("low1", conf.reference)).code, 0);
    const still = await show("low1", secret.reference);
    assert.equal(still.code, 1);
    assert.match(still.stderr, /your clearance does not cover cable/);
    const lowClient = await ValiseClient.open({ store: new FileKeyStore(profile("low1")), cipher: nodeStreamCipher() });
    assert.equal(lowClient.cableKey(secret.id), null, "the SECRET cable's key never reached the CONFIDENTIAL member");
    assert.ok(lowClient.cableKey(conf.id));

    // The forwards are audited: message.send events whose client field names the key forward and its recipient.
    const store = await openStore({ dataDir });
    try {
      const events = (await store.audit.entries(0, await store.audit.size())).flatMap((d) => {
        const p = parseAuditEvent(d);
        return p.ok ? [p.event] : [];
      });
      const fwd = events.filter((e) => e.action === "message.send" && /key-forward/.test(e.client ?? ""));
      const to = (h: string) => fwd.filter((e) => (e.client ?? "").endsWith(`to=${h}`));
      assert.ok(to("late1").length >= 2, "two forwards to late1 (CONFIDENTIAL and SECRET groups)");
      assert.ok(to("ksvoboda").length >= 2);
      assert.equal(to("low1").length, 1, "low1 is only in the CONFIDENTIAL group");
      for (const e of fwd) assert.equal(e.actor, "pdvorak");
      assert.ok(to("low1").every((e) => e.label === "CONFIDENTIAL/ASIA"));
    } finally {
      await store.close();
    }
  },
);

test("forged forwards are refused and alerted; the originals stay", { timeout: 600_000 }, async () => {
  await setUp();
  assert.ok(conf && secret, "runs after the first test");
  // A cable for Tokyo only, and a document shared with Beijing by pdvorak (mcerny, HQ/ASIA-1, holds neither key).
  const tokyo = await cable("CONFIDENTIAL/ASIA", "Tokyo only", "EMB/TOKYO");
  const file = join(dir, "minutes.txt");
  writeFileSync(file, "minutes of the meeting");
  const doc = await json<{ id: string; version: number }>([
    "doc",
    "put",
    "--profile",
    profile("pdvorak"),
    "--to",
    "EMB/BEIJING",
    "--label",
    "CONFIDENTIAL/ASIA",
    file,
  ]);

  // mcerny's modified client (he is in HQ/ASIA-1, so in the link group HQ/ASIA-1 → EMB/BEIJING, and holds the
  // CONFIDENTIAL cable's key as any member of it does): he adds late2 to that group himself and, instead of the
  // honest forward, sends forged ones.
  const m = await ValiseClient.open({ store: new FileKeyStore(profile("mcerny")), cipher: nodeStreamCipher() });
  await m.sync(); // joins the groups he was added to; then late2 arrives
  await enroll("late2", "EMB/BEIJING", "SECRET/ASIA");
  const link = m
    .conversationList()
    .find((c) => c.kind === "link" && c.unit === "EMB/BEIJING" && c.label === "CONFIDENTIAL/ASIA");
  assert.ok(link, "mcerny is in the HQ/ASIA-1 → EMB/BEIJING link group");
  await m.syncConversation(link.id);
  await m.reconcile(link.id);
  assert.ok(m.conversationMembers(link.id).some((x) => x.user === "late2"));
  const key = m.cableKey(conf.id);
  assert.ok(key, "mcerny holds the real key");
  const rec = await m.transport.cable(conf.id);
  const real: CablePayload = {
    t: "cable",
    id: rec.id,
    reference: rec.reference,
    originator: rec.originator,
    precedence: rec.precedence,
    label: rec.label,
    action: rec.action,
    info: rec.info,
    corrects: rec.corrects,
    subject: "Visa policy",
    blob: rec.blob,
    size: rec.size,
    key,
    sender: rec.sender,
    senderDevice: rec.senderDevice,
  };
  const randomKey = () => toBase64(globalThis.crypto.getRandomValues(new Uint8Array(32)));
  const t = await m.transport.cable(tokyo.id);
  const tokyoCopy: CablePayload = {
    ...real,
    id: t.id,
    reference: t.reference,
    action: t.action,
    info: t.info,
    blob: t.blob,
    size: t.size,
    subject: "Tokyo only",
    key: randomKey(),
  };
  const s = await m.transport.cable(secret.id);
  const secretCopy: CablePayload = {
    ...real,
    id: s.id,
    reference: s.reference,
    label: s.label,
    blob: s.blob,
    size: s.size,
    subject: "Asset list",
    key: randomKey(),
  };
  // (mcerny may not even read the document's record: he takes it from pdvorak's profile, as an insider could.)
  const pd = await ValiseClient.open({ store: new FileKeyStore(profile("pdvorak")), cipher: nodeStreamCipher() });
  await pd.login();
  const d = await pd.transport.document(doc.id);
  const v = d.versions[0]!;
  const docCopy: DocumentPayload = {
    t: "doc",
    id: d.id,
    version: v.version,
    label: d.label,
    name: "minutes.txt",
    size: 22,
    blob: v.blob,
    key: randomKey(),
    to: d.to,
    sender: v.createdBy,
    senderDevice: rec.senderDevice,
  };
  await m.sendPayload(link.id, {
    t: "fwd",
    to: "late2",
    cables: [
      tokyoCopy, // for another unit
      secretCopy, // above the group's label
      { ...real, key: randomKey() }, // a key that does not open it
      { ...real, precedence: "FLASH" }, // the server's record differs (metadata replaced)
      { ...real, subject: "Cancelled" }, // the subject inside differs
    ],
    documents: [docCopy], // a unit mcerny is not a member of
  });
  // late1 holds the original: a copy with another subject must not replace it.
  await m.sendPayload(link.id, { t: "fwd", to: "late1", cables: [{ ...real, subject: "Cancelled" }], documents: [] });
  await m.save();

  // pdvorak's device sees late2 added (by mcerny) and forwards the real keys; the next sync of late2 gets both.
  await sync("pdvorak");
  const items = await sync("late2");
  const alerts = items.filter((i) => i.type === "alert").map((i) => i.text);
  const all = alerts.join("\n");
  assert.equal(
    all.match(/: it is not addressed to EMB\/BEIJING \(or is above CONFIDENTIAL\/ASIA\): refused/g)?.length,
    2,
    all,
  );
  for (const re of [
    /the key does not open the cable/,
    /differs from what its sender signed: precedence/,
    /the subject differs from the one inside the cable/,
    /does not show mcerny as a cleared member/,
  ])
    assert.match(all, re);
  assert.equal(alerts.length, 6, all);
  for (const a of alerts) assert.match(a, /^mcerny \(device /);
  // The originals (forwarded by pdvorak) are readable.
  assert.deepEqual(
    items
      .filter((i) => i.type === "cable")
      .map((i) => i.text)
      .sort(),
    ["Asset list", "Visa policy"],
  );
  const ok = await show("late2", conf.reference);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal((JSON.parse(ok.stdout) as { subject: string }).subject, "Visa policy");
  const got = await run(["doc", "get", "--profile", profile("late2"), doc.id, "--out", join(dir, "got.txt"), "--json"]);
  assert.equal(got.code, 0, got.stderr);
  assert.equal(readFileSync(join(dir, "got.txt"), "utf8"), "minutes of the meeting");

  // late1 held the original: the copy with another subject is refused, named, and the original kept.
  const items1 = await sync("late1");
  assert.ok(
    items1.some((i) => i.type === "alert" && /^mcerny .*differs from the copy this device holds/.test(i.text)),
    JSON.stringify(items1),
  );
  const r1 = await show("late1", conf.reference);
  assert.equal((JSON.parse(r1.stdout) as { subject: string }).subject, "Visa policy");
});

test(
  "a user's new device gets the keys of earlier cables only once one of their devices approves it",
  { timeout: 600_000 },
  async () => {
    await setUp();
    assert.ok(conf && secret, "runs after the first test");
    // pdvorak's second device, enrolled after both cables.
    const bundle = await admin("user", "code", "pdvorak");
    const file = join(dir, "pdvorak-phone.json");
    writeFileSync(file, JSON.stringify(bundle));
    const phone = profile("pdvorak-phone");
    await runCli(["enroll", "--server", url, "--bundle", file, "--profile", phone, "--name", "phone"]);
    const phoneId = (
      await json<{ devices: { id: string; self: boolean }[] }>(["devices", "--profile", phone])
    ).devices.find((d) => d.self)!.id;
    // Someone writes to the unit groups: the phone is added (membership follows the directory) but gets no old key.
    await json(["send", "--profile", profile("jnovak"), "--to", "pdvorak", "hello"]);
    await sync("pdvorak");
    await sync("late1");
    const unapproved = await sync("pdvorak-phone");
    assert.deepEqual(
      unapproved.filter((i) => i.type === "cable"),
      [],
    );
    const refused = await run(["cable", "show", "--profile", phone, conf.reference, "--json"]);
    assert.equal(refused.code, 1, "no key without approval");

    // Another user cannot approve it (not their device); pdvorak's laptop can.
    const other = await run(["devices", "approve", phoneId, "--profile", profile("late1"), "--json"]);
    assert.equal(other.code, 1);
    const t0 = performance.now();
    const approved = await run(["devices", "approve", phoneId, "--profile", profile("pdvorak"), "--json"]);
    assert.equal(approved.code, 0, approved.stderr);
    assert.match(approved.stderr, /key transfers sent/);
    const a = JSON.parse(approved.stdout) as { keys: number; conversations: number };
    assert.ok(a.keys >= 2);
    const items = await sync("pdvorak-phone");
    const ms = performance.now() - t0;
    assert.deepEqual(
      items
        .filter((i) => i.type === "cable")
        .map((i) => i.text)
        .sort(),
      ["Asset list", "Visa policy"],
    );
    assert.deepEqual(
      items.filter((i) => i.type === "alert"),
      [],
    );
    const r = await run(["cable", "show", "--profile", phone, secret.reference, "--json"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as { subject: string }).subject, "Asset list");
    console.log(
      `# approve + sync of the new device: ${a.keys} keys in ${a.conversations} conversations, ${ms.toFixed(0)} ms`,
    );
  },
);
