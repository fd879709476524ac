/**
 * TransparencyVerifier against a scripted server (no network): an in-memory directory log whose answers the tests
 * corrupt one way at a time. Complements the system tests in packages/cli/test/malicious-server.test.ts with the
 * cases a real server cannot easily be made to produce: entries that do not hash to the checkpoint, a bad inclusion
 * proof, a non-canonical entry, a truncated bundle, tile boundaries.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  consistencyProof,
  cosignatureSigner,
  encodeDirectoryEntry,
  formatCheckpoint,
  formatCosignatureVerifierKey,
  generateNoteKey,
  inclusionProof,
  leafHash,
  leafHashReader,
  parseDirectoryEntry,
  parseNoteSignerKey,
  parseVerifierKeyParts,
  rootFromLeafHashes,
  signNote,
  systemClock,
  toBase64,
  utf8,
  type DeviceId,
  type DirectoryEntry,
  type UserHandle,
} from "@valise/core";
import {
  TransparencyVerifier,
  tileIndexPath,
  type HttpTransport,
  type TransparencyOptions,
  type ProfileState,
  type ServerUser,
} from "../src/index.js";

const ORIGIN = "unit.valise.example/directory";
const log = generateNoteKey(ORIGIN);
const logSigner = parseNoteSignerKey(log.skey);
const wSeed = new Uint8Array(32).fill(5);
const wName = "w.unit.example";
const witness = {
  vkey: formatCosignatureVerifierKey(wName, parseVerifierKeyParts(generateNoteKey(wName, wSeed).vkey).publicKey),
  signer: cosignatureSigner(wName, wSeed, systemClock),
};
const key = (n: number) => new Uint8Array(32).fill(n);

/** A scripted server over an in-memory log; `lie` hooks corrupt one answer kind. */
class FakeServer {
  entries: Uint8Array[] = [];
  published = 0;
  lie: {
    bundle?: (b: Uint8Array) => Uint8Array;
    proof?: (p: Uint8Array[]) => Uint8Array[];
    checkpoint?: () => string;
    user?: (u: ServerUser) => ServerUser;
    members?: (unit: string, members: string[]) => string[];
  } = {};
  add(e: DirectoryEntry): number {
    this.entries.push(encodeDirectoryEntry(e));
    return this.entries.length - 1;
  }
  addRaw(b: Uint8Array): void {
    this.entries.push(b);
  }
  publish(): void {
    this.published = this.entries.length;
  }
  private hashes(n: number) {
    return this.entries.slice(0, n).map((e) => leafHash(e));
  }
  note(size = this.published, root = rootFromLeafHashes(this.hashes(size))): string {
    return signNote(formatCheckpoint({ origin: ORIGIN, size, rootHash: root, extensions: [] }), [
      logSigner,
      witness.signer,
    ]);
  }
  transport(): HttpTransport {
    const t = {
      logCheckpoint: async () => (this.lie.checkpoint ? this.lie.checkpoint() : this.note()),
      logConsistencyProof: async (a: number, b: number) => consistencyProof(leafHashReader(this.hashes(b)), a, b),
      logInclusionProof: async (i: number, n: number) => {
        const p = inclusionProof(leafHashReader(this.hashes(n)), i, n);
        return this.lie.proof ? this.lie.proof(p) : p;
      },
      logEntry: async (i: number) => this.entries[i]!,
      logEntryBundle: async (tile: number, width: number) => {
        const es = this.entries.slice(tile * 256, tile * 256 + width);
        const out = new Uint8Array(es.reduce((n, e) => n + 2 + e.length, 0));
        let at = 0;
        for (const e of es) {
          out[at] = e.length >> 8;
          out[at + 1] = e.length & 255;
          out.set(e, at + 2);
          at += 2 + e.length;
        }
        return this.lie.bundle ? this.lie.bundle(out) : out;
      },
      unitMembers: async (unit: string) => {
        const members = this.entries
          .map((b) => JSON.parse(new TextDecoder().decode(b)) as DirectoryEntry)
          .reduce((m, e) => {
            if (e.type === "user.add" && e.units.includes(unit)) m.add(e.user);
            if (e.type === "member.add" && e.unit === unit) m.add(e.user);
            if ((e.type === "member.remove" && e.unit === unit) || e.type === "user.disable") m.delete(e.user);
            return m;
          }, new Set<string>());
        const list = [...members].sort();
        return { unit, members: this.lie.members ? this.lie.members(unit, list) : list };
      },
      user: async (handle: string): Promise<ServerUser> => {
        const u = this.userOf(handle);
        return this.lie.user ? this.lie.user(u) : u;
      },
    };
    return t as unknown as HttpTransport;
  }
  /** The honest directory answer, derived from the log. */
  userOf(handle: string): ServerUser {
    const u: ServerUser = { handle, units: [], clearance: "", role: "user", devices: [] };
    this.entries.forEach((b, i) => {
      const e = JSON.parse(new TextDecoder().decode(b)) as DirectoryEntry;
      if (!("user" in e) || e.user !== handle) return;
      if (e.type === "user.add" || e.type === "user.clearance") {
        u.clearance = e.clearance;
        u.clearanceLogIndex = i;
      }
      if (e.type === "user.add") {
        u.units = [...e.units];
        u.role = e.role;
      }
      if (e.type === "member.add") u.units = [...u.units, e.unit].sort();
      if (e.type === "member.remove") u.units = u.units.filter((x) => x !== e.unit);
      if (e.type === "user.role") u.role = e.role;
      if (e.type === "user.disable" || e.type === "user.enable") u.disabled = e.type === "user.disable";
      if (e.type === "device.add")
        u.devices.push({
          id: e.device,
          name: e.name,
          signaturePublicKey: e.key,
          createdAt: e.time,
          revokedAt: null,
          logIndex: i,
          revokeLogIndex: null,
        });
      if (e.type === "device.revoke") {
        const d = u.devices.find((x) => x.id === e.device)!;
        d.revokedAt = e.time;
        d.revokeLogIndex = i;
      }
    });
    return u;
  }
}

function profile(handle: string, device: string, k: Uint8Array, quorum = 1): ProfileState {
  return {
    version: 1,
    serverUrl: "http://fake",
    handle,
    deviceId: device,
    deviceName: "x",
    signaturePublicKey: toBase64(k),
    signaturePrivateKey: "",
    keyPackages: [],
    inboxCursor: 0,
    conversations: {},
    pending: [],
    session: null,
    trust: { logKey: log.vkey, witnesses: [witness.vkey], quorum },
  };
}

const cred = (user: string, device: string, k: Uint8Array) => ({
  user: user as UserHandle,
  device: device as DeviceId,
  signaturePublicKey: k,
});

function world(opts: TransparencyOptions = {}) {
  const s = new FakeServer();
  s.add({ v: 1, type: "unit.add", unit: "HQ/A", maxLabel: "SECRET", time: 1 });
  s.add({ v: 1, type: "user.add", user: "ann", units: ["HQ/A"], clearance: "SECRET", role: "user", time: 2 });
  s.add({ v: 1, type: "user.add", user: "bob", units: ["HQ/A"], clearance: "SECRET", role: "user", time: 3 });
  s.add({
    v: 1,
    type: "device.add",
    user: "ann",
    device: "d-ann00001",
    name: "laptop",
    key: toBase64(key(1)),
    time: 4,
  });
  s.add({ v: 1, type: "device.add", user: "bob", device: "d-bob00001", name: "desk", key: toBase64(key(2)), time: 5 });
  s.publish();
  const v = new TransparencyVerifier(s.transport(), profile("ann", "d-ann00001", key(1)), {
    pollMs: 1,
    maxWaitMs: 50,
    settleMs: 20,
    ...opts,
  });
  return { s, v };
}

test("tile index paths follow C2SP tlog-tiles", () => {
  assert.equal(tileIndexPath(0), "000");
  assert.equal(tileIndexPath(1234067), "x001/x234/067");
  assert.equal(tileIndexPath(1000), "x001/000");
});

test("an honest log: logged devices pass; another key, an unlogged or revoked device fail", async () => {
  const { s, v } = world();
  assert.deepEqual(await v.verifyDevice(cred("bob", "d-bob00001", key(2))), { ok: true });
  assert.match(
    (await v.verifyDevice(cred("bob", "d-bob00001", key(9)))).ok ? "" : "different key in the directory log",
    /different key/,
  );
  s.lie.user = (u) => ({
    ...u,
    devices: [...u.devices, { ...u.devices[0]!, id: "d-bob00002", logIndex: null }],
  });
  v.forget();
  const ghost = await v.verifyDevice(cred("bob", "d-bob00002", key(3)));
  assert.ok(!ghost.ok && /not in the directory log/.test(ghost.reason));
  s.lie = {};
  s.add({ v: 1, type: "device.revoke", user: "bob", device: "d-bob00001", time: 6 });
  s.publish();
  v.forget();
  const r = await v.verifyDevice(cred("bob", "d-bob00001", key(2)));
  assert.ok(!r.ok && /revoked/.test(r.reason), JSON.stringify(r));
});

test("entries that do not hash to the checkpoint root are refused, and nothing is accepted", async () => {
  const { s, v } = world();
  s.lie.bundle = (b) => {
    const c = b.slice();
    c[c.length - 3] = c[c.length - 3]! ^ 1; // a changed byte in the last entry (still JSON? maybe not: either way refused)
    return c;
  };
  await assert.rejects(v.refresh(true), /do not hash to the root|not a canonical entry/);
  assert.equal(v.state.checkpoint, null);
  // Swap two entries: every entry canonical, the root wrong.
  s.lie.bundle = undefined;
  const [a, b] = [s.entries[3]!, s.entries[4]!];
  s.entries[3] = b;
  s.entries[4] = a;
  s.lie.checkpoint = () => {
    s.entries[3] = a;
    s.entries[4] = b;
    const n = s.note();
    s.entries[3] = b;
    s.entries[4] = a;
    return n;
  };
  await assert.rejects(v.refresh(true), /do not hash to the root/);
  assert.equal(v.state.checkpoint, null);
});

test("a truncated bundle, a non-canonical entry: refused", async () => {
  const { s, v } = world();
  s.lie.bundle = (b) => b.slice(0, b.length - 1);
  await assert.rejects(v.refresh(true), /truncated entry bundle/);
  s.lie.bundle = undefined;
  await v.refresh(true);
  const s2 = world();
  s2.s.addRaw(utf8('{"v":1, "type":"unit.add","unit":"X","maxLabel":"S","time":1}'));
  s2.s.publish();
  await assert.rejects(s2.v.refresh(true), /not a canonical entry/);
});

test("checkpoints: short of quorum, signed by another key, rolled back or forked are refused", async () => {
  const { s, v } = world();
  await v.refresh(true);
  const size = s.published;
  s.lie.checkpoint = () =>
    signNote(formatCheckpoint({ origin: ORIGIN, size, rootHash: new Uint8Array(32), extensions: [] }), [logSigner]);
  await assert.rejects(v.refresh(true), /0 of 1 required witness cosignatures/);
  const other = parseNoteSignerKey(generateNoteKey(ORIGIN).skey);
  s.lie.checkpoint = () =>
    signNote(formatCheckpoint({ origin: ORIGIN, size, rootHash: new Uint8Array(32), extensions: [] }), [
      other,
      witness.signer,
    ]);
  await assert.rejects(v.refresh(true), /no verifiable signatures|not signed by the log/);
  s.lie.checkpoint = () => s.note(size - 1);
  await assert.rejects(v.refresh(true), /rollback/);
  s.lie.checkpoint = () => s.note(size, new Uint8Array(32).fill(1));
  await assert.rejects(v.refresh(true), /fork — a different root/);
  s.add({ v: 1, type: "user.clearance", user: "bob", clearance: "CONFIDENTIAL", time: 7 });
  s.lie.checkpoint = () => s.note(size + 1, new Uint8Array(32).fill(1));
  await assert.rejects(v.refresh(true), /fork — size \d+ does not extend/);
  s.lie = {};
  s.publish();
  await v.refresh(true);
  assert.equal(v.state.checkpoint!.size, size + 1);
});

test("a server answer the log does not explain: the log wins, one alert names the difference, the officers are told", async () => {
  const reports: string[] = [];
  const { s, v } = world({ onMismatch: (m) => reports.push(`${m.subject}: ${m.differences.join("; ")}`) });
  const old = s.userOf("bob");
  s.add({ v: 1, type: "user.clearance", user: "bob", clearance: "CONFIDENTIAL", time: 7 });
  s.publish();
  // A stale (or forged) clearance: the log's is used.
  s.lie.user = (u) => (u.handle === "bob" ? old : u);
  assert.equal((await v.user("bob"))!.clearance, "CONFIDENTIAL");
  const mismatches = () => v.state.alerts.filter((a) => a.kind === "directory.mismatch");
  assert.equal(mismatches().length, 1);
  assert.match(mismatches()[0]!.text, /user bob: clearance: the server says "SECRET", the log says "CONFIDENTIAL"/);
  assert.equal(reports.length, 1);
  // The same disagreement again: no second alert, no wait.
  v.forget();
  assert.equal((await v.user("bob"))!.clearance, "CONFIDENTIAL");
  assert.equal(mismatches().length, 1);
  // Forged role, unit membership and a ghost device (in the database only): none of them is believed.
  s.lie.user = (u) =>
    u.handle === "bob"
      ? {
          ...u,
          role: "officer",
          units: ["HQ/A", "HQ/SECRET"],
          devices: [
            ...u.devices,
            { ...u.devices[0]!, id: "d-ghost0001", signaturePublicKey: toBase64(key(66)), logIndex: null },
          ],
        }
      : u;
  v.forget();
  const bob = (await v.user("bob"))!;
  assert.equal(bob.role, "user");
  assert.deepEqual(bob.units, ["HQ/A"]);
  assert.deepEqual(
    bob.devices.map((d) => d.id),
    ["d-bob00001"],
  );
  const text = mismatches()[1]!.text;
  assert.match(text, /role: the server says "officer", the log says "user"/);
  assert.match(text, /units: the server says \["HQ\/A","HQ\/SECRET"\], the log says \["HQ\/A"\]/);
  assert.match(text, /device "d-ghost0001" is in the server's database but not in the directory log/);
  const ghost = await v.verifyDevice(cred("bob", "d-ghost0001", key(66)));
  assert.ok(!ghost.ok && /not in the directory log/.test(ghost.reason), JSON.stringify(ghost));
  assert.equal(reports.length, 2);
  // The honest answer agrees: nothing new.
  s.lie = {};
  v.forget();
  assert.equal((await v.user("bob"))!.clearance, "CONFIDENTIAL");
  assert.equal(mismatches().length, 2);
});

test("unit members come from the log: a member added by a database row alone is not one, and alerts", async () => {
  const { s, v } = world();
  s.lie.members = (unit, m) => (unit === "HQ/A" ? [...m, "eve"] : m);
  s.add({ v: 1, type: "user.add", user: "eve", units: ["EMB/X"], clearance: "SECRET", role: "user", time: 9 });
  s.publish();
  assert.deepEqual(await v.unitMembers("HQ/A"), ["ann", "bob"]);
  const a = v.state.alerts.filter((x) => x.kind === "directory.mismatch");
  assert.equal(a.length, 1);
  assert.match(a[0]!.text, /unit HQ\/A: the server lists "eve" as a member, the log does not/);
  // The log's own change: a member.add entry makes eve a member (and a disabled user is no member).
  s.lie = {};
  s.add({ v: 1, type: "member.add", user: "eve", unit: "HQ/A", time: 10 });
  s.add({ v: 1, type: "user.disable", user: "bob", time: 11 });
  s.publish();
  v.forget();
  assert.deepEqual(await v.unitMembers("HQ/A"), ["ann", "eve"]);
  assert.equal((await v.user("bob"))!.disabled, true);
  const r = await v.verifyDevice(cred("bob", "d-bob00001", key(2)));
  assert.ok(!r.ok && /disabled/.test(r.reason), JSON.stringify(r));
  assert.equal((await v.unit("HQ/A"))!.maxLabel, "SECRET");
  s.add({ v: 1, type: "unit.label", unit: "HQ/A", maxLabel: "CONFIDENTIAL", time: 12 });
  s.publish();
  await v.refresh(true);
  assert.equal((await v.unit("HQ/A"))!.maxLabel, "CONFIDENTIAL");
});

test("a change the next checkpoint shows is waited for, not alerted", async () => {
  const { s, v } = world({ settleMs: 2_000 });
  await v.refresh(true);
  s.add({ v: 1, type: "member.add", user: "bob", unit: "EMB/X", time: 9 });
  // The server's database has the change; its next checkpoint (in 30 ms) shows it.
  setTimeout(() => s.publish(), 30);
  assert.deepEqual((await v.user("bob"))!.units, ["EMB/X", "HQ/A"]);
  assert.equal(v.state.alerts.filter((x) => x.kind === "directory.mismatch").length, 0);
});

test("a hostile log entry naming __proto__ is refused, and nothing is polluted", async () => {
  const { s, v } = world();
  s.add({ v: 1, type: "user.add", user: "__proto__", units: [], clearance: "SECRET", role: "user", time: 9 });
  s.publish();
  await assert.rejects(v.refresh(true), /names an invalid user/);
  assert.equal(({} as Record<string, unknown>).units, undefined);
  assert.equal(v.state.checkpoint, null);
});

test("membership monitoring: changes to this user's units and peers become notices, once, after this device", async () => {
  const { s, v } = world();
  await v.monitor();
  s.add({ v: 1, type: "user.add", user: "kim", units: ["EMB/X"], clearance: "SECRET", role: "user", time: 9 });
  s.add({ v: 1, type: "member.add", user: "kim", unit: "HQ/A", time: 10 });
  s.add({
    v: 1,
    type: "device.add",
    user: "bob",
    device: "d-bob00002",
    name: "Phone",
    key: toBase64(key(3)),
    time: 11,
  });
  s.add({ v: 1, type: "member.add", user: "kim", unit: "EMB/Y", time: 12 }); // not our unit, but kim shares HQ/A now
  s.add({ v: 1, type: "user.add", user: "zed", units: ["EMB/Z"], clearance: "SECRET", role: "user", time: 13 });
  s.add({ v: 1, type: "member.remove", user: "bob", unit: "HQ/A", time: 14 });
  s.publish();
  const { notices } = await v.monitor();
  assert.deepEqual(
    notices.map((n) => n.text),
    ["kim (EMB/X) joined HQ/A, cleared SECRET", 'new device "Phone" of bob (HQ/A) (d-bob00002)', "bob left HQ/A"],
  );
  assert.deepEqual((await v.monitor()).notices, []);
});

test("own-account monitoring across tile boundaries: baseline, alerts after this device, ack", async () => {
  const s = new FakeServer();
  s.add({ v: 1, type: "user.add", user: "ann", units: [], clearance: "SECRET", role: "user", time: 1 });
  s.add({ v: 1, type: "device.add", user: "ann", device: "d-ann00000", name: "old", key: toBase64(key(7)), time: 2 });
  for (let i = 0; i < 300; i++)
    s.add({ v: 1, type: "user.add", user: `u${i}`, units: [], clearance: "SECRET", role: "user", time: 3 });
  s.add({
    v: 1,
    type: "device.add",
    user: "ann",
    device: "d-ann00001",
    name: "laptop",
    key: toBase64(key(1)),
    time: 4,
  });
  s.add({ v: 1, type: "device.add", user: "ann", device: "d-ann00002", name: "ghost", key: toBase64(key(3)), time: 5 });
  s.add({ v: 1, type: "user.clearance", user: "ann", clearance: "CONFIDENTIAL", time: 6 });
  s.add({ v: 1, type: "device.revoke", user: "ann", device: "d-ann00000", time: 7 });
  s.publish();
  const p = profile("ann", "d-ann00001", key(1));
  const v = new TransparencyVerifier(s.transport(), p, { pollMs: 1, maxWaitMs: 50 });
  const m = await v.monitor();
  assert.equal(m.error, null);
  assert.equal(v.state.scanned.size, s.entries.length);
  assert.deepEqual(
    m.alerts.map((a) => [a.kind, a.device ?? null]),
    [
      ["device.add", "d-ann00002"],
      ["user.clearance", null],
      ["device.revoke", "d-ann00000"],
    ],
  );
  assert.match(m.alerts[1]!.text, /from SECRET to CONFIDENTIAL/);
  assert.deepEqual(
    Object.values(v.state.own.devices).map((d) => [d.name, d.self, d.expected, d.revokedLogIndex !== null]),
    [
      ["old", false, true, true],
      ["laptop", true, true, false],
      ["ghost", false, false, false],
    ],
  );
  assert.deepEqual((await v.monitor()).alerts, [], "alerts are handed out once");
  assert.equal(v.ack("d-ann00002"), true);
  assert.ok(v.state.own.devices["d-ann00002"]!.expected);
  // The state is plain JSON in the profile: a reopened verifier continues from it.
  const p2 = JSON.parse(JSON.stringify(p)) as ProfileState;
  s.add({
    v: 1,
    type: "device.add",
    user: "ann",
    device: "d-ann00003",
    name: "tablet",
    key: toBase64(key(4)),
    time: 8,
  });
  s.publish();
  const v2 = new TransparencyVerifier(s.transport(), p2, { pollMs: 1, maxWaitMs: 50 });
  assert.deepEqual(
    (await v2.monitor()).alerts.map((a) => a.device),
    ["d-ann00003"],
  );
});

test("a server that never logs this device's own enrollment is reported after the grace period", async () => {
  const s = new FakeServer();
  s.add({ v: 1, type: "user.add", user: "ann", units: [], clearance: "SECRET", role: "user", time: 1 });
  s.publish();
  let now = 1_000_000;
  const v = new TransparencyVerifier(s.transport(), profile("ann", "d-ann00001", key(1)), {
    now: () => now,
    selfGraceMs: 60_000,
  });
  assert.equal((await v.monitor()).error, null);
  now += 61_000;
  assert.match((await v.monitor()).error ?? "", /d-ann00001\) is not in the witnessed directory log/);
  s.add({
    v: 1,
    type: "device.add",
    user: "ann",
    device: "d-ann00001",
    name: "laptop",
    key: toBase64(key(1)),
    time: 2,
  });
  s.publish();
  assert.equal((await v.monitor()).error, null);
});

test("records archive and share window in the log: only an archivist's assignment counts, a role change ends it, members are told", async () => {
  const { s, v } = world();
  await v.monitor();
  s.add({ v: 1, type: "user.add", user: "arc", units: [], clearance: "SECRET", role: "archivist", time: 9 });
  s.add({ v: 1, type: "user.add", user: "usr", units: [], clearance: "SECRET", role: "user", time: 10 });
  s.add({ v: 1, type: "archive.assign", user: "arc", unit: "HQ/A", time: 11 });
  s.add({ v: 1, type: "archive.assign", user: "usr", unit: "HQ/A", time: 12 }); // not an archivist: proves nothing
  s.add({ v: 1, type: "unit.share", unit: "HQ/A", since: "3600", time: 13 });
  s.add({ v: 1, type: "unit.label", unit: "HQ/A", maxLabel: "SECRET", time: 14 });
  s.publish();
  const { notices } = await v.monitor();
  assert.deepEqual(
    notices.map((n) => n.text),
    [
      "arc is now the records archive of HQ/A (cleared SECRET): its devices join the unit's channels and links and " +
        "receive every key of the unit they are cleared for",
      "HQ/A now shares with members who join later only the keys of the last 1 hour",
      "HQ/A may now carry up to SECRET (was SECRET)",
    ],
  );
  assert.deepEqual(v.logUnitMembers("HQ/A"), ["ann", "arc", "bob"]);
  assert.deepEqual(v.logUser("arc")!.archives, ["HQ/A"]);
  assert.equal(v.logUser("usr")!.archives, undefined);
  assert.equal((await v.unit("HQ/A"))!.share, "3600", "a unit.label keeps the share window");
  // A role change ends the assignment; `all` clears the window.
  s.add({ v: 1, type: "user.role", user: "arc", role: "user", time: 15 });
  s.add({ v: 1, type: "unit.share", unit: "HQ/A", since: "all", time: 16 });
  s.publish();
  await v.refresh(true);
  assert.deepEqual(v.logUnitMembers("HQ/A"), ["ann", "bob"]);
  assert.equal(v.logUser("arc")!.archives, undefined);
  assert.equal((await v.unit("HQ/A"))!.share, undefined);
  // A window is whole seconds without leading zeros, or all.
  for (const since of ["0", "01", "1.5", "-1", "forever", "99999999999"]) {
    const bytes = utf8(`{"since":${JSON.stringify(since)},"time":1,"type":"unit.share","unit":"HQ/A","v":1}`);
    assert.equal(parseDirectoryEntry(bytes).ok, false, since);
  }
  assert.equal(
    parseDirectoryEntry(utf8('{"since":"86400","time":1,"type":"unit.share","unit":"HQ/A","v":1}')).ok,
    true,
  );
});
