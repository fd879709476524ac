/**
 * Cables: release (reference number allocated in the releasing transaction; idempotent on id; immutable — there is no
 * update route), list and queue in precedence order (FLASH first), read by id or reference, receipts. Need-to-know:
 * entitled = member of the originator or of an ACTION/INFO unit; and cleared for the label.
 */
import type { FastifyInstance } from "fastify";
import { createHash } from "node:crypto";
import { Type, type Static } from "typebox";
import {
  ID_PATTERN,
  ValiseError,
  canonicalLabel,
  dominates,
  formatCableReference,
  parseCableReference,
  parseLabel,
  parsePrecedence,
  parseUnitName,
  precedenceRank,
  type Precedence,
} from "@valise/core";
import { CableReceiptBody as ReceiptBody, ReleaseCableBody as ReleaseBody } from "@valise/core/wire";
import type { ServerContext } from "./context.js";
import { auditObject, audit, auditOf } from "../audit/http.js";
import { cableEntitled, cleared, requireAccess, viewerOf, type Viewer } from "./need-to-know.js";
import type { CableQuery, CableRecord } from "../storage/cable-store.js";

const CableId = Type.String({ pattern: ID_PATTERN.cable });
const Unit = Type.String({ minLength: 1, maxLength: 200 });
const Params = Type.Object({ id: CableId });
const ListQuery = Type.Object(
  {
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
    offset: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000 })),
    unit: Type.Optional(Unit),
    precedence: Type.Optional(Type.String({ minLength: 1, maxLength: 20 })),
  },
  { additionalProperties: false },
);
const QueueQuery = Type.Object(
  { limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })) },
  { additionalProperties: false },
);
const RefQuery = Type.Object(
  { reference: Type.String({ minLength: 1, maxLength: 300 }) },
  { additionalProperties: false },
);

const BATCH = 500;

export function cableRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const { cables, blobs, directory } = ctx.store;

  function audited(req: Parameters<typeof auditObject>[0], c: CableRecord, bytes = 0): void {
    auditObject(req, { object: c.id, label: c.label, unit: c.originator, bytes });
  }

  function readable(req: Parameters<typeof auditObject>[0], v: Viewer, c: CableRecord | null, what: string) {
    if (!c) throw new ValiseError("not_found", `no cable ${what}`);
    audited(req, c);
    requireAccess(v, cableEntitled(v, c), c.label, `cable ${c.reference}`);
    return c;
  }

  /** Entitled and cleared cables in queue order, paged over the cleared ones. */
  async function visible(v: Viewer, q: Omit<CableQuery, "units" | "offset" | "limit">, offset: number, limit: number) {
    const out: CableRecord[] = [];
    let skip = offset;
    for (let sqlOffset = 0; out.length < limit; sqlOffset += BATCH) {
      const batch = await cables.list({ ...q, units: v.units, offset: sqlOffset, limit: BATCH });
      for (const c of batch) {
        if (!cleared(v, c.label)) continue;
        if (skip > 0) {
          skip--;
          continue;
        }
        out.push(c);
        if (out.length === limit) break;
      }
      if (batch.length < BATCH) break;
    }
    return out;
  }

  app.post<{ Body: Static<typeof ReleaseBody> }>(
    "/v1/cables",
    { ...audit({ action: "cable.send", write: true, fromRoute: true }), schema: { body: ReleaseBody } },
    async (req, reply) => {
      const v = await viewerOf(ctx, req);
      const b = req.body;
      const label = canonicalLabel(b.label);
      const originator = parseUnitName(b.originator);
      const action = b.action.map(parseUnitName);
      const info = (b.info ?? []).map(parseUnitName);
      const precedence: Precedence = parsePrecedence(b.precedence);
      auditObject(req, { object: b.id, label, unit: originator, bytes: 0 });
      const all = [...action, ...info];
      if (new Set(all).size !== all.length)
        throw new ValiseError("bad_request", "a unit appears twice among the ACTION and INFO addressees");
      const corrects =
        b.corrects === undefined || b.corrects === null ? null : formatCableReference(parseCableReference(b.corrects));
      const requestHash = createHash("sha256")
        .update(JSON.stringify([originator, action, info, precedence, label, b.blob, corrects]))
        .digest("hex");
      const input = {
        id: b.id,
        originator,
        action,
        info,
        precedence,
        precedenceRank: precedenceRank(precedence),
        label,
        blob: b.blob,
        corrects,
        sender: v.handle,
        senderDevice: v.deviceId,
        requestHash,
      };
      // A re-POST of a released cable: the same answer (or 409 if it differs), without re-checking the spent blob.
      if (!(await cables.get(b.id))) {
        if (!(await directory.unitExists(originator))) throw new ValiseError("not_found", `no unit ${originator}`);
        if (!v.units.includes(originator))
          throw new ValiseError("forbidden", `you are not a member of the originator ${originator}`);
        if (!cleared(v, label)) throw new ValiseError("not_cleared", `your clearance does not cover ${label}`);
        const units = new Map((await directory.listUnits()).map((u) => [u.name, u.maxLabel]));
        const l = parseLabel(label);
        for (const u of [originator, ...all]) {
          const max = units.get(u);
          if (max === undefined) throw new ValiseError("not_found", `no unit ${u}`);
          if (!dominates(parseLabel(max), l)) throw new ValiseError("not_cleared", `unit ${u} may not carry ${label}`);
        }
        if (corrects !== null) {
          const c = await cables.getByReference(corrects);
          if (!c || !cableEntitled(v, c) || !cleared(v, c.label))
            throw new ValiseError("not_found", `no cable ${corrects} to correct`);
        }
        const bad = await blobs.checkAttachable(b.blob, v.handle);
        if (bad) throw bad;
      }
      const { cable, created } = await cables.release(input);
      audited(req, cable, cable.size);
      return reply.status(created ? 201 : 200).send(cable);
    },
  );

  app.get<{ Querystring: Static<typeof ListQuery> }>(
    "/v1/cables",
    {
      ...audit({ action: "cable.list", fromRoute: true, object: auditOf.fixed("cables") }),
      schema: { querystring: ListQuery },
    },
    async (req) => {
      const v = await viewerOf(ctx, req);
      const q = req.query;
      const unit = q.unit === undefined ? undefined : parseUnitName(q.unit);
      const precedence = q.precedence === undefined ? undefined : parsePrecedence(q.precedence);
      auditObject(req, { unit: unit ?? v.units[0] ?? null });
      return { cables: await visible(v, { unit, precedence }, q.offset ?? 0, q.limit ?? 100) };
    },
  );

  app.get<{ Querystring: Static<typeof QueueQuery> }>(
    "/v1/cables/queue",
    {
      ...audit({ action: "cable.list", fromRoute: true, object: auditOf.fixed("cable-queue") }),
      schema: { querystring: QueueQuery },
    },
    async (req) => {
      const v = await viewerOf(ctx, req);
      auditObject(req, { unit: v.units[0] ?? null });
      return { cables: await visible(v, { notAckedBy: v.deviceId }, 0, req.query.limit ?? 100) };
    },
  );

  app.get<{ Querystring: Static<typeof RefQuery> }>(
    "/v1/cables/by-reference",
    {
      ...audit({ action: "cable.read", fromRoute: true, object: auditOf.query("reference") }),
      schema: { querystring: RefQuery },
    },
    async (req) => {
      const v = await viewerOf(ctx, req);
      const ref = formatCableReference(parseCableReference(req.query.reference));
      auditObject(req, { object: ref });
      return readable(req, v, await cables.getByReference(ref), ref);
    },
  );

  const getCablesIdAudit = audit({ action: "cable.read", fromRoute: true });
  app.get<{ Params: Static<typeof Params> }>(
    "/v1/cables/:id",
    { ...getCablesIdAudit, schema: { params: Params } },
    async (req) => {
      const v = await viewerOf(ctx, req);
      return readable(req, v, await cables.get(req.params.id), req.params.id);
    },
  );

  app.post<{ Params: Static<typeof Params>; Body: Static<typeof ReceiptBody> }>(
    "/v1/cables/:id/receipts",
    { ...audit({ action: "cable.read", fromRoute: true }), schema: { params: Params, body: ReceiptBody } },
    async (req) => {
      const v = await viewerOf(ctx, req);
      const c = readable(req, v, await cables.get(req.params.id), req.params.id);
      const mine = c.receipts.map((r) => r.unit).filter((u) => v.units.includes(u));
      return cables.receipt(c.id, v.deviceId, v.handle, mine, req.body.state);
    },
  );
}
