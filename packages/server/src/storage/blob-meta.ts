/**
 * Blob metadata (the bytes are on the BlobStore): owner, announced size, bytes received, completion, and the one
 * object (document version or cable) the blob is attached to. A blob is attached once, in the transaction that
 * creates its object, and only if it is complete and owned by the caller.
 */
import type { Kysely, Transaction } from "kysely";
import { ValiseError } from "@valise/core";
import type { Database } from "./schema.js";

export interface BlobRecord {
  id: string;
  owner: string;
  ownerDevice: string;
  size: number;
  received: number;
  complete: boolean;
  objectKind: "document" | "cable" | null;
  objectId: string | null;
  createdAt: number;
}

function toBlob(r: Database["blobs"]): BlobRecord {
  return {
    id: r.id,
    owner: r.owner,
    ownerDevice: r.owner_device,
    size: Number(r.size),
    received: Number(r.received),
    complete: Number(r.complete) === 1,
    objectKind: r.object_kind as BlobRecord["objectKind"],
    objectId: r.object_id,
    createdAt: Number(r.created_at),
  };
}

export class BlobMetaStore {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly now: () => number,
  ) {}

  async create(input: { id: string; owner: string; ownerDevice: string; size: number }): Promise<BlobRecord> {
    const now = this.now();
    const row = {
      id: input.id,
      owner: input.owner,
      owner_device: input.ownerDevice,
      size: input.size,
      received: 0,
      complete: 0,
      object_kind: null,
      object_id: null,
      created_at: now,
      completed_at: null,
    };
    const ins = await this.db
      .insertInto("blobs")
      .values(row)
      .onConflict((oc) => oc.column("id").doNothing())
      .returning("id")
      .executeTakeFirst();
    if (!ins) throw new ValiseError("conflict", `blob ${input.id} already exists`);
    return toBlob(row);
  }

  /** Bytes announced by the user's blobs (uploaded or still uploading): what counts against the blob quota. */
  async usedBy(owner: string): Promise<number> {
    const r = await this.db
      .selectFrom("blobs")
      .select((eb) => eb.fn.coalesce(eb.fn.sum<number>("size"), eb.lit(0)).as("n"))
      .where("owner", "=", owner)
      .executeTakeFirstOrThrow();
    return Number(r.n);
  }

  async get(id: string): Promise<BlobRecord | null> {
    const r = await this.db.selectFrom("blobs").selectAll().where("id", "=", id).executeTakeFirst();
    return r ? toBlob(r) : null;
  }

  /** Uploads never attached to an object and created before `before` (ms): abandoned, to be reclaimed. */
  async abandoned(before: number, limit = 100): Promise<BlobRecord[]> {
    const rows = await this.db
      .selectFrom("blobs")
      .selectAll()
      .where("object_id", "is", null)
      .where("created_at", "<", before)
      .orderBy("created_at")
      .limit(limit)
      .execute();
    return rows.map(toBlob);
  }

  /** Deletes an unattached blob's record; false if it was attached (or deleted) meanwhile. */
  async deleteUnattached(id: string): Promise<boolean> {
    const r = await this.db
      .deleteFrom("blobs")
      .where("id", "=", id)
      .where("object_id", "is", null)
      .returning("id")
      .executeTakeFirst();
    return r !== undefined;
  }

  /** Records what is on the store; marks the blob complete once all announced bytes are there. */
  async setReceived(id: string, received: number): Promise<BlobRecord> {
    const b = await this.get(id);
    if (!b) throw new ValiseError("not_found", `no blob ${id}`);
    const complete = received >= b.size;
    await this.db
      .updateTable("blobs")
      .set({ received, ...(complete ? { complete: 1, completed_at: this.now() } : {}) })
      .where("id", "=", id)
      .where("complete", "=", 0)
      .execute();
    return { ...b, received, complete: b.complete || complete };
  }

  /**
   * Why `blob` cannot be attached by `owner` (checked before the transaction, for a precise error); null if it can.
   */
  async checkAttachable(id: string, owner: string): Promise<ValiseError | null> {
    const b = await this.get(id);
    if (!b) return new ValiseError("not_found", `no blob ${id}`);
    if (b.owner !== owner) return new ValiseError("forbidden", `blob ${id} is not yours`);
    if (!b.complete)
      return new ValiseError("conflict", `blob ${id} is not completely uploaded (${b.received}/${b.size})`);
    if (b.objectId !== null) return new ValiseError("conflict", `blob ${id} is already attached to ${b.objectId}`);
    return null;
  }

  /** Attaches the blob inside the object's transaction; the conditional update is the race guard. Returns its size. */
  static async attach(
    trx: Transaction<Database>,
    id: string,
    owner: string,
    kind: "document" | "cable",
    objectId: string,
  ): Promise<number> {
    const r = await trx
      .updateTable("blobs")
      .set({ object_kind: kind, object_id: objectId })
      .where("id", "=", id)
      .where("owner", "=", owner)
      .where("complete", "=", 1)
      .where("object_id", "is", null)
      .returning("size")
      .executeTakeFirst();
    if (!r) throw new ValiseError("conflict", `blob ${id} is not yours, not complete or already attached`);
    return Number(r.size);
  }
}
