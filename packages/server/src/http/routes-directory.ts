/** Units, unit members, one-time key packages, and clearance changes by security officers. */
import type { FastifyInstance } from "fastify";
import { Type, type Static } from "typebox";
import { ValiseError, canonicalLabel, isUnitName, parseUserHandle } from "@valise/core";
import { type ServerContext, b64, requireSession } from "./context.js";
import { requireOfficer, viewerOf } from "./need-to-know.js";
import { clientOf } from "../audit/http.js";

const B64 = Type.String({ maxLength: 100_000, pattern: "^[A-Za-z0-9+/]*={0,2}$" });
const UploadBody = Type.Object(
  { keyPackages: Type.Array(B64, { minItems: 1, maxItems: 100 }) },
  { additionalProperties: false },
);
const ClaimBody = Type.Object(
  { devices: Type.Array(Type.String({ pattern: "^d-[a-z0-9]{8,64}$" }), { minItems: 1, maxItems: 5000 }) },
  { additionalProperties: false },
);
const UnitQuery = Type.Object({ unit: Type.String({ maxLength: 200 }) }, { additionalProperties: false });
const HandleParams = Type.Object({ handle: Type.String({ minLength: 1, maxLength: 64 }) });
const ClearanceBody = Type.Object(
  { clearance: Type.String({ minLength: 1, maxLength: 512 }) },
  { additionalProperties: false },
);

export function directoryRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const { directory } = ctx.store;

  app.get("/v1/units", async (req) => {
    requireSession(req);
    return { units: await directory.listUnits() };
  });

  app.get<{ Querystring: Static<typeof UnitQuery> }>(
    "/v1/unit-members",
    { schema: { querystring: UnitQuery } },
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
    { schema: { body: UploadBody }, bodyLimit: 4 * 1024 * 1024 },
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
    { schema: { params: HandleParams, body: ClearanceBody } },
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

  app.get("/v1/keypackages/count", async (req) => {
    const s = requireSession(req);
    return { count: await directory.countKeyPackages(s.deviceId) };
  });

  app.post<{ Body: Static<typeof ClaimBody> }>(
    "/v1/keypackages/claim",
    { schema: { body: ClaimBody } },
    async (req) => {
      requireSession(req);
      const claimed = await directory.claimKeyPackages([...new Set(req.body.devices)]);
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
