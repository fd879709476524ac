/**
 * Saving decrypted content as a browser download without holding it whole: the page hands a ReadableStream of
 * verified plaintext to the download service worker (src/sw.ts, served as /sw.js) and navigates to the one-shot URL
 * the worker answers with that stream. The browser writes to disk as it reads; backpressure reaches back through the
 * stream to the decryption and the ranged download from the server.
 *
 * Where no service worker controls the page (first visit before it activated, a hard reload, a browser without
 * transferable streams), the content is collected into a Blob as before, and callers are told so for large files.
 */
import { saveBlob } from "./ui.js";

const PREFIX = "/__valise-download/";
/** Above this, a download that cannot stream gets an explicit notice (the whole file is held in memory). */
export const MEMORY_NOTICE_BYTES = 256 * 1024 * 1024;
const KEEPALIVE_MS = 10_000;
const OFFER_TIMEOUT_MS = 10_000;

/** Registers the download worker (scope `/`). Without it downloads fall back to in-memory Blobs. */
export function registerDownloadWorker(): void {
  if (!("serviceWorker" in navigator) || !window.isSecureContext) return;
  navigator.serviceWorker
    .register("/sw.js", { scope: "/", updateViaCache: "none" })
    .catch((e: unknown) => console.warn("download worker not registered; downloads are held in memory:", e));
}

let transferable: boolean | undefined;
function canTransferStreams(): boolean {
  if (transferable === undefined) {
    const { port1, port2 } = new MessageChannel();
    try {
      const rs = new ReadableStream();
      port1.postMessage(rs, [rs]);
      transferable = true;
    } catch {
      transferable = false;
    } finally {
      port1.close();
      port2.close();
    }
  }
  return transferable;
}

function streamingWorker(): ServiceWorker | null {
  if (!("serviceWorker" in navigator)) return null;
  const w = navigator.serviceWorker.controller;
  return w && canTransferStreams() ? w : null;
}

/** Whether downloads stream to disk in this page (else they are held in memory until complete). */
export function downloadsStream(): boolean {
  return streamingWorker() !== null;
}

export interface SaveOptions {
  /** Told when the content cannot stream and is large (it is collected in memory first). */
  onNotice?: (text: string) => void;
}

const errText = (e: unknown) => (e instanceof Error ? e.message : String(e));

/**
 * Offers `bytes` (verified plaintext pieces) to the user as the download `name`. Resolves once every piece was
 * handed to the browser; rejects if the source throws (the browser's download then fails, it never completes with a
 * truncated file) or the user cancels the download.
 */
export async function saveStream(
  name: string,
  size: number | null,
  bytes: AsyncIterable<Uint8Array>,
  opts: SaveOptions = {},
): Promise<"streamed" | "memory"> {
  const worker = streamingWorker();
  if (worker) {
    await streamToWorker(worker, name, size, bytes);
    return "streamed";
  }
  if (size === null || size > MEMORY_NOTICE_BYTES)
    opts.onNotice?.(
      `This browser cannot stream downloads here; ${name} is held in memory until it is complete (large files may fail).`,
    );
  const parts: BlobPart[] = [];
  for await (const p of bytes) parts.push(p.slice());
  saveBlob(parts, name);
  return "memory";
}

async function streamToWorker(
  worker: ServiceWorker,
  name: string,
  size: number | null,
  bytes: AsyncIterable<Uint8Array>,
): Promise<void> {
  const it = bytes[Symbol.asyncIterator]();
  let settle!: { resolve: () => void; reject: (e: unknown) => void };
  const finished = new Promise<void>((resolve, reject) => (settle = { resolve, reject }));
  const stream = new ReadableStream<Uint8Array>(
    {
      async pull(ctrl) {
        let r: IteratorResult<Uint8Array>;
        try {
          r = await it.next();
        } catch (e) {
          // The browser's download fails (the response body errors) instead of ending as a complete file.
          ctrl.error(new Error(errText(e)));
          settle.reject(e);
          return;
        }
        if (r.done) {
          ctrl.close();
          settle.resolve();
        } else ctrl.enqueue(r.value);
      },
      async cancel(reason) {
        settle.reject(new Error(`download of ${name} was cancelled${reason ? ` (${String(reason)})` : ""}`));
        await it.return?.();
      },
    },
    { highWaterMark: 0 },
  );
  const id = randomId();
  try {
    await offer(worker, { type: "valise-download", id, name, size, stream });
  } catch (e) {
    await it.return?.();
    throw e;
  }
  const keepalive = setInterval(() => worker.postMessage({ type: "valise-keepalive" }), KEEPALIVE_MS);
  try {
    // A plain navigation, which the worker answers as an attachment: the page stays, the browser downloads, the name
    // comes from content-disposition. (With `<a download>` instead, Chromium 156 reported the download as canceled.)
    const a = document.createElement("a");
    a.href = PREFIX + id;
    a.hidden = true;
    document.body.appendChild(a);
    a.click();
    a.remove();
    await finished;
  } finally {
    clearInterval(keepalive);
  }
}

function offer(
  worker: ServiceWorker,
  msg: { type: "valise-download"; id: string; name: string; size: number | null; stream: ReadableStream<Uint8Array> },
): Promise<void> {
  return new Promise((resolve, reject) => {
    const ch = new MessageChannel();
    const timer = setTimeout(() => {
      ch.port1.close();
      reject(new Error("the download worker did not answer; reload the page and try again"));
    }, OFFER_TIMEOUT_MS);
    ch.port1.onmessage = (e: MessageEvent<{ ok?: boolean }>) => {
      clearTimeout(timer);
      ch.port1.close();
      if (e.data?.ok) resolve();
      else reject(new Error("the download worker refused the download"));
    };
    worker.postMessage(msg, [msg.stream, ch.port2]);
  });
}

function randomId(): string {
  const b = crypto.getRandomValues(new Uint8Array(18));
  return btoa(String.fromCharCode(...b))
    .replace(/\+/g, "-")
    .replace(/\//g, "_");
}
