/**
 * Issue 15 in Debian's chromium: delivered/read state per message in conversations, and a sign-out that cannot
 * reach the server.
 *  - pdvorak writes to jnovak and stays on the thread: "✓ Sent"; jnovak's browser (on another screen, listening)
 *    decrypts it and sends a delivered receipt: pdvorak's thread shows "Delivered" without a reload; jnovak opens the
 *    thread: "Read", again live. The receipts travel inside the conversation's MLS group (receipts.ts).
 *  - The server is stopped; jnovak signs out: the app says it signed out on this device but could not end the
 *    session on the server, and until when that session stays valid (the old app said nothing).
 * axe finds no serious violation; no sideways scroll at 390 px; screenshots thread-receipts, phone-thread-receipts,
 * sign-out-server-unreachable.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type Page } from "playwright-core";
import { CHROMIUM, admin, axe, browserUser, enroll, missing, serve, shot } from "./harness.js";

const states = (page: Page) => page.getByTestId("message-state").allTextContents();

test(
  "conversations: delivered and read state live; sign-out with the server unreachable (chromium)",
  { skip: missing ?? false, timeout: 150_000 },
  async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "valise-web-receipts-"));
    await admin(dataDir, ["unit", "add", "HQ/ASIA-1", "--max-label", "SECRET/ASIA"]);
    await admin(dataDir, ["unit", "add", "EMB/BEIJING", "--max-label", "CONFIDENTIAL/ASIA"]);
    const bundle = (args: string[]) => admin(dataDir, ["user", "add", ...args, "--json"]);
    const jBundle = await bundle(["jnovak", "--unit", "HQ/ASIA-1", "--clearance", "SECRET/ASIA"]);
    const pBundle = await bundle(["pdvorak", "--unit", "EMB/BEIJING", "--clearance", "CONFIDENTIAL/ASIA"]);
    const { origin, child } = await serve(dataDir);
    const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox"] });
    try {
      const j = await browserUser(browser, "jnovak");
      const p = await browserUser(browser, "pdvorak");
      await enroll(j, origin, jBundle);
      await enroll(p, origin, pBundle);
      await j.page.goto(`${origin}/#/cables`);

      // pdvorak writes; the thread opens with his message "Sent".
      await p.page.goto(`${origin}/#/conversations`);
      await p.page.getByLabel("To (person or unit)").fill("jnovak");
      await p.page.getByLabel("Label").selectOption("CONFIDENTIAL/ASIA");
      await p.page.getByLabel("Message").fill("Detention case: call me at 10");
      await p.page.getByRole("button", { name: "Send" }).click();
      await p.page.getByTestId("message-text").filter({ hasText: "Detention case" }).waitFor();
      // No reload from here on: the marker would be gone.
      await p.page.evaluate(() => ((window as unknown as { marker: number }).marker = 1));

      // jnovak's browser receives it by push and acknowledges delivery: pdvorak's thread says so.
      await j.page.getByRole("link", { name: "Conversations (1)" }).waitFor({ timeout: 30_000 });
      await p.page
        .getByTestId("message-state")
        .filter({ hasText: /^✓✓ Delivered$/ })
        .waitFor({ timeout: 30_000 });
      assert.deepEqual(await states(p.page), ["✓✓ Delivered"]);

      // jnovak opens the thread (and answers): pdvorak's message reads "Read".
      await j.page.getByRole("link", { name: "Conversations (1)" }).click();
      await j.page.getByRole("link", { name: /Direct: pdvorak/ }).click();
      await j.page.getByTestId("message-text").filter({ hasText: "call me at 10" }).waitFor();
      await p.page
        .getByTestId("message-state")
        .filter({ hasText: /^✓✓ Read$/ })
        .waitFor({ timeout: 30_000 });
      await j.page.getByLabel(/Reply/).fill("Calling at 10");
      await j.page.getByRole("button", { name: "Send" }).click();
      await p.page.getByTestId("message-text").filter({ hasText: "Calling at 10" }).waitFor({ timeout: 30_000 });
      // pdvorak has the thread open: jnovak's answer is read at once.
      await j.page
        .getByTestId("message-state")
        .filter({ hasText: /^✓✓ Read$/ })
        .waitFor({ timeout: 30_000 });
      // (jnovak's answer arrived while the thread was open: "New" here until the thread is opened again.)
      assert.deepEqual(await states(p.page), ["✓✓ Read", "New"]);
      assert.equal(
        await p.page.evaluate(() => (window as unknown as { marker?: number }).marker),
        1,
        "the state changed only after a reload",
      );
      const title = await p.page.locator(".rcpt.read").first().getAttribute("title");
      assert.match(title ?? "", /read by jnovak/);
      assert.deepEqual(await axe(p.page), [], "axe on a thread with receipts");
      await shot(p, "thread-receipts");
      await p.page.setViewportSize({ width: 390, height: 844 });
      const w = await p.page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, inner: innerWidth }));
      assert.ok(w.scroll <= w.inner, `the thread is ${w.scroll}px wide at ${w.inner}px`);
      await shot(p, "phone-thread-receipts");

      // The server goes away; jnovak signs out: told the server session could not be ended, and until when it lasts.
      child.kill("SIGKILL");
      await new Promise((r) => child.once("exit", r));
      await j.page.getByRole("link", { name: /^Account/ }).click();
      await j.page.getByRole("button", { name: "Sign out…" }).click();
      await j.page.getByRole("alertdialog").getByRole("button", { name: "Sign out", exact: true }).click();
      const note = j.page.getByTestId("signout-note");
      await note.waitFor({ timeout: 30_000 });
      assert.match(
        (await note.textContent()) ?? "",
        /Signed out on this device\. The server could not be reached, so the session there was not ended: it stays valid until it expires at \d{4}-\d\d-\d\d \d\d:\d\dZ/,
      );
      await j.page.getByRole("button", { name: "Log in with passkey" }).waitFor();
      assert.deepEqual(await axe(j.page), [], "axe on the sign-out note");
      await shot(j, "sign-out-server-unreachable");

      const ignorable = (e: string) => /Failed to load resource|net::ERR_|ERR_FAILED|WebSocket/.test(e);
      for (const u of [j, p])
        assert.deepEqual(
          u.errors.filter((e) => !ignorable(e)),
          [],
          `console errors for ${u.handle}`,
        );
    } finally {
      await browser.close();
      child.kill("SIGKILL");
      rmSync(dataDir, { recursive: true, force: true });
    }
  },
);
