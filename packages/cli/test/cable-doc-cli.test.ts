/**
 * The issue-3 command line, as a user runs it against `valise serve` (separate processes, SQLite data dir):
 * `valise cable send|list|show`, `valise doc put|get|list`, `valise sync` returning cables and document shares,
 * `valise admin unit add --max-label`, and `valise admin clearance set` refused unless an officer does it.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createHash, randomBytes } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCli, startServeProcess } from "./cli-process.js";

const dir = mkdtempSync(join(tmpdir(), "valise-cabledoc-"));
const dataDir = join(dir, "data");
let stopServer = () => {};
after(() => {
  stopServer();
  rmSync(dir, { recursive: true, force: true });
});

const valise = (args: string[]) => runCli(args);
async function json<T = Record<string, unknown>>(args: string[]): Promise<T> {
  return JSON.parse((await valise([...args, "--json"])).stdout) as T;
}
async function fails(args: string[]): Promise<{ code: string; stderr: string }> {
  try {
    await valise([...args, "--json"]);
  } catch (e) {
    const err = e as { stdout: string; stderr: string; code: number };
    assert.equal(err.code, 1, err.stderr);
    return { code: (JSON.parse(err.stdout) as { error: { code: string } }).error.code, stderr: err.stderr };
  }
  throw new Error(`valise ${args.join(" ")} succeeded but should have failed`);
}

test("cables and documents from the command line", { timeout: 240_000 }, async () => {
  const admin = (...a: string[]) => valise(["admin", "--data", dataDir, ...a]);
  await admin("unit", "add", "HQ/ASIA-1", "--max-label", "SECRET/ASIA");
  await admin("unit", "add", "EMB/BEIJING", "--max-label", "CONFIDENTIAL/ASIA");
  await admin("unit", "add", "EMB/TOKYO", "--max-label", "CONFIDENTIAL");
  await admin("unit", "add", "HQ/SECURITY");
  const server = await startServeProcess(dataDir);
  stopServer = () => server.kill();
  const url = server.url;
  const users: [string, string, string, string][] = [
    ["jnovak", "HQ/ASIA-1", "SECRET/ASIA", "user"],
    ["pdvorak", "EMB/BEIJING", "CONFIDENTIAL/ASIA", "user"],
    ["ksvoboda", "EMB/TOKYO", "CONFIDENTIAL", "user"],
    ["mcerny", "EMB/BEIJING", "CONFIDENTIAL", "user"],
    ["officer", "HQ/SECURITY", "SECRET", "officer"],
  ];
  const profile = (h: string) => join(dir, h);
  for (const [h, unit, clearance, role] of users) {
    const add = await json<{ enrollmentCode: string }>([
      "admin",
      "--data",
      dataDir,
      "user",
      "add",
      h,
      "--unit",
      unit,
      "--clearance",
      clearance,
      "--role",
      role,
    ]);
    await valise(["enroll", "--server", url, "--code", add.enrollmentCode, "--profile", profile(h)]);
  }

  // A cable with an attachment, ACTION Beijing, INFO Tokyo: Tokyo's unit may not carry ASIA → refused, stated.
  const att = join(dir, "annex.bin");
  const annex = randomBytes(3 * 1024 * 1024 + 17);
  writeFileSync(att, annex);
  const refused = await fails([
    "cable",
    "send",
    "--profile",
    profile("jnovak"),
    "--action",
    "EMB/BEIJING",
    "--info",
    "EMB/TOKYO",
    "--precedence",
    "IMMEDIATE",
    "--label",
    "CONFIDENTIAL/ASIA",
    "--subject",
    "s",
    "--body",
    "b",
  ]);
  assert.equal(refused.code, "not_cleared");
  const year = new Date().getUTCFullYear();
  const sent = await json<{ reference: string; id: string }>([
    "cable",
    "send",
    "--profile",
    profile("jnovak"),
    "--action",
    "EMB/BEIJING",
    "--precedence",
    "immediate",
    "--label",
    "CONFIDENTIAL/ASIA",
    "--subject",
    "Talks in Beijing",
    "--body",
    "Instructions follow.",
    "--attach",
    att,
  ]);
  assert.equal(sent.reference, `HQ/ASIA-1 ${year}/000001`);
  assert.match(sent.id, /^k-/);
  writeFileSync(join(dir, "body.txt"), "Drill at 10:00.\n");
  const flash = await json<{ reference: string }>([
    "cable",
    "send",
    "--profile",
    profile("jnovak"),
    "--action",
    "EMB/BEIJING,EMB/TOKYO",
    "--precedence",
    "FLASH",
    "--label",
    "UNCLASSIFIED",
    "--subject",
    "Evacuation drill",
    "--body-file",
    join(dir, "body.txt"),
  ]);
  assert.equal(flash.reference, `HQ/ASIA-1 ${year}/000002`);

  // Beijing's sync: cables FLASH first; list in the same order; show decrypts and saves the attachment.
  const sync = await json<{ items: { type: string; reference?: string; precedence?: string; text: string }[] }>([
    "sync",
    "--profile",
    profile("pdvorak"),
  ]);
  const cables = sync.items.filter((i) => i.type === "cable");
  assert.deepEqual(
    cables.map((c) => c.precedence),
    ["FLASH", "IMMEDIATE"],
  );
  const list = await json<{ cables: { reference: string; subject: string | null }[] }>([
    "cable",
    "list",
    "--profile",
    profile("pdvorak"),
  ]);
  assert.deepEqual(
    list.cables.map((c) => [c.reference, c.subject]),
    [
      [flash.reference, "Evacuation drill"],
      [sent.reference, "Talks in Beijing"],
    ],
  );
  const saveDir = join(dir, "saved");
  const shown = await json<{
    body: string;
    attachments: { name: string; size: number; saved?: string }[];
    receipts: { unit: string; readBy: string | null }[];
  }>(["cable", "show", sent.reference, "--profile", profile("pdvorak"), "--save-attachments", saveDir]);
  assert.equal(shown.body, "Instructions follow.");
  assert.equal(shown.attachments[0]!.name, "annex.bin");
  assert.equal(
    createHash("sha256").update(readFileSync(shown.attachments[0]!.saved!)).digest("hex"),
    createHash("sha256").update(annex).digest("hex"),
  );
  assert.equal(shown.receipts.find((r) => r.unit === "EMB/BEIJING")!.readBy, "pdvorak");
  // The uncleared colleague: not listed, and 403 on show.
  const mlist = await json<{ cables: { reference: string }[] }>(["cable", "list", "--profile", profile("mcerny")]);
  assert.deepEqual(
    mlist.cables.map((c) => c.reference),
    [flash.reference],
  );
  assert.equal((await fails(["cable", "show", sent.reference, "--profile", profile("mcerny")])).code, "not_cleared");

  // Documents: put (progress bar only on a terminal), sync shows the share, get round-trips, versions listed.
  const file = join(dir, "report.pdf");
  const content = randomBytes(2 * 1024 * 1024 + 3);
  writeFileSync(file, content);
  const put = await json<{ id: string; version: number }>([
    "doc",
    "put",
    "--profile",
    profile("jnovak"),
    "--to",
    "pdvorak",
    "--label",
    "CONFIDENTIAL/ASIA",
    file,
  ]);
  assert.match(put.id, /^f-/);
  assert.equal(put.version, 1);
  writeFileSync(file, Buffer.from("second version"));
  const put2 = await json<{ id: string; version: number }>([
    "doc",
    "put",
    "--profile",
    profile("jnovak"),
    "--doc",
    put.id,
    file,
  ]);
  assert.equal(put2.version, 2);
  const s2 = await json<{ items: { type: string; text: string }[] }>(["sync", "--profile", profile("pdvorak")]);
  assert.deepEqual(
    s2.items.filter((i) => i.type === "document").map((i) => i.text),
    ["report.pdf", "report.pdf"],
  );
  const out1 = join(dir, "out-v1.pdf");
  await json(["doc", "get", put.id, "--version", "1", "--out", out1, "--profile", profile("pdvorak")]);
  assert.ok(readFileSync(out1).equals(content));
  const out2 = join(dir, "out-v2.pdf");
  await json(["doc", "get", put.id, "--out", out2, "--profile", profile("pdvorak")]);
  assert.equal(readFileSync(out2, "utf8"), "second version");
  const docs = await json<{ documents: { id: string; name: string; versions: { version: number }[] }[] }>([
    "doc",
    "list",
    "--profile",
    profile("pdvorak"),
  ]);
  const d = docs.documents.find((x) => x.id === put.id)!;
  assert.equal(d.name, "report.pdf");
  assert.deepEqual(
    d.versions.map((v) => v.version),
    [1, 2],
  );

  // Clearances: only an officer; the admin CLI must name one.
  assert.equal(
    (await fails(["admin", "clearance", "set", "pdvorak", "CONFIDENTIAL", "--profile", profile("jnovak")])).code,
    "forbidden",
  );
  assert.equal(
    (await fails(["admin", "--data", dataDir, "clearance", "set", "pdvorak", "CONFIDENTIAL", "--officer", "jnovak"]))
      .code,
    "forbidden",
  );
  const set = await json<{ clearance: string; pendingRemovals: { conversation: string }[] }>([
    "admin",
    "clearance",
    "set",
    "pdvorak",
    "CONFIDENTIAL",
    "--profile",
    profile("officer"),
  ]);
  assert.equal(set.clearance, "CONFIDENTIAL");
  assert.ok(set.pendingRemovals.length >= 1, "pdvorak's ASIA groups are pending removal");
  assert.equal((await fails(["cable", "show", sent.reference, "--profile", profile("pdvorak")])).code, "not_cleared");
});
