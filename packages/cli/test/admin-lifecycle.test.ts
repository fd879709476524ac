/**
 * Staff lifecycle through the CLI as separate processes (issue 12), next to a running `valise serve`: the local
 * `valise admin` commands (user list/show/history/move/role/disable/enable, unit members/member add|remove/label,
 * device revoke) with --json, each change in the directory log and the audit log (actor admin-cli); errors are JSON
 * with --json and exit non-zero; the same commands over the API with an admin's profile (--profile), where the
 * server checks the role and nobody changes their own; a disabled user's profile can no longer log in; officers
 * follow the directory with `valise directory changes`.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execFile } from "node:child_process";
import { parseAuditEvent, parseDirectoryEntry, type AuditEvent, type DirectoryEntry } from "@valise/core";
import { openStore } from "@valise/server";
import { CLI, cliEnv, runCli, startServeProcess } from "./cli-process.js";

let dir: string;
let data: string;
let srv: Awaited<ReturnType<typeof startServeProcess>>;

/** Runs the CLI; resolves with exit code, stdout and stderr whatever the outcome. */
function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { timeout: 60_000, env: cliEnv() }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === "number" ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}
const admin = (...args: string[]) => run(["admin", "--data", data, ...args]);
async function ok(args: string[]): Promise<Record<string, unknown>> {
  const r = await admin(...args);
  assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

async function logAndAudit(): Promise<{ log: DirectoryEntry[]; audit: AuditEvent[] }> {
  const store = await openStore({ dataDir: data });
  try {
    const l = store.directory.log;
    const log = (await l.entries(0, await l.size())).map((d) => {
      const p = parseDirectoryEntry(d);
      assert.ok(p.ok);
      return p.entry;
    });
    const audit = (await store.audit.entries(0, await store.audit.size())).flatMap((d) => {
      const p = parseAuditEvent(d);
      return p.ok ? [p.event] : [];
    });
    return { log, audit };
  } finally {
    await store.close();
  }
}

/** Enrolls a profile for a new user through the CLI (bundle from `admin user add --json`). */
async function enrolled(handle: string, unit: string, role: string): Promise<string> {
  const bundle = await ok(["user", "add", handle, "--unit", unit, "--clearance", "SECRET", "--role", role, "--json"]);
  const file = join(dir, `${handle}.json`);
  writeFileSync(file, JSON.stringify(bundle));
  const profile = join(dir, handle);
  await runCli(["enroll", "--server", srv.url, "--bundle", file, "--profile", profile, "--name", "laptop"]);
  return profile;
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "valise-lifecycle-"));
  data = join(dir, "data");
  srv = await startServeProcess(data);
  for (const u of ["HQ/ASIA-1", "EMB/BEIJING", "EMB/TOKYO"])
    await ok(["unit", "add", u, "--max-label", "SECRET", "--json"]);
});
after(() => {
  srv?.kill();
  rmSync(dir, { recursive: true, force: true });
});

test("local admin lifecycle commands: --json output, log entries and audit events", { timeout: 300_000 }, async () => {
  await ok(["user", "add", "ksvoboda", "--unit", "EMB/TOKYO", "--clearance", "SECRET", "--json"]);
  await ok(["user", "add", "jnovak", "--unit", "HQ/ASIA-1", "--json"]);
  const before = (await logAndAudit()).log.length;

  const moved = await ok(["user", "move", "ksvoboda", "--from", "EMB/TOKYO", "--to", "HQ/ASIA-1", "--json"]);
  assert.deepEqual(moved, { handle: "ksvoboda", from: "EMB/TOKYO", to: "HQ/ASIA-1", pendingRemovals: [] });
  assert.deepEqual(await ok(["unit", "member", "add", "EMB/BEIJING", "ksvoboda", "--json"]), {
    handle: "ksvoboda",
    unit: "EMB/BEIJING",
  });
  const members = await ok(["unit", "members", "EMB/BEIJING", "--json"]);
  assert.deepEqual(
    (members.members as { handle: string }[]).map((m) => m.handle),
    ["ksvoboda"],
  );
  const removed = await ok(["unit", "member", "remove", "EMB/BEIJING", "ksvoboda", "--json"]);
  assert.deepEqual(removed.pendingRemovals, []);
  assert.deepEqual(await ok(["user", "role", "ksvoboda", "archivist", "--json"]), {
    handle: "ksvoboda",
    role: "archivist",
    changed: true,
  });
  assert.deepEqual(await ok(["unit", "label", "EMB/TOKYO", "CONFIDENTIAL/ASIA", "--json"]), {
    unit: "EMB/TOKYO",
    maxLabel: "CONFIDENTIAL/ASIA",
  });
  const off = await ok(["user", "disable", "ksvoboda", "--json"]);
  assert.deepEqual(off, { handle: "ksvoboda", revokedDevices: [], pendingRemovals: [] });
  const listed = await ok(["user", "list", "--json"]);
  assert.deepEqual(
    (listed.users as { handle: string; units: string[]; role: string; disabled: boolean }[]).map((u) => [
      u.handle,
      u.units,
      u.role,
      u.disabled,
    ]),
    [
      ["jnovak", ["HQ/ASIA-1"], "user", false],
      ["ksvoboda", ["HQ/ASIA-1"], "archivist", true],
    ],
  );
  const shown = await ok(["user", "show", "ksvoboda", "--json"]);
  assert.equal(shown.disabled, true);
  const human = await admin("user", "list", "--unit", "HQ/ASIA-1");
  assert.equal(human.code, 0, human.stderr);
  assert.match(human.stdout, /^ksvoboda\tarchivist\tSECRET\tHQ\/ASIA-1\tDISABLED\t0 device\(s\)$/m);
  await ok(["user", "enable", "ksvoboda", "--json"]);

  const history = await ok(["user", "history", "ksvoboda", "--json"]);
  assert.deepEqual(
    (history.history as { type: string }[]).map((h) => h.type),
    [
      "user.add",
      "member.remove",
      "member.add",
      "member.add",
      "member.remove",
      "user.role",
      "user.disable",
      "user.enable",
    ],
  );
  const text = await admin("user", "history", "ksvoboda");
  assert.match(text.stdout, /^#\d+\t\S+Z\tmember\.remove\tunit=EMB\/TOKYO user=ksvoboda$/m);

  const { log, audit } = await logAndAudit();
  assert.deepEqual(
    log.slice(before).map((e) => e.type),
    [
      "member.remove",
      "member.add",
      "member.add",
      "member.remove",
      "user.role",
      "unit.label",
      "user.disable",
      "user.enable",
    ],
  );
  const mine = audit.filter((e) => e.actor === "admin-cli").map((e) => [e.action, e.object, e.unit]);
  for (const expected of [
    ["directory.unit.add", "EMB/TOKYO", "EMB/TOKYO"],
    ["directory.user.add", "ksvoboda", "EMB/TOKYO"],
    ["directory.member.remove", "ksvoboda", "EMB/TOKYO"],
    ["directory.member.add", "ksvoboda", "HQ/ASIA-1"],
    ["directory.member.add", "ksvoboda", "EMB/BEIJING"],
    ["directory.member.remove", "ksvoboda", "EMB/BEIJING"],
    ["directory.role.set", "ksvoboda", "HQ/ASIA-1"],
    ["directory.unit.label", "EMB/TOKYO", "EMB/TOKYO"],
    ["directory.user.disable", "ksvoboda", "HQ/ASIA-1"],
    ["directory.user.enable", "ksvoboda", "HQ/ASIA-1"],
  ])
    assert.ok(
      mine.some((m) => JSON.stringify(m) === JSON.stringify(expected)),
      `${JSON.stringify(expected)} in ${JSON.stringify(mine)}`,
    );
});

test("errors: JSON with --json and a non-zero exit; usage errors exit 2", { timeout: 300_000 }, async () => {
  for (const args of [
    ["user", "show", "nobody", "--json"],
    ["user", "disable", "nobody", "--json"],
    ["user", "history", "nobody", "--json"],
    ["unit", "member", "add", "HQ/NOWHERE", "jnovak", "--json"],
    ["unit", "member", "remove", "EMB/TOKYO", "jnovak", "--json"],
    ["device", "revoke", "d-nothing0001", "--json"],
  ]) {
    const r = await admin(...args);
    assert.equal(r.code, 1, args.join(" "));
    const e = JSON.parse(r.stdout) as { error: { code: string; message: string } };
    assert.equal(e.error.code, "not_found", args.join(" "));
  }
  const dup = await admin("unit", "member", "add", "HQ/ASIA-1", "jnovak", "--json");
  assert.equal(dup.code, 1);
  assert.equal((JSON.parse(dup.stdout) as { error: { code: string } }).error.code, "conflict");
  for (const args of [
    ["user", "role", "jnovak", "emperor", "--json"],
    ["user", "move", "jnovak", "--from", "HQ/ASIA-1", "--json"],
    ["unit", "member", "join", "HQ/ASIA-1", "jnovak", "--json"],
  ]) {
    const r = await admin(...args);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stdout}`);
    assert.equal((JSON.parse(r.stdout) as { error: { code: string } }).error.code, "usage");
  }
  const help = await admin("--help");
  for (const cmd of [
    "user list",
    "user history",
    "user move",
    "user role",
    "user disable",
    "user enable",
    "unit members",
    "unit member add",
    "unit member remove",
    "unit label",
  ])
    assert.ok(help.stdout.includes(cmd), cmd);
});

test(
  "over the API with --profile: admins change, nobody changes their own role, a disabled user cannot log in",
  { timeout: 400_000 },
  async () => {
    const root = await enrolled("root", "HQ/ASIA-1", "admin");
    const olga = await enrolled("olga", "HQ/ASIA-1", "officer");
    const bob = await enrolled("bob", "EMB/BEIJING", "user");

    const role = await run(["admin", "user", "role", "jnovak", "officer", "--profile", root, "--json"]);
    assert.equal(role.code, 0, role.stderr);
    assert.deepEqual(JSON.parse(role.stdout), { handle: "jnovak", role: "officer", changed: true });
    const own = await run(["admin", "user", "role", "root", "officer", "--profile", root, "--json"]);
    assert.equal(own.code, 1);
    assert.equal((JSON.parse(own.stdout) as { error: { code: string } }).error.code, "forbidden");
    const ownClearance = await run(["admin", "clearance", "set", "olga", "SECRET/ASIA", "--profile", olga, "--json"]);
    assert.equal(ownClearance.code, 1);
    assert.equal((JSON.parse(ownClearance.stdout) as { error: { code: string } }).error.code, "forbidden");
    const localOwn = await admin("clearance", "set", "olga", "SECRET/ASIA", "--officer", "olga", "--json");
    assert.equal(localOwn.code, 1);
    const byUser = await run(["admin", "user", "disable", "root", "--profile", bob, "--json"]);
    assert.equal(byUser.code, 1);
    assert.equal((JSON.parse(byUser.stdout) as { error: { code: string } }).error.code, "forbidden");
    const officerMove = await run([
      "admin",
      "user",
      "move",
      "bob",
      "--from",
      "EMB/BEIJING",
      "--to",
      "EMB/TOKYO",
      "--profile",
      olga,
      "--json",
    ]);
    assert.equal(officerMove.code, 1, "officers do not move users");

    // bob can sync; the officer disables him; his own device (a separate process) can no longer log in.
    assert.equal((await run(["sync", "--profile", bob, "--json"])).code, 0);
    const off = await run(["admin", "user", "disable", "bob", "--profile", olga, "--json"]);
    assert.equal(off.code, 0, off.stderr);
    assert.equal((JSON.parse(off.stdout) as { revokedDevices: string[] }).revokedDevices.length, 1);
    const refused = await run(["sync", "--profile", bob, "--json"]);
    assert.notEqual(refused.code, 0);
    const members = await run(["admin", "unit", "members", "EMB/BEIJING", "--profile", olga, "--json"]);
    assert.deepEqual(
      (JSON.parse(members.stdout) as { members: { handle: string; disabled: boolean }[] }).members.map((m) => [
        m.handle,
        m.disabled,
      ]),
      [["bob", true]],
    );

    // The officer's feed: every change with its index, also from an index on.
    const feed = await run(["directory", "changes", "--profile", olga, "--json"]);
    assert.equal(feed.code, 0, feed.stderr);
    const all = JSON.parse(feed.stdout) as { size: number; changes: { index: number; type: string }[] };
    assert.deepEqual(
      all.changes.map((c) => c.index),
      [...Array(all.size).keys()],
    );
    assert.deepEqual(
      all.changes.slice(-3).map((c) => c.type),
      ["user.role", "user.disable", "device.revoke"],
    );
    const tail = await run(["directory", "changes", "--profile", olga, "--after", String(all.size - 2)]);
    assert.equal(tail.code, 0, tail.stderr);
    assert.match(
      tail.stdout.trim(),
      new RegExp(`^#${all.size - 1}\\t\\S+\\tdevice\\.revoke\\tdevice=d-\\S+ user=bob$`),
    );
    const byAdmin = await run(["directory", "changes", "--profile", root, "--json"]);
    assert.equal(byAdmin.code, 0, "admins follow it too");
    const { audit } = await logAndAudit();
    assert.ok(
      audit.some((e) => e.action === "directory.user.disable" && e.actor === "olga" && e.object === "bob"),
      "the officer is the actor",
    );
    assert.ok(audit.some((e) => e.action === "directory.role.set" && e.actor === "root" && e.outcome === "denied"));

    // device revoke --json prints JSON (it printed a sentence).
    const rootUser = await ok(["user", "show", "root", "--json"]);
    const device = (rootUser.devices as { id: string }[])[0]!.id;
    assert.deepEqual(await ok(["device", "revoke", device, "--json"]), { device, revoked: true });
  },
);

test(
  "user add|code --officer: the code's issuer is audited with the enrolment (device.enrolment, issue 16)",
  { timeout: 300_000 },
  async () => {
    await ok(["user", "add", "sec9", "--unit", "HQ/ASIA-1", "--role", "officer", "--json"]);
    await ok(["user", "add", "plain9", "--unit", "HQ/ASIA-1", "--json"]);
    const bundle = await ok(["user", "add", "newbie9", "--unit", "HQ/ASIA-1", "--officer", "sec9", "--json"]);
    const file = join(dir, "newbie9.json");
    writeFileSync(file, JSON.stringify(bundle));
    await runCli([
      "enroll",
      "--server",
      srv.url,
      "--bundle",
      file,
      "--profile",
      join(dir, "newbie9"),
      "--name",
      "phone",
    ]);
    const ev = (await logAndAudit()).audit.filter((e) => e.actor === "newbie9");
    const m = ev.find((e) => e.action === "device.enrolment");
    assert.ok(m, JSON.stringify(ev));
    assert.equal(m.object, "code:sec9");
    assert.equal(m.device, m.target_device);
    assert.notEqual(m.source, "local", "the enrolling request's address");
    assert.ok(ev.some((e) => e.action === "directory.device.add" && e.target_device === m.device));
    // Only an active officer or administrator issues codes.
    for (const who of ["plain9", "nobody9"]) {
      const r = await admin("user", "code", "newbie9", "--officer", who, "--json");
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stdout + r.stderr, /not an active security officer or administrator/);
    }
  },
);
