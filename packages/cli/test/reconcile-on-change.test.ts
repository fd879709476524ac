/**
 * Membership is reconciled when the directory log changes, not on every send (issue 17 item 5): a cable sender's
 * second and third cables to the same unit make no directory lookups (one log-size request each) while the directory
 * is unchanged; a revocation in between is a log entry, so the next cable removes the revoked device from the link
 * group before encrypting and the revoked device gets nothing. A device row the attacker adds to the database alone
 * changes no log entry: it is still never added, and the sender's next sync (the directory audit) alerts.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import type { DeviceId, UserHandle } from "@valise/core";
import { generateDeviceKeys } from "@valise/protocol";
import type { ReceivedItem } from "@valise/client";
import { settled, world } from "./helpers.js";

const ASIA = "CONFIDENTIAL/ASIA";
const people = [
  { handle: "jnovak", units: ["HQ/ASIA-1"], clearance: "SECRET/ASIA" },
  { handle: "pdvorak", units: ["EMB/BEIJING"], clearance: ASIA },
  { handle: "lkral", units: ["EMB/BEIJING"], clearance: ASIA },
];

const alerts = (items: ReceivedItem[]) => items.filter((i) => i.type === "alert").map((i) => i.text);

test("membership reconciled when the directory log changes, not per send", { timeout: 120_000 }, async () => {
  const w = await world("sqlite", people, { transparency: true });
  const requests: string[] = [];
  const recording: typeof fetch = async (input, init) => {
    const u = new URL(typeof input === "string" ? input : input instanceof URL ? input.href : input.url);
    requests.push(`${init?.method ?? "GET"} ${u.pathname}`);
    return fetch(input, init);
  };
  try {
    const desk = await w.enroll("jnovak", "desk", recording);
    const post = await w.enroll("pdvorak", "desk");
    const phone = await w.enroll("pdvorak", "phone");
    const other = await w.enroll("lkral", "desk");
    await settled(w);
    const cable = (subject: string) =>
      desk.cables.send({ action: ["EMB/BEIJING"], precedence: "ROUTINE", label: ASIA, subject, body: "text" });
    const lookups = () => requests.filter((r) => /^GET \/v1\/(users\/|unit-members)/.test(r));

    const first = await cable("first");
    const conversation = desk.conversationList().find((c) => c.kind === "link")!.id;
    const members = () => desk.conversationMembers(conversation).map((m) => m.device);
    assert.ok(members().includes(phone.deviceId), "the phone is a member after the first cable");
    assert.ok(lookups().length > 0, "the first cable reconciled (directory lookups)");

    // Directory unchanged: no lookups at all, and not even a log-size request: the answer to the cable's POST
    // carried the log's size (Valise-Directory-Size), a few milliseconds before the key delivery asks for it.
    requests.length = 0;
    await cable("second");
    await cable("third");
    assert.deepEqual(lookups(), [], requests.join("\n"));
    assert.equal(requests.filter((r) => r === "GET /v1/log/directory/size").length, 0, requests.join("\n"));
    assert.equal(desk.transport.directorySize?.size, await w.server.store.directory.log.size());
    // Only the successful authenticated releases and sends carry it: not a read, not an anonymous or a refused
    // release, not another write (a blob).
    const auth = { authorization: `Bearer ${desk.transport.token}` };
    const hdr = async (path: string, init: RequestInit = {}) =>
      (await fetch(new URL(path, desk.transport.baseUrl), init)).headers.get("valise-directory-size");
    assert.equal(await hdr("/v1/log/directory/size", { headers: auth }), null);
    assert.equal(
      await hdr("/v1/cables", { method: "POST", body: "{}", headers: { "content-type": "application/json" } }),
      null,
    );
    const bad = { method: "POST", body: "{}", headers: { ...auth, "content-type": "application/json" } };
    assert.equal(await hdr("/v1/cables", bad), null);
    const blob = { method: "POST", body: '{"size":1}', headers: { ...auth, "content-type": "application/json" } };
    assert.equal(await hdr("/v1/blobs", blob), null);

    const cables = async (c: { sync(): Promise<ReceivedItem[]> }) =>
      (await c.sync()).filter((i) => i.type === "cable").map((i) => i.text);
    assert.deepEqual(await cables(post), ["first", "second", "third"]);
    assert.deepEqual(await cables(phone), ["first", "second", "third"]);

    // A revocation is a log entry: the next cable reconciles, removes the phone first, and the phone gets nothing.
    await w.server.store.directory.revokeDevice(phone.deviceId);
    await settled(w);
    requests.length = 0;
    const fourth = await cable("after the revocation"); // its POST's answer carries the grown log size
    assert.ok(lookups().length > 0, "the cable after the revocation reconciled");
    assert.ok(!members().includes(phone.deviceId), "the revoked phone is still in the link group");
    assert.ok(members().includes(post.deviceId) && members().includes(other.deviceId));
    assert.deepEqual(await cables(post), ["after the revocation"]);
    // lkral's desk was offline through all of it: its Welcome names the phone, revoked since. It joins (a member
    // revoked after it was added is no reason to stay out) and reads every cable.
    assert.deepEqual(await cables(other), ["first", "second", "third", "after the revocation"]);
    const phoneGot = await cables(phone).catch(() => [] as string[]);
    assert.ok(!phoneGot.includes("after the revocation"), "the revoked phone received the cable sent after it");
    assert.notEqual(first.id, fourth.id);

    // A device row added to the database alone (no log entry): never added, and the next sync's audit alerts.
    const ghostId = "d-ghost0device0c";
    const ghost = await generateDeviceKeys("lkral" as UserHandle, ghostId as DeviceId);
    await w.server.store.handle.db
      .insertInto("devices")
      .values({
        id: ghostId,
        handle: "lkral",
        name: "ghost",
        signature_public_key: ghost.signaturePublicKey,
        created_at: Date.now(),
        revoked_at: null,
      })
      .execute();
    await cable("after the ghost row");
    assert.ok(!members().includes(ghostId), "the ghost row was added to the group");
    const seen = alerts(await desk.sync());
    assert.ok(
      seen.some((t) => t.includes(ghostId) && t.includes("not in the directory log")),
      `no alert for the ghost row: ${seen.join("\n")}`,
    );
  } finally {
    await w.close();
  }
});
