/** Units, unit members, one-time key packages, and clearance changes by security officers. */
import type { FastifyInstance } from "fastify";
import { Type, type Static } from "typebox";
import { ValiseError, canonicalLabel, dominates, isUnitName, parseLabel, parseUserHandle } from "@valise/core";
import {
  ClaimKeyPackagesBody as ClaimBody,
  ClearanceBody,
  UploadKeyPackagesBody as UploadBody,
} from "@valise/core/wire";
import { type ServerContext, b64, requireSession } from "./context.js";
import { requireOfficer, viewerOf } from "./need-to-know.js";
import { clientOf, audit, auditOf } from "../audit/http.js";

const UnitQuery = Type.Object({ unit: Type.String({ maxLength: 200 }) }, { additionalProperties: false });
const HandleParams = Type.Object({ handle: Type.String({ minLength: 1, maxLength: 64 }) });

export function directoryRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const { directory } = ctx.store;

  const getUnitsAudit = audit({ action: "directory.read", kind: "other", object: auditOf.fixed("units") });
  app.get("/v1/units", getUnitsAudit, async (req) => {
    requireSession(req);
    return { units: await directory.listUnits() };
  });

  app.get<{ Querystring: Static<typeof UnitQuery> }>(
    "/v1/unit-members",
    {
      ...audit({ action: "directory.read", kind: "unit", object: auditOf.query("unit") }),
      schema: { querystring: UnitQuery },
    },
    async (req) => {
      requireSession(req);
      if (!isUnitName(req.query.unit)) throw new ValiseError("bad_unit", "invalid unit name");
      if (!(await directory.unitExists(req.query.unit)))
        throw new ValiseError("not_found", `no unit ${req.query.unit}`);
      return { unit: req.query.unit, members: await directory.unitMembers(req.query.unit) };
    },
  );

  app.post<{ Body: Static<typeof UploadBody> }>(
    "/v1/keypackages",
    {
      ...audit({ action: "directory.keypackage.add", write: true, kind: "user", object: auditOf.own }),
      schema: { body: UploadBody },
      bodyLimit: 4 * 1024 * 1024,
    },
    async (req, reply) => {
      const s = requireSession(req);
      const dev = await directory.getDevice(s.deviceId);
      if (!dev) throw new ValiseError("unauthenticated", "device unknown");
      const kps: { ref: string; data: Uint8Array }[] = [];
      for (const [i, k] of req.body.keyPackages.entries()) {
        const data = b64(`keyPackages[${i}]`, k);
        const info = await ctx.mls.inspectKeyPackage(data);
        if (
          !info ||
          info.device !== s.deviceId ||
          info.user !== s.handle ||
          !sameBytes(info.signaturePublicKey, dev.signaturePublicKey)
        )
          throw new ValiseError("bad_request", `keyPackages[${i}]: not a valid key package of this device`);
        kps.push({ ref: info.ref, data });
      }
      const count = await directory.addKeyPackages(s.deviceId, kps);
      return reply.status(201).send({ count });
    },
  );

  // Clearances (officers only). Written to the directory log and audited with the officer as actor, in one
  // transaction that also makes every conversation the new clearance no longer covers pending removal for the
  // user's devices in it — before this answer is sent.
  app.put<{ Params: Static<typeof HandleParams>; Body: Static<typeof ClearanceBody> }>(
    "/v1/users/:handle/clearance",
    {
      ...audit({
        action: "directory.clearance.set",
        write: true,
        inTransaction: true,
        kind: "user",
        object: auditOf.param("handle"),
      }),
      schema: { params: HandleParams, body: ClearanceBody },
    },
    async (req) => {
      const v = await viewerOf(ctx, req);
      requireOfficer(v, "setting clearances");
      const handle = parseUserHandle(req.params.handle);
      // Nobody sets their own clearance (issue 12): another officer must.
      if (handle === v.handle) throw new ValiseError("forbidden", "you cannot change your own clearance");
      const label = canonicalLabel(req.body.clearance);
      const r = await directory.setClearance(handle, label, {
        actor: v.handle,
        device: v.deviceId,
        source: req.ip,
        client: clientOf(req.headers),
      });
      return { handle, clearance: r.clearance, pendingRemovals: r.pendingRemovals };
    },
  );

  const getKeypackagesCountAudit = audit({ action: "directory.read", kind: "user", object: auditOf.own });
  app.get("/v1/keypackages/count", getKeypackagesCountAudit, async (req) => {
    const s = requireSession(req);
    return { count: await directory.countKeyPackages(s.deviceId) };
  });

  /**
   * One-time key packages (DESIGN §3) are claimed only to add devices to a conversation the caller is an active member
   * of, and only devices the commit route would accept there (need-to-know: active device, user cleared for the
   * label, a member of the unit for unit/link channels), not already in it. Each claimed device is audited
   * (`directory.read`, object the device's user, `target_device` the device); claims are rate-limited per caller
   * device and per (caller, target) pair, so nobody can drain another device's packages.
   */
  app.post<{ Body: Static<typeof ClaimBody> }>(
    "/v1/keypackages/claim",
    {
      ...audit({
        action: "directory.read",
        inTransaction: true,
        kind: "other",
        object: auditOf.body("conversation", "key-packages"),
      }),
      schema: { body: ClaimBody },
    },
    async (req) => {
      const s = requireSession(req);
      const convId = req.body.conversation;
      const conv = await ctx.store.conversations.get(convId);
      const m = conv ? await ctx.store.conversations.membership(convId, s.deviceId) : null;
      if (!conv || !m || m.leftSeq !== null) throw new ValiseError("not_found", "no such conversation");
      if (await ctx.store.conversations.notCleared(convId, s.deviceId))
        throw new ValiseError("not_cleared", "this device is no longer cleared for the conversation's label");
      if (!(await ctx.claimLimiter.take(s.deviceId)))
        throw new ValiseError("rate_limited", "too many key-package claims from this device; wait a minute");
      const label = parseLabel(conv.label);
      const allowedUnits = conv.kind === "unit" || conv.kind === "link" ? [conv.unit, conv.fromUnit] : null;
      const members = new Set(await ctx.store.conversations.currentMembers(convId));
      // Devices already in the conversation need no package: none is taken for them.
      const wanted = [...new Set(req.body.devices)].filter((d) => !members.has(d));
      for (const d of wanted) {
        const dev = await directory.getDevice(d);
        if (!dev || dev.revokedAt !== null) throw new ValiseError("forbidden", `device ${d} is unknown or revoked`);
        const user = await directory.getUser(dev.handle);
        if (!user) throw new ValiseError("forbidden", `device ${d} has no user`);
        if (allowedUnits && !user.units.some((u) => allowedUnits.includes(u)))
          throw new ValiseError("forbidden", `user ${dev.handle} may not be added to this conversation`);
        if (!dominates(parseLabel(user.clearance), label))
          throw new ValiseError("not_cleared", `user ${dev.handle} is not cleared for ${conv.label}`);
      }
      for (const d of wanted)
        if (!(await ctx.claimPairLimiter.take(`${s.deviceId}>${d}`)))
          throw new ValiseError("rate_limited", `too many key packages of ${d} claimed by this device; try later`);
      const claimed = await directory.claimKeyPackages(wanted);
      const origin = { source: req.ip, client: clientOf(req.headers) };
      await Promise.all(
        claimed.map(async (c) =>
          ctx.audit.record({
            actor: s.handle,
            device: s.deviceId,
            ...origin,
            action: "directory.read",
            object: c.handle,
            targetDevice: c.device,
            label: conv.label,
            unit: (await directory.getUser(c.handle))?.units[0] ?? null,
            bytes: c.keyPackage.length,
            outcome: "ok",
          }),
        ),
      );
      return {
        keyPackages: claimed.map((c) => ({
          handle: c.handle,
          device: c.device,
          keyPackage: Buffer.from(c.keyPackage).toString("base64"),
        })),
      };
    },
  );
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
