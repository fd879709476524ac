/**
 * Blob bytes (ciphertext of documents and cables): behind an interface so a deployment can put them elsewhere; the
 * default keeps one file per blob under `DATA/blobs/` (0600, directory 0700). Uploads are appended at an offset from a
 * stream — never buffered whole — and fsynced before the append resolves, so "bytes on disk" is what a client may
 * resume from. Reads stream from an offset.
 */
import { createReadStream, mkdirSync } from "node:fs";
import { open, stat, unlink, type FileHandle } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { BLOB_ID_RE, ValiseError } from "@valise/core";

export interface AppendOutcome {
  /** Bytes on the store after the append (durable: fsynced). */
  size: number;
  /** More bytes came than `max`: the rest was not written. */
  overflow: boolean;
  /** The source failed midway (e.g. the client disconnected); what arrived before is kept. */
  error?: unknown;
}

export interface BlobStore {
  /** Creates an empty blob (durable). */
  create(id: string): Promise<void>;
  /**
   * Writes `source` at `offset`, which must be the blob's current size, at most `max` bytes. Resolves (never rejects
   * for a failing source) once what was written is durable.
   */
  append(id: string, offset: number, source: AsyncIterable<Uint8Array>, max: number): Promise<AppendOutcome>;
  /** Current size in bytes, or null if there is no such blob. */
  size(id: string): Promise<number | null>;
  /** The bytes from `start` (inclusive) to `end` (inclusive; default: the end). */
  read(id: string, start: number, end?: number): Readable;
  delete(id: string): Promise<void>;
}

export class FsBlobStore implements BlobStore {
  constructor(readonly dir: string) {}

  private path(id: string): string {
    // Ids are checked at the edge too; here it keeps any caller from naming a path outside the store.
    if (!BLOB_ID_RE.test(id)) throw new ValiseError("bad_request", "invalid blob id");
    return join(this.dir, id.slice(2, 4), id);
  }

  async create(id: string): Promise<void> {
    const p = this.path(id);
    const sub = join(this.dir, id.slice(2, 4));
    mkdirSync(sub, { recursive: true, mode: 0o700 });
    const fh = await open(p, "wx", 0o600);
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    await syncDir(sub);
  }

  async append(id: string, offset: number, source: AsyncIterable<Uint8Array>, max: number): Promise<AppendOutcome> {
    let fh: FileHandle;
    try {
      fh = await open(this.path(id), "r+");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT")
        throw new ValiseError("not_found", `blob ${id}: its content is missing on the server`);
      throw e;
    }
    let pos = offset;
    let overflow = false;
    let error: unknown;
    try {
      const { size } = await fh.stat();
      if (size !== offset)
        throw new ValiseError("offset_mismatch", `the blob holds ${size} bytes, not ${offset}`, { received: size });
      try {
        for await (const chunk of source) {
          let c = chunk;
          const room = offset + max - pos;
          if (c.length > room) {
            c = c.subarray(0, room);
            overflow = true;
          }
          await writeAll(fh, c, pos);
          pos += c.length;
          if (overflow) break;
        }
      } catch (e) {
        error = e;
      }
      await fh.sync();
    } finally {
      await fh.close();
    }
    return { size: pos, overflow, ...(error !== undefined ? { error } : {}) };
  }

  async size(id: string): Promise<number | null> {
    try {
      return (await stat(this.path(id))).size;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw e;
    }
  }

  read(id: string, start: number, end?: number): Readable {
    return createReadStream(this.path(id), { start, ...(end !== undefined ? { end } : {}) });
  }

  async delete(id: string): Promise<void> {
    try {
      await unlink(this.path(id));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    }
  }
}

async function writeAll(fh: FileHandle, b: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < b.length) {
    const { bytesWritten } = await fh.write(b, done, b.length - done, position + done);
    done += bytesWritten;
  }
}

async function syncDir(dir: string): Promise<void> {
  const d = await open(dir, "r");
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}
