/**
 * The download service worker, served as `/sw.js` with scope `/` (the StreamSaver pattern, written out here). A page
 * that wants to save decrypted content hands this worker a ReadableStream of verified plaintext (a transferable
 * stream, so the bytes flow page → worker → browser download with backpressure and nothing is held whole), with the
 * file name and size, under a random one-shot id; then it navigates to `/__valise-download/<id>`, which this worker
 * answers with that stream as an attachment. Unknown or already used ids get 404. Every other request goes to the
 * network untouched, and nothing is ever cached (no Cache API, `cache-control: no-store`).
 *
 * If the page errors the stream (a chunk failed authentication), the response body errors and the browser marks the
 * download as failed: a truncated file is never presented as complete.
 */
export {};
declare const self: ServiceWorkerGlobalScope;

const PREFIX = "/__valise-download/";
/** An offered stream that nobody fetched within this time is cancelled (the page's side then fails). */
const UNCLAIMED_MS = 60_000;
const MAX_NAME = 1024;

interface Offer {
  type: "valise-download";
  id: string;
  name: string;
  size: number | null;
  stream: ReadableStream<Uint8Array>;
}

const pending = new Map<string, { offer: Offer; timer: ReturnType<typeof setTimeout> }>();

self.addEventListener("install", (e) => e.waitUntil(self.skipWaiting()));
self.addEventListener("activate", (e) => e.waitUntil(self.clients.claim()));

function isOffer(d: unknown): d is Offer {
  const o = d as Partial<Offer> | null;
  return (
    typeof o === "object" &&
    o !== null &&
    o.type === "valise-download" &&
    typeof o.id === "string" &&
    /^[A-Za-z0-9_-]{16,64}$/.test(o.id) &&
    typeof o.name === "string" &&
    o.name.length <= MAX_NAME &&
    (o.size === null || (Number.isSafeInteger(o.size) && (o.size as number) >= 0)) &&
    o.stream instanceof ReadableStream
  );
}

// Pages post offers (and keep-alive pings while a download runs: the message event alone keeps this worker alive).
self.addEventListener("message", (e) => {
  const port = e.ports[0];
  if (!isOffer(e.data)) {
    port?.postMessage({ ok: false });
    return;
  }
  const offer = e.data;
  if (pending.has(offer.id)) {
    void offer.stream.cancel("duplicate download id");
    port?.postMessage({ ok: false });
    return;
  }
  const timer = setTimeout(() => {
    if (pending.delete(offer.id)) void offer.stream.cancel("the download was not fetched");
  }, UNCLAIMED_MS);
  pending.set(offer.id, { offer, timer });
  port?.postMessage({ ok: true });
});

self.addEventListener("fetch", (e) => {
  const url = new URL(e.request.url);
  if (url.origin !== self.location.origin || !url.pathname.startsWith(PREFIX)) return; // the network, untouched
  e.respondWith(answer(url.pathname.slice(PREFIX.length)));
});

function answer(id: string): Response {
  const p = pending.get(id);
  if (!p) {
    return new Response("No such download (links are single-use).\n", {
      status: 404,
      headers: {
        "content-type": "text/plain; charset=utf-8",
        "cache-control": "no-store",
        "x-content-type-options": "nosniff",
      },
    });
  }
  pending.delete(id); // single use
  clearTimeout(p.timer);
  const headers = new Headers({
    "content-type": "application/octet-stream",
    "content-disposition": contentDisposition(p.offer.name),
    "x-content-type-options": "nosniff",
    "cache-control": "no-store",
    "content-security-policy": "default-src 'none'; sandbox",
  });
  if (p.offer.size !== null) headers.set("content-length", String(p.offer.size));
  return new Response(p.offer.stream, { headers });
}

/** RFC 6266: an ASCII fallback name and the exact name as RFC 8187 `filename*` (UTF-8, percent-encoded). */
function contentDisposition(name: string): string {
  const clean = name.replace(/[\u0000-\u001f\u007f/\\]/g, "_").trim() || "download";
  const ascii = clean.replace(/[^\x20-\x7e]/g, "_").replace(/["%]/g, "_");
  const ext = encodeURIComponent(clean).replace(/['()*]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase());
  return `attachment; filename="${ascii}"; filename*=UTF-8''${ext}`;
}
