/**
 * Issue 13 findings 2, 3 and 8 against `valise serve` with real clients: the honest users run the `valise` CLI as
 * separate processes; the malicious member (mcerny, EMB/BEIJING) runs a modified client — the SDK on his own CLI
 * profile — that sends hand-made payloads inside MLS:
 *  - re-sends a FLASH cable's payload with a new subject, or a new key, naming the real sender or himself (3);
 *  - re-sends a document's payload with another file name (3);
 *  - sends a document payload with id `__proto__` (2);
 *  - sends texts, cable subjects and file names full of terminal control sequences (8).
 * Each forgery is refused, the original stays readable, and an alert naming mcerny appears in the victim's sync.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ValiseClient, type CablePayload, type DocumentPayload } from "@valise/client";
import { FileKeyStore } from "@valise/client/node/file-store";
import { nodeStreamCipher } from "@valise/client/node/docstream";
import { toBase64 } from "@valise/core";
import { runCli, startServeProcess } from "./cli-process.js";

const dir = mkdtempSync(join(tmpdir(), "valise-malpeer-"));
const dataDir = join(dir, "data");
let stopServer = () => {};
after(() => {
  stopServer();
  rmSync(dir, { recursive: true, force: true });
});

const profile = (h: string) => join(dir, h);
async function json<T = Record<string, unknown>>(args: string[]): Promise<T> {
  return JSON.parse((await runCli([...args, "--json"])).stdout) as T;
}
type Item = { type: string; from: string; text: string; reference?: string; id?: string };
const syncJson = async (h: string) => (await json<{ items: Item[] }>(["sync", "--profile", profile(h)])).items;
/** The attacker's modified client: the SDK on his CLI profile (no CLI process runs on it meanwhile). */
const attacker = () => ValiseClient.open({ store: new FileKeyStore(profile("mcerny")), cipher: nodeStreamCipher() });
const protoKeys = () => Object.getOwnPropertyNames(Object.prototype).sort().join();

let ready: Promise<{ url: string }> | null = null;
function setUp(): Promise<{ url: string }> {
  ready ??= (async () => {
    const admin = (...a: string[]) => runCli(["admin", "--data", dataDir, ...a]);
    await admin("unit", "add", "HQ/ASIA-1", "--max-label", "SECRET/ASIA");
    await admin("unit", "add", "EMB/BEIJING", "--max-label", "CONFIDENTIAL/ASIA");
    const server = await startServeProcess(dataDir);
    stopServer = () => server.kill();
    for (const [h, unit, clearance] of [
      ["jnovak", "HQ/ASIA-1", "SECRET/ASIA"],
      ["pdvorak", "EMB/BEIJING", "CONFIDENTIAL/ASIA"],
      ["mcerny", "EMB/BEIJING", "CONFIDENTIAL/ASIA"],
    ] as const) {
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
      ]);
      await runCli(["enroll", "--server", server.url, "--code", add.enrollmentCode, "--profile", profile(h)]);
    }
    return { url: server.url };
  })();
  return ready;
}

test(
  "a member's forged copies of a FLASH cable (new subject, new key) are refused and alerted; the original stays",
  { timeout: 300_000 },
  async () => {
    await setUp();
    const sent = await json<{ reference: string; id: string }>([
      "cable",
      "send",
      "--profile",
      profile("jnovak"),
      "--action",
      "EMB/BEIJING",
      "--precedence",
      "FLASH",
      "--label",
      "CONFIDENTIAL/ASIA",
      "--subject",
      "Evacuate the embassy",
      "--body",
      "Leave by 18:00; take the archive.",
    ]);
    const first = await syncJson("pdvorak");
    assert.deepEqual(
      first.filter((i) => i.type === "cable").map((i) => [i.reference, i.text]),
      [[sent.reference, "Evacuate the embassy"]],
    );

    // mcerny received the same cable (he is in EMB/BEIJING) and forges copies of its payload in the link group
    // HQ/ASIA-1 → EMB/BEIJING that carried it.
    const m = await attacker();
    await m.sync();
    const key = m.cableKey(sent.id);
    assert.ok(key, "the attacker holds the cable key, as any member does");
    const rec = await m.transport.cable(sent.id);
    const link = m.conversationList().find((c) => c.kind === "link" && c.unit === "EMB/BEIJING");
    assert.ok(link, "the link conversation that carried the cable");
    const original: CablePayload = {
      t: "cable",
      id: rec.id,
      reference: rec.reference,
      originator: rec.originator,
      precedence: rec.precedence,
      label: rec.label,
      action: rec.action,
      info: rec.info,
      corrects: rec.corrects,
      subject: "Evacuate the embassy",
      blob: rec.blob,
      size: rec.size,
      key,
      sender: rec.sender,
      senderDevice: rec.senderDevice,
    };
    const forged = "CANCELLED – take no action";
    const { sender: _s, senderDevice: _d, ...oldStyle } = original;
    const forgeries: object[] = [
      { ...original, subject: forged }, // names jnovak as its sender
      { ...original, key: toBase64(globalThis.crypto.getRandomValues(new Uint8Array(32))) }, // key overwrite
      { ...original, subject: forged, sender: m.handle, senderDevice: m.deviceId }, // names himself
      { ...oldStyle, subject: forged }, // the payload as the finding's attacker sent it
    ];
    for (const f of forgeries) await m.sendPayload(link.id, f as CablePayload);
    await m.save();

    const after = await syncJson("pdvorak");
    const alerts = after.filter((i) => i.type === "alert");
    assert.equal(alerts.length, forgeries.length, JSON.stringify(after));
    for (const a of alerts) assert.match(`${a.from} ${a.text}`, /mcerny/, a.text);
    assert.ok(alerts.some((a) => a.from === "mcerny" && /naming jnovak/.test(a.text)));
    assert.ok(alerts.some((a) => a.from === "mcerny" && /differs from the one held/.test(a.text)));
    assert.ok(!after.some((i) => i.text.includes("CANCELLED")), "the forged subject is shown nowhere");

    const list = await json<{ cables: { reference: string; subject: string | null; problem?: string }[] }>([
      "cable",
      "list",
      "--profile",
      profile("pdvorak"),
    ]);
    const row = list.cables.find((c) => c.reference === sent.reference);
    assert.equal(row?.subject, "Evacuate the embassy");
    assert.equal(row?.problem, undefined);
    const shown = await json<{ subject: string; body: string; sender: string }>([
      "cable",
      "show",
      sent.reference,
      "--profile",
      profile("pdvorak"),
    ]);
    assert.equal(shown.subject, "Evacuate the embassy");
    assert.equal(shown.body, "Leave by 18:00; take the archive.");
    assert.equal(shown.sender, "jnovak");
  },
);

test(
  "a forged document copy is refused; a `__proto__` document pollutes nothing and is refused with an alert",
  { timeout: 300_000 },
  async () => {
    await setUp();
    const file = join(dir, "report.txt");
    writeFileSync(file, "the real report\n");
    const put = await json<{ id: string; version: number }>([
      "doc",
      "put",
      "--profile",
      profile("jnovak"),
      "--to",
      "EMB/BEIJING",
      "--label",
      "CONFIDENTIAL",
      file,
    ]);
    await syncJson("pdvorak");

    const m = await attacker();
    await m.sync();
    const doc = await m.transport.document(put.id);
    const v = doc.versions[0]!;
    const link = m.conversationList().find((c) => c.kind === "link" && c.unit === "EMB/BEIJING");
    assert.ok(link);
    // The key is not exposed by the SDK; a forged copy with any key: it differs from the held one either way.
    const forgedDoc: DocumentPayload = {
      t: "doc",
      id: put.id,
      version: v.version,
      label: "CONFIDENTIAL",
      name: "report-UPDATED.exe",
      size: 16,
      blob: v.blob,
      key: toBase64(new Uint8Array(32).fill(7)),
      to: { kind: "unit", name: "EMB/BEIJING" },
      sender: "jnovak",
      senderDevice: (JSON.parse(readFileSync(join(profile("jnovak"), "profile.json"), "utf8")) as { deviceId: string })
        .deviceId,
    };
    await m.sendPayload(link.id, forgedDoc);
    await m.sendPayload(link.id, { ...forgedDoc, sender: m.handle, senderDevice: m.deviceId });
    // The finding's exploit, in a direct conversation (a Welcome is joined automatically).
    const direct = await m.conversationFor({ kind: "direct", peer: "pdvorak", label: "UNCLASSIFIED" });
    const proto = {
      t: "doc",
      id: "__proto__",
      version: 7,
      label: "UNCLASSIFIED",
      name: "x",
      size: 1,
      blob: v.blob,
      key: toBase64(new Uint8Array(32)),
      to: { kind: "user", name: "pdvorak" },
      sender: m.handle,
      senderDevice: m.deviceId,
    };
    await m.sendPayload(direct.id, proto as unknown as DocumentPayload);
    await m.save();

    // The victim's client in this process, so Object.prototype can be inspected after it took the payloads in.
    const before = protoKeys();
    const victim = await ValiseClient.open({ store: new FileKeyStore(profile("pdvorak")), cipher: nodeStreamCipher() });
    const items = await victim.sync();
    assert.equal(protoKeys(), before, "Object.prototype gained properties");
    assert.equal(({} as Record<string, unknown>)["7"], undefined);
    const alerts = items.filter((i) => i.type === "alert");
    assert.equal(alerts.length, 3, JSON.stringify(items));
    for (const a of alerts) assert.match(`${a.from} ${a.text}`, /mcerny/);
    assert.ok(!items.some((i) => i.type === "document"), "no document item from a refused copy");
    assert.deepEqual(victim.heldKeys().documents, [put.id]);

    const docs = await json<{ documents: { id: string; name: string | null }[] }>([
      "doc",
      "list",
      "--profile",
      profile("pdvorak"),
    ]);
    assert.equal(docs.documents.find((d) => d.id === put.id)?.name, "report.txt");
    const out = join(dir, "got.txt");
    const got = await json<{ name: string }>(["doc", "get", put.id, "--out", out, "--profile", profile("pdvorak")]);
    assert.equal(got.name, "report.txt");
  },
);

test(
  "control characters from a peer are printed escaped by the CLI; JSON stays exact",
  { timeout: 300_000 },
  async () => {
    await setUp();
    const evil = "hi\x1b[2K\rALERT 10:00 your device was revoked\u202eexe.txt\u2066x\u2069\x9b31m\x7f\x07";
    await runCli(["send", "--profile", profile("mcerny"), "--to", "pdvorak", evil]);
    await runCli([
      "cable",
      "send",
      "--profile",
      profile("mcerny"),
      "--action",
      "HQ/ASIA-1",
      "--precedence",
      "ROUTINE",
      "--label",
      "UNCLASSIFIED",
      "--subject",
      `Subject\x1b]0;owned\x07\x1b[2K\r\u202eTCEJBUS`,
      "--body",
      "b",
    ]);
    const name = join(dir, "a\x1b[31mred\u202egpj.exe");
    writeFileSync(name, "x");
    await runCli(["doc", "put", "--profile", profile("mcerny"), "--to", "pdvorak", "--label", "UNCLASSIFIED", name]);

    const unsafe = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/;
    const human = (await runCli(["sync", "--profile", profile("pdvorak")])).stdout;
    assert.doesNotMatch(human, unsafe, JSON.stringify(human));
    assert.ok(human.includes("hi\\x1b[2K\\rALERT 10:00"), human);
    assert.ok(human.includes("\\u202eexe.txt"), human);
    assert.ok(human.includes("a\\x1b[31mred\\u202egpj.exe"), human);
    assert.ok(!/^ALERT 10:00/m.test(human), "the peer's text cannot start a line of its own");

    const hq = (await runCli(["sync", "--profile", profile("jnovak")])).stdout;
    assert.doesNotMatch(hq, unsafe, JSON.stringify(hq));
    assert.ok(hq.includes("CABLE EMB/BEIJING"), hq);
    const cables = (await runCli(["cable", "list", "--profile", profile("jnovak")])).stdout;
    assert.doesNotMatch(cables, unsafe, JSON.stringify(cables));
    assert.ok(cables.includes("Subject\\x1b]0;owned\\x07\\x1b[2K\\r\\u202eTCEJBUS"), cables);
    const docs = (await runCli(["doc", "list", "--profile", profile("pdvorak")])).stdout;
    assert.doesNotMatch(docs, unsafe, JSON.stringify(docs));

    // --json: escaped for the terminal too (raw bidi/C1/DEL are legal in JSON), and the value is exact.
    await runCli(["send", "--profile", profile("mcerny"), "--to", "pdvorak", evil]);
    const raw = (await runCli(["sync", "--profile", profile("pdvorak"), "--json"])).stdout;
    assert.doesNotMatch(raw, unsafe, JSON.stringify(raw));
    const items = (JSON.parse(raw) as { items: Item[] }).items;
    assert.ok(items.some((i) => i.type === "message" && i.text === evil));
  },
);
