/**
 * Issues 14 and 15, devices and late keys in chromium. A diplomat's second device, enrolled after a cable, shows the
 * cable's metadata, why it has no key, and that an older device of hers can approve it; on her phone the new-device
 * alert is one short line that leaves the thread header in view; she approves the new device with the keyboard (an
 * in-app confirm, progress) and the new device opens the cable and shows the conversation message she wrote before
 * it existed (not before the approval); she revokes it as lost and it cannot log in again.
 * A colleague added to the unit after the cable, while no member is online, sees the cable's metadata, who can share
 * the key, "yet", and a way back. axe finds nothing serious on the new screens; nothing scrolls sideways at 390 px.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { DatabaseSync } from "node:sqlite";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type Page } from "playwright-core";
import { CHROMIUM, CLI, admin, axe, browserUser, enroll, env, missing, serve, shot, sleep } from "./harness.js";

const execFileP = promisify(execFile);
import { focused, tabTo } from "./keys.js";

const noSideScroll = async (page: Page) => {
  const w = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, inner: window.innerWidth }));
  assert.ok(w.scroll <= w.inner, `${page.url()} is ${w.scroll} px wide at ${w.inner} px`);
};

test(
  "web app: device approval, revocation, late keys (chromium)",
  { skip: missing ?? false, timeout: 420_000 },
  async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "valise-web-devices-"));
    await admin(dataDir, ["unit", "add", "HQ/ASIA-1", "--max-label", "SECRET/ASIA"]);
    await admin(dataDir, ["unit", "add", "EMB/BEIJING", "--max-label", "CONFIDENTIAL/ASIA"]);
    const bundle = (args: string[]) => admin(dataDir, ["user", "add", ...args, "--json"]);
    const jBundle = await bundle(["jnovak", "--unit", "HQ/ASIA-1", "--clearance", "SECRET/ASIA"]);
    const pBundle = await bundle(["pdvorak", "--unit", "EMB/BEIJING", "--clearance", "CONFIDENTIAL/ASIA"]);
    const { origin, child } = await serve(dataDir);
    const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox"] });
    try {
      const j = await browserUser(browser, "jnovak");
      const p = await browserUser(browser, "pdvorak", { width: 390, height: 844 });
      await enroll(j, origin, jBundle);
      await enroll(p, origin, pBundle);

      // pdvorak (on her phone) writes to jnovak and releases a cable before her second device exists.
      await p.page.goto(`${origin}/#/conversations`);
      await p.page.getByLabel("To (person or unit)").fill("jnovak");
      await p.page.getByLabel("Label").selectOption("CONFIDENTIAL/ASIA");
      await p.page.getByLabel("Message").fill("Before the new laptop");
      await p.page.getByRole("button", { name: "Send" }).click();
      await p.page
        .getByTestId("message-text")
        .filter({ hasText: "Before the new laptop" })
        .waitFor({ timeout: 60_000 });
      const threadUrl = p.page.url();
      await p.page.goto(`${origin}/#/cables/new`);
      await p.page.getByRole("group", { name: "ACTION" }).getByLabel("HQ/ASIA-1").check();
      await p.page.getByLabel("Precedence").selectOption("FLASH");
      await p.page.getByLabel("Label").selectOption("CONFIDENTIAL/ASIA");
      await p.page.getByLabel("Subject").fill("Consul detained at the airport");
      await p.page.getByLabel("Body").fill("Held since 06:00 local time; the ministry has been told.");
      await p.page.getByRole("button", { name: "Review and release…" }).click();
      await p.page.getByRole("button", { name: "Release cable" }).click();
      const ref = (await p.page.getByTestId("cable-reference").textContent({ timeout: 60_000 })) ?? "";
      const cableUrl = p.page.url().replace(/^.*#/, "#");
      await noSideScroll(p.page);
      await shot(p, "phone-cable-view");

      // Her new laptop: a second device of pdvorak. The cable shows its metadata, why there is no key, and who can
      // approve this device; nothing old is readable before that.
      const code = await admin(dataDir, ["user", "code", "pdvorak", "--json"]);
      const p2 = await browserUser(browser, "pdvorak-laptop");
      await enroll(p2, origin, code);
      await p2.page.goto(`${origin}/${cableUrl}`);
      const view = p2.page.getByTestId("missing-key");
      await view.waitFor({ timeout: 60_000 });
      assert.equal(await view.getByTestId("cable-reference").textContent(), ref);
      assert.match((await view.textContent()) ?? "", /FLASH.*CONFIDENTIAL\/ASIA/s);
      assert.match(
        (await p2.page.getByTestId("approve-hint").textContent()) ?? "",
        /approve it from pdvorak's browser/,
      );
      assert.ok(await view.getByRole("link", { name: "← Inbox" }).isVisible(), "no way back");
      assert.ok(
        !((await p2.page.content()) ?? "").includes("Held since 06:00"),
        "the body leaked to an unapproved device",
      );
      assert.deepEqual(await axe(p2.page), [], "axe on the missing-key view");
      await shot(p2, "cable-missing-key-new-device");
      // Nor does the unapproved laptop show the message sent before it was enrolled.
      await p2.page.goto(`${origin}/#/conversations`);
      await p2.page.getByRole("heading", { name: "Conversations" }).waitFor({ timeout: 60_000 });
      await sleep(1500);
      assert.ok(
        !(await p2.page.content()).includes("Before the new laptop"),
        "a message sent before the laptop was enrolled reached it without approval",
      );

      // The phone: the new-device alert is one short line; the thread header stays in view below it.
      await p.page.goto(threadUrl);
      const alert = p.page.getByTestId("kt-alert");
      await alert.waitFor({ timeout: 60_000 });
      const layout = await p.page.evaluate(() => {
        const stack = document.querySelector(".top-stack")!.getBoundingClientRect();
        const h = document.querySelector("#thread-h")!.getBoundingClientRect();
        return { stack: stack.bottom, header: h.top, height: window.innerHeight };
      });
      assert.ok(layout.stack <= 0.15 * layout.height, `the top bars take ${layout.stack} of ${layout.height} px`);
      assert.ok(layout.header >= layout.stack, `the thread header is under the alert (${JSON.stringify(layout)})`);
      await noSideScroll(p.page);
      await shot(p, "phone-thread-with-device-alert");

      // She approves the laptop from the phone, keyboard only: Account, Approve, confirm.
      await p.page.goto(`${origin}/#/account`);
      await p.page.getByRole("heading", { name: /A device you did not enrol/ }).waitFor();
      assert.deepEqual(await axe(p.page), [], "axe on the account screen with the alert");
      await noSideScroll(p.page);
      await shot(p, "phone-account-approve");
      await tabTo(p.page, /^Approve pdvorak-laptop's browser/);
      await p.page.keyboard.press("Enter");
      const confirm = p.page.getByRole("alertdialog", { name: "Approve pdvorak-laptop's browser?" });
      await confirm.waitFor();
      assert.equal((await focused(p.page))?.name, "Approve and send history");
      await shot(p, "phone-approve-confirm");
      await p.page.keyboard.press("Enter");
      const progress = p.page.getByTestId("device-result");
      await progress
        .filter({ hasText: /^Approved pdvorak-laptop's browser: [1-9]\d* cable and document keys? sent/ })
        .waitFor({ timeout: 60_000 })
        .catch(async (e: unknown) => {
          throw new Error(`${String(e)}\nthe phone shows: ${await p.page.locator("main").textContent()}`);
        });

      // The laptop now opens the cable.
      await p2.page.goto(`${origin}/#/cables`);
      await p2.page.goto(`${origin}/${cableUrl}`);
      await p2.page
        .getByText("Held since 06:00 local time")
        .waitFor({ timeout: 60_000 })
        .catch(async (e: unknown) => {
          throw new Error(`${String(e)}\nthe laptop shows: ${await p2.page.locator("main").textContent()}`);
        });
      await shot(p2, "cable-after-approval");
      // And it shows the conversation message sent before it was enrolled: the phone's history, sent with the
      // approval (the SDK's device history in IndexedDB, shown by the conversation screens).
      await p2.page.goto(`${origin}/#/conversations`);
      const fromHistory = p2.page.getByRole("link", { name: /From your history: pdvorak/ });
      await fromHistory.waitFor({ timeout: 60_000 }).catch(async (e: unknown) => {
        throw new Error(`${String(e)}\nthe laptop shows: ${await p2.page.locator("main").textContent()}`);
      });
      await fromHistory.click();
      await p2.page
        .getByTestId("message-text")
        .filter({ hasText: "Before the new laptop" })
        .waitFor({ timeout: 30_000 });
      assert.match((await p2.page.getByTestId("history-only").textContent()) ?? "", /another of your devices/);
      assert.deepEqual(await axe(p2.page), [], "axe on a thread from the history");
      await shot(p2, "thread-from-history");

      // The laptop is lost: she revokes it from the phone (in-app confirm); it cannot log in again.
      await p.page.goto(`${origin}/#/account`);
      const row = p.page.getByTestId("own-device").filter({ hasText: "pdvorak-laptop" });
      await row.getByRole("button", { name: /Revoke \(lost device\)/ }).click();
      await p.page.getByRole("alertdialog").getByRole("button", { name: "Revoke device" }).click();
      await row.getByText("Revoked").waitFor({ timeout: 60_000 });
      // The phone itself cannot be revoked from the phone.
      const self = p.page.getByTestId("own-device").filter({ hasText: "(this browser)" });
      assert.equal(await self.getByRole("button").count(), 0);
      await p2.page.reload();
      await p2.page.getByRole("button", { name: "Log in with passkey" }).click();
      await p2.page.getByRole("alert").waitFor({ timeout: 30_000 });
      await p2.page.waitForTimeout(200);
      assert.equal(await p2.page.getByRole("navigation", { name: "Main" }).count(), 0, "a revoked device logged in");

      // A device she did not enrol (a second code used behind her back): "Not mine: revoke" revokes it and alerts the
      // officers — a critical device-not-mine alert with an incident (issue 16), not a silent revocation.
      const codeFile = join(dataDir, "stolen-code.json");
      writeFileSync(codeFile, await admin(dataDir, ["user", "code", "pdvorak", "--json"]));
      const stolen = join(dataDir, "stolen");
      await execFileP(
        process.execPath,
        [CLI, "enroll", "--server", origin, "--bundle", codeFile, "--profile", stolen, "--name", "unknown-tablet"],
        { env: env(), timeout: 60_000 },
      );
      const stolenId = (JSON.parse(readFileSync(join(stolen, "profile.json"), "utf8")) as { deviceId: string })
        .deviceId;
      await p.page.goto(`${origin}/#/account`);
      const notMine = p.page.getByRole("button", {
        name: new RegExp(`^Not mine: revoke unknown-tablet \\(${stolenId}\\)`),
      });
      await notMine.waitFor({ timeout: 60_000 });
      await notMine.click();
      await p.page.getByRole("alertdialog").getByText("Your security officers are alerted").waitFor();
      await p.page.getByRole("alertdialog").getByRole("button", { name: "Revoke device" }).click();
      await p.page
        .getByTestId("device-result")
        .filter({ hasText: "Revoked unknown-tablet" })
        .filter({ hasText: "Your security officers have been alerted." })
        .waitFor({ timeout: 60_000 });
      const db = new DatabaseSync(join(dataDir, "valise.sqlite"), { readOnly: true });
      try {
        const alert = db
          .prepare("SELECT id, severity, actor FROM alerts WHERE rule = 'device-not-mine'")
          .all() as unknown as { id: number; severity: string; actor: string }[];
        assert.equal(alert.length, 1, JSON.stringify(alert));
        assert.deepEqual([alert[0]!.severity, alert[0]!.actor], ["critical", "pdvorak"]);
        const incidents = db.prepare("SELECT alerts FROM incidents").all() as unknown as { alerts: string }[];
        assert.ok(
          incidents.some((i) => (JSON.parse(i.alerts) as number[]).includes(alert[0]!.id)),
          `no incident holds the alert: ${JSON.stringify(incidents)}`,
        );
      } finally {
        db.close();
      }

      // A late member: mkral joins the Asia desk after the cable, while no member's device is online.
      await j.context.close();
      await p.context.close();
      await p2.context.close();
      const mBundle = await bundle(["mkral", "--unit", "HQ/ASIA-1", "--clearance", "SECRET/ASIA"]);
      const m = await browserUser(browser, "mkral", { width: 390, height: 844 });
      await enroll(m, origin, mBundle);
      await m.page.goto(`${origin}/#/cables`);
      const link = m.page.getByTestId("cable-link").first();
      await link.waitFor({ timeout: 60_000 });
      assert.match((await link.textContent()) ?? "", /no key on this device/);
      await link.click();
      const late = m.page.getByTestId("missing-key");
      await late.waitFor({ timeout: 60_000 });
      assert.match((await late.getByRole("heading", { level: 2 }).textContent()) ?? "", /not reached this device yet/);
      assert.match((await m.page.getByTestId("missing-why").textContent()) ?? "", /sent before this device joined/);
      assert.deepEqual(await m.page.getByTestId("key-holders").getByRole("listitem").allTextContents(), [
        "jnovak",
        "pdvorak",
      ]);
      await noSideScroll(m.page);
      assert.deepEqual(await axe(m.page), [], "axe on the late member's view");
      await shot(m, "phone-cable-late-member");
      await late.getByRole("link", { name: "← Inbox" }).click();
      await m.page.getByRole("heading", { name: /Cable inbox/ }).waitFor();
      await sleep(100);
      assert.deepEqual(m.errors, [], "console errors for mkral");
    } finally {
      await browser.close();
      child.kill("SIGKILL");
      rmSync(dataDir, { recursive: true, force: true });
    }
  },
);
