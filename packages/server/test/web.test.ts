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
import { request } from "node:http";
import { gunzipSync } from "node:zlib";
import { WEB_CSP, acceptsGzip } from "../src/http/web.js";
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

test("web routes: text files gzip-compressed for browsers that accept it, byte-identical once decoded", async () => {
  const web = mkdtempSync(join(tmpdir(), "valise-web-gz-"));
  mkdirSync(join(web, "assets"));
  writeFileSync(join(web, "index.html"), "<!doctype html><title>Valise</title>");
  const script = `const app = ${JSON.stringify("x".repeat(4000))};\n`.repeat(20);
  writeFileSync(join(web, "assets", "index-abc123.js"), script);
  writeFileSync(join(web, "assets", "logo-abc123.png"), Buffer.alloc(4096, 7));
  const s = await startTestServer("sqlite", { app: { webRoot: web } });
  try {
    const raw = (path: string, acceptEncoding: string) =>
      new Promise<{ headers: Record<string, string | string[] | undefined>; body: Buffer }>((done, fail) => {
        const req = request(`${s.url}${path}`, { headers: { "accept-encoding": acceptEncoding } }, (res) => {
          const parts: Buffer[] = [];
          res.on("data", (d: Buffer) => parts.push(d));
          res.on("end", () => done({ headers: res.headers, body: Buffer.concat(parts) }));
        });
        req.on("error", fail);
        req.end();
      });
    const gz = await raw("/assets/index-abc123.js", "gzip, deflate, br");
    assert.equal(gz.headers["content-encoding"], "gzip");
    assert.equal(gz.headers["vary"], "accept-encoding");
    assert.equal(gz.headers["content-security-policy"], WEB_CSP);
    assert.ok(gz.body.length < script.length / 10, `compressed ${gz.body.length} of ${script.length} bytes`);
    assert.equal(gunzipSync(gz.body).toString(), script);
    const again = await raw("/assets/index-abc123.js", "gzip");
    assert.ok(again.body.equals(gz.body), "compressed once, same bytes");

    for (const ae of ["identity", "gzip;q=0", "br", ""]) {
      const plain = await raw("/assets/index-abc123.js", ae);
      assert.equal(plain.headers["content-encoding"], undefined, `accept-encoding: ${ae}`);
      assert.equal(plain.body.toString(), script);
    }
    const png = await raw("/assets/logo-abc123.png", "gzip");
    assert.equal(png.headers["content-encoding"], undefined, "images are not recompressed");
    assert.equal(png.body.length, 4096);
  } finally {
    await s.close();
    rmSync(web, { recursive: true, force: true });
  }
});

test("acceptsGzip reads Accept-Encoding with q-values", () => {
  assert.equal(acceptsGzip("gzip, deflate, br"), true);
  assert.equal(acceptsGzip("br;q=1.0, gzip;q=0.8"), true);
  assert.equal(acceptsGzip("*"), true);
  assert.equal(acceptsGzip("gzip;q=0"), false);
  assert.equal(acceptsGzip("identity"), false);
  assert.equal(acceptsGzip(undefined), false);
  assert.equal(acceptsGzip(["deflate", "gzip"]), true);
});
