/**
 * Documents (DESIGN.md §2): encrypted on the client, versioned (each version one complete blob, old ones kept), shared
 * with one user or one unit, labelled. The server stores routing metadata only. The `canary` flag is set by security
 * officers and never leaves through a user-facing answer: it only marks the audit events of accesses.
 */
import type { Kysely } from "kysely";
import { ValiseError } from "@valise/core";
import type { Database } from "./schema.js";
import { BlobMetaStore } from "./blob-meta.js";

export interface DocumentVersion {
  version: number;
  blob: string;
  size: number;
  createdAt: number;
  createdBy: string;
}

export interface DocumentRecord {
  id: string;
  owner: string;
  label: string;
  to: { kind: "user" | "unit"; name: string };
  createdAt: number;
  canary: boolean;
  versions: DocumentVersion[];
}

type Row = Database["documents"];

export class DocumentStore {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly now: () => number,
  ) {}

  async create(input: {
    id: string;
    owner: string;
    label: string;
    to: { kind: "user" | "unit"; name: string };
    blob: string;
  }): Promise<DocumentRecord> {
    const now = this.now();
    await this.db.transaction().execute(async (trx) => {
      if (await trx.selectFrom("documents").select("id").where("id", "=", input.id).executeTakeFirst())
        throw new ValiseError("conflict", `document ${input.id} already exists`);
      const size = await BlobMetaStore.attach(trx, input.blob, input.owner, "document", input.id);
      await trx
        .insertInto("documents")
        .values({
          id: input.id,
          owner: input.owner,
          label: input.label,
          to_kind: input.to.kind,
          to_name: input.to.name,
          canary: 0,
          created_at: now,
        })
        .execute();
      await trx
        .insertInto("document_versions")
        .values({ document_id: input.id, version: 1, blob: input.blob, size, created_at: now, created_by: input.owner })
        .execute();
    });
    return (await this.get(input.id))!;
  }

  /** Appends a version (the blob must be the caller's, complete and unattached). */
  async addVersion(id: string, blob: string, by: string): Promise<DocumentRecord> {
    const now = this.now();
    await this.db.transaction().execute(async (trx) => {
      // Serializes concurrent version uploads of one document (row lock on PostgreSQL, write lock on SQLite).
      const doc = await trx
        .updateTable("documents")
        .set((eb) => ({ canary: eb.ref("canary") }))
        .where("id", "=", id)
        .returning("id")
        .executeTakeFirst();
      if (!doc) throw new ValiseError("not_found", `no document ${id}`);
      const size = await BlobMetaStore.attach(trx, blob, by, "document", id);
      const last = await trx
        .selectFrom("document_versions")
        .select((eb) => eb.fn.max("version").as("v"))
        .where("document_id", "=", id)
        .executeTakeFirst();
      await trx
        .insertInto("document_versions")
        .values({ document_id: id, version: Number(last?.v ?? 0) + 1, blob, size, created_at: now, created_by: by })
        .execute();
    });
    return (await this.get(id))!;
  }

  async get(id: string): Promise<DocumentRecord | null> {
    const r = await this.db.selectFrom("documents").selectAll().where("id", "=", id).executeTakeFirst();
    if (!r) return null;
    return (await this.withVersions([r]))[0]!;
  }

  /**
   * Documents the user is entitled to (owner, shared to them, or shared to one of their units), newest first. The
   * caller filters by clearance.
   */
  async listEntitled(handle: string, units: readonly string[]): Promise<DocumentRecord[]> {
    const rows = await this.db
      .selectFrom("documents")
      .selectAll()
      .where((eb) =>
        eb.or([
          eb("owner", "=", handle),
          eb.and([eb("to_kind", "=", "user"), eb("to_name", "=", handle)]),
          ...(units.length > 0 ? [eb.and([eb("to_kind", "=", "unit"), eb("to_name", "in", [...units])])] : []),
        ]),
      )
      .orderBy("created_at", "desc")
      .orderBy("id", "desc")
      .limit(10_000)
      .execute();
    return this.withVersions(rows);
  }

  async setCanary(id: string, canary: boolean): Promise<boolean> {
    const r = await this.db
      .updateTable("documents")
      .set({ canary: canary ? 1 : 0 })
      .where("id", "=", id)
      .executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }

  async listCanaries(): Promise<DocumentRecord[]> {
    const rows = await this.db
      .selectFrom("documents")
      .selectAll()
      .where("canary", "=", 1)
      .orderBy("created_at", "desc")
      .execute();
    return this.withVersions(rows);
  }

  private async withVersions(rows: Row[]): Promise<DocumentRecord[]> {
    if (rows.length === 0) return [];
    const versions = new Map<string, DocumentVersion[]>();
    for (let i = 0; i < rows.length; i += 500) {
      const ids = rows.slice(i, i + 500).map((r) => r.id);
      const vs = await this.db
        .selectFrom("document_versions")
        .selectAll()
        .where("document_id", "in", ids)
        .orderBy("document_id")
        .orderBy("version")
        .execute();
      for (const v of vs) {
        const list = versions.get(v.document_id) ?? [];
        list.push({
          version: Number(v.version),
          blob: v.blob,
          size: Number(v.size),
          createdAt: Number(v.created_at),
          createdBy: v.created_by,
        });
        versions.set(v.document_id, list);
      }
    }
    return rows.map((r) => ({
      id: r.id,
      owner: r.owner,
      label: r.label,
      to: { kind: r.to_kind as "user" | "unit", name: r.to_name },
      createdAt: Number(r.created_at),
      canary: Number(r.canary) === 1,
      versions: versions.get(r.id) ?? [],
    }));
  }
}
