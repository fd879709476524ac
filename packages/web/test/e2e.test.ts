/**
 * The web app end to end in a real browser: Debian's chromium driven by playwright-core, with Chromium's virtual
 * WebAuthn authenticator (CDP WebAuthn.addVirtualAuthenticator), against a `valise serve` child on 127.0.0.1 opened
 * as http://localhost:PORT (browsers refuse passkeys for an IP address). Two users enroll with their bundles and
 * passkeys, exchange a conversation message and a FLASH cable, share a document and compare bytes; an uncleared
 * colleague sees neither the ASIA cable nor its subject; a reload logs in with the passkey and keeps history; axe-core
 * finds no serious violations; no console errors. With VALISE_SCREENSHOTS=DIR, screenshots of the main screens.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { chromium } from "playwright-core";
import { CHROMIUM, SHOTS, admin, axe, browserUser, enroll, missing, serve, shot, sleep } from "./harness.js";

test(
  "web app: passkeys, conversation, FLASH cable, document, need-to-know, reload (chromium)",
  { skip: missing ?? false, timeout: 300_000 },
  async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "valise-web-e2e-"));
    if (SHOTS) mkdirSync(SHOTS, { recursive: true });
    await admin(dataDir, ["unit", "add", "HQ/ASIA-1", "--max-label", "SECRET/ASIA"]);
    await admin(dataDir, ["unit", "add", "EMB/BEIJING", "--max-label", "CONFIDENTIAL/ASIA"]);
    await admin(dataDir, ["unit", "add", "HQ/CONSULAR", "--max-label", "CONFIDENTIAL/ASIA"]);
    const bundle = (args: string[]) => admin(dataDir, ["user", "add", ...args, "--json"]);
    const jBundle = await bundle(["jnovak", "--unit", "HQ/ASIA-1", "--clearance", "SECRET/ASIA", "--role", "officer"]);
    const pBundle = await bundle(["pdvorak", "--unit", "EMB/BEIJING", "--clearance", "CONFIDENTIAL/ASIA"]);
    const kBundle = await bundle(["kclerk", "--unit", "HQ/CONSULAR", "--clearance", "CONFIDENTIAL"]);
    const { origin, child } = await serve(dataDir);
    const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox"] });
    try {
      const j = await browserUser(browser, "jnovak");
      const p = await browserUser(browser, "pdvorak");
      const k = await browserUser(browser, "kclerk", { width: 390, height: 844 });
      await enroll(j, origin, jBundle);
      await enroll(p, origin, pBundle);
      await enroll(k, origin, kBundle);

      // A conversation message, pushed live to the other browser.
      await p.page.goto(`${origin}/#/conversations`);
      await p.page.getByLabel("To (person or unit)").fill("jnovak");
      await p.page.getByLabel("Label").selectOption("CONFIDENTIAL/ASIA");
      await p.page.getByLabel("Message").fill("Detention case: call me at 10");
      await p.page.getByRole("button", { name: "Send" }).click();
      await p.page.getByTestId("message-text").filter({ hasText: "Detention case" }).waitFor();
      await j.page.goto(`${origin}/#/conversations`);
      await j.page.getByText("1 unread").waitFor({ timeout: 30_000 });
      await shot(j, "conversations");
      await j.page.getByRole("link", { name: /Direct: pdvorak/ }).click();
      await j.page.getByTestId("message-text").filter({ hasText: "Detention case: call me at 10" }).waitFor();
      assert.match((await j.page.getByTestId("banner-top").textContent()) ?? "", /CONFIDENTIAL\/ASIA/);
      await j.page.getByLabel(/Reply/).fill("Calling at 10");
      await j.page.getByRole("button", { name: "Send" }).click();
      await p.page.getByTestId("message-text").filter({ hasText: "Calling at 10" }).waitFor({ timeout: 30_000 });
      await shot(j, "thread");

      // A FLASH cable from Beijing to the Asia desk (ACTION) and the consular department (INFO), labelled ASIA.
      await p.page.goto(`${origin}/#/cables/new`);
      await p.page.getByRole("group", { name: "ACTION" }).getByLabel("HQ/ASIA-1").check();
      await p.page.getByRole("group", { name: "INFO" }).getByLabel("HQ/CONSULAR").check();
      await p.page.getByLabel("Precedence").selectOption("FLASH");
      await p.page.getByLabel("Label").selectOption("CONFIDENTIAL/ASIA");
      await p.page.getByLabel("Subject").fill("Detention of a national in Beijing");
      await p.page.getByLabel("Body").fill("A national was detained this morning. Consular access requested.");
      await p.page
        .getByLabel("Attachments")
        .setInputFiles({ name: "photo.jpg", mimeType: "image/jpeg", buffer: randomBytes(50_000) });
      await p.page.getByRole("button", { name: "Review and release…" }).click();
      await shot(p, "cable-release-confirm");
      await p.page.getByRole("button", { name: "Release cable" }).click();
      const ref = (await p.page.getByTestId("cable-reference").textContent({ timeout: 60_000 })) ?? "";
      assert.match(ref, /^EMB\/BEIJING \d{4}\/\d{6}$/);

      await j.page.goto(`${origin}/#/cables`);
      const first = j.page.getByTestId("cable-link").first();
      await first.filter({ hasText: "Detention of a national in Beijing" }).waitFor({ timeout: 30_000 });
      assert.match((await first.textContent()) ?? "", /FLASH/);
      await shot(j, "cable-inbox");
      await first.click();
      await j.page.getByText("A national was detained this morning.").waitFor({ timeout: 30_000 });
      assert.equal(await j.page.getByTestId("cable-reference").textContent(), ref);
      assert.match((await j.page.getByTestId("banner-bottom").textContent()) ?? "", /CONFIDENTIAL\/ASIA/);
      await shot(j, "cable-view");

      // The consular clerk (no ASIA) sees neither the cable nor its subject.
      await k.page.goto(`${origin}/#/cables`);
      await k.page
        .getByText(/No cables|Cable inbox/)
        .first()
        .waitFor();
      await sleep(1000);
      const kText = (await k.page.content()) + (await k.page.evaluate(() => JSON.stringify(localStorage)));
      assert.ok(!kText.includes("Detention of a national"), "uncleared user saw the subject");
      assert.ok(!kText.includes(ref), "uncleared user saw the reference");
      await shot(k, "phone-cable-inbox-uncleared");

      // Readable on a phone: no screen scrolls sideways at 390 px (wide tables scroll inside their own box).
      for (const route of ["#/cables", "#/cables/new", "#/conversations", "#/documents", "#/account"]) {
        await k.page.goto(`${origin}/${route}`);
        await k.page.getByRole("heading", { level: 2 }).first().waitFor();
        const { scroll, width } = await k.page.evaluate(() => ({
          scroll: document.documentElement.scrollWidth,
          width: window.innerWidth,
        }));
        assert.ok(scroll <= width, `${route} is ${scroll}px wide on a ${width}px phone screen`);
      }

      // A document: jnovak uploads, pdvorak downloads the same bytes.
      const bytes = randomBytes(3 * 1024 * 1024 + 123);
      await j.page.goto(`${origin}/#/documents`);
      await j.page
        .getByLabel("File")
        .setInputFiles({ name: "position-paper.pdf", mimeType: "application/pdf", buffer: bytes });
      await j.page.getByLabel("Share with (person or unit)").fill("pdvorak");
      await j.page.getByLabel("Label").selectOption("CONFIDENTIAL/ASIA");
      await j.page.getByRole("button", { name: "Upload" }).click();
      await j.page.getByRole("button", { name: "Download v1 of position-paper.pdf" }).waitFor({ timeout: 60_000 });
      await shot(j, "documents");
      await p.page.goto(`${origin}/#/documents`);
      const dl = p.page.waitForEvent("download", { timeout: 60_000 });
      await p.page.getByRole("button", { name: "Download v1 of position-paper.pdf" }).click({ timeout: 30_000 });
      const file = await (await dl).path();
      assert.ok(Buffer.from(readFileSync(file)).equals(bytes), "downloaded bytes differ");

      // Accessibility of the main screens.
      for (const [u, route] of [
        [j, "#/cables"],
        [j, "#/conversations"],
        [j, "#/documents"],
        [j, "#/account"],
        [j, "#/officer"],
        [p, "#/cables/new"],
      ] as const) {
        await u.page.goto(`${origin}/${route}`);
        await u.page.getByRole("heading", { level: 2 }).first().waitFor();
        await sleep(300);
        assert.deepEqual(await axe(u.page), [], `axe on ${route}`);
      }
      await j.page.goto(`${origin}/#/account`);
      await j.page.getByRole("heading", { name: "Your devices" }).waitFor();
      await shot(j, "account");
      await j.page.goto(`${origin}/#/officer`);
      await j.page.getByRole("heading", { name: "Audit log" }).waitFor();
      await sleep(500);
      await shot(j, "officer");

      // A reload: the device stays enrolled, logs in with its passkey, and keeps its history.
      await p.page.reload();
      await p.page.getByRole("button", { name: "Log in with passkey" }).click();
      await p.page.getByRole("navigation", { name: "Main" }).waitFor({ timeout: 30_000 });
      await p.page.goto(`${origin}/#/conversations`);
      await p.page.getByRole("link", { name: /Direct: jnovak/ }).click();
      await p.page.getByTestId("message-text").filter({ hasText: "Calling at 10" }).waitFor();
      await p.page.getByTestId("message-text").filter({ hasText: "Detention case: call me at 10" }).waitFor();
      await p.page.goto(`${origin}/#/cables`);
      await p.page.getByTestId("cable-link").filter({ hasText: "Detention of a national in Beijing" }).waitFor();

      const login = await browserUser(browser, "nobody");
      await login.page.goto(`${origin}/`);
      await login.page.getByRole("heading", { name: "Enroll this browser" }).waitFor();
      await shot(login, "enroll");
      await login.context.close();

      for (const u of [j, p, k]) assert.deepEqual(u.errors, [], `console errors for ${u.handle}`);
    } finally {
      await browser.close();
      child.kill("SIGKILL");
      rmSync(dataDir, { recursive: true, force: true });
    }
  },
);
