/**
 * Encrypted search in the web app (issue 15 part 3), in Debian's chromium: pdvorak sends jnovak a message, a cable
 * (with an attachment whose name is hostile: 600 characters, accented) and a document; jnovak opens the cable, then,
 * with the keyboard only ("/" focuses the search box, Enter searches, Tab to a result, Enter opens it), finds the
 * message by an accent-folded prefix, the cable by a word of its body, its reference and its sender, the attachment
 * and the document by their names, and each result opens its item. A message pushed while the results are open is
 * found without a reload (the index is updated as items arrive); after a reload the cable's body is still found (the
 * store is kept); no request carries a query word (the index and the queries never leave the browser); IndexedDB holds
 * the history only as ciphertext (no plaintext word of the cable); axe finds no serious violation; no sideways
 * scroll at 390 px; screenshots.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type Page } from "playwright-core";
import { CHROMIUM, admin, axe, browserUser, enroll, missing, serve, shot } from "./harness.js";
import { focused, tabTo } from "./keys.js";

async function search(page: Page, q: string): Promise<void> {
  // From anywhere outside a text field: "/" focuses the box (the current route's screen keeps focus otherwise).
  await page.locator("main").focus();
  await page.keyboard.press("/");
  const f = await focused(page);
  assert.equal(f?.id, "search-q", `"/" focused ${f?.tag}#${f?.id}`);
  await page.keyboard.press("Control+A");
  await page.keyboard.type(q);
  await page.keyboard.press("Enter");
  await page.getByRole("heading", { name: `Search: “${q}”` }).waitFor();
}

const hits = (page: Page) => page.getByTestId("search-hit");

/** Every value of the "valise" IndexedDB database, as text (ciphertext bytes decoded as Latin-1). */
async function idbDump(page: Page): Promise<{ keys: string[]; text: string }> {
  return page.evaluate(async () => {
    const db = await new Promise<IDBDatabase>((res, rej) => {
      const r = indexedDB.open("valise");
      r.onsuccess = () => res(r.result);
      r.onerror = () => rej(new Error(String(r.error)));
    });
    const keys: string[] = [];
    let text = "";
    const show = (v: unknown): string => {
      if (v instanceof ArrayBuffer || ArrayBuffer.isView(v)) {
        const b = v instanceof ArrayBuffer ? new Uint8Array(v) : new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
        let s = "";
        for (const x of b) s += String.fromCharCode(x);
        return s;
      }
      if (v && typeof v === "object")
        return Object.values(v as Record<string, unknown>)
          .map(show)
          .join(" ");
      return String(v);
    };
    for (const name of Array.from(db.objectStoreNames)) {
      const tx = db.transaction(name, "readonly");
      const st = tx.objectStore(name);
      const [ks, vs] = await Promise.all(
        [st.getAllKeys(), st.getAll()].map(
          (r) => new Promise<unknown[]>((res) => (r.onsuccess = () => res(r.result as unknown[]))),
        ),
      );
      keys.push(...ks!.map((k) => `${name}/${String(k)}`));
      text += vs!.map(show).join("\n");
    }
    db.close();
    return { keys, text };
  });
}

test("encrypted search in the web app (chromium)", { skip: missing ?? false, timeout: 150_000 }, async () => {
  const dataDir = mkdtempSync(join(tmpdir(), "valise-web-search-"));
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

    // What pdvorak sends: a message, a cable with a hostile attachment name, a document.
    await p.page.goto(`${origin}/#/conversations`);
    await p.page.getByLabel("To (person or unit)").fill("jnovak");
    await p.page.getByLabel("Label").selectOption("CONFIDENTIAL/ASIA");
    await p.page.getByLabel("Message").fill("Negotiation in Tōkyō moved to Friday");
    await p.page.getByRole("button", { name: "Send" }).click();
    await p.page.getByTestId("message-text").filter({ hasText: "Negotiation in Tōkyō" }).waitFor();

    const attachment = `Kraków-visa-list-${"x".repeat(560)}-zebrafinch.pdf`;
    await p.page.goto(`${origin}/#/cables/new`);
    await p.page.getByRole("group", { name: "ACTION" }).getByLabel("HQ/ASIA-1").check();
    await p.page.getByLabel("Precedence").selectOption("IMMEDIATE");
    await p.page.getByLabel("Label").selectOption("CONFIDENTIAL/ASIA");
    await p.page.getByLabel("Subject").fill("Consular access request");
    await p.page.getByLabel("Body").fill("The detained national asked for the marmalade courier on Thursday.");
    await p.page
      .getByLabel("Attachments")
      .setInputFiles({ name: attachment, mimeType: "application/pdf", buffer: Buffer.from("%PDF-1.4 test") });
    await p.page.getByRole("button", { name: "Review and release…" }).click();
    await p.page.getByRole("button", { name: "Release cable" }).click();
    const ref = (await p.page.getByTestId("cable-reference").textContent({ timeout: 60_000 })) ?? "";
    assert.match(ref, /^EMB\/BEIJING \d{4}\/\d{6}$/);

    await p.page.goto(`${origin}/#/documents`);
    await p.page.getByLabel("File").setInputFiles({
      name: "treaty-annex-quartermaster.odt",
      mimeType: "application/octet-stream",
      buffer: Buffer.from("annex"),
    });
    await p.page.getByLabel("Share with (person or unit)").fill("jnovak");
    await p.page.getByLabel("Label").selectOption("CONFIDENTIAL/ASIA");
    await p.page.getByRole("button", { name: "Upload" }).click();
    await p.page
      .getByRole("cell", { name: "treaty-annex-quartermaster.odt", exact: true })
      .waitFor({ timeout: 60_000 });

    // jnovak opens the cable (its body and attachment names become searchable) and sees the documents.
    await j.page.goto(`${origin}/#/cables`);
    await j.page.getByTestId("cable-link").filter({ hasText: "Consular access request" }).click({ timeout: 30_000 });
    await j.page.getByText("marmalade courier").waitFor({ timeout: 30_000 });
    await j.page.goto(`${origin}/#/documents`);
    await j.page
      .getByRole("cell", { name: "treaty-annex-quartermaster.odt", exact: true })
      .waitFor({ timeout: 30_000 });
    await j.page.goto(`${origin}/#/conversations`);
    await j.page.getByRole("link", { name: /Direct: pdvorak.*unread/ }).waitFor({ timeout: 30_000 });

    // Nothing that carries a query word may leave the browser from here on.
    const sent: string[] = [];
    j.page.on("request", (r) => sent.push(`${r.url()} ${r.postData() ?? ""}`));
    j.page.on("websocket", (ws) => ws.on("framesent", (f) => sent.push(String(f.payload))));

    // The message, by an accent-folded prefix; the result opens the conversation (keyboard only).
    await search(j.page, "tokyo nego");
    assert.equal(await hits(j.page).count(), 1);
    assert.match((await hits(j.page).first().textContent()) ?? "", /Message.*Direct: pdvorak.*Negotiation in Tōkyō/s);
    const hit = await tabTo(j.page, /Direct: pdvorak/);
    assert.ok(hit.inMain);
    await j.page.keyboard.press("Enter");
    await j.page.getByTestId("message-text").filter({ hasText: "Negotiation in Tōkyō" }).waitFor();
    assert.match(await j.page.evaluate(() => location.hash), /^#\/conversations\/./);

    // The cable by a word of its body, by its reference, by its sender; the result opens it.
    await search(j.page, "marmal");
    assert.match((await hits(j.page).first().textContent()) ?? "", /Cable.*Consular access request.*marmalade/s);
    // (the reference: the cable and its attachment carry it)
    await search(j.page, `"${ref.split(" ")[1]!.split("/")[1]}"`);
    assert.equal(
      await hits(j.page)
        .filter({ hasText: /^Cable\s*Consular access request/ })
        .count(),
      1,
    );
    assert.equal(await hits(j.page).count(), 2);
    await search(j.page, "pdvorak consular");
    assert.match((await hits(j.page).first().textContent()) ?? "", /Consular access request/);
    await tabTo(j.page, /^Cable.*Consular access request/i);
    await j.page.keyboard.press("Enter");
    await j.page.getByText("marmalade courier").waitFor({ timeout: 30_000 });

    // The attachment by its name (accents folded), the document by its name; the document result opens it.
    await search(j.page, "krakow zebrafinch");
    assert.equal(await hits(j.page).count(), 1);
    assert.match((await hits(j.page).first().textContent()) ?? "", /Attachment.*Kraków-visa-list/s);
    await search(j.page, "quarterm");
    assert.match((await hits(j.page).first().textContent()) ?? "", /Document.*treaty-annex-quartermaster\.odt/s);
    await shot(j, "search-results");
    assert.deepEqual(await axe(j.page), [], "axe on the search results");
    // Printed: the results keep the classification marking at the top and bottom of every page (the @page margin
    // boxes, as a cable: e2e-long reads them in the PDF); the search box is not printed.
    await j.page.emulateMedia({ media: "print" });
    const printed = await j.page.evaluate(() => ({
      box: getComputedStyle(document.querySelector(".search-box")!).display,
      margins: [...document.adoptedStyleSheets]
        .flatMap((s) => [...s.cssRules])
        .filter((r) => r instanceof CSSPageRule)
        .map((r) => r.cssText)
        .join(" "),
      hits: getComputedStyle(document.querySelector(".search-hits")!).display,
    }));
    assert.equal(printed.box, "none");
    assert.equal(printed.hits, "flex");
    assert.match(printed.margins, /@top-center \{[^}]*content: "CONFIDENTIAL\/ASIA"/, printed.margins);
    assert.match(printed.margins, /@bottom-center \{[^}]*content: "CONFIDENTIAL\/ASIA"/, printed.margins);
    await j.page.emulateMedia({ media: "screen" });
    await tabTo(j.page, /^Document.*treaty-annex/i);
    await j.page.keyboard.press("Enter");
    await j.page.locator('tr[aria-current="true"]').filter({ hasText: "treaty-annex-quartermaster.odt" }).waitFor();

    // Nothing matching: said so.
    await search(j.page, "nonexistentword");
    assert.equal(await hits(j.page).count(), 0);
    await j.page.getByText("Nothing on this device matches.").waitFor();

    // Updated as items arrive: a message pushed now is found without a reload.
    await p.page.goto(`${origin}/#/conversations`);
    await p.page.getByRole("link", { name: /Direct: jnovak/ }).click();
    await p.page.getByLabel(/Reply/).fill("The quokka report is ready");
    await p.page.getByRole("button", { name: "Send" }).click();
    await j.page.getByRole("link", { name: /Conversations \(1\)/ }).waitFor({ timeout: 30_000 });
    await search(j.page, "quokka");
    assert.equal(await hits(j.page).count(), 1);

    // No request carried a query word.
    for (const w of ["tokyo", "marmal", "krakow", "zebrafinch", "quarterm", "nonexistentword", "quokka"])
      assert.ok(!sent.some((s) => s.toLowerCase().includes(w)), `a request carried "${w}"`);

    // At rest: the history is in IndexedDB, sealed (no plaintext of the cable, the message or the attachment).
    await j.page.waitForTimeout(600); // the store is written shortly after a change
    const dump = await idbDump(j.page);
    assert.ok(dump.keys.includes("profiles/device-history:jnovak"), `records: ${dump.keys.join(", ")}`);
    for (const w of ["marmalade", "Negotiation", "zebrafinch", "quartermaster", "quokka"])
      assert.ok(!dump.text.includes(w), `IndexedDB holds "${w}" in plaintext`);

    // After a reload (and a new login), the cable's body is still found: the store was kept.
    await j.page.reload();
    const login = j.page.getByRole("button", { name: "Log in with passkey" });
    await login.click();
    await j.page.getByRole("navigation", { name: "Main" }).waitFor({ timeout: 60_000 });
    await search(j.page, "marmalade");
    assert.equal(await hits(j.page).count(), 1);
    await search(j.page, "zebrafinch");
    assert.equal(await hits(j.page).count(), 1);

    // A phone: no sideways scroll with the hostile attachment name among the results.
    await j.page.setViewportSize({ width: 390, height: 844 });
    await search(j.page, "krakow");
    const { scroll, width } = await j.page.evaluate(() => ({
      scroll: document.documentElement.scrollWidth,
      width: window.innerWidth,
    }));
    assert.ok(scroll <= width, `search results are ${scroll}px wide on a ${width}px phone`);
    await shot(j, "phone-search-results");
    assert.deepEqual(await axe(j.page), [], "axe on the phone's search results");

    for (const u of [j, p]) assert.deepEqual(u.errors, [], `console errors for ${u.handle}`);
  } finally {
    await browser.close();
    child.kill("SIGKILL");
    rmSync(dataDir, { recursive: true, force: true });
  }
});
