/**
 * Issue 14 parts 2 and 3 against `valise serve`, with the CLI as separate processes (profiles enrolled with the
 * bundle: the directory comes from the witnessed log):
 *  - `valise admin unit share UNIT --since DURATION|all` (a `unit.share` log entry) limits what a unit's members
 *    forward to members who join later; the default shares everything;
 *  - `valise admin archive assign USER UNIT` (`archive.assign`): only an archivist cleared for the unit's highest
 *    label; its device joins the unit's groups, is shown to every member as the archive (a directory notice, and
 *    `conversations --json` members with "archive":true) and receives every key of the unit, whatever the share
 *    window;
 *  - a server that forges an archive assignment in its database (no log entry) gets no device added and no key; the
 *    members alert (SQLite and PostgreSQL).
 */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execFile } from "node:child_process";
import { sql } from "kysely";
import { generateDeviceKeys, signChallenge } from "@valise/protocol";
import type { DeviceId, UserHandle } from "@valise/core";
import { archiveSigningMessage } from "@valise/client";
import { openStore, type Store } from "@valise/server";
import { DATABASE_KINDS, freshDb, type TestDb } from "@valise/server/testing/databases";
import { CLI, cliEnv, startServeProcess } from "./cli-process.js";

interface Item {
  type: string;
  from: string;
  text: string;
  event?: string;
  unit?: string | null;
}
interface Conv {
  id: string;
  kind: string;
  unit: string | null;
  label: string;
  members: { user: string; device: string; archive?: boolean; role?: string }[];
}

for (const kind of DATABASE_KINDS) {
  describe(`records archive and share window on ${kind}, CLI as separate processes`, { timeout: 900_000 }, () => {
    let db: TestDb;
    let server: Awaited<ReturnType<typeof startServeProcess>>;
    let store: Store;
    const dir = mkdtempSync(join(tmpdir(), "valise-archive-"));
    const env = (): NodeJS.ProcessEnv => cliEnv({ VALISE_DATABASE_URL: db.databaseUrl ?? "" });
    const profile = (h: string) => join(dir, `p-${h}`);
    const run = (args: string[]): Promise<{ code: number; stdout: string; stderr: string }> =>
      new Promise((resolve) => {
        execFile(process.execPath, [CLI, ...args], { timeout: 120_000, env: env() }, (err, stdout, stderr) => {
          resolve({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, stdout, stderr });
        });
      });
    const json = async <T = Record<string, unknown>>(args: string[]): Promise<T> => {
      const r = await run([...args, "--json"]);
      assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
      return JSON.parse(r.stdout) as T;
    };
    const admin = (...a: string[]) => json(["admin", "--data", db.dataDir, ...a]);
    const sync = async (h: string) => (await json<{ items: Item[] }>(["sync", "--profile", profile(h)])).items;
    const alerts = (items: Item[]) => items.filter((i) => i.type === "alert").map((i) => i.text);
    const convs = async (h: string) =>
      (await json<{ conversations: Conv[] }>(["conversations", "--profile", profile(h)])).conversations;
    const heldCables = async (h: string): Promise<string[]> => {
      const r = await json<{ cables: { reference: string; subject: string | null }[] }>([
        "cable",
        "list",
        "--profile",
        profile(h),
      ]);
      return r.cables.filter((c) => c.subject !== null).map((c) => c.reference);
    };
    const opens = async (h: string, ref: string) => (await run(["cable", "show", "--profile", profile(h), ref])).code;
    const enroll = async (h: string, units: string[], clearance: string, role = "user") => {
      const bundle = await admin(
        "user",
        "add",
        h,
        ...units.flatMap((u) => ["--unit", u]),
        "--clearance",
        clearance,
        "--role",
        role,
      );
      const file = join(dir, `${h}.json`);
      writeFileSync(file, JSON.stringify(bundle));
      await json(["enroll", "--server", server.url, "--bundle", file, "--profile", profile(h), "--name", "laptop"]);
    };
    const cable = (subject: string, label = "CONFIDENTIAL/ASIA") =>
      json<{ reference: string; id: string }>([
        "cable",
        "send",
        "--profile",
        profile("jnovak"),
        "--action",
        "EMB/BEIJING",
        "--precedence",
        "IMMEDIATE",
        "--label",
        label,
        "--subject",
        subject,
        "--body",
        `body of ${subject}`,
      ]);
    /** Raw SQL as the attacker with the database runs it. */
    const forge = (q: ReturnType<typeof sql>) => q.execute(store.handle.db);

    after(async () => {
      server?.kill();
      await store?.close();
      await db?.dispose();
      rmSync(dir, { recursive: true, force: true });
    });

    let first: { reference: string; id: string };

    test("set-up: units, people, a cable to Beijing", async () => {
      db = await freshDb(kind);
      await admin("unit", "add", "HQ/ASIA-1", "--max-label", "SECRET/ASIA");
      await admin("unit", "add", "EMB/BEIJING", "--max-label", "SECRET/ASIA");
      server = await startServeProcess(db.dataDir, [], env());
      store = await openStore({ dataDir: db.dataDir, databaseUrl: db.databaseUrl });
      await enroll("jnovak", ["HQ/ASIA-1"], "SECRET/ASIA");
      await enroll("pdvorak", ["EMB/BEIJING"], "SECRET/ASIA");
      first = await cable("Visa policy");
      await sync("pdvorak");
      assert.deepEqual(await heldCables("pdvorak"), [first.reference]);
    });

    test("a server that forges an archive assignment in its database gets no device added and no key", async () => {
      // An archivist without any assignment in the log; the operator adds the rows an assignment would write.
      await enroll("xarch", [], "SECRET/ASIA", "archivist");
      await forge(sql`INSERT INTO user_units (handle, unit) VALUES ('xarch', 'EMB/BEIJING')`);
      await forge(sql`INSERT INTO archive_units (handle, unit, created_at) VALUES ('xarch', 'EMB/BEIJING', 1)`);
      const items = await sync("pdvorak");
      const bj = (await convs("pdvorak")).filter((c) => c.unit === "EMB/BEIJING");
      assert.ok(bj.length > 0);
      for (const c of bj) assert.ok(!c.members.some((m) => m.user === "xarch"), "no forged archive device added");
      const a = alerts([...items, ...(await sync("pdvorak"))]);
      assert.ok(
        a.some((t) => /unit EMB\/BEIJING: the server lists "xarch" as a member, the log does not/.test(t)),
        a.join(" | "),
      );
      await sync("xarch");
      assert.equal(await opens("xarch", first.reference), 1, "the forged archive cannot open the cable");
      await forge(sql`DELETE FROM archive_units WHERE handle = 'xarch'`);
      await forge(sql`DELETE FROM user_units WHERE handle = 'xarch'`);
    });

    if (kind !== "sqlite") return; // the rest is the same code on either database: once is enough for CI time

    test("the share window limits what a late member is forwarded; the default shares everything", async () => {
      // Within a 1 h window: the late member gets the cable.
      await admin("unit", "share", "EMB/BEIJING", "--since", "1h");
      await enroll("late1", ["EMB/BEIJING"], "SECRET/ASIA");
      await sync("pdvorak");
      await sync("late1");
      assert.equal(await opens("late1", first.reference), 0, "inside the window: forwarded");
      // A 1 s window, the cable older than that: a second late member gets nothing old.
      await new Promise((r) => setTimeout(r, 1500));
      const set = await admin("unit", "share", "EMB/BEIJING", "--since", "1s");
      assert.deepEqual(set, { unit: "EMB/BEIJING", since: "1", changed: true });
      await enroll("late2", ["EMB/BEIJING"], "SECRET/ASIA");
      const p = await sync("pdvorak");
      assert.ok(
        p.some(
          (i) => i.type === "directory" && /EMB\/BEIJING now shares .* only the keys of the last 1 second/.test(i.text),
        ),
        JSON.stringify(p),
      );
      await sync("late2");
      assert.equal(await opens("late2", first.reference), 1, "outside the window: not forwarded");
      const bj = (await convs("pdvorak")).find((c) => c.kind === "link" || c.unit === "EMB/BEIJING")!;
      assert.ok(
        bj.members.some((m) => m.user === "late2"),
        "late2 is a member all the same",
      );
      assert.deepEqual(await admin("unit", "share", "EMB/BEIJING", "--since", "all"), {
        unit: "EMB/BEIJING",
        since: "all",
        changed: true,
      });
      // A malformed duration is refused before anything is written.
      const bad = await run(["admin", "--data", db.dataDir, "unit", "share", "EMB/BEIJING", "--since", "soon"]);
      assert.equal(bad.code, 2, bad.stderr);
    });

    test("archive assign: only an archivist cleared for the unit; visible as the archive; gets every key", async () => {
      await admin("unit", "share", "EMB/BEIJING", "--since", "1s"); // the archive gets everything all the same
      // Refused: a user who is not an archivist, an archivist below the unit's highest label.
      await admin("user", "add", "mcerny", "--unit", "HQ/ASIA-1", "--clearance", "SECRET/ASIA");
      const notArchivist = await run(["admin", "--data", db.dataDir, "archive", "assign", "mcerny", "EMB/BEIJING"]);
      assert.notEqual(notArchivist.code, 0);
      assert.match(notArchivist.stderr, /only an archivist can be an archive/);
      await admin("user", "add", "lowarch", "--clearance", "CONFIDENTIAL/ASIA", "--role", "archivist");
      const low = await run(["admin", "--data", db.dataDir, "archive", "assign", "lowarch", "EMB/BEIJING"]);
      assert.notEqual(low.code, 0);
      assert.match(low.stderr, /below EMB\/BEIJING's highest label SECRET\/ASIA/);

      await enroll("rarchive", [], "SECRET/ASIA", "archivist");
      assert.deepEqual(await admin("archive", "assign", "rarchive", "EMB/BEIJING"), {
        handle: "rarchive",
        unit: "EMB/BEIJING",
      });
      const secret = await cable("Asset list", "SECRET/ASIA");
      // Members see the archive: a directory notice naming it, and the member list marks it.
      const p = await sync("pdvorak");
      assert.ok(
        p.some(
          (i) =>
            i.type === "directory" &&
            i.event === "archive.assign" &&
            /rarchive is now the records archive of EMB\/BEIJING/.test(i.text),
        ),
        JSON.stringify(p.filter((i) => i.type === "directory")),
      );
      const withArchive = (await convs("pdvorak")).filter((c) => c.members.some((m) => m.user === "rarchive"));
      assert.ok(withArchive.length > 0, "the archive's device is a member of Beijing's groups");
      for (const c of withArchive)
        for (const m of c.members.filter((x) => x.user === "rarchive")) {
          assert.equal(m.archive, true);
          assert.equal(m.role, "archivist");
        }
      const human = await run(["conversations", "--profile", profile("pdvorak")]);
      assert.match(human.stdout, /rarchive \(archive\)/);
      // Every key, whatever the 1 s share window: the old cable (forwarded) and the new one.
      const a = await sync("rarchive");
      assert.deepEqual(alerts(a), ["You are now the records archive of unit EMB/BEIJING"]);
      assert.equal(await opens("rarchive", first.reference), 0, "the archive gets what the window would not share");
      assert.equal(await opens("rarchive", secret.reference), 0);
      // Its role cannot change while it is an archive; removal ends it (and the role can then change).
      const role = await run(["admin", "--data", db.dataDir, "user", "role", "rarchive", "user"]);
      assert.notEqual(role.code, 0);
      assert.match(role.stderr, /is the archive of EMB\/BEIJING/);
      const memberRemove = await run([
        "admin",
        "--data",
        db.dataDir,
        "unit",
        "member",
        "remove",
        "EMB/BEIJING",
        "rarchive",
      ]);
      assert.notEqual(memberRemove.code, 0);
      // The change is in the witnessed log and the audit log.
      const history = await admin("user", "history", "rarchive");
      assert.ok(
        (history.history as { type: string }[]).some((h) => h.type === "archive.assign"),
        JSON.stringify(history),
      );
    });

    test("archive export: every cable and document byte-identical, a signed manifest; verify fails after any change", async () => {
      // A cable with a binary attachment and a document shared with the unit, after the assignment.
      const attachment = randomBytes(70_000);
      const docBytes = randomBytes(200_000);
      writeFileSync(join(dir, "annex.bin"), attachment);
      writeFileSync(join(dir, "report.pdf"), docBytes);
      const withAttachment = await json<{ reference: string; id: string }>([
        "cable",
        "send",
        "--profile",
        profile("jnovak"),
        "--action",
        "EMB/BEIJING",
        "--precedence",
        "FLASH",
        "--label",
        "SECRET/ASIA",
        "--subject",
        "Annex",
        "--body",
        "see the annex\nsecond line",
        "--attach",
        join(dir, "annex.bin"),
      ]);
      const doc = await json<{ id: string; version: number }>([
        "doc",
        "put",
        "--profile",
        profile("pdvorak"),
        "--to",
        "EMB/BEIJING",
        "--label",
        "CONFIDENTIAL/ASIA",
        join(dir, "report.pdf"),
      ]);
      await sync("pdvorak");
      // Conversation messages in Beijing's unit channel (the archive's device is a member): one before the export
      // window, two inside (from two members, one not plain ASCII), one after. The archivist does not sync: the
      // export's own catch-up decrypts them and keeps them in its history.
      const say = (who: string, text: string) =>
        json<{ conversation: string; seq: number }>([
          "send",
          "--profile",
          profile(who),
          "--to",
          "EMB/BEIJING",
          "--label",
          "CONFIDENTIAL/ASIA",
          text,
        ]);
      const pause = () => new Promise((r) => setTimeout(r, 30));
      const before = await say("pdvorak", "before the window");
      await pause();
      const since = new Date().toISOString();
      await pause();
      const in1 = await say("pdvorak", "Courier leaves Thursday, 08:00");
      const in2 = await say("late1", "Bien reçu — Tōkyō confirms\nsecond line");
      await pause();
      const until = new Date().toISOString();
      await pause();
      await say("pdvorak", "after the window");
      assert.equal(in1.conversation, before.conversation);

      // A non-archivist gets no archive.
      const refused = await run(["archive", "export", "--profile", profile("pdvorak"), "--out", join(dir, "x")]);
      assert.notEqual(refused.code, 0);
      assert.match(refused.stderr, /pdvorak is the records archive of no unit/);

      const out = join(dir, "export");
      const r = await json<{
        cables: number;
        documents: number;
        missing: number;
        units: string[];
        messages: number;
      }>(["archive", "export", "--profile", profile("rarchive"), "--out", out]);
      assert.deepEqual(r.units, ["EMB/BEIJING"]);
      assert.equal(r.cables, 3, JSON.stringify(r));
      assert.equal(r.documents, 1);
      assert.equal(r.missing, 0);
      assert.ok(r.messages >= 4, JSON.stringify(r)); // the four above and the document's share
      const manifest = JSON.parse(readFileSync(join(out, "manifest.json"), "utf8")) as {
        items: { kind: string; reference?: string; id: string; label: string; files: string[] }[];
        files: { path: string; sha256: string }[];
        checkpoint: { size: number };
        messages: { included: boolean };
      };
      assert.equal(manifest.messages.included, true);
      assert.ok(manifest.checkpoint.size > 0);
      const refs = manifest.items.filter((i) => i.kind === "cable").map((i) => i.reference);
      assert.deepEqual(
        refs.sort(),
        [
          first.reference,
          withAttachment.reference,
          refs.find((x) => x !== first.reference && x !== withAttachment.reference)!,
        ].sort(),
      );
      // Byte-identical: the attachment, the document, the bodies.
      const annex = manifest.items.find((i) => i.reference === withAttachment.reference)!;
      const annexFile = annex.files.find((f) => f.includes("/attachments/"))!;
      assert.ok(readFileSync(join(out, annexFile)).equals(attachment));
      assert.equal(
        readFileSync(
          join(
            out,
            annex.files.find((f) => f.endsWith("body.txt"))!,
          ),
          "utf8",
        ),
        "see the annex\nsecond line",
      );
      const visa = manifest.items.find((i) => i.reference === first.reference)!;
      assert.equal(
        readFileSync(
          join(
            out,
            visa.files.find((f) => f.endsWith("body.txt"))!,
          ),
          "utf8",
        ),
        "body of Visa policy",
      );
      const d = manifest.items.find((i) => i.kind === "document" && i.id === doc.id)!;
      assert.equal(d.label, "CONFIDENTIAL/ASIA");
      assert.ok(
        readFileSync(
          join(
            out,
            d.files.find((f) => f.includes("/content/"))!,
          ),
        ).equals(docBytes),
      );
      // Reading for the archive is not the unit reading: the cable stays unread for Beijing.
      const listed = await json<{ cables: { id: string; receipts: { unit: string; readAt: string | null }[] }[] }>([
        "cable",
        "list",
        "--profile",
        profile("jnovak"),
      ]);
      const receipts = listed.cables.find((x) => x.id === withAttachment.id)!.receipts;
      assert.ok(receipts.length > 0 && receipts.every((x) => x.readAt === null), JSON.stringify(receipts));

      // A third party verifies it (and, with the bundle, the log proves the signing device and the assignment).
      const bundle = join(dir, "rarchive.json");
      const ok = await json<{ ok: boolean; files: number }>(["archive", "verify", out, "--bundle", bundle]);
      assert.equal(ok.ok, true);
      assert.equal(ok.files, manifest.files.length);

      const verifyFails = async (why: RegExp) => {
        const v = await run(["archive", "verify", out, "--bundle", bundle]);
        assert.equal(v.code, 1, v.stdout);
        assert.match(v.stderr, why);
      };
      const restore = (path: string, bytes: Buffer) => writeFileSync(path, bytes);
      // One byte of a file.
      const target = join(out, annexFile);
      const orig = readFileSync(target);
      const changed = Buffer.from(orig);
      changed[12_345] = changed[12_345]! ^ 0x01;
      writeFileSync(target, changed);
      await verifyFails(/SHA-256 differs from the manifest/);
      restore(target, orig);
      // One byte of the manifest (the signature no longer holds).
      const mpath = join(out, "manifest.json");
      const m0 = readFileSync(mpath);
      writeFileSync(mpath, Buffer.from(m0.toString("utf8").replace('"CONFIDENTIAL/ASIA"', '"UNCLASSIFIED"')));
      await verifyFails(/not a valid signature over manifest\.json/);
      restore(mpath, m0);
      // A removed file, an added file.
      rmSync(target);
      await verifyFails(/is missing/);
      restore(target, orig);
      writeFileSync(join(out, "documents", "extra.txt"), "planted");
      await verifyFails(/documents\/extra\.txt is not in the manifest/);
      rmSync(join(out, "documents", "extra.txt"));
      // A forged signature: another key signs a changed manifest naming itself; the log does not know that device.
      const forger = await generateDeviceKeys("forger" as UserHandle, "d-forger" as DeviceId);
      const forged = JSON.parse(m0.toString("utf8")) as Record<string, unknown>;
      forged.deviceKey = Buffer.from(forger.signaturePublicKey).toString("base64");
      const fbytes = Buffer.from(JSON.stringify(forged));
      writeFileSync(mpath, fbytes);
      const sig0 = readFileSync(join(out, "manifest.sig"));
      writeFileSync(
        join(out, "manifest.sig"),
        Buffer.from(await signChallenge(forger.signaturePrivateKey, archiveSigningMessage(fbytes))).toString("base64"),
      );
      const selfConsistent = await run(["archive", "verify", out]);
      assert.equal(selfConsistent.code, 0, "a self-signed forgery is consistent without trust anchors");
      await verifyFails(/does not add device .* with the signing key/);
      // A signature by the right key over other bytes.
      restore(mpath, m0);
      const sigBytes = Buffer.from(sig0.toString("utf8").trim(), "base64");
      sigBytes[5] = sigBytes[5]! ^ 0x80;
      writeFileSync(join(out, "manifest.sig"), sigBytes.toString("base64"));
      await verifyFails(/not a valid signature/);
      restore(join(out, "manifest.sig"), sig0);
      assert.equal((await run(["archive", "verify", out, "--bundle", bundle])).code, 0, "restored: verifies again");

      // The window: exactly the two messages sent inside it, text identical, with sender user and device.
      const win = join(dir, "export-window");
      const w = await json<{ cables: number; documents: number; conversations: number; messages: number }>([
        "archive",
        "export",
        "--profile",
        profile("rarchive"),
        "--since",
        since,
        "--until",
        until,
        "--out",
        win,
      ]);
      assert.deepEqual(
        { cables: w.cables, documents: w.documents, conversations: w.conversations, messages: w.messages },
        { cables: 0, documents: 0, conversations: 1, messages: 2 },
      );
      const wm = JSON.parse(readFileSync(join(win, "manifest.json"), "utf8")) as {
        items: { kind: string; id: string; unit: string; messages: number; files: string[] }[];
        files: { path: string }[];
        messages: { included: boolean; count: number };
      };
      assert.deepEqual(wm.messages.included && wm.messages.count, 2);
      const conv = wm.items.find((i) => i.kind === "conversation")!;
      assert.equal(conv.id, before.conversation);
      assert.equal(conv.unit, "EMB/BEIJING");
      const msgFile = conv.files.find((f) => f.endsWith("messages.json"))!;
      assert.ok(wm.files.some((f) => f.path === msgFile) && wm.files.some((f) => f.path === conv.files[0]));
      const rows = JSON.parse(readFileSync(join(win, msgFile), "utf8")) as {
        seq: number;
        from: string;
        device: string | null;
        label: string;
        time: string;
        text: string;
      }[];
      assert.deepEqual(
        rows.map((x) => [x.seq, x.from, x.label, x.text]),
        [
          [in1.seq, "pdvorak", "CONFIDENTIAL/ASIA", "Courier leaves Thursday, 08:00"],
          [in2.seq, "late1", "CONFIDENTIAL/ASIA", "Bien reçu — Tōkyō confirms\nsecond line"],
        ],
      );
      for (const x of rows) {
        assert.ok(x.device && x.device.length > 0, "the sending device is named");
        assert.ok(x.time >= since && x.time < until, `${x.time} in [${since}, ${until})`);
      }
      assert.equal((await run(["archive", "verify", win, "--bundle", bundle])).code, 0);
      // One flipped byte of the message file: verify fails.
      const mf = join(win, msgFile);
      const mb = readFileSync(mf);
      const flipped = Buffer.from(mb);
      const at = mb.indexOf("Thursday");
      flipped[at] = flipped[at]! ^ 0x20;
      writeFileSync(mf, flipped);
      const bad = await run(["archive", "verify", win, "--bundle", bundle]);
      assert.equal(bad.code, 1, bad.stdout);
      assert.match(bad.stderr, /messages\.json: SHA-256 differs from the manifest/);
    });
  });
}
