/**
 * Blob bytes in the database (`valise serve --blob-store pg`), for several server nodes on one PostgreSQL: every node
 * reads and appends the same blobs, so a resumable upload can go on at another node (a PATCH on node A, the next one
 * on node B) and a download is served by any node.
 *
 * Layout (migration 020): `blob_chunks(blob_id, start, data)` holds the bytes in chunks of at most `chunkBytes`
 * (default 512 KiB) keyed by their offset; `blob_sizes(id, size)` the durable size. Each chunk is written in its own
 * transaction together with `UPDATE blob_sizes SET size = size + n WHERE id = … AND size = <offset>`: the
 * conditional update is the race guard between nodes (a second writer at the same offset finds 0 rows and gets
 * `offset_mismatch`), and what a client may resume from is exactly what committed. The upload body is streamed: at
 * most one chunk is buffered. Reads stream chunk by chunk (a few at a time), never the whole blob.
 */
import { Readable } from "node:stream";
import { type Kysely, sql } from "kysely";
import { BLOB_ID_RE, ValiseError } from "@valise/core";
import type { AppendOutcome, BlobStore } from "./blob-store.js";
import type { Database } from "./schema.js";

export const DEFAULT_CHUNK_BYTES = 512 * 1024;
/** Chunks fetched per query while reading. */
const READ_BATCH = 8;

export class PgBlobStore implements BlobStore {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly chunkBytes = DEFAULT_CHUNK_BYTES,
  ) {
    if (!Number.isSafeInteger(chunkBytes) || chunkBytes < 1) throw new RangeError("chunk size must be positive");
  }

  private check(id: string): void {
    if (!BLOB_ID_RE.test(id)) throw new ValiseError("bad_request", "invalid blob id");
  }

  async create(id: string): Promise<void> {
    this.check(id);
    const r = await this.db
      .insertInto("blob_sizes")
      .values({ id, size: 0 })
      .onConflict((oc) => oc.column("id").doNothing())
      .returning("id")
      .executeTakeFirst();
    if (!r) throw new ValiseError("conflict", `blob ${id} already exists`);
  }

  async append(id: string, offset: number, source: AsyncIterable<Uint8Array>, max: number): Promise<AppendOutcome> {
    this.check(id);
    const have = await this.size(id);
    if (have === null) throw new ValiseError("not_found", `no blob ${id}`);
    if (have !== offset)
      throw new ValiseError("offset_mismatch", `the blob holds ${have} bytes, not ${offset}`, { received: have });
    let pos = offset;
    let overflow = false;
    let error: unknown;
    const parts: Uint8Array[] = [];
    let buffered = 0;
    const flush = async () => {
      if (buffered === 0) return;
      const data = Buffer.concat(parts, buffered);
      parts.length = 0;
      buffered = 0;
      await this.writeChunk(id, pos, data);
      pos += data.length;
    };
    try {
      for await (const chunk of source) {
        let c = chunk;
        const room = offset + max - pos - buffered;
        if (c.length > room) {
          c = c.subarray(0, room);
          overflow = true;
        }
        while (c.length > 0) {
          const take = Math.min(c.length, this.chunkBytes - buffered);
          parts.push(c.subarray(0, take));
          buffered += take;
          c = c.subarray(take);
          if (buffered === this.chunkBytes) await flush();
        }
        if (overflow) break;
      }
    } catch (e) {
      if (e instanceof ValiseError && e.code === "offset_mismatch") throw e;
      error = e;
    }
    // What arrived before a failing source (a dropped client) counts, as on the filesystem store.
    await flush();
    return { size: pos, overflow, ...(error !== undefined ? { error } : {}) };
  }

  /** One chunk at `start`, committed with the size moving from `start` to its end (or not at all). */
  private async writeChunk(id: string, start: number, data: Uint8Array): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      const moved = await trx
        .updateTable("blob_sizes")
        .set({ size: sql<number>`size + ${data.length}` })
        .where("id", "=", id)
        .where("size", "=", start)
        .returning("size")
        .executeTakeFirst();
      if (!moved) {
        const now = await trx.selectFrom("blob_sizes").select("size").where("id", "=", id).executeTakeFirst();
        if (!now) throw new ValiseError("not_found", `no blob ${id}`);
        throw new ValiseError("offset_mismatch", `the blob holds ${Number(now.size)} bytes, not ${start}`, {
          received: Number(now.size),
        });
      }
      await trx.insertInto("blob_chunks").values({ blob_id: id, start, data }).execute();
    });
  }

  async size(id: string): Promise<number | null> {
    this.check(id);
    const r = await this.db.selectFrom("blob_sizes").select("size").where("id", "=", id).executeTakeFirst();
    return r ? Number(r.size) : null;
  }

  read(id: string, start: number, end?: number): Readable {
    this.check(id);
    const db = this.db;
    const last = end ?? Number.MAX_SAFE_INTEGER; // inclusive
    async function* chunks(): AsyncGenerator<Buffer> {
      // The chunk holding `start`: the last one that begins at or before it.
      const first = await db
        .selectFrom("blob_chunks")
        .select("start")
        .where("blob_id", "=", id)
        .where("start", "<=", start)
        .orderBy("start", "desc")
        .limit(1)
        .executeTakeFirst();
      if (!first) {
        if (start === 0 && (await db.selectFrom("blob_sizes").select("id").where("id", "=", id).executeTakeFirst()))
          return; // an empty blob
        throw new ValiseError("not_found", `blob ${id}: no bytes at ${start}`);
      }
      let from = Number(first.start);
      for (;;) {
        const rows = await db
          .selectFrom("blob_chunks")
          .select(["start", "data"])
          .where("blob_id", "=", id)
          .where("start", ">=", from)
          .where("start", "<=", last)
          .orderBy("start")
          .limit(READ_BATCH)
          .execute();
        for (const r of rows) {
          const s = Number(r.start);
          const buf = Buffer.from(r.data);
          const lo = Math.max(0, start - s);
          const hi = Math.min(buf.length, last - s + 1);
          if (hi > lo) yield buf.subarray(lo, hi);
          from = s + buf.length;
        }
        if (rows.length < READ_BATCH || from > last) return;
      }
    }
    return Readable.from(chunks(), { objectMode: false });
  }

  async delete(id: string): Promise<void> {
    this.check(id);
    await this.db.transaction().execute(async (trx) => {
      await trx.deleteFrom("blob_chunks").where("blob_id", "=", id).execute();
      await trx.deleteFrom("blob_sizes").where("id", "=", id).execute();
    });
  }
}
