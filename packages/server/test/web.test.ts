/**
 * The web app's routes (http/web.ts): only fixed paths are served — `/`, `/favicon.svg`, `/assets/*` and the
 * download service worker `/sw.js` — each with the strict Content-Security-Policy (which names `worker-src 'self'`)
 * and the other security headers; `/sw.js` is JavaScript and never cached; nothing else in the build directory (its
 * source map, other files, path tricks) is reachable.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { WEB_CSP } from "../src/http/web.js";
import { startTestServer } from "./helpers/server.js";

test("web routes: sw.js served as no-cache JavaScript with the CSP; nothing else new is reachable", async () => {
  const web = mkdtempSync(join(tmpdir(), "valise-web-root-"));
  mkdirSync(join(web, "assets"));
  writeFileSync(join(web, "index.html"), "<!doctype html><title>Valise</title>");
  writeFileSync(join(web, "favicon.svg"), "<svg xmlns='http://www.w3.org/2000/svg'/>");
  writeFileSync(join(web, "sw.js"), "self.addEventListener('fetch', () => {});");
  writeFileSync(join(web, "sw.js.map"), "{}");
  writeFileSync(join(web, "notes.txt"), "not for the web");
  writeFileSync(join(web, "assets", "index-abc123.js"), "console.log(1)");
  const s = await startTestServer("sqlite", { app: { webRoot: web } });
  try {
    assert.match(WEB_CSP, /(^|; )worker-src 'self'(;|$)/);
    assert.match(WEB_CSP, /(^|; )default-src 'none'(;|$)/);

    const sw = await fetch(`${s.url}/sw.js`);
    assert.equal(sw.status, 200);
    assert.equal(sw.headers.get("content-type"), "text/javascript; charset=utf-8");
    assert.equal(sw.headers.get("cache-control"), "no-cache");
    assert.equal(sw.headers.get("content-security-policy"), WEB_CSP);
    assert.equal(sw.headers.get("x-content-type-options"), "nosniff");
    assert.equal(sw.headers.get("x-frame-options"), "DENY");
    assert.equal(sw.headers.get("referrer-policy"), "no-referrer");
    assert.equal(sw.headers.get("service-worker-allowed"), null, "no scope beyond the script's own (/)");
    assert.equal(await sw.text(), "self.addEventListener('fetch', () => {});");

    const index = await fetch(`${s.url}/`);
    assert.equal(index.status, 200);
    assert.equal(index.headers.get("content-security-policy"), WEB_CSP);
    assert.equal(index.headers.get("cache-control"), "no-cache");
    const asset = await fetch(`${s.url}/assets/index-abc123.js`);
    assert.equal(asset.status, 200);
    assert.equal(asset.headers.get("cache-control"), "public, max-age=31536000, immutable");

    for (const path of [
      "/sw.js.map",
      "/notes.txt",
      "/index.html",
      "/sw.js/",
      "/assets/..%2Fsw.js",
      "/assets/../notes.txt",
      "/__valise-download/abc",
    ]) {
      const r = await fetch(`${s.url}${path}`);
      assert.equal(r.status, 404, `${path} is not served`);
      assert.equal(r.headers.get("content-security-policy"), WEB_CSP, `${path}: headers on errors too`);
      const body = await r.text();
      assert.ok(!body.includes("not for the web") && !body.includes("{}\n"), path);
    }
  } finally {
    await s.close();
    rmSync(web, { recursive: true, force: true });
  }
});
