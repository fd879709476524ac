/**
 * The web app with the keyboard alone (page.keyboard only: Tab, Shift+Tab, Enter, Space, arrows, Escape, typing and
 * a paste): a user enrolls, the skip link reaches the main content, the main navigation moves focus to the new
 * screen, a conversation message is composed and sent, the other user opens it, a FLASH cable is composed (ACTION
 * unit, precedence, label, subject, body), its release confirm keeps focus inside (Tab wraps), Escape closes it and
 * returns focus, it is released, and the other user opens it. Every control Tab stops on draws a focus indicator;
 * axe-core finds no serious violation with the confirm open; no console errors.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { CHROMIUM, admin, axe, browserUser, enroll, missing, serve } from "./harness.js";
import { arrowSelect, focused, tabTo, typeInto } from "./keys.js";

test("web app with the keyboard only (chromium)", { skip: missing ?? false, timeout: 150_000 }, async () => {
  const dataDir = mkdtempSync(join(tmpdir(), "valise-web-kbd-"));
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
    const kb = p.page.keyboard;
    const hash = () => p.page.evaluate(() => location.hash);
    const mainFocused = async (page = p.page) =>
      assert.equal((await focused(page))?.id, "main", "focus did not move to the main content after the route change");

    // Enrollment: paste the bundle, name the device, submit.
    await p.page.goto(`${origin}/`);
    await p.page.getByRole("heading", { name: "Enroll this browser" }).waitFor();
    await tabTo(p.page, /^Enrollment code or bundle/);
    await kb.insertText(pBundle.trim());
    await tabTo(p.page, /^Device name/);
    await typeInto(p.page, "pdvorak keyboard");
    await tabTo(p.page, /^Enroll and create passkey/);
    await kb.press("Enter");
    await p.page.getByRole("navigation", { name: "Main" }).waitFor({ timeout: 60_000 });

    // The skip link is the first stop and moves focus to the main content (without changing the route).
    const skip = await tabTo(p.page, /Skip to main content/, { max: 1 });
    assert.ok(skip.visible, "skip link not visible when focused");
    await kb.press("Enter");
    await mainFocused();
    assert.equal(await hash(), "", "the skip link changed the route");
    const next = await tabTo(p.page, /./, { max: 1 });
    assert.ok(next.inMain, `after the skip link, Tab went to ${next.name} outside main`);

    // Main navigation: Shift+Tab back to the nav, Enter; focus lands on the new screen.
    await tabTo(p.page, /^Conversations/, { back: true });
    await kb.press("Enter");
    await p.page.getByRole("heading", { name: "Conversations", level: 2 }).waitFor();
    assert.equal(await hash(), "#/conversations");
    await mainFocused();
    await tabTo(p.page, /^Documents$/, { back: true });
    await kb.press("Enter");
    await p.page.getByRole("heading", { name: "Documents", level: 2 }).waitFor();
    await mainFocused();
    await tabTo(p.page, /^Conversations/, { back: true });
    await kb.press("Enter");
    await p.page.getByRole("heading", { name: "Conversations", level: 2 }).waitFor();

    // A conversation message, typed and sent with Enter.
    await tabTo(p.page, /^To \(person or unit\)/);
    await kb.type("jnovak");
    await tabTo(p.page, /^Label/);
    await arrowSelect(p.page, "CONFIDENTIAL/ASIA");
    await tabTo(p.page, /^Message/);
    await kb.type("Keyboard only: meeting moved to 11");
    await kb.press("Enter");
    await p.page.getByTestId("message-text").filter({ hasText: "Keyboard only: meeting moved to 11" }).waitFor();
    assert.match(await hash(), /^#\/conversations\/./);
    await mainFocused();

    // The other user opens it with the keyboard.
    const jk = j.page.keyboard;
    await tabTo(j.page, /^Conversations/);
    await jk.press("Enter");
    await j.page.getByRole("heading", { name: "Conversations", level: 2 }).waitFor();
    await mainFocused(j.page);
    await j.page.getByText("1 unread").waitFor({ timeout: 30_000 });
    await tabTo(j.page, /Direct: pdvorak/);
    await jk.press("Enter");
    await j.page.getByTestId("message-text").filter({ hasText: "Keyboard only: meeting moved to 11" }).waitFor();
    await mainFocused(j.page);

    // A FLASH cable to the Asia desk.
    await tabTo(p.page, /^Cables$/, { back: true });
    await kb.press("Enter");
    await p.page.getByRole("heading", { name: /Cable inbox/ }).waitFor();
    await mainFocused();
    await tabTo(p.page, /^New cable$/);
    await kb.press("Enter");
    await p.page.getByRole("heading", { name: "New cable" }).waitFor();
    await mainFocused();
    await p.page.getByRole("group", { name: "ACTION" }).getByLabel("HQ/ASIA-1").waitFor();
    const action = await tabTo(p.page, /^ACTION HQ\/ASIA-1/);
    assert.equal(action.checked, false);
    await kb.press("Space");
    assert.equal((await focused(p.page))?.checked, true, "Space did not tick the ACTION unit");
    await tabTo(p.page, /^Precedence/);
    await arrowSelect(p.page, "FLASH");
    await tabTo(p.page, /^Label/);
    await arrowSelect(p.page, "CONFIDENTIAL/ASIA");
    await tabTo(p.page, /^Subject/);
    await kb.type("Keyboard cable: consular visit");
    await tabTo(p.page, /^Body/);
    await kb.type("Visit confirmed for Thursday.\nBring the file.");
    const review = await tabTo(p.page, /^Review and release/);
    assert.equal(review.tag, "button");
    await kb.press("Enter");

    // The release confirm: focus inside, Tab and Shift+Tab wrap, axe-clean, Escape closes and returns focus.
    const dialog = p.page.getByRole("alertdialog", { name: "Release this cable?" });
    await dialog.waitFor();
    let f = await focused(p.page);
    assert.ok(f?.inDialog && /^Release cable$/.test(f.name), `focus on open: ${f?.name}`);
    const stops: string[] = [];
    for (let i = 0; i < 4; i++) {
      await kb.press("Tab");
      f = await focused(p.page);
      assert.ok(f?.inDialog, `Tab left the confirm: ${f?.tag} ${f?.name}`);
      stops.push(f.name);
    }
    assert.deepEqual(stops, ["Back to editing", "Release cable", "Back to editing", "Release cable"]);
    await kb.press("Shift+Tab");
    assert.equal((await focused(p.page))?.name, "Back to editing");
    await kb.press("Shift+Tab");
    assert.equal((await focused(p.page))?.name, "Release cable");
    assert.deepEqual(await axe(p.page), [], "axe with the release confirm open");
    await kb.press("Escape");
    await dialog.waitFor({ state: "detached" });
    await p.page.waitForFunction(() => document.activeElement?.textContent === "Review and release…");
    assert.match(await p.page.getByLabel("Subject").inputValue(), /Keyboard cable/, "Escape lost the draft");
    await kb.press("Enter");
    await dialog.waitFor();
    assert.equal((await focused(p.page))?.name, "Release cable");
    await kb.press("Enter");
    const ref = (await p.page.getByTestId("cable-reference").textContent({ timeout: 60_000 })) ?? "";
    assert.match(ref, /^EMB\/BEIJING \d{4}\/\d{6}$/);
    await mainFocused();

    // The Asia desk opens it from its inbox with the keyboard.
    await tabTo(j.page, /^Cables$/, { back: true });
    await jk.press("Enter");
    await j.page.getByRole("heading", { name: /Cable inbox/ }).waitFor();
    await j.page.getByTestId("cable-link").filter({ hasText: "Keyboard cable: consular visit" }).waitFor({
      timeout: 30_000,
    });
    const link = await tabTo(j.page, /Keyboard cable: consular visit/);
    assert.match(link.name, /FLASH/);
    await jk.press("Enter");
    await j.page.getByText("Visit confirmed for Thursday.").waitFor({ timeout: 30_000 });
    assert.equal(await j.page.getByTestId("cable-reference").textContent(), ref);
    await mainFocused(j.page);
    // …and back to the inbox by its "← Inbox" link.
    await tabTo(j.page, /← Inbox/);
    await jk.press("Enter");
    await j.page.getByRole("heading", { name: /Cable inbox/ }).waitFor();

    for (const u of [j, p]) assert.deepEqual(u.errors, [], `console errors for ${u.handle}`);
  } finally {
    await browser.close();
    child.kill("SIGKILL");
    rmSync(dataDir, { recursive: true, force: true });
  }
});
