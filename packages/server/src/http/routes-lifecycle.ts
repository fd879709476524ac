/**
 * Staff lifecycle over the API (issue 12), with the checks of the local `valise admin` commands:
 *   GET    /v1/users?unit=U                      list users (units, clearance, role, state)     officers, admins
 *   GET    /v1/users/:handle/history             every directory log entry about the user        officers, admins
 *   GET    /v1/units/:unit/members               a unit's members with their state               officers, admins
 *   POST   /v1/units/:unit/members   {handle}    add a member (`member.add`)                    admins
 *   DELETE /v1/units/:unit/members/:handle       remove a member (`member.remove`)              admins
 *   POST   /v1/users/:handle/move    {from, to}  move between units (remove + add, one change)   admins
 *   PUT    /v1/users/:handle/role    {role}      set the role (`user.role`)                     admins
 *   POST   /v1/users/:handle/disable             offboard (`user.disable`, devices revoked)     officers, admins
 *   POST   /v1/users/:handle/enable              enable again (`user.enable`)                   admins
 *   PUT    /v1/units/:unit/max-label {maxLabel}  a unit's highest label (`unit.label`)          admins
 *   POST   /v1/units/:unit/archives  {handle}   an archivist becomes the unit's archive (`archive.assign`) admins
 *   DELETE /v1/units/:unit/archives/:handle      the archive assignment ends (`archive.remove`)  admins
 *   PUT    /v1/units/:unit/share     {since}     how far back the unit shares keys (`unit.share`) admins
 *   GET    /v1/directory/changes?after=N&limit=M the directory log, decoded, from index N+1      officers, admins
 * Unit names go in the path URL-encoded (`HQ%2FASIA-1`). Every change is written to the directory log and audited
 * (actor = the caller) in one transaction; refusals (403/404) are audited by the audit hook. Nobody changes their own
 * role (or clearance: routes-directory.ts), or disables themselves.
 */
import type { FastifyInstance, FastifyRequest } from "fastify";
import { Type, type Static } from "typebox";
import { ValiseError, parseUnitName, parseUserHandle } from "@valise/core";
import { HandleBody, MaxLabelBody as LabelBody, MoveBody, RoleBody, ShareBody } from "@valise/core/wire";
import type { ServerContext } from "./context.js";
import { viewerOf, type Viewer } from "./need-to-know.js";
import { audit, auditObject, auditOf, clientOf } from "../audit/http.js";
import type { AuditOperator } from "../storage/audit-log.js";

export const MAX_CHANGES_PAGE = 1000;

const HandleParams = Type.Object({ handle: Type.String({ minLength: 1, maxLength: 64 }) });
const UnitParams = Type.Object({ unit: Type.String({ minLength: 1, maxLength: 200 }) });
const UnitHandleParams = Type.Object({
  unit: Type.String({ minLength: 1, maxLength: 200 }),
  handle: Type.String({ minLength: 1, maxLength: 64 }),
});
const UsersQuery = Type.Object(
  { unit: Type.Optional(Type.String({ maxLength: 200 })) },
  { additionalProperties: false },
);
const ChangesQuery = Type.Object(
  {
    after: Type.Optional(Type.String({ pattern: "^(-1|0|[1-9][0-9]{0,15})$" })),
    limit: Type.Optional(Type.String({ pattern: "^[1-9][0-9]{0,3}$" })),
  },
  { additionalProperties: false },
);

function requireRole(v: Viewer, roles: readonly string[], what: string): void {
  if (!roles.includes(v.role))
    throw new ValiseError(
      "forbidden",
      `${what} is for ${roles.map((r) => (r === "officer" ? "security officers" : `${r}s`)).join(" and ")}`,
    );
}

function notSelf(v: Viewer, handle: string, what: string): void {
  if (v.handle === handle) throw new ValiseError("forbidden", `you cannot ${what} yourself`);
}

function operator(v: Viewer, req: FastifyRequest): AuditOperator {
  return { actor: v.handle, device: v.deviceId, source: req.ip, client: clientOf(req.headers) };
}

const handleOf = (s: string) => parseUserHandle(s);
const unitOf = (s: string) => parseUnitName(s);

export function lifecycleRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const { directory } = ctx.store;
  const ADMINS = ["admin"];
  const STAFF = ["admin", "officer"];

  app.get<{ Querystring: Static<typeof UsersQuery> }>(
    "/v1/users",
    {
      ...audit({ action: "directory.read", kind: "other", object: auditOf.query("unit", "users") }),
      schema: { querystring: UsersQuery },
    },
    async (req) => {
      const v = await viewerOf(ctx, req);
      requireRole(v, STAFF, "listing users");
      const unit = req.query.unit === undefined ? undefined : unitOf(req.query.unit);
      return { users: await directory.listUsers(unit === undefined ? {} : { unit }) };
    },
  );

  app.get<{ Params: Static<typeof HandleParams> }>(
    "/v1/users/:handle/history",
    {
      ...audit({ action: "directory.read", kind: "user", object: auditOf.param("handle") }),
      schema: { params: HandleParams },
    },
    async (req) => {
      const v = await viewerOf(ctx, req);
      requireRole(v, STAFF, "a user's directory history");
      const handle = handleOf(req.params.handle);
      return { handle, history: await directory.userHistory(handle) };
    },
  );

  app.get<{ Params: Static<typeof UnitParams> }>(
    "/v1/units/:unit/members",
    {
      ...audit({ action: "directory.read", kind: "unit", object: auditOf.param("unit") }),
      schema: { params: UnitParams },
    },
    async (req) => {
      const v = await viewerOf(ctx, req);
      requireRole(v, STAFF, "a unit's member list with states");
      const unit = unitOf(req.params.unit);
      if (!(await directory.unitExists(unit))) throw new ValiseError("not_found", `no unit ${unit}`);
      return { unit, members: await directory.listUsers({ unit }) };
    },
  );

  app.post<{ Params: Static<typeof UnitParams>; Body: Static<typeof HandleBody> }>(
    "/v1/units/:unit/members",
    {
      ...audit({ action: "directory.member.add", write: true, inTransaction: true, fromRoute: true }),
      schema: { params: UnitParams, body: HandleBody },
    },
    async (req, reply) => {
      auditObject(req, { object: req.body.handle, unit: req.params.unit });
      const v = await viewerOf(ctx, req);
      requireRole(v, ADMINS, "changing unit membership");
      const r = await directory.addMember(handleOf(req.body.handle), unitOf(req.params.unit), operator(v, req));
      return reply.status(201).send(r);
    },
  );

  app.delete<{ Params: Static<typeof UnitHandleParams> }>(
    "/v1/units/:unit/members/:handle",
    {
      ...audit({ action: "directory.member.remove", write: true, inTransaction: true, fromRoute: true }),
      schema: { params: UnitHandleParams },
    },
    async (req) => {
      auditObject(req, { object: req.params.handle, unit: req.params.unit });
      const v = await viewerOf(ctx, req);
      requireRole(v, ADMINS, "changing unit membership");
      return directory.removeMember(handleOf(req.params.handle), unitOf(req.params.unit), operator(v, req));
    },
  );

  app.post<{ Params: Static<typeof HandleParams>; Body: Static<typeof MoveBody> }>(
    "/v1/users/:handle/move",
    {
      ...audit({ action: "directory.member.remove", write: true, inTransaction: true, fromRoute: true }),
      schema: { params: HandleParams, body: MoveBody },
    },
    async (req) => {
      auditObject(req, { object: req.params.handle, unit: req.body.from });
      const v = await viewerOf(ctx, req);
      requireRole(v, ADMINS, "moving users between units");
      return directory.moveUser(
        handleOf(req.params.handle),
        unitOf(req.body.from),
        unitOf(req.body.to),
        operator(v, req),
      );
    },
  );

  app.put<{ Params: Static<typeof HandleParams>; Body: Static<typeof RoleBody> }>(
    "/v1/users/:handle/role",
    {
      ...audit({ action: "directory.role.set", write: true, inTransaction: true, fromRoute: true }),
      schema: { params: HandleParams, body: RoleBody },
    },
    async (req) => {
      auditObject(req, { object: req.params.handle });
      const v = await viewerOf(ctx, req);
      requireRole(v, ADMINS, "setting roles");
      const handle = handleOf(req.params.handle);
      notSelf(v, handle, "change the role of");
      return directory.setRole(handle, req.body.role, operator(v, req));
    },
  );

  app.post<{ Params: Static<typeof HandleParams> }>(
    "/v1/users/:handle/disable",
    {
      ...audit({ action: "directory.user.disable", write: true, inTransaction: true, fromRoute: true }),
      schema: { params: HandleParams },
    },
    async (req) => {
      auditObject(req, { object: req.params.handle });
      const v = await viewerOf(ctx, req);
      requireRole(v, STAFF, "disabling users");
      const handle = handleOf(req.params.handle);
      notSelf(v, handle, "disable");
      return directory.disableUser(handle, operator(v, req));
    },
  );

  app.post<{ Params: Static<typeof HandleParams> }>(
    "/v1/users/:handle/enable",
    {
      ...audit({ action: "directory.user.enable", write: true, inTransaction: true, fromRoute: true }),
      schema: { params: HandleParams },
    },
    async (req) => {
      auditObject(req, { object: req.params.handle });
      const v = await viewerOf(ctx, req);
      requireRole(v, ADMINS, "enabling users");
      return directory.enableUser(handleOf(req.params.handle), operator(v, req));
    },
  );

  app.put<{ Params: Static<typeof UnitParams>; Body: Static<typeof LabelBody> }>(
    "/v1/units/:unit/max-label",
    {
      ...audit({ action: "directory.unit.label", write: true, inTransaction: true, fromRoute: true }),
      schema: { params: UnitParams, body: LabelBody },
    },
    async (req) => {
      auditObject(req, { object: req.params.unit, unit: req.params.unit });
      const v = await viewerOf(ctx, req);
      requireRole(v, ADMINS, "setting a unit's highest label");
      return directory.setUnitMaxLabel(unitOf(req.params.unit), req.body.maxLabel, operator(v, req));
    },
  );

  // Records archive (issue 14): an archivist becomes the archive of a unit, or stops being it.
  app.post<{ Params: Static<typeof UnitParams>; Body: Static<typeof HandleBody> }>(
    "/v1/units/:unit/archives",
    {
      ...audit({ action: "directory.archive.assign", write: true, inTransaction: true, fromRoute: true }),
      schema: { params: UnitParams, body: HandleBody },
    },
    async (req, reply) => {
      auditObject(req, { object: req.body.handle, unit: req.params.unit });
      const v = await viewerOf(ctx, req);
      requireRole(v, ADMINS, "assigning archives");
      const r = await directory.assignArchive(handleOf(req.body.handle), unitOf(req.params.unit), operator(v, req));
      return reply.status(201).send(r);
    },
  );

  app.delete<{ Params: Static<typeof UnitHandleParams> }>(
    "/v1/units/:unit/archives/:handle",
    {
      ...audit({ action: "directory.archive.remove", write: true, inTransaction: true, fromRoute: true }),
      schema: { params: UnitHandleParams },
    },
    async (req) => {
      auditObject(req, { object: req.params.handle, unit: req.params.unit });
      const v = await viewerOf(ctx, req);
      requireRole(v, ADMINS, "assigning archives");
      return directory.removeArchive(handleOf(req.params.handle), unitOf(req.params.unit), operator(v, req));
    },
  );

  app.put<{ Params: Static<typeof UnitParams>; Body: Static<typeof ShareBody> }>(
    "/v1/units/:unit/share",
    {
      ...audit({ action: "directory.unit.share", write: true, inTransaction: true, fromRoute: true }),
      schema: { params: UnitParams, body: ShareBody },
    },
    async (req) => {
      auditObject(req, { object: req.params.unit, unit: req.params.unit });
      const v = await viewerOf(ctx, req);
      requireRole(v, ADMINS, "setting how far back a unit shares keys");
      return directory.setUnitShare(unitOf(req.params.unit), req.body.since, operator(v, req));
    },
  );

  app.get<{ Querystring: Static<typeof ChangesQuery> }>(
    "/v1/directory/changes",
    {
      ...audit({ action: "directory.read", kind: "other", object: auditOf.fixed("directory-changes") }),
      schema: { querystring: ChangesQuery },
    },
    async (req) => {
      const v = await viewerOf(ctx, req);
      requireRole(v, STAFF, "the directory change feed");
      const after = req.query.after === undefined ? -1 : Number(req.query.after);
      const limit = req.query.limit === undefined ? 100 : Number(req.query.limit);
      if (limit > MAX_CHANGES_PAGE) throw new ValiseError("bad_request", `limit must be 1-${MAX_CHANGES_PAGE}`);
      return directory.changes(after, limit);
    },
  );
}
