/**
 * Serves the web app (packages/web/dist, a Vite build) at `/` from the API's own origin, with a strict
 * Content-Security-Policy: scripts, styles and connections from this origin only (no inline script or style, no
 * third-party request), no framing. The security headers go on every answer (API answers too). `/sw.js` is the
 * download service worker (packages/web/src/sw.ts), which streams decrypted documents to the browser's downloads.
 * Text files go gzip-compressed to browsers that accept it (the app's script is ~500 KB, ~150 KB compressed: it
 * matters on a post's slow link), compressed once per file version and kept in memory. They hold no secret, so
 * compression leaks nothing (BREACH needs a secret and attacker-chosen text in one compressed answer).
 */
import { readFile, stat } from "node:fs/promises";
import { extname, join, normalize, resolve, sep } from "node:path";
import { promisify } from "node:util";
import { gzip as gzipCb } from "node:zlib";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { ValiseError } from "@valise/core";
import { notAudited } from "../audit/http.js";

export const WEB_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' blob:",
  "font-src 'self'",
  "connect-src 'self'",
  // The download service worker (/sw.js); without it worker-src would fall back to script-src, said here explicitly.
  "worker-src 'self'",
  "manifest-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "object-src 'none'",
].join("; ");

const SECURITY_HEADERS: Record<string, string> = {
  "content-security-policy": WEB_CSP,
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-resource-policy": "same-origin",
  "permissions-policy": "camera=(), microphone=(), geolocation=(), publickey-credentials-get=(self)",
};

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".json": "application/json",
  ".map": "application/json",
  ".txt": "text/plain; charset=utf-8",
  ".woff2": "font/woff2",
  ".webmanifest": "application/manifest+json",
};

const gzip = promisify(gzipCb);
const COMPRESSIBLE = new Set([".html", ".js", ".css", ".svg", ".json", ".webmanifest", ".txt"]);

/** Whether an Accept-Encoding header admits gzip (present, and not with q=0). */
export function acceptsGzip(header: string | string[] | undefined): boolean {
  const v = Array.isArray(header) ? header.join(",") : (header ?? "");
  return v.split(",").some((part) => {
    const [name, ...params] = part.trim().toLowerCase().split(";");
    if (name !== "gzip" && name !== "*") return false;
    const q = params.map((p) => p.trim()).find((p) => p.startsWith("q="));
    return q === undefined || Number(q.slice(2)) > 0;
  });
}

export function webRoutes(app: FastifyInstance, dir: string): void {
  const root = resolve(dir);
  app.addHook("onSend", async (_req, reply, payload) => {
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) if (!reply.hasHeader(k)) reply.header(k, v);
    return payload;
  });
  const send = async (rel: string): Promise<{ body: Buffer; type: string; immutable: boolean } | null> => {
    const file = normalize(join(root, rel));
    if (file !== root && !file.startsWith(root + sep)) return null;
    try {
      if (!(await stat(file)).isFile()) return null;
      return {
        body: await readFile(file),
        type: TYPES[extname(file)] ?? "application/octet-stream",
        immutable: rel.startsWith("assets/"),
      };
    } catch {
      return null;
    }
  };
  const gzipped = new Map<string, { source: Buffer; body: Buffer }>();
  const compressed = async (rel: string, source: Buffer): Promise<Buffer> => {
    const hit = gzipped.get(rel);
    if (hit && hit.source.equals(source)) return hit.body;
    const body = await gzip(source, { level: 9 });
    gzipped.set(rel, { source, body });
    return body;
  };
  const serve = (rel: string) => async (req: FastifyRequest, reply: FastifyReply) => {
    const f = await send(rel);
    if (!f) throw new ValiseError("not_found", `no file /${rel}`);
    reply.header("content-type", f.type);
    reply.header("cache-control", f.immutable ? "public, max-age=31536000, immutable" : "no-cache");
    if (!COMPRESSIBLE.has(extname(rel)) || f.body.length < 1024) return reply.send(f.body);
    reply.header("vary", "accept-encoding");
    if (!acceptsGzip(req.headers["accept-encoding"])) return reply.send(f.body);
    reply.header("content-encoding", "gzip");
    return reply.send(await compressed(rel, f.body));
  };
  // The app routes on the URL fragment (#/cables …), so only these paths exist: no catch-all that could shadow an
  // API's own not-found answer.
  app.get("/", notAudited("the web app's static files: public, no stored data"), serve("index.html"));
  app.get("/favicon.svg", notAudited("the web app's static files: public, no stored data"), serve("favicon.svg"));
  // The download service worker: at the root so its scope is the whole origin; never cached (an update must reach
  // every browser at its next visit).
  app.get("/sw.js", notAudited("the web app's static files: public, no stored data"), serve("sw.js"));
  const getAssetsAudit = notAudited("the web app's static files: public, no stored data");
  app.get<{ Params: { "*": string } }>("/assets/*", getAssetsAudit, async (req, reply) => {
    const name = req.params["*"];
    if (!/^[A-Za-z0-9._-]+$/.test(name)) throw new ValiseError("not_found", "no such asset");
    return serve(`assets/${name}`)(req, reply);
  });
}
