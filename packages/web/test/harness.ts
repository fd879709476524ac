/**
 * Shared harness for the web app's browser tests: a `valise serve` child on 127.0.0.1 (opened as
 * http://localhost:PORT, since browsers refuse passkeys for an IP address), Debian's chromium driven by
 * playwright-core, one browser context per user with Chromium's virtual WebAuthn authenticator (CDP), enrollment
 * through the app's own form, screenshots (VALISE_SCREENSHOTS=DIR) and an axe-core check.
 * Skipped (with a message) only outside CI when chromium is missing; in CI a missing browser fails.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createRequire } from "node:module";
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { promisify } from "node:util";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { freePort } from "@valise/server/testing/net";

export const CHROMIUM = process.env.VALISE_CHROMIUM ?? "/usr/bin/chromium";
export const CLI = fileURLToPath(new URL("../../../cli/bin/valise.js", import.meta.url));
const WEB = fileURLToPath(new URL("../app/index.html", import.meta.url));
export const SHOTS = process.env.VALISE_SCREENSHOTS;
const execFileP = promisify(execFile);
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export const missing = !existsSync(CHROMIUM) ? `no browser at ${CHROMIUM} (apt-get install chromium)` : null;
if (missing && process.env.CI === "true") throw new Error(`web e2e: ${missing}; CI must install chromium`);
if (!existsSync(WEB) && process.env.CI === "true") throw new Error("web e2e: the web app is not built");

export function env(): NodeJS.ProcessEnv {
  const e = { ...process.env };
  delete e.VALISE_DATABASE_URL;
  return e;
}

export async function admin(dataDir: string, args: string[]): Promise<string> {
  const r = await execFileP(process.execPath, [CLI, "admin", "--data", dataDir, ...args], { env: env() });
  return r.stdout;
}

export async function serve(dataDir: string): Promise<{ origin: string; child: ChildProcess }> {
  const port = await freePort();
  const child = spawn(
    process.execPath,
    [CLI, "serve", "--data", dataDir, "--port", String(port), "--log-level", "warn"],
    {
      stdio: ["ignore", "pipe", "inherit"],
      env: env(),
    },
  );
  child.stdout.resume();
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`http://127.0.0.1:${port}/healthz`)).ok) break;
    } catch {
      /* not yet */
    }
    if (i > 400 || child.exitCode !== null) throw new Error("valise serve did not start");
    await sleep(50);
  }
  return { origin: `http://localhost:${port}`, child };
}

export interface User {
  handle: string;
  context: BrowserContext;
  page: Page;
  errors: string[];
  /** Whether the virtual authenticator passes user verification (false: the browser refuses passkey prompts). */
  setVerified(v: boolean): Promise<void>;
}

export async function browserUser(
  browser: Browser,
  handle: string,
  viewport = { width: 1280, height: 800 },
  opts: { userVerified?: boolean } = {},
): Promise<User> {
  const context = await browser.newContext({ viewport, acceptDownloads: true });
  const page = await context.newPage();
  const errors: string[] = [];
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(m.text());
  });
  page.on("pageerror", (e) => errors.push(String(e)));
  const cdp = await context.newCDPSession(page);
  await cdp.send("WebAuthn.enable", { enableUI: false });
  const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: {
      protocol: "ctap2",
      transport: "internal",
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: opts.userVerified ?? true,
      automaticPresenceSimulation: true,
    },
  });
  const setVerified = async (v: boolean) => {
    await cdp.send("WebAuthn.setUserVerified", { authenticatorId, isUserVerified: v });
  };
  return { handle, context, page, errors, setVerified };
}

export async function enroll(u: User, origin: string, bundle: string): Promise<void> {
  await u.page.goto(`${origin}/`);
  await u.page.getByLabel("Enrollment code or bundle").fill(bundle);
  await u.page.getByLabel("Device name").fill(`${u.handle}'s browser`);
  await u.page.getByRole("button", { name: "Enroll and create passkey" }).click();
  await u.page.getByRole("navigation", { name: "Main" }).waitFor({ timeout: 60_000 });
}

export async function shot(u: User, name: string): Promise<void> {
  if (!SHOTS) return;
  mkdirSync(SHOTS, { recursive: true });
  // The whole page, as a window that tall would show it: a `fullPage` capture leaves the sticky classification
  // banners where the original window's edges were, over the content.
  const size = u.page.viewportSize() ?? { width: 1280, height: 800 };
  const height = await u.page.evaluate(() => document.documentElement.scrollHeight);
  if (height > size.height) await u.page.setViewportSize({ width: size.width, height });
  try {
    await u.page.screenshot({ path: join(SHOTS, `${name}.png`) });
  } finally {
    if (height > size.height) await u.page.setViewportSize(size);
  }
}

/**
 * A printed PDF as a person sees it: opened in Chromium's own PDF viewer (a new page of the user's context), at
 * `fragment` (e.g. "page=1&zoom=100,0,200": the bottom of page 1 and the top of page 2), saved as NAME.png.
 */
export async function pdfShot(u: User, pdf: Buffer, name: string, fragment: string): Promise<void> {
  if (!SHOTS) return;
  mkdirSync(SHOTS, { recursive: true });
  const dir = mkdtempSync(join(tmpdir(), "valise-web-pdf-"));
  const viewer = await u.context.newPage();
  try {
    const file = join(dir, `${name}.pdf`);
    writeFileSync(file, pdf);
    await viewer.setViewportSize({ width: 1200, height: 1300 });
    await viewer.goto(`${pathToFileURL(file).href}#${fragment}`);
    await viewer.waitForTimeout(2000); // the viewer renders asynchronously and says nothing when it is done
    await viewer.screenshot({ path: join(SHOTS, `${name}.png`) });
  } finally {
    await viewer.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function axe(page: Page): Promise<string[]> {
  const src = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");
  await page.evaluate(src); // DevTools evaluation: not an inline script, so the page's CSP stays as served
  const r = await page.evaluate(async () => {
    const w = window as unknown as {
      axe: { run(ctx: Document): Promise<{ violations: { id: string; impact: string; nodes: unknown[] }[] }> };
    };
    const res = await w.axe.run(document);
    return res.violations.map((v) => ({ id: v.id, impact: v.impact, n: v.nodes.length }));
  });
  return r.filter((v) => v.impact === "serious" || v.impact === "critical").map((v) => `${v.id} (${v.impact}, ${v.n})`);
}

/**
 * A `valise witness serve` child (its own key in `dir`) trusting `logKeys` (`VKEY` or `ORIGIN=VKEY`, e.g. the
 * directory log's key and the same key for the `…/audit` origin): its URL, cosignature verifier key and process.
 */
export async function witnessServer(
  dir: string,
  name: string,
  logKeys: string[],
): Promise<{ url: string; vkey: string; child: ChildProcess }> {
  const key = join(dir, `${name.replace(/[^a-z0-9]/gi, "_")}.key`);
  const init = await execFileP(process.execPath, [CLI, "witness", "init", "--key", key, "--name", name, "--json"], {
    env: env(),
  });
  const { vkey } = JSON.parse(init.stdout) as { vkey: string };
  const port = await freePort();
  const args = [CLI, "witness", "serve", "--key", key, "--state", `${key}.state`, "--port", String(port)];
  for (const k of logKeys) args.push("--log-key", k);
  const child = spawn(process.execPath, args, { stdio: ["ignore", "ignore", "inherit"], env: env() });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${url}/healthz`)).ok) break;
    } catch {
      /* not yet */
    }
    if (i > 400 || child.exitCode !== null) throw new Error("valise witness serve did not start");
    await sleep(50);
  }
  return { url, vkey, child };
}
