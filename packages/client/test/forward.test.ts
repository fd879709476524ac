/**
 * Issue 14 part 2 at the unit level: which keys a member device forwards to a new member (within the group's label
 * and the member's clearance, for the group's units only, only to a user the directory shows as a member, nothing
 * from records without a bound sender, split into bounded messages), and what a receiver refuses before any network
 * question (a forward for another user is ignored; above its clearance, for another unit, from a non-member).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { toBase64 } from "@valise/core";
import {
  acceptForward,
  forwardPayloads,
  missingKeyMessage,
  type CablePayload,
  type DocumentPayload,
  type ForwardHost,
  type ProfileState,
} from "@valise/client";

const key = () => toBase64(new Uint8Array(32).fill(7));
let n = 0;
function cable(label: string, action: string[], originator = "HQ/ASIA-1", sender = "jnovak"): CablePayload {
  n++;
  return {
    t: "cable",
    id: `k-${String(n).padStart(10, "0")}`,
    reference: `${originator} 2026/${String(n).padStart(6, "0")}`,
    originator,
    precedence: "ROUTINE",
    label,
    action,
    info: [],
    corrects: null,
    subject: `s${n}`,
    blob: `b-${String(n).padStart(10, "0")}`,
    size: 10,
    key: key(),
    sender,
    senderDevice: sender === "" ? "" : "d-0000000000000001",
  };
}
function doc(label: string, unit: string): DocumentPayload {
  n++;
  return {
    t: "doc",
    id: `f-${String(n).padStart(10, "0")}`,
    version: 1,
    label,
    name: "n.txt",
    size: 1,
    blob: `b-${String(n).padStart(10, "0")}`,
    key: key(),
    to: { kind: "unit", name: unit },
    sender: "pdvorak",
    senderDevice: "d-0000000000000002",
  };
}
const user = (handle: string, units: string[], clearance: string, disabled = false) => ({
  handle,
  units,
  clearance,
  role: "user",
  disabled,
  devices: [{ id: "d-0000000000000009", name: "x", signaturePublicKey: "", createdAt: 0, revokedAt: null }],
});
const link = {
  id: "c-link000000",
  kind: "link" as const,
  label: "SECRET/ASIA",
  unit: "EMB/BEIJING",
  fromUnit: "HQ/ASIA-1",
  peer: null,
  group: "",
  cursor: 0,
};

function state(cables: CablePayload[], docs: DocumentPayload[]): ProfileState {
  const s = { cables: {}, documents: {} } as unknown as ProfileState;
  for (const c of cables) s.cables![c.id] = c;
  for (const d of docs) s.documents![d.id] = { "1": d };
  return s;
}

test("forwardPayloads: within the member's clearance and the group's label, the group's units only", () => {
  const conf = cable("CONFIDENTIAL/ASIA", ["EMB/BEIJING"]);
  const sec = cable("SECRET/ASIA", ["EMB/BEIJING"]);
  const top = cable("SECRET/ASIA,NATO", ["EMB/BEIJING"]); // above the group's label
  const tokyo = cable("CONFIDENTIAL", ["EMB/TOKYO"]); // another unit
  const legacy = cable("CONFIDENTIAL", ["EMB/BEIJING"], "HQ/ASIA-1", ""); // no bound sender
  const otherOrig = cable("CONFIDENTIAL", ["EMB/BEIJING"], "EMB/TOKYO"); // not from the link's origin
  const d1 = doc("CONFIDENTIAL/ASIA", "EMB/BEIJING");
  const d2 = doc("CONFIDENTIAL", "EMB/TOKYO");
  const s = state([conf, sec, top, tokyo, legacy, otherOrig], [d1, d2]);

  const ids = (ps: ReturnType<typeof forwardPayloads>) =>
    ps.flatMap((p) => [...p.cables.map((c) => c.id), ...p.documents.map((d) => d.id)]).sort();
  assert.deepEqual(
    ids(forwardPayloads(s, link, user("late1", ["EMB/BEIJING"], "SECRET/ASIA"))),
    [conf.id, sec.id, d1.id].sort(),
  );
  assert.deepEqual(
    ids(
      forwardPayloads(s, { ...link, label: "CONFIDENTIAL/ASIA" }, user("low1", ["EMB/BEIJING"], "CONFIDENTIAL/ASIA")),
    ),
    [conf.id, d1.id].sort(),
  );
  // Not a member of either unit of the link, disabled, not in the directory, or not cleared for the group: nothing.
  assert.deepEqual(forwardPayloads(s, link, user("x", ["EMB/TOKYO"], "SECRET/ASIA")), []);
  assert.deepEqual(forwardPayloads(s, link, user("x", ["EMB/BEIJING"], "SECRET/ASIA", true)), []);
  assert.deepEqual(forwardPayloads(s, link, null), []);
  assert.deepEqual(forwardPayloads(s, link, user("x", ["EMB/BEIJING"], "CONFIDENTIAL")), []);
  for (const p of forwardPayloads(s, link, user("late1", ["EMB/BEIJING"], "SECRET/ASIA"))) assert.equal(p.to, "late1");
});

test("forwardPayloads: a large holding is split into bounded messages", () => {
  const many = Array.from({ length: 450 }, () => cable("CONFIDENTIAL", ["EMB/BEIJING"]));
  const ps = forwardPayloads(state(many, []), link, user("late1", ["EMB/BEIJING"], "SECRET/ASIA"));
  assert.ok(ps.length >= 3);
  for (const p of ps) {
    assert.ok(p.cables.length <= 200);
    assert.ok(JSON.stringify(p).length < 300 * 1024);
  }
  assert.equal(
    ps.reduce((a, p) => a + p.cables.length, 0),
    450,
  );
});

test("acceptForward: refused before any network question; a forward for another user is ignored", async () => {
  const asked: string[] = [];
  const users: Record<string, ReturnType<typeof user>> = {
    late1: user("late1", ["EMB/BEIJING"], "CONFIDENTIAL/ASIA"),
    mcerny: user("mcerny", ["HQ/SECURITY"], "SECRET/ASIA"),
    jnovak: user("jnovak", ["HQ/ASIA-1"], "SECRET/ASIA"),
  };
  const s = state([], []);
  const host = {
    handle: "late1",
    profile: { heldKeys: s },
    transport: new Proxy(
      {},
      { get: (_t, p) => () => (asked.push(String(p)), Promise.reject(new Error("no network"))) },
    ),
    cipher: {},
    user: async (h: string) => users[h] ?? null,
  } as unknown as ForwardHost;
  const from = { user: "jnovak", device: "d-0000000000000009" };
  const conf = { ...link, label: "SECRET/ASIA" };
  const above = cable("SECRET/ASIA", ["EMB/BEIJING"]);
  const tokyo = cable("CONFIDENTIAL", ["EMB/TOKYO"]);
  const r = await acceptForward(host, conf, { t: "fwd", to: "late1", cables: [above, tokyo], documents: [] }, from);
  assert.equal(r.kept, 0);
  assert.match(
    r.refusals[0]!,
    /^jnovak \(device d-0000000000000009\) forwarded the key of cable .*above your clearance: refused$/,
  );
  assert.match(r.refusals[1]!, /not addressed to EMB\/BEIJING/);
  // From a user who is in no unit of the item (per the directory): refused.
  const mine = cable("CONFIDENTIAL", ["EMB/BEIJING"]);
  const r2 = await acceptForward(
    host,
    conf,
    { t: "fwd", to: "late1", cables: [mine], documents: [] },
    { user: "mcerny", device: "d-0000000000000009" },
  );
  assert.match(r2.refusals[0]!, /does not show mcerny as a cleared member/);
  // For someone else: ignored.
  const r3 = await acceptForward(host, conf, { t: "fwd", to: "pdvorak", cables: [above], documents: [] }, from);
  assert.deepEqual(r3, { kept: 0, refusals: [] });
  assert.deepEqual(asked, [], "nothing was asked of the server");
  assert.deepEqual(Object.keys(s.cables ?? {}), []);
});

test("missingKeyMessage: 'yet' only while someone can still send it", () => {
  const me = user("late1", ["EMB/BEIJING"], "CONFIDENTIAL");
  assert.match(missingKeyMessage("cable X", "CONFIDENTIAL", me, ["late1", "pdvorak"]), /yet: .*pdvorak can forward it/);
  assert.doesNotMatch(missingKeyMessage("cable X", "SECRET", me, ["pdvorak"]), /\byet\b/);
  assert.doesNotMatch(missingKeyMessage("cable X", "CONFIDENTIAL", me, ["late1"]), /\byet\b/);
});
