/**
 * Log-key rotation on the device (issue 19), against a scripted server: a device that pinned key A follows a hand-over
 * signed by A (and by the new key B) and pins B, once, with an alert that tells the user; and as an attacker the
 * server cannot move the device to a key of its choosing: a hand-over not signed by the pinned key (forged), a
 * replayed old hand-over with checkpoints under the old key (rollback), checkpoints under an unannounced key, a
 * hand-over whose key does not sign the checkpoints, an old key that signed past its hand-over, and a new key signing
 * below the hand-over size are each refused, the pin unchanged where it must be, and alerted.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  consistencyProof,
  encodeDirectoryEntry,
  formatCheckpoint,
  generateNoteKey,
  leafHash,
  leafHashReader,
  parseNoteSignerKey,
  rootFromLeafHashes,
  signKeyHandover,
  signNote,
  toBase64,
  type DirectoryEntry,
  type NoteSigner,
} from "@valise/core";
import { TransparencyVerifier, type HttpTransport, type ProfileState } from "../src/index.js";

const ORIGIN = "rot.valise.example/directory";
const mk = (name = ORIGIN) => {
  const k = generateNoteKey(name);
  return { vkey: k.vkey, signer: parseNoteSignerKey(k.skey) };
};

class Server {
  entries: Uint8Array[] = [];
  signer: NoteSigner;
  handovers: string[] = [];
  size = 0;
  constructor(signer: NoteSigner) {
    this.signer = signer;
  }
  add(n: number): void {
    for (let i = 0; i < n; i++) {
      const e: DirectoryEntry = {
        v: 1,
        type: "unit.add",
        unit: `HQ/U${this.entries.length}`,
        maxLabel: "SECRET",
        time: 1,
      };
      this.entries.push(encodeDirectoryEntry(e));
    }
    this.size = this.entries.length;
  }
  hashes(n: number) {
    return this.entries.slice(0, n).map((e) => leafHash(e));
  }
  note(size = this.size): string {
    const root = rootFromLeafHashes(this.hashes(size));
    return signNote(formatCheckpoint({ origin: ORIGIN, size, rootHash: root, extensions: [] }), [this.signer]);
  }
  transport(): HttpTransport {
    return {
      logCheckpoint: async () => this.note(),
      logConsistencyProof: async (a: number, b: number) => consistencyProof(leafHashReader(this.hashes(b)), a, b),
      logKeyHandovers: async () => this.handovers,
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
        return out;
      },
    } as unknown as HttpTransport;
  }
}

function setup() {
  const a = mk();
  const s = new Server(a.signer);
  s.add(5);
  const p: ProfileState = {
    version: 1,
    serverUrl: "http://fake",
    handle: "ann",
    deviceId: "d-ann00001",
    deviceName: "x",
    signaturePublicKey: toBase64(new Uint8Array(32).fill(1)),
    signaturePrivateKey: "",
    keyPackages: [],
    inboxCursor: 0,
    conversations: {},
    pending: [],
    session: null,
    trust: { logKey: a.vkey, witnesses: [], quorum: 0 },
  };
  const v = new TransparencyVerifier(s.transport(), p, { pollMs: 1, maxWaitMs: 50, settleMs: 20 });
  return { a, s, p, v };
}

const keyAlerts = (p: ProfileState) => (p.log?.alerts ?? []).filter((x) => x.kind === "log.key").map((x) => x.text);
const handover = (from: ReturnType<typeof mk>, to: ReturnType<typeof mk>, d: number, au = 0, by = from) =>
  signKeyHandover(
    { origin: ORIGIN, oldKey: from.vkey, newKey: to.vkey, directorySize: d, auditSize: au },
    by.signer,
    to.signer,
  );

test("a hand-over signed by the pinned key: the device pins the new key, once, and says so", async () => {
  const { a, s, p, v } = setup();
  await v.refresh(true);
  assert.equal(p.log!.checkpoint!.size, 5);
  const b = mk();
  s.handovers = [handover(a, b, 5, 3)];
  s.signer = b.signer;
  s.add(2);
  await v.refresh(true);
  assert.equal(p.log!.checkpoint!.size, 7);
  assert.equal(p.trust!.logKey, b.vkey);
  assert.deepEqual(
    p.trust!.handovers!.map((h) => [h.from, h.to, h.directorySize, h.auditSize]),
    [[a.vkey, b.vkey, 5, 3]],
  );
  const alerts = keyAlerts(p);
  assert.equal(alerts.length, 1);
  assert.match(alerts[0]!, /signing key changed: .* handed over to .* from log size 5 \(audit log 3\)/);
  // Followed once: more checkpoints by B change nothing more.
  s.add(1);
  await v.refresh(true);
  assert.equal(keyAlerts(p).length, 1);
  // A chain: B hands over to C later; the device follows again.
  const c = mk();
  s.handovers.push(handover(b, c, 8));
  s.signer = c.signer;
  s.add(1);
  await v.refresh(true);
  assert.equal(p.trust!.logKey, c.vkey);
  assert.equal(p.trust!.handovers!.length, 2);
});

test("attacker: a hand-over not signed by the pinned key is refused, the pin unchanged, an alert", async () => {
  const { a, s, p, v } = setup();
  await v.refresh(true);
  const x = mk(); // the attacker's key, named like the log
  const c = mk();
  s.handovers = [handover(a, c, 5, 0, x)]; // claims to come from A, signed by X and C
  s.signer = c.signer;
  s.add(1);
  await assert.rejects(v.refresh(true), /checkpoint refused/);
  assert.equal(p.trust!.logKey, a.vkey);
  assert.equal(p.log!.checkpoint!.size, 5);
  assert.ok(
    keyAlerts(p).some((t) => /hand-over from the pinned key was refused: .*not signed by the pinned log key/.test(t)),
  );
});

test("attacker: checkpoints under a key no hand-over announces are refused and alerted", async () => {
  const { a, s, p, v } = setup();
  await v.refresh(true);
  s.signer = mk().signer;
  s.add(1);
  await assert.rejects(v.refresh(true), /checkpoint refused/);
  assert.equal(p.trust!.logKey, a.vkey);
  assert.ok(keyAlerts(p).some((t) => /did not sign, and no hand-over signed by that key announces another/.test(t)));
});

test("attacker: after a hand-over, the old key's checkpoints (with the old hand-over replayed) are refused", async () => {
  const { a, s, p, v } = setup();
  await v.refresh(true);
  const b = mk();
  s.handovers = [handover(a, b, 5)];
  s.signer = b.signer;
  s.add(1);
  await v.refresh(true);
  assert.equal(p.trust!.logKey, b.vkey);
  // Rollback to A: a larger tree signed by the old key, the old hand-over still served.
  s.signer = a.signer;
  s.add(1);
  await assert.rejects(v.refresh(true), /checkpoint refused/);
  assert.equal(p.trust!.logKey, b.vkey);
  assert.equal(p.log!.checkpoint!.size, 6);
  assert.ok(keyAlerts(p).some((t) => /did not sign/.test(t)));
});

test("attacker: a valid hand-over to B while C signs the checkpoints: B pinned, C's checkpoints refused", async () => {
  const { a, s, p, v } = setup();
  await v.refresh(true);
  const b = mk();
  s.handovers = [handover(a, b, 5)];
  s.signer = mk().signer;
  await assert.rejects(v.refresh(true), /checkpoint refused/);
  assert.equal(p.trust!.logKey, b.vkey, "the hand-over itself is valid: signed by the pinned key");
  assert.equal(p.log!.checkpoint!.size, 5);
});

test("an old key that signed past its hand-over, or a new key below it, is refused", async () => {
  const { a, s, p, v } = setup();
  s.add(2);
  await v.refresh(true); // accepted 7 under A
  const b = mk();
  s.handovers = [handover(a, b, 5)]; // A claims it handed over at 5
  s.signer = b.signer;
  s.add(1);
  await assert.rejects(v.refresh(true), /checkpoint refused/);
  assert.equal(p.trust!.logKey, a.vkey);
  assert.ok(keyAlerts(p).some((t) => /already accepted a checkpoint of 7 entries signed by the old key/.test(t)));

  const w = setup();
  await w.v.refresh(true); // 5 under A
  const b2 = mk();
  w.s.handovers = [handover(w.a, b2, 6)];
  w.s.signer = b2.signer; // B signs size 5, below its hand-over at 6
  await assert.rejects(w.v.refresh(true), /signs from size 6 on/);
});
