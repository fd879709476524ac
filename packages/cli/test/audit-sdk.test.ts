/**
 * The SDK's audit verification (client.audit, shared by `valise audit` and the web officer screen) against a server
 * that lies. The officer's profile pins the log key, two test witnesses and quorum 2; the test plays the witnesses
 * (cosigning every audit checkpoint served) and, on demand, the attacker rewriting `/v1/log/audit/checkpoint` or
 * `/v1/log/audit/events` answers. Each lie must be caught: a tampered entry, a missing or wrong inclusion proof, a
 * proof for another tree size, an event that does not match the query, a checkpoint signed by another key or short
 * of the witness quorum. Unproven events are never among `events`; they are counted with their reason.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import type { FastifyInstance, FastifyRequest } from "fastify";
import {
  fromBase64,
  generateNoteKey,
  parseNoteSignerKey,
  parseNoteVerifierKey,
  signNote,
  toBase64,
  isValiseError,
  type AuditEvent,
} from "@valise/core";
import {
  MemoryKeyStore,
  ValiseClient,
  describeAuditProof,
  proveAuditEvents,
  type AuditQueryResult,
} from "@valise/client";
import { nodeStreamCipher } from "@valise/client/node/docstream";
import { startTestServer, type TestServer } from "@valise/server/testing/server";
import { cosign, misbehave, noteText, testWitnesses, type TestWitness } from "./malicious.js";

interface WireEvent {
  index: number;
  entry: string;
  proof?: string[];
}

interface AuditLies {
  /** Rewrite the (honestly cosigned) audit checkpoint note. */
  checkpoint?: (cosigned: string, uncosigned: string) => string;
  /** Rewrite the events answer; `size` is the tree size the client asked proofs for. */
  events?: (events: WireEvent[], size: number) => Promise<WireEvent[]> | WireEvent[];
}

/** The audit log's witnesses (cosign every checkpoint served) and the attacker's switches. */
function auditMisbehave(app: FastifyInstance, witnesses: readonly TestWitness[], lies: AuditLies): void {
  app.addHook("onSend", async (req: FastifyRequest, reply, payload) => {
    if (reply.statusCode !== 200 || typeof payload !== "string") return payload;
    const url = req.routeOptions.url;
    if (url === "/v1/log/audit/checkpoint") {
      const honest = cosign(
        payload,
        witnesses.map((w) => w.signer),
      );
      return lies.checkpoint ? lies.checkpoint(honest, payload) : honest;
    }
    if (url === "/v1/log/audit/events" && lies.events) {
      const size = Number((req.query as { size?: string }).size);
      const body = JSON.parse(payload) as { events: WireEvent[] };
      return JSON.stringify({ events: await lies.events(body.events, size) });
    }
    return payload;
  });
}

const decode = (e: WireEvent) => JSON.parse(new TextDecoder().decode(fromBase64(e.entry))) as AuditEvent;
const encode = (o: unknown) => toBase64(new TextEncoder().encode(JSON.stringify(o)));

describe("client.audit against a malicious server", { timeout: 120_000 }, () => {
  let server: TestServer;
  const witnesses = testWitnesses(2);
  const lies: AuditLies = {};
  let olga: ValiseClient;
  let alice: ValiseClient;
  let honest: AuditQueryResult;

  async function enroll(handle: string, trusted = true): Promise<ValiseClient> {
    const { enrollmentCode } = await server.store.directory.newEnrollmentCode(handle);
    return ValiseClient.enroll({
      serverUrl: server.url,
      code: enrollmentCode,
      deviceName: "laptop",
      store: new MemoryKeyStore(),
      cipher: nodeStreamCipher(),
      ...(trusted
        ? {
            trust: { logKey: server.logKey!.vkey, witnesses: witnesses.map((w) => w.vkey), quorum: 2 },
            transparency: { pollMs: 20 },
          }
        : { pinOnFirstUse: false }),
    });
  }

  /** Waits until the audit log's latest checkpoint covers the log as it is now. */
  async function checkpointed(): Promise<number> {
    const size = await server.store.audit.size();
    for (let i = 0; i < 500; i++) {
      if (((await server.store.audit.latestCheckpoint())?.size ?? -1) >= size) return size;
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new Error("no audit checkpoint covers the log");
  }

  const query = () => olga.audit.query({ actor: "alice", limit: 50 });

  before(async () => {
    server = await startTestServer("sqlite", {
      logKey: true,
      beforeListen: (app) => {
        misbehave(app, witnesses, {});
        auditMisbehave(app, witnesses, lies);
      },
    });
    await server.store.directory.addUnit("HQ/ASIA-1", "SECRET/ASIA");
    await server.store.directory.addUnit("HQ/SEC", "SECRET/ASIA");
    await server.store.directory.addUser({
      handle: "alice",
      units: ["HQ/ASIA-1"],
      clearance: "SECRET/ASIA",
      role: "user",
    });
    await server.store.directory.addUser({
      handle: "bob",
      units: ["HQ/ASIA-1"],
      clearance: "SECRET/ASIA",
      role: "user",
    });
    await server.store.directory.addUser({ handle: "olga", units: ["HQ/SEC"], clearance: "SECRET", role: "officer" });
    alice = await enroll("alice");
    const bob = await enroll("bob");
    olga = await enroll("olga");
    await alice.send("bob", "hello", "CONFIDENTIAL/ASIA");
    await bob.sync();
    await checkpointed();
    honest = await query();
  });
  after(async () => {
    await server.close();
  });

  test("honest server: alice's events, all proven, at a checkpoint cosigned by 2 of 2 pinned witnesses", () => {
    assert.ok(honest.events.length >= 3, JSON.stringify(honest.events));
    assert.ok(honest.events.every((e) => e.actor === "alice"));
    assert.deepEqual(honest.unproven, []);
    assert.equal(honest.keySource, "profile");
    assert.equal(honest.warning, null);
    assert.deepEqual([honest.witnesses.cosigned, honest.witnesses.quorum, honest.witnesses.pinned], [2, 2, 2]);
    assert.equal(honest.checkpoint.origin, server.logKey!.origin.replace(/\/directory$/, "/audit"));
    assert.match(
      describeAuditProof(honest),
      /^\d+ events, each proven in the audit log at size [\d,]+, signed by the log key and cosigned by 2 of 2 witnesses$/,
    );
    assert.equal(honest.indices.length, honest.events.length);
    for (let i = 1; i < honest.indices.length; i++) assert.ok(honest.indices[i - 1]! > honest.indices[i]!);
  });

  /** Runs the query with `lie` installed; the result's proven events and the unproven ones. */
  async function withLie(lie: AuditLies["events"]): Promise<AuditQueryResult> {
    lies.events = lie;
    try {
      return await query();
    } finally {
      delete lies.events;
    }
  }

  test("a tampered event entry is not returned, and is reported as not in the signed log", async () => {
    let target = "";
    const r = await withLie((evs) => {
      const o = decode(evs[0]!);
      target = o.id;
      return [{ ...evs[0]!, entry: encode({ ...o, source: "10.99.99.99" }) }, ...evs.slice(1)];
    });
    assert.equal(r.unproven.length, 1);
    assert.match(r.unproven[0]!.reason, /not in the signed audit log \(inclusion proof fails\)/);
    assert.ok(!r.events.some((e) => e.id === target || e.source === "10.99.99.99"), "tampered event shown");
    assert.equal(r.events.length, honest.events.length - 1);
  });

  test("a missing, empty or another entry's inclusion proof: rejected", async () => {
    for (const lie of [
      (evs: WireEvent[]) => [{ index: evs[0]!.index, entry: evs[0]!.entry }, ...evs.slice(1)],
      (evs: WireEvent[]) => [{ ...evs[0]!, proof: [] }, ...evs.slice(1)],
      (evs: WireEvent[]) => [{ ...evs[0]!, proof: evs[1]!.proof! }, ...evs.slice(1)],
      // the entry moved to another index (with that index's proof)
      (evs: WireEvent[]) => [{ ...evs[1]!, entry: evs[0]!.entry }, ...evs.slice(1)],
    ]) {
      const r = await withLie(lie);
      assert.equal(r.unproven.length, 1, JSON.stringify(r.unproven));
      assert.match(r.unproven[0]!.reason, /inclusion proof fails/);
      assert.equal(r.events.length, honest.events.length - 1);
    }
  });

  test("proofs for a different tree size than the checkpoint's: every event rejected", async () => {
    const r = await withLie(async (evs, size) => {
      const out: WireEvent[] = [];
      for (const e of evs)
        out.push({ ...e, proof: (await server.store.audit.inclusionProof(e.index, size - 1)).map(toBase64) });
      return out;
    });
    assert.deepEqual(r.events, []);
    assert.equal(r.unproven.length, honest.events.length);
  });

  test("a proven event that does not match the query, an index outside the tree, a duplicate: rejected", async () => {
    const r = await withLie(async (evs, size) => {
      const [olgas] = await server.store.audit.query({ actor: "olga", limit: 1, before: size });
      const proof = (await server.store.audit.inclusionProof(olgas!.index, size)).map(toBase64);
      return [
        ...evs,
        { index: olgas!.index, entry: toBase64(olgas!.data), proof },
        { ...evs[0]!, index: size + 5 },
        { ...evs[0]!, index: -1 },
        evs[0]!,
      ];
    });
    assert.equal(r.events.length, honest.events.length);
    assert.deepEqual(
      r.unproven.map((u) => u.reason.replace(/^entry -?\d+ /, "")),
      [
        "does not match the query",
        `is not in the signed audit log of size ${r.checkpoint.size}`,
        `is not in the signed audit log of size ${r.checkpoint.size}`,
        "was returned twice",
      ],
    );
    assert.ok(r.events.every((e) => e.actor === "alice"));
  });

  test("a checkpoint signed by another key (same name) is refused, nothing is returned", async () => {
    const other = parseNoteSignerKey(generateNoteKey(server.logKey!.origin).skey);
    lies.checkpoint = (_c, plain) =>
      signNote(noteText(plain, server.logKey!.vkey), [other, ...witnesses.map((w) => w.signer)]);
    try {
      await assert.rejects(query(), (e) => isValiseError(e) && /checkpoint does not verify/.test(e.message));
    } finally {
      delete lies.checkpoint;
    }
  });

  test("a checkpoint without the pinned witness quorum is refused (none, or 1 of 2)", async () => {
    for (const [lie, re] of [
      [(_c: string, plain: string) => plain, /0 of 2 required witness cosignatures/],
      [(_c: string, plain: string) => cosign(plain, [witnesses[0]!.signer]), /1 of 2 required witness cosignatures/],
    ] as const) {
      lies.checkpoint = lie;
      try {
        await assert.rejects(query(), (e) => isValiseError(e) && re.test(e.message));
      } finally {
        delete lies.checkpoint;
      }
    }
  });

  test("an explicit log key of another log is refused", async () => {
    const { vkey } = generateNoteKey(server.logKey!.origin);
    await assert.rejects(
      olga.audit.query({}, { logKey: vkey }),
      (e) => isValiseError(e) && /checkpoint does not verify/.test(e.message),
    );
    // …and the right one given explicitly works, without a witness quorum (said so).
    const r = await olga.audit.query({ limit: 1 }, { logKey: server.logKey!.vkey });
    assert.equal(r.keySource, "flag");
    assert.match(r.warning ?? "", /No witness quorum/);
  });

  test("a profile without trust anchors: the server's key, keySource server, said loudly", async () => {
    const tofu = await enroll("olga", false);
    await checkpointed();
    const r = await tofu.audit.query({ actor: "alice", limit: 5 });
    assert.equal(r.keySource, "server");
    assert.match(r.warning ?? "", /trust on first use/);
    assert.match(describeAuditProof(r), /not pinned/);
  });

  test("non-officers are refused; an unknown cable reference is 404", async () => {
    await assert.rejects(alice.audit.query({}), (e) => isValiseError(e) && e.code === "forbidden");
    await assert.rejects(
      olga.audit.cableByReference("HQ/SEC 2026/000999"),
      (e) => isValiseError(e) && e.code === "not_found",
    );
  });

  test("proveAuditEvents alone: garbage entries and odd indices never become events", () => {
    const cp = honest.checkpoint;
    const r = proveAuditEvents(
      [
        { index: Number.NaN, entry: new Uint8Array(), proof: [] },
        { index: 0, entry: new TextEncoder().encode("{}"), proof: [] },
        { index: 0, entry: new TextEncoder().encode("not json"), proof: [] },
        { index: 2 ** 60, entry: new Uint8Array(), proof: [] },
      ],
      cp,
    );
    assert.deepEqual(r.events, []);
    assert.equal(r.unproven.length, 4);
    assert.ok(parseNoteVerifierKey(server.logKey!.vkey));
  });
});
