/**
 * Cables (DESIGN.md §2): formal, immutable messages from an originator unit to ACTION and INFO addressee units, with a
 * precedence that orders every queue, a label, one ciphertext blob, and a reference number `ORIGINATOR YEAR/NNNNNN`
 * allocated in the releasing transaction from a per-(originator, UTC year) counter: no reuse, no gaps (a failed
 * release rolls its increment back). Receipts: per addressee unit (first delivery and first read, by whom) and per
 * device (what empties that device's queue).
 */
import type { Kysely, Transaction } from "kysely";
import { ValiseError, formatCableReference, type Precedence } from "@valise/core";
import type { Database } from "./schema.js";
import { BlobMetaStore } from "./blob-meta.js";

export interface CableReceipt {
  unit: string;
  role: "action" | "info";
  deliveredAt: number | null;
  deliveredBy: string | null;
  readAt: number | null;
  readBy: string | null;
}

export interface CableRecord {
  id: string;
  reference: string;
  originator: string;
  sender: string;
  senderDevice: string;
  precedence: Precedence;
  label: string;
  action: string[];
  info: string[];
  blob: string;
  size: number;
  corrects: string | null;
  createdAt: number;
  receipts: CableReceipt[];
}

export interface ReleaseInput {
  id: string;
  originator: string;
  action: string[];
  info: string[];
  precedence: Precedence;
  precedenceRank: number;
  label: string;
  blob: string;
  corrects: string | null;
  sender: string;
  senderDevice: string;
  /** A digest of what was asked, so an identical re-POST gets the first answer and a different one a 409. */
  requestHash: string;
}

export interface CableQuery {
  /** The user's units: only cables originated by or addressed to one of them. */
  units: readonly string[];
  unit?: string | undefined;
  precedence?: Precedence | undefined;
  /** Only cables this device has not acknowledged (its queue). */
  notAckedBy?: string | undefined;
  offset: number;
  limit: number;
}

type CableRow = Database["cables"];

export class CableStore {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly now: () => number,
  ) {}

  /** Releases a cable; idempotent on `id` (same request → the stored cable, `created: false`). */
  async release(input: ReleaseInput): Promise<{ cable: CableRecord; created: boolean }> {
    const prior = await this.idempotent(input);
    if (prior) return { cable: prior, created: false };
    const now = this.now();
    try {
      await this.db.transaction().execute(async (trx) => {
        if (await trx.selectFrom("cables").select("id").where("id", "=", input.id).executeTakeFirst())
          throw new ValiseError("conflict", `cable ${input.id} already exists`);
        const size = await BlobMetaStore.attach(trx, input.blob, input.sender, "cable", input.id);
        const year = new Date(now).getUTCFullYear();
        const serial = await nextSerial(trx, input.originator, year);
        await trx
          .insertInto("cables")
          .values({
            id: input.id,
            reference: formatCableReference({ originator: input.originator, year, serial }),
            originator: input.originator,
            year,
            serial,
            sender: input.sender,
            sender_device: input.senderDevice,
            precedence: input.precedence,
            precedence_rank: input.precedenceRank,
            label: input.label,
            blob: input.blob,
            size,
            corrects: input.corrects,
            request_hash: input.requestHash,
            created_at: now,
          })
          .execute();
        const addressees = [
          ...input.action.map((unit) => ({ unit, role: "action" })),
          ...input.info.map((unit) => ({ unit, role: "info" })),
        ];
        await trx
          .insertInto("cable_addressees")
          .values(
            addressees.map((a, position) => ({
              cable_id: input.id,
              unit: a.unit,
              role: a.role,
              position,
              delivered_at: null,
              delivered_by: null,
              read_at: null,
              read_by: null,
            })),
          )
          .execute();
      });
    } catch (e) {
      // A concurrent identical re-POST won the race: answer as for a retry.
      const again = await this.idempotent(input);
      if (again) return { cable: again, created: false };
      throw e;
    }
    return { cable: (await this.get(input.id))!, created: true };
  }

  private async idempotent(input: ReleaseInput): Promise<CableRecord | null> {
    const r = await this.db
      .selectFrom("cables")
      .select(["request_hash", "sender"])
      .where("id", "=", input.id)
      .executeTakeFirst();
    if (!r) return null;
    if (r.request_hash !== input.requestHash || r.sender !== input.sender)
      throw new ValiseError("conflict", `cable ${input.id} was already released with different content`);
    return this.get(input.id);
  }

  async get(id: string): Promise<CableRecord | null> {
    const r = await this.db.selectFrom("cables").selectAll().where("id", "=", id).executeTakeFirst();
    return r ? (await this.withAddressees([r]))[0]! : null;
  }

  async getByReference(reference: string): Promise<CableRecord | null> {
    const r = await this.db.selectFrom("cables").selectAll().where("reference", "=", reference).executeTakeFirst();
    return r ? (await this.withAddressees([r]))[0]! : null;
  }

  /** Cables numbered `year/serial` by any originator (a reference given without its originator), at most `limit`. */
  async findBySerial(year: number, serial: number, limit = 10): Promise<CableRecord[]> {
    const rows = await this.db
      .selectFrom("cables")
      .selectAll()
      .where("year", "=", year)
      .where("serial", "=", serial)
      .orderBy("reference")
      .limit(limit)
      .execute();
    return this.withAddressees(rows);
  }

  /**
   * Cables the units are entitled to, FLASH first, then oldest release first, then serial (the caller filters by
   * clearance: so it pages with `offset`/`limit` over this entitlement order).
   */
  async list(q: CableQuery): Promise<CableRecord[]> {
    if (q.units.length === 0) return [];
    const units = [...q.units];
    let sel = this.db
      .selectFrom("cables as c")
      .selectAll("c")
      .where((eb) =>
        eb.or([
          eb("c.originator", "in", units),
          eb.exists(
            eb
              .selectFrom("cable_addressees as a")
              .select("a.cable_id")
              .whereRef("a.cable_id", "=", "c.id")
              .where("a.unit", "in", units),
          ),
        ]),
      );
    if (q.unit !== undefined) {
      const unit = q.unit;
      sel = sel.where((eb) =>
        eb.or([
          eb("c.originator", "=", unit),
          eb.exists(
            eb
              .selectFrom("cable_addressees as a")
              .select("a.cable_id")
              .whereRef("a.cable_id", "=", "c.id")
              .where("a.unit", "=", unit),
          ),
        ]),
      );
    }
    if (q.precedence !== undefined) sel = sel.where("c.precedence", "=", q.precedence);
    if (q.notAckedBy !== undefined) {
      const device = q.notAckedBy;
      sel = sel.where((eb) =>
        eb.not(
          eb.exists(
            eb
              .selectFrom("cable_device_receipts as r")
              .select("r.cable_id")
              .whereRef("r.cable_id", "=", "c.id")
              .where("r.device_id", "=", device),
          ),
        ),
      );
    }
    const rows = await sel
      .orderBy("c.precedence_rank", "desc")
      .orderBy("c.created_at", "asc")
      .orderBy("c.serial", "asc")
      .orderBy("c.id", "asc")
      .offset(q.offset)
      .limit(q.limit)
      .execute();
    return this.withAddressees(rows);
  }

  /**
   * A device acknowledges a cable (leaves its queue); for every addressee unit among `units`, the first delivery
   * (and, for `read`, the first read — which implies delivery) is recorded with the user's handle.
   */
  async receipt(
    cableId: string,
    device: string,
    handle: string,
    units: readonly string[],
    state: "delivered" | "read",
  ): Promise<CableRecord> {
    const now = this.now();
    const read = state === "read";
    await this.db.transaction().execute(async (trx) => {
      await trx
        .insertInto("cable_device_receipts")
        .values({ device_id: device, cable_id: cableId, state, delivered_at: now, read_at: read ? now : null })
        .onConflict((oc) => oc.columns(["device_id", "cable_id"]).doNothing())
        .execute();
      if (read)
        await trx
          .updateTable("cable_device_receipts")
          .set({ state: "read", read_at: now })
          .where("device_id", "=", device)
          .where("cable_id", "=", cableId)
          .where("read_at", "is", null)
          .execute();
      if (units.length === 0) return;
      await trx
        .updateTable("cable_addressees")
        .set({ delivered_at: now, delivered_by: handle })
        .where("cable_id", "=", cableId)
        .where("unit", "in", [...units])
        .where("delivered_at", "is", null)
        .execute();
      if (read)
        await trx
          .updateTable("cable_addressees")
          .set({ read_at: now, read_by: handle })
          .where("cable_id", "=", cableId)
          .where("unit", "in", [...units])
          .where("read_at", "is", null)
          .execute();
    });
    return (await this.get(cableId))!;
  }

  private async withAddressees(rows: CableRow[]): Promise<CableRecord[]> {
    if (rows.length === 0) return [];
    const byCable = new Map<string, Database["cable_addressees"][]>();
    for (let i = 0; i < rows.length; i += 500) {
      const ids = rows.slice(i, i + 500).map((r) => r.id);
      const as = await this.db
        .selectFrom("cable_addressees")
        .selectAll()
        .where("cable_id", "in", ids)
        .orderBy("cable_id")
        .orderBy("position")
        .execute();
      for (const a of as) byCable.set(a.cable_id, [...(byCable.get(a.cable_id) ?? []), a]);
    }
    return rows.map((r) => {
      const as = byCable.get(r.id) ?? [];
      return {
        id: r.id,
        reference: r.reference,
        originator: r.originator,
        sender: r.sender,
        senderDevice: r.sender_device,
        precedence: r.precedence as Precedence,
        label: r.label,
        action: as.filter((a) => a.role === "action").map((a) => a.unit),
        info: as.filter((a) => a.role === "info").map((a) => a.unit),
        blob: r.blob,
        size: Number(r.size),
        corrects: r.corrects,
        createdAt: Number(r.created_at),
        receipts: as.map((a) => ({
          unit: a.unit,
          role: a.role as "action" | "info",
          deliveredAt: a.delivered_at === null ? null : Number(a.delivered_at),
          deliveredBy: a.delivered_by,
          readAt: a.read_at === null ? null : Number(a.read_at),
          readBy: a.read_by,
        })),
      };
    });
  }
}

/** 1 + the last serial of (originator, year), bumped in the caller's transaction (row lock / write lock). */
async function nextSerial(trx: Transaction<Database>, originator: string, year: number): Promise<number> {
  const r = await trx
    .insertInto("cable_serials")
    .values({ originator, year, last_serial: 1 })
    .onConflict((oc) =>
      oc
        .columns(["originator", "year"])
        .doUpdateSet((eb) => ({ last_serial: eb("cable_serials.last_serial", "+", 1) })),
    )
    .returning("last_serial")
    .executeTakeFirstOrThrow();
  return Number(r.last_serial);
}
