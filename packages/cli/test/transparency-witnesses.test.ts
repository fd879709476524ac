/**
 * Clients and real witnesses (issue 4 items 4 and 5): two in-process `valise witness` apps cosign the directory log,
 * the server publishes only checkpoints both cosigned, and devices that pinned both witness keys with quorum 2 in
 * their enrollment bundle converse through the log-checked door. While one witness is down nothing new is
 * witnessed, so a device enrolled meanwhile is refused by senders; once the witness is back it is accepted.
 */
import { test, describe, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { FastifyInstance } from "fastify";
import { parseNoteVerifierKey, type NoteVerifier } from "@valise/core";
import { MemoryKeyStore, ValiseClient, type TrustAnchors } from "@valise/client";
import {
  WitnessStateDir,
  buildWitnessApp,
  generateWitnessKey,
  loadOrCreateLogKey,
  parseWitnessSpec,
  type WitnessEndpoint,
  type WitnessKey,
} from "@valise/server";
import { startTestServer } from "@valise/server/testing/server";
import { DATABASE_KINDS } from "@valise/server/testing/databases";
import { texts } from "./helpers.js";

const ASIA = "CONFIDENTIAL/ASIA";
const tmp = mkdtempSync(join(tmpdir(), "valise-kt-witness-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

interface RunningWitness {
  key: WitnessKey;
  endpoint: WitnessEndpoint;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** A witness on 127.0.0.1 that can be stopped and restarted on the same port and state directory. */
async function runWitness(name: string, logKeys: NoteVerifier[], dir: string): Promise<RunningWitness> {
  const key = generateWitnessKey(name).key;
  let app: FastifyInstance | undefined;
  let state: WitnessStateDir | undefined;
  let port = 0;
  const w: RunningWitness = {
    key,
    endpoint: undefined as unknown as WitnessEndpoint,
    async start() {
      state = new WitnessStateDir(dir);
      app = await buildWitnessApp({ key, logKeys, state });
      await app.listen({ port, host: "127.0.0.1" });
      const a = app.server.address();
      port = typeof a === "object" && a ? a.port : 0;
      w.endpoint = parseWitnessSpec(`http://127.0.0.1:${port}=${key.vkey}`);
    },
    async stop() {
      await app?.close();
      state?.close();
      app = undefined;
    },
  };
  await w.start();
  return w;
}

for (const kind of DATABASE_KINDS) {
  describe(`key transparency with real witnesses on ${kind}`, { timeout: 120_000 }, () => {
    test("quorum-2 devices converse; a device enrolled while a witness is down gets nothing until it is back (and the sender is told)", async () => {
      const dir = mkdtempSync(join(tmp, `${kind}-`));
      const logKey = loadOrCreateLogKey({ dataDir: dir, origin: "kt.valise.example/directory", env: {} });
      const logV = parseNoteVerifierKey(logKey.vkey);
      const w1 = await runWitness("w1.kt.example", [logV], join(dir, "w1"));
      const w2 = await runWitness("w2.kt.example", [logV], join(dir, "w2"));
      const server = await startTestServer(kind, {
        logKey,
        app: {
          witnesses: [w1.endpoint, w2.endpoint],
          witnessQuorum: 2,
          witnessRetryMs: 50,
          witnessTimeoutMs: 2000,
        },
      });
      try {
        const d = server.store.directory;
        await d.addUnit("HQ/ASIA-1", "SECRET/ASIA");
        await d.addUnit("EMB/BEIJING", "SECRET/ASIA");
        await d.addUser({ handle: "jnovak", units: ["HQ/ASIA-1"], clearance: "SECRET/ASIA", role: "user" });
        await d.addUser({ handle: "pdvorak", units: ["EMB/BEIJING"], clearance: "CONFIDENTIAL/ASIA", role: "user" });
        const trust: TrustAnchors = { logKey: logKey.vkey, witnesses: [w1.key.vkey, w2.key.vkey], quorum: 2 };
        const enroll = async (handle: string, name: string) =>
          ValiseClient.enroll({
            serverUrl: server.url,
            code: (await d.newEnrollmentCode(handle)).enrollmentCode,
            deviceName: name,
            store: new MemoryKeyStore(),
            trust,
            transparency: { pollMs: 20, maxWaitMs: 3000 },
          });
        const a = await enroll("jnovak", "laptop");
        const b = await enroll("pdvorak", "desk");
        await a.send("pdvorak", "witnessed", ASIA);
        assert.deepEqual(texts(await b.sync()), ["witnessed"]);
        const note = a.transparency!.state.checkpoint!.note;
        assert.ok(note.includes("— w1.kt.example ") && note.includes("— w2.kt.example "), note);

        // Witness 2 goes down: nothing new is witnessed, so the new phone is in no checkpoint the laptop accepts.
        await w2.stop();
        const phone = await enroll("pdvorak", "phone");
        // The send goes to the witnessed devices only: the phone is not added, and the laptop is told why.
        const { conversation } = await a.send("pdvorak", "not to an unwitnessed device", ASIA);
        assert.ok(!a.conversationMembers(conversation).some((m) => m.device === phone.deviceId));
        assert.ok(
          (await a.sync()).some(
            (i) =>
              i.type === "alert" && i.text.includes(`device "${phone.deviceId}" is in no witnessed checkpoint yet`),
          ),
        );
        // Back up: the publisher catches up and the phone is accepted.
        await w2.start();
        // Once a witnessed checkpoint covers the phone, the next send adds it.
        for (let i = 0; i < 600 && !Object.hasOwn(a.transparency!.directory.devices, phone.deviceId); i++) {
          await new Promise((r) => setTimeout(r, 100));
          await a.transparency!.refresh(true).catch(() => undefined);
        }
        await a.send("pdvorak", "now witnessed", ASIA);
        assert.deepEqual(texts(await phone.sync()), ["now witnessed"]);
        assert.deepEqual(texts(await b.sync()), ["not to an unwitnessed device", "now witnessed"]);
      } finally {
        await server.close();
        await w1.stop();
        await w2.stop();
      }
    });
  });
}
