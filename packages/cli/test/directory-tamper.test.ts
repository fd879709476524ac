/**
 * The directory is whole in the witnessed log (issue 12): the server's operator edits the database directly — a
 * membership row, a clearance, a role, a unit's max label, a device — and every client, run as separate `valise`
 * processes as users run it (a fresh process has no warm cache), must refuse to encrypt to the forged state, alert,
 * and go on with the members the log proves. On SQLite and PostgreSQL. Also: a device revoked between two sends in
 * separate processes is removed by the next send, which goes through.
 */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { sql } from "kysely";
import { openStore, type Store } from "@valise/server";
import { DATABASE_KINDS, freshDb, type TestDb } from "@valise/server/testing/databases";
import { runCli, startServeProcess } from "./cli-process.js";

interface Item {
  type: string;
  text: string;
  from: string;
  event?: string;
}
interface Conv {
  id: string;
  kind: string;
  unit: string | null;
  peer: string | null;
  label: string;
  members: { user: string; device: string }[];
}

for (const kind of DATABASE_KINDS) {
  describe(`forged directory rows on ${kind}, CLI as separate processes`, { timeout: 900_000 }, () => {
    let db: TestDb;
    let server: Awaited<ReturnType<typeof startServeProcess>>;
    let store: Store;
    const dir = mkdtempSync(join(tmpdir(), "valise-tamper-"));
    const env = (): NodeJS.ProcessEnv => ({ VALISE_DATABASE_URL: db.databaseUrl ?? "" });
    const profile = (h: string) => join(dir, `p-${h}`);
    const admin = async (...args: string[]) => (await runCli(["admin", "--data", db.dataDir, ...args], env())).stdout;
    const valise = async (...args: string[]) => (await runCli(args, env())).stdout;
    const sync = async (h: string): Promise<Item[]> =>
      (JSON.parse(await valise("sync", "--profile", profile(h), "--json")) as { items: Item[] }).items;
    const texts = (items: Item[]) => items.filter((i) => i.type === "message").map((i) => i.text);
    const alerts = (items: Item[]) => items.filter((i) => i.type === "alert").map((i) => i.text);
    const convs = async (h: string): Promise<Conv[]> =>
      (JSON.parse(await valise("conversations", "--profile", profile(h), "--json")) as { conversations: Conv[] })
        .conversations;
    const memberUsers = async (h: string, pick: (c: Conv) => boolean) =>
      [...new Set((await convs(h)).find(pick)!.members.map((m) => m.user))].sort();
    const send = (h: string, to: string, label: string, text: string) =>
      valise("send", "--profile", profile(h), "--to", to, "--label", label, text, "--json");
    const failure = async (p: Promise<unknown>): Promise<string> => {
      try {
        await p;
      } catch (e) {
        return String((e as { stderr?: string }).stderr ?? e);
      }
      assert.fail("expected the command to fail");
    };
    const enroll = async (h: string, name = "cli", p = profile(h)) => {
      const bundle = join(dir, `${h}-${name}.json`);
      writeFileSync(bundle, await admin("user", "code", h, "--json"));
      return JSON.parse(
        await valise("enroll", "--server", server.url, "--bundle", bundle, "--profile", p, "--name", name, "--json"),
      ) as { device: string };
    };
    /** Raw SQL as the attacker with the database runs it. */
    const forge = (q: ReturnType<typeof sql>) => q.execute(store.handle.db);

    after(async () => {
      server?.kill();
      await store?.close();
      await db?.dispose();
      rmSync(dir, { recursive: true, force: true });
    });

    test("set-up: units, people, devices (bundles pin the log key)", async () => {
      db = await freshDb(kind);
      await admin("unit", "add", "HQ/ASIA-1", "--max-label", "SECRET/ASIA");
      await admin("unit", "add", "EMB/BEIJING", "--max-label", "CONFIDENTIAL/ASIA");
      await admin("unit", "add", "EMB/TOKYO", "--max-label", "SECRET/ASIA");
      await admin("unit", "add", "HQ/SECURITY", "--max-label", "SECRET");
      for (const [h, unit, clearance] of [
        ["jnovak", "HQ/ASIA-1", "SECRET/ASIA"],
        ["lkral", "HQ/ASIA-1", "SECRET/ASIA"],
        ["ksvoboda", "EMB/TOKYO", "SECRET/ASIA"],
        ["pdvorak", "EMB/BEIJING", "CONFIDENTIAL/ASIA"],
      ] as const)
        await admin("user", "add", h, "--unit", unit, "--clearance", clearance);
      await admin("user", "add", "bofficer", "--unit", "HQ/SECURITY", "--clearance", "SECRET", "--role", "officer");
      server = await startServeProcess(db.dataDir, [], env());
      store = await openStore({ dataDir: db.dataDir, databaseUrl: db.databaseUrl });
      for (const h of ["jnovak", "lkral", "ksvoboda", "pdvorak", "bofficer"]) await enroll(h);
      await send("jnovak", "HQ/ASIA-1", "SECRET/ASIA", "channel opened");
      assert.deepEqual(texts(await sync("lkral")), ["channel opened"]);
    });

    test("a membership row alone (ksvoboda into HQ/ASIA-1): not added, reads nothing, alerts sender and victim", async () => {
      await forge(sql`INSERT INTO user_units (handle, unit) VALUES ('ksvoboda', 'HQ/ASIA-1')`);
      await send("jnovak", "HQ/ASIA-1", "SECRET/ASIA", "SECRET/ASIA: not for Tokyo");
      assert.deepEqual(await memberUsers("jnovak", (c) => c.kind === "unit"), ["jnovak", "lkral"]);
      assert.deepEqual(texts(await sync("lkral")), ["SECRET/ASIA: not for Tokyo"]);
      const k = await sync("ksvoboda");
      assert.deepEqual(texts(k), [], "ksvoboda reads nothing of the channel");
      assert.ok(
        alerts(k).some((t) =>
          /user ksvoboda: units: the server says \["EMB\/TOKYO","HQ\/ASIA-1"\], the log says \["EMB\/TOKYO"\]/.test(t),
        ),
        `ksvoboda's own device alerts: ${alerts(k).join(" | ")}`,
      );
      const j = alerts(await sync("jnovak"));
      assert.ok(
        j.some((t) => /unit HQ\/ASIA-1: the server lists "ksvoboda" as a member, the log does not/.test(t)),
        `the sender alerts: ${j.join(" | ")}`,
      );
      // The security officers are told (a kt-report alert naming the reporter and the difference).
      const officer = (await valise("alerts", "--profile", profile("bofficer"), "--json"))
        .split("\n")
        .filter((l) => l.trim() !== "")
        .map((l) => JSON.parse(l) as { rule: string; reason: string });
      const reports = officer.filter((a) => a.rule === "kt-report").map((a) => a.reason);
      assert.ok(
        reports.some((r) => /from jnovak .*directory_mismatch about unit HQ\/ASIA-1.*"ksvoboda"/.test(r)),
        reports.join(" | "),
      );
      // The next send (a fresh process again) neither leaks nor blocks, and does not alert twice.
      await send("jnovak", "HQ/ASIA-1", "SECRET/ASIA", "still not for Tokyo");
      assert.deepEqual(texts(await sync("lkral")), ["still not for Tokyo"]);
      assert.deepEqual(texts(await sync("ksvoboda")), []);
      assert.deepEqual(alerts(await sync("jnovak")), []);
      await forge(sql`DELETE FROM user_units WHERE handle = 'ksvoboda' AND unit = 'HQ/ASIA-1'`);
    });

    test("a clearance raised in the database: the client refuses, naming the log's clearance, and alerts", async () => {
      await forge(sql`UPDATE users SET clearance = 'SECRET/ASIA' WHERE handle = 'pdvorak'`);
      const err = await failure(send("jnovak", "pdvorak", "SECRET/ASIA", "never to Beijing at SECRET"));
      assert.match(err, /pdvorak is not cleared for SECRET\/ASIA/);
      const j = alerts(await sync("jnovak"));
      assert.ok(
        j.some((t) => /clearance: the server says "SECRET\/ASIA", the log says "CONFIDENTIAL\/ASIA"/.test(t)),
        j.join(" | "),
      );
      assert.deepEqual(texts(await sync("pdvorak")), []);
      await forge(sql`UPDATE users SET clearance = 'CONFIDENTIAL/ASIA' WHERE handle = 'pdvorak'`);
    });

    test("a unit's max label raised in the database: the client refuses to send above the log's", async () => {
      await forge(sql`UPDATE units SET max_label = 'SECRET/ASIA' WHERE name = 'EMB/BEIJING'`);
      const err = await failure(send("jnovak", "EMB/BEIJING", "SECRET/ASIA", "never above Beijing's label"));
      assert.match(err, /EMB\/BEIJING may carry at most CONFIDENTIAL\/ASIA/);
      assert.deepEqual(texts(await sync("pdvorak")), []);
      await forge(sql`UPDATE units SET max_label = 'CONFIDENTIAL/ASIA' WHERE name = 'EMB/BEIJING'`);
      await send("jnovak", "EMB/BEIJING", "CONFIDENTIAL/ASIA", "at Beijing's label");
      assert.deepEqual(texts(await sync("pdvorak")), ["at Beijing's label"]);
      // The link group HQ/ASIA-1 → EMB/BEIJING carries the sender's unit too.
      assert.deepEqual(texts(await sync("lkral")), ["at Beijing's label"]);
    });

    test("a role set in the database: the user's own device alerts", async () => {
      await forge(sql`UPDATE users SET role = 'officer' WHERE handle = 'ksvoboda'`);
      const k = alerts(await sync("ksvoboda"));
      assert.ok(
        k.some((t) => /role: the server says "officer", the log says "user"/.test(t)),
        k.join(" | "),
      );
      await forge(sql`UPDATE users SET role = 'user' WHERE handle = 'ksvoboda'`);
    });

    test("a device row alone: never added; the sender goes on with lkral's logged device", async () => {
      const ghost = "d-ghost0tamper01";
      await forge(
        sql`INSERT INTO devices (id, handle, name, signature_public_key, created_at, revoked_at)
            VALUES (${ghost}, 'lkral', 'ghost', ${randomBytes(32)}, ${Date.now()}, NULL)`,
      );
      await send("jnovak", "HQ/ASIA-1", "SECRET/ASIA", "not for the ghost");
      const members = (await convs("jnovak")).find((c) => c.kind === "unit")!.members.map((m) => m.device);
      assert.ok(!members.includes(ghost));
      assert.deepEqual(texts(await sync("lkral")), ["not for the ghost"]);
      const j = alerts(await sync("jnovak"));
      assert.ok(
        j.some((t) => t.includes(`device "${ghost}" is in the server's database but not in the directory log`)),
        j.join(" | "),
      );
      await forge(sql`DELETE FROM devices WHERE id = ${ghost}`);
    });

    test("revocation between separate processes: the next send removes the device and goes through", async () => {
      // pdvorak gets a second device; send, sync, revoke, send — each a new process.
      const phone = await enroll("pdvorak", "phone", join(dir, "p-pdvorak-phone"));
      await send("jnovak", "pdvorak", "CONFIDENTIAL/ASIA", "to both devices");
      assert.deepEqual(texts(await sync("pdvorak")), ["to both devices"]);
      const phoneItems = JSON.parse(await valise("sync", "--profile", join(dir, "p-pdvorak-phone"), "--json")) as {
        items: Item[];
      };
      assert.deepEqual(texts(phoneItems.items), ["to both devices"]);
      await admin("device", "revoke", phone.device);
      await send("jnovak", "pdvorak", "CONFIDENTIAL/ASIA", "after the revocation");
      await send("pdvorak", "jnovak", "CONFIDENTIAL/ASIA", "and back");
      assert.deepEqual(texts(await sync("pdvorak")), ["after the revocation"]);
      const direct = (c: Conv) => c.kind === "direct" && c.peer === "pdvorak";
      const devices = (await convs("jnovak")).find(direct)!.members.map((m) => m.device);
      assert.ok(!devices.includes(phone.device), "the revoked phone is out of the group");
      const j = await sync("jnovak");
      assert.deepEqual(texts(j), ["and back"]);
      assert.ok(
        j.some((i) => i.type === "directory" && i.event === "device.revoke"),
        "the peer's revocation is shown as a directory item",
      );
      // The revoked device reads nothing new: its session is gone.
      await failure(valise("sync", "--profile", join(dir, "p-pdvorak-phone"), "--json"));
    });

    test("a posting, a member added, a clearance downgrade, offboarding — each between separate processes", async () => {
      const unit = (c: Conv) => c.kind === "unit" && c.unit === "HQ/ASIA-1";
      const directory = (items: Item[]) => items.filter((i) => i.type === "directory").map((i) => i.text);
      // A posting: lkral moves from HQ/ASIA-1 to EMB/TOKYO. jnovak is told before the next send; lkral reads nothing.
      await admin("user", "move", "lkral", "--from", "HQ/ASIA-1", "--to", "EMB/TOKYO");
      assert.ok(directory(await sync("jnovak")).includes("lkral left HQ/ASIA-1"));
      await send("jnovak", "HQ/ASIA-1", "SECRET/ASIA", "after the posting");
      assert.deepEqual(await memberUsers("jnovak", unit), ["jnovak"]);
      assert.deepEqual(texts(await sync("lkral")), []);
      // A member added by the admin path appears in jnovak's sync before the next message, which it then reads.
      await admin("unit", "member", "add", "HQ/ASIA-1", "ksvoboda");
      assert.ok(directory(await sync("jnovak")).includes("ksvoboda (EMB/TOKYO) joined HQ/ASIA-1, cleared SECRET/ASIA"));
      await send("jnovak", "HQ/ASIA-1", "SECRET/ASIA", "welcome to the desk");
      assert.deepEqual(await memberUsers("jnovak", unit), ["jnovak", "ksvoboda"]);
      assert.deepEqual(texts(await sync("ksvoboda")), ["welcome to the desk"]);
      // A clearance downgrade: removed by the next send, which goes through; nothing new readable.
      await admin("clearance", "set", "ksvoboda", "CONFIDENTIAL/ASIA", "--officer", "bofficer");
      await send("jnovak", "HQ/ASIA-1", "SECRET/ASIA", "SECRET again");
      assert.deepEqual(await memberUsers("jnovak", unit), ["jnovak"]);
      assert.deepEqual(texts(await sync("ksvoboda")), []);
      // Offboarding: pdvorak disabled; the next sender to Beijing removes his devices; direct sends are refused.
      await admin("user", "disable", "pdvorak");
      await send("jnovak", "EMB/BEIJING", "CONFIDENTIAL/ASIA", "after offboarding");
      const link = (c: Conv) => c.kind === "link" && c.unit === "EMB/BEIJING";
      assert.ok(!(await memberUsers("jnovak", link)).includes("pdvorak"));
      assert.match(await failure(send("jnovak", "pdvorak", "CONFIDENTIAL/ASIA", "x")), /pdvorak's account is disabled/);
      await failure(sync("pdvorak"));
      // The operator re-enables him in the database only (the log says disabled): still nothing for him, and an alert.
      await forge(sql`UPDATE users SET disabled_at = NULL WHERE handle = 'pdvorak'`);
      assert.match(await failure(send("jnovak", "pdvorak", "CONFIDENTIAL/ASIA", "x")), /pdvorak's account is disabled/);
      const j = alerts(await sync("jnovak"));
      assert.ok(
        j.some((t) => /user pdvorak: the server says the account is active, the log says otherwise/.test(t)),
        j.join(" | "),
      );
    });
  });
}
