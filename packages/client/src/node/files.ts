/** Node-only: files as plaintext sources (re-readable from any offset) and atomic, flushed file output. */
import { createReadStream, createWriteStream, statSync } from "node:fs";
import { rename, rm } from "node:fs/promises";
import { once } from "node:events";
import { basename } from "node:path";
import type { PlainSource } from "../content.js";

/** A file as a PlainSource: read in 1 MiB pieces from any offset, so uploads can resume. */
export function fileSource(path: string): PlainSource & { name: string } {
  const st = statSync(path);
  if (!st.isFile()) throw new Error(`${path} is not a regular file`);
  return {
    name: basename(path),
    size: st.size,
    async *open(offset: number) {
      if (offset >= st.size) return;
      const rs = createReadStream(path, { start: offset, highWaterMark: 1024 * 1024 });
      for await (const piece of rs) yield piece as Buffer;
    },
  };
}

/**
 * Writes pieces to `path` through `path.part` (mode 0600), fsynced and renamed only once the source ended without
 * error: a failed or tampered download leaves no output file behind.
 */
export async function writeFileAtomic(path: string, source: AsyncIterable<Uint8Array>): Promise<number> {
  const tmp = `${path}.part`;
  const ws = createWriteStream(tmp, { mode: 0o600, flush: true });
  let n = 0;
  try {
    for await (const piece of source) {
      n += piece.length;
      if (!ws.write(piece)) await once(ws, "drain");
    }
    ws.end();
    await once(ws, "finish");
    await rename(tmp, path);
    return n;
  } catch (e) {
    ws.destroy();
    await rm(tmp, { force: true });
    throw e;
  }
}
