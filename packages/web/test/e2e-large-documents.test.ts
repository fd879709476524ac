/**
 * Large documents in a real browser (Debian's chromium, playwright-core; the shared harness): a random file of
 * 256 MiB (VALISE_LARGE_MIB to change) made at test time is uploaded by jnovak from disk (File slices, 8 MiB PATCH
 * parts) while one PATCH is dropped once — first sent to the server and its answer lost, so the client must ask how
 * much the server holds and go on from there — and the server ends up with exactly one blob of exactly the
 * ciphertext size. pdvorak downloads it through the download service worker: the saved file's SHA-256 equals the
 * source, the browser's download starts while decryption is still under way, half-way through the page holds no
 * large part of the file (JS heap and ArrayBuffers after a forced GC), and the chromium process tree's peak RSS
 * growth stays under 40 % of the file plus a constant GC slack of 400 MiB (the old in-memory Blob path grows ~2.5 times the file:
 * run with VALISE_E2E_FORCE_BLOB=1 to see this test fail that way). A document whose blob was altered on the server's disk
 * makes the browser's download fail (never complete with wrong bytes) and the page show the error. No console errors.
 * Measured throughput and RSS are printed, not asserted. Everything runs on 127.0.0.1 (opened as localhost).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import {
  closeSync,
  createReadStream,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  readdirSync,
  rmSync,
  statSync,
  writeSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type Download, type Page } from "playwright-core";
import { docStreamCiphertextSize, DOCSTREAM_CHUNK_SIZE, DOCSTREAM_HEADER_BYTES } from "@valise/core";
import { CHROMIUM, admin, browserUser, enroll, missing, serve, sleep } from "./harness.js";

const MiB = 1024 * 1024;
const SIZE = Number(process.env.VALISE_LARGE_MIB ?? 256) * MiB + 4321; // not a whole number of chunks
const SMALL = 6 * MiB + 7;
const FORCE_BLOB = process.env.VALISE_E2E_FORCE_BLOB === "1";

/** Writes `size` random bytes to `path` in 8 MiB pieces; returns their SHA-256. */
function randomFile(path: string, size: number): string {
  const h = createHash("sha256");
  const fd = openSync(path, "w");
  try {
    for (let left = size; left > 0;) {
      const b = randomBytes(Math.min(left, 8 * MiB));
      h.update(b);
      writeSync(fd, b);
      left -= b.length;
    }
  } finally {
    closeSync(fd);
  }
  return h.digest("hex");
}

async function sha256File(path: string): Promise<string> {
  const h = createHash("sha256");
  for await (const b of createReadStream(path, { highWaterMark: 4 * MiB })) h.update(b as Buffer);
  return h.digest("hex");
}

function processTree(): Map<number, number[]> {
  const children = new Map<number, number[]>();
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const st = readFileSync(`/proc/${d}/stat`, "utf8");
      const ppid = Number(st.slice(st.lastIndexOf(")") + 2).split(" ")[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(d));
      children.set(ppid, list);
    } catch {
      /* gone */
    }
  }
  return children;
}

/** This test's chromium: the browser processes among this process's children (not the server). */
function chromiumRoots(): number[] {
  return (processTree().get(process.pid) ?? []).filter((pid) => {
    try {
      return /chrom/i.test(readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0")[0] ?? "");
    } catch {
      return false;
    }
  });
}

/** Resident memory (bytes) of processes and all their descendants, per process, from /proc. */
function treeRssByPid(roots: number[]): Map<number, number> {
  const children = processTree();
  const out = new Map<number, number>();
  const todo = [...roots];
  while (todo.length > 0) {
    const pid = todo.pop()!;
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
      if (m) out.set(pid, Number(m[1]) * 1024);
    } catch {
      /* gone */
    }
    todo.push(...(children.get(pid) ?? []));
  }
  return out;
}

const sum = (m: Map<number, number>) => [...m.values()].reduce((a, b) => a + b, 0);

function processKind(pid: number): string {
  try {
    const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8"); // chromium rewrites it: NUL- or space-separated
    const type = /--type=(\S+)/.exec(cmd)?.[1] ?? "browser";
    const sub = /--utility-sub-type=(\S+)/.exec(cmd)?.[1];
    return `${sub ? `${type}:${sub}` : type}(${pid})`;
  } catch {
    return `?(${pid})`;
  }
}

/** Samples the process tree's RSS every 100 ms until stopped: the peak total, and per process at that peak. */
function rssSampler(roots: number[]) {
  const samples: number[] = [];
  let peakAt = new Map<number, number>();
  const take = () => {
    const m = treeRssByPid(roots);
    const total = sum(m);
    if (samples.length === 0 || total > Math.max(...samples)) peakAt = m;
    samples.push(total);
  };
  const t = setInterval(take, 100);
  return {
    samples,
    stop(): { peak: number; peakAt: Map<number, number> } {
      clearInterval(t);
      take();
      return { peak: Math.max(...samples), peakAt };
    },
  };
}

/**
 * Records, inside the page (a timer there, not a round trip per sample), the distinct values the progress bar
 * `label` shows; returns a function that stops and returns them (as fractions of its max).
 */
async function recordProgress(page: Page, label: string): Promise<() => Promise<number[]>> {
  const key = `__progress_${label}`;
  await page.evaluate(
    ([key, label]) => {
      const w = window as unknown as Record<string, { seen: number[]; timer: number }>;
      const seen: number[] = [];
      const timer = window.setInterval(() => {
        const e = document.querySelector<HTMLProgressElement>(`progress[aria-label="${label}"]`);
        const v = e ? e.value / e.max : null;
        if (v !== null && seen.at(-1) !== v) seen.push(v);
      }, 20);
      w[key] = { seen, timer };
    },
    [key, label] as const,
  );
  return () =>
    page.evaluate((key) => {
      const w = window as unknown as Record<string, { seen: number[]; timer: number }>;
      window.clearInterval(w[key]!.timer);
      return w[key]!.seen;
    }, key);
}

const mb = (bytes: number) => (bytes / MiB).toFixed(1);

test(
  "web app: a 256 MiB document uploads resumably and downloads streamed through the service worker; tampering fails it",
  { skip: missing ?? false, timeout: 480_000 },
  async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "valise-web-large-"));
    const work = mkdtempSync(join(tmpdir(), "valise-web-large-files-"));
    let child: Awaited<ReturnType<typeof serve>>["child"] | undefined;
    const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox"] });
    try {
      const big = join(work, "census-2026.bin");
      let t0 = Date.now();
      const bigSha = randomFile(big, SIZE);
      console.log(`# made a ${mb(SIZE)} MiB random file in ${Date.now() - t0} ms`);
      const small = join(work, "tampered.bin");
      randomFile(small, SMALL);

      await admin(dataDir, ["unit", "add", "HQ/ASIA-1", "--max-label", "SECRET/ASIA"]);
      await admin(dataDir, ["unit", "add", "EMB/BEIJING", "--max-label", "CONFIDENTIAL/ASIA"]);
      const bundle = (args: string[]) => admin(dataDir, ["user", "add", ...args, "--json"]);
      const jBundle = await bundle([
        "jnovak",
        "--unit",
        "HQ/ASIA-1",
        "--clearance",
        "SECRET/ASIA",
        "--role",
        "officer",
      ]);
      const pBundle = await bundle(["pdvorak", "--unit", "EMB/BEIJING", "--clearance", "CONFIDENTIAL/ASIA"]);
      const server = await serve(dataDir);
      child = server.child;
      const origin = server.origin;
      const j = await browserUser(browser, "jnovak");
      const p = await browserUser(browser, "pdvorak");
      // The old path, for checking that this test catches it: no service worker, downloads collected in a Blob.
      if (FORCE_BLOB)
        await p.page.addInitScript(() => delete (Navigator.prototype as { serviceWorker?: unknown }).serviceWorker);
      await enroll(j, origin, jBundle);
      await enroll(p, origin, pBundle);
      assert.equal(
        await p.page.evaluate(() => "serviceWorker" in navigator && navigator.serviceWorker.controller !== null),
        !FORCE_BLOB,
        "the download worker controls the page after enrollment",
      );

      // (a) Upload, one PATCH part lost once mid-upload: the server stores it, the browser sees the connection drop.
      // An MLS commit that lost a race gets 409 and the SDK retries; chromium logs the 409 as a console error.
      const commitConflicts = new Map<string, number>();
      for (const u of [j, p])
        u.page.on("response", (r) => {
          if (r.status() < 400) return;
          console.log(`# ${u.handle}: ${r.status()} for ${r.request().method()} ${r.url()}`);
          // A lost commit race, or the resent part of the dropped PATCH (the server already holds it): both 409.
          if (
            r.status() === 409 &&
            (/\/v1\/conversations\/[^/]+\/commits$/.test(r.url()) ||
              (r.request().method() === "PATCH" && /\/v1\/blobs\//.test(r.url())))
          )
            commitConflicts.set(u.handle, (commitConflicts.get(u.handle) ?? 0) + 1);
        });
      const blobCreates: string[] = [];
      const patches: string[] = [];
      j.page.on("request", (r) => {
        if (r.method() === "POST" && new URL(r.url()).pathname === "/v1/blobs") blobCreates.push(r.url());
        if (r.method() === "PATCH" && r.url().includes("/v1/blobs/")) patches.push(r.headers()["upload-offset"] ?? "?");
      });
      let dropped: string | null = null;
      let seenParts = 0;
      await j.page.route("**/v1/blobs/*", async (route) => {
        const req = route.request();
        if (req.method() !== "PATCH" || dropped !== null || ++seenParts < 3) return route.continue(); // the third part: mid-upload, and few parts pass through interception (slow under CDP)
        dropped = req.headers()["upload-offset"] ?? "?";
        const r = await route.fetch(); // the part reaches the server…
        assert.equal(r.status(), 200, "the dropped part was stored");
        await route.abort("connectionreset"); // …but its answer never reaches the browser
        await j.page.unroute("**/v1/blobs/*");
      });
      await j.page.goto(`${origin}/#/documents`);
      await j.page.getByLabel("File").setInputFiles(big);
      await j.page.getByLabel("Share with (person or unit)").fill("pdvorak");
      await j.page.getByLabel("Label").selectOption("CONFIDENTIAL/ASIA");
      const upProgress = await recordProgress(j.page, "Upload");
      t0 = Date.now();
      await j.page.getByRole("button", { name: "Upload" }).click();
      // Done when the list offers the new document; an error the app shows instead fails at once, with its text.
      const uploaded = j.page.getByRole("button", { name: "Download v1 of census-2026.bin" });
      const failed = j.page.locator("p.error[role=alert]");
      await Promise.race([
        uploaded.waitFor({ timeout: 300_000 }),
        failed.waitFor({ timeout: 300_000 }).then(async () => {
          throw new Error(`the upload failed in the app: ${await failed.first().textContent()}`);
        }),
      ]);
      const upSeen = await upProgress();
      const upMs = Date.now() - t0;
      console.log(
        `# upload: ${mb(SIZE)} MiB in ${upMs} ms = ${((SIZE / MiB / upMs) * 1000).toFixed(1)} MiB/s; ` +
          `${patches.length} PATCH requests, the one at offset ${dropped} lost its answer; progress bar showed ${upSeen.length} values`,
      );
      assert.ok(dropped !== null, "a PATCH was dropped");
      assert.ok(upSeen.filter((v) => v > 0 && v < 1).length >= 3, `upload progress moved: ${upSeen.join(" ")}`);
      assert.equal(blobCreates.length, 1, "one blob was created for the upload");
      // The SDK's outage retry (issue 20) may send the part whose answer was lost once more; the server holds those
      // bytes already and refuses it (409, counted below), then the client resumes from the server's count.
      assert.ok(
        patches.filter((o) => o === dropped).length <= 2,
        "the part whose answer was lost was sent at most once more (refused by the server, which holds it)",
      );
      const blobFiles = listBlobs(dataDir);
      const cipherSize = docStreamCiphertextSize(SIZE, DOCSTREAM_CHUNK_SIZE);
      assert.deepEqual(
        blobFiles.map((b) => b.size),
        [cipherSize],
        "the server holds exactly one blob, exactly the ciphertext size (the lost part was not appended twice)",
      );

      // (b) Download through the service worker, while the chromium process tree's memory is watched.
      await p.page.goto(`${origin}/#/documents`);
      const button = p.page.getByRole("button", { name: "Download v1 of census-2026.bin" });
      await button.waitFor({ timeout: 60_000 });
      await sleep(1000);
      const pid = chromiumRoots();
      assert.equal(pid.length, 1, "chromium's browser process");
      console.log(`# chromium: pid ${pid[0]} with ${processTree().get(pid[0]!)?.length ?? 0} child processes`);
      // What the page holds on to (JS heap and ArrayBuffer stores after a full GC), before and half-way through.
      const cdp = await p.context.newCDPSession(p.page);
      const retained = async () => {
        await cdp.send("HeapProfiler.collectGarbage");
        const u = (await cdp.send("Runtime.getHeapUsage")) as { usedSize: number; backingStorageSize?: number };
        return u.usedSize + (u.backingStorageSize ?? 0);
      };
      const retainedBefore = await retained();
      const before = treeRssByPid(pid);
      const base = sum(before);
      const sampler = rssSampler(pid);
      t0 = Date.now();
      const dlEvent = p.page.waitForEvent("download", { timeout: 180_000 });
      await button.click();
      const halfway = (async () => {
        for (let i = 0; i < 1200; i++) {
          const v = await downloadProgress(p.page).catch(() => 0);
          if (v >= 0.5) return (await retained()) - retainedBefore;
          await sleep(50);
        }
        return null;
      })();
      const dl = await dlEvent;
      const startedMs = Date.now() - t0;
      const atStart = await downloadProgress(p.page);
      const saved = await dl.path();
      const downMs = Date.now() - t0;
      const { peak, peakAt } = sampler.stop();
      const heldHalfway = await halfway;
      const atEnd = await downloadProgress(p.page);
      console.log(
        `# download: ${mb(SIZE)} MiB in ${downMs} ms = ${((SIZE / MiB / downMs) * 1000).toFixed(1)} MiB/s; ` +
          `browser download began after ${startedMs} ms at ${(atStart * 100).toFixed(1)} % decrypted`,
      );
      console.log(
        `# chromium RSS (process tree, ${sampler.samples.length} samples): baseline ${mb(base)} MiB, ` +
          `peak ${mb(peak)} MiB, growth ${mb(peak - base)} MiB = ${((100 * (peak - base)) / SIZE).toFixed(1)} % of the file`,
      );
      const grew = [...peakAt]
        .map(([q, rss]) => ({ q, d: rss - (before.get(q) ?? 0) }))
        .sort((a, b) => b.d - a.d)
        .slice(0, 4);
      console.log(
        `# RSS growth over time (MiB, every 0.5 s): ${sampler.samples
          .filter((_, i) => i % 5 === 0)
          .map((v) => ((v - base) / MiB).toFixed(0))
          .join(" ")}`,
      );
      console.log(
        `# retained by the page half-way (after a forced GC): ${heldHalfway === null ? "?" : mb(heldHalfway)} MiB more than before`,
      );
      console.log(`# RSS growth by process: ${grew.map((g) => `${processKind(g.q)} +${mb(g.d)} MiB`).join(", ")}`);
      assert.equal(await dl.failure(), null);
      assert.equal(dl.suggestedFilename(), "census-2026.bin");
      assert.equal(statSync(saved).size, SIZE);
      assert.equal(await sha256File(saved), bigSha, "the downloaded file's SHA-256 equals the source's");
      // Streaming holds a few chunks, but Chromium lets garbage (ArrayBuffers of received and decrypted chunks) grow
      // to ~150-350 MiB before collecting it, whatever the file size (measured with 128, 256 and 768 MiB files); the
      // Blob path holds the whole file, ~2.5 times over (653-690 MiB for 256 MiB). So: 40 % of the file plus a slack
      // half-way between the two.
      const limit = 0.4 * SIZE + 400 * MiB;
      assert.ok(
        peak - base < limit,
        `streamed: RSS grew ${mb(peak - base)} MiB for a ${mb(SIZE)} MiB file (limit ${mb(limit)} MiB)`,
      );
      assert.ok(
        heldHalfway !== null && heldHalfway < 0.25 * SIZE,
        `half-way, the page holds no large part of the file (${heldHalfway})`,
      );
      assert.ok(atStart < 0.9, `the browser's download began before decryption finished (${atStart})`);
      assert.equal(atEnd, 1, "the download progress bar reached 100 %");
      assert.ok(
        heldHalfway !== null && heldHalfway < 0.25 * SIZE,
        "half-way, the page holds no large part of the file",
      );
      rmSync(saved, { force: true });

      // (c) A blob altered on the server's disk: the browser's download fails and the page says why.
      await j.page.goto(`${origin}/#/documents`);
      await j.page.getByLabel("File").setInputFiles(small);
      await j.page.getByLabel("Share with (person or unit)").fill("pdvorak");
      await j.page.getByLabel("Label").selectOption("CONFIDENTIAL/ASIA");
      await j.page.getByRole("button", { name: "Upload" }).click();
      await j.page.getByRole("button", { name: "Download v1 of tampered.bin" }).waitFor({ timeout: 60_000 });
      const smallBlob = listBlobs(dataDir).filter(
        (b) => b.size === docStreamCiphertextSize(SMALL, DOCSTREAM_CHUNK_SIZE),
      );
      assert.equal(smallBlob.length, 1);
      const at = DOCSTREAM_HEADER_BYTES + 3 * (DOCSTREAM_CHUNK_SIZE + 16) + 1000; // inside chunk 3 of 7
      flipBit(smallBlob[0]!.path, at);
      await p.page.goto(`${origin}/#/documents`);
      const tButton = p.page.getByRole("button", { name: "Download v1 of tampered.bin" });
      await tButton.waitFor({ timeout: 60_000 });
      const tEvent = p.page.waitForEvent("download", { timeout: 60_000 }).catch(() => null);
      await tButton.click();
      const alert = p.page.getByRole("alert").filter({ hasText: /Download failed: .*chunk 3 failed authentication/ });
      await alert.waitFor({ timeout: 60_000 });
      const tDl: Download | null = FORCE_BLOB ? null : await tEvent;
      if (!FORCE_BLOB) {
        assert.ok(tDl, "the streamed download had begun");
        const failure = await tDl.failure();
        console.log(`# tampered download: the browser reports ${JSON.stringify(failure)}`);
        assert.ok(failure !== null, "the browser's download failed");
        await assert.rejects(tDl.path(), "no completed file");
      }

      // (d) No console errors.
      // The one PATCH dropped on purpose is logged by chromium as a failed resource, and retried commit races as
      // 409s; nothing else may be.
      const conflict = "Failed to load resource: the server responded with a status of 409 (Conflict)";
      const unexpected = (u: typeof j) =>
        u.errors.filter(
          (e) => e !== conflict && !(u === j && e === "Failed to load resource: net::ERR_CONNECTION_RESET"),
        );
      for (const u of [j, p]) {
        assert.deepEqual(unexpected(u), [], `console errors for ${u.handle}`);
        assert.equal(u.errors.filter((e) => e === conflict).length, commitConflicts.get(u.handle) ?? 0, u.handle);
      }
      assert.equal(j.errors.filter((e) => e.includes("ERR_CONNECTION_RESET")).length, 1, "the dropped PATCH");
    } finally {
      await browser.close();
      child?.kill("SIGKILL");
      rmSync(dataDir, { recursive: true, force: true });
      rmSync(work, { recursive: true, force: true });
    }
  },
);

/** Flips one bit of a file in place (what a malicious or broken server would serve). */
function flipBit(path: string, at: number): void {
  const fd = openSync(path, "r+");
  try {
    const b = Buffer.alloc(1);
    assert.equal(readSync(fd, b, 0, 1, at), 1);
    b[0]! ^= 0x01;
    writeSync(fd, b, 0, 1, at);
  } finally {
    closeSync(fd);
  }
}

async function downloadProgress(page: Page): Promise<number> {
  return page
    .getByRole("progressbar", { name: "Download" })
    .evaluate((e) => (e as HTMLProgressElement).value / (e as HTMLProgressElement).max, null, { timeout: 5000 });
}

/** The blob files the server holds (DATA/blobs/xx/ID). */
function listBlobs(dataDir: string): { path: string; size: number }[] {
  const root = join(dataDir, "blobs");
  const out: { path: string; size: number }[] = [];
  for (const sub of readdirSync(root)) {
    const dir = join(root, sub);
    if (!statSync(dir).isDirectory()) continue;
    for (const f of readdirSync(dir)) out.push({ path: join(dir, f), size: statSync(join(dir, f)).size });
  }
  return out;
}
