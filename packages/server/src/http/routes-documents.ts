/**
 * Documents: create (version 1 from a complete blob), append versions, list, read metadata; officers mark canaries.
 * Need-to-know: entitled (owner, shared to the user, or to one of their units) and cleared for the label, else 403
 * (`forbidden` / `not_cleared`); listings leave such documents out. The canary flag never appears in an answer to a
 * user: it marks the audit events of every access to the document.
 */
import type { FastifyInstance } from "fastify";
import { Type, type Static } from "typebox";
import {
  ID_PATTERN,
  ValiseError,
  canonicalLabel,
  dominates,
  parseLabel,
  parseUnitName,
  parseUserHandle,
} from "@valise/core";
import { CanaryBody, CreateDocumentBody as CreateBody, DocumentVersionBody as VersionBody } from "@valise/core/wire";
import type { ServerContext } from "./context.js";
import { auditObject, audit, auditOf } from "../audit/http.js";
import { cleared, documentEntitled, requireAccess, requireOfficer, viewerOf, type Viewer } from "./need-to-know.js";
import { documentUnit } from "./routes-blobs.js";
import type { DocumentRecord } from "../storage/document-store.js";

const DocId = Type.String({ pattern: ID_PATTERN.document });
const Params = Type.Object({ id: DocId });

/** The user-facing document: never the canary flag. */
export function presentDocument(d: DocumentRecord) {
  return {
    id: d.id,
    owner: d.owner,
    label: d.label,
    to: { kind: d.to.kind, name: d.to.name },
    createdAt: d.createdAt,
    versions: d.versions.map((x) => ({
      version: x.version,
      blob: x.blob,
      size: x.size,
      createdAt: x.createdAt,
      createdBy: x.createdBy,
    })),
  };
}

export function documentRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const { documents, blobs, directory } = ctx.store;

  /** The document, audited (object, label, unit, canary) and checked: entitled and cleared. */
  async function accessible(req: Parameters<typeof auditObject>[0], v: Viewer, id: string): Promise<DocumentRecord> {
    const d = await documents.get(id);
    if (!d) throw new ValiseError("not_found", `no document ${id}`);
    auditObject(req, { object: d.id, label: d.label, unit: await documentUnit(ctx, d), canary: d.canary });
    requireAccess(v, documentEntitled(v, d), d.label, `document ${d.id}`);
    return d;
  }

  app.post<{ Body: Static<typeof CreateBody> }>(
    "/v1/documents",
    { ...audit({ action: "document.write", write: true, fromRoute: true }), schema: { body: CreateBody } },
    async (req, reply) => {
      const v = await viewerOf(ctx, req);
      const body = req.body;
      const label = canonicalLabel(body.label);
      const to =
        body.to.kind === "user"
          ? { kind: "user" as const, name: parseUserHandle(body.to.name) }
          : { kind: "unit" as const, name: parseUnitName(body.to.name) };
      auditObject(req, {
        object: body.id,
        label,
        unit: to.kind === "unit" ? to.name : (v.units[0] ?? null),
        bytes: 0,
      });
      if (!cleared(v, label)) throw new ValiseError("not_cleared", `your clearance does not cover ${label}`);
      if (to.kind === "user") {
        const u = await directory.getUser(to.name);
        if (!u) throw new ValiseError("not_found", `no user ${to.name}`);
        if (!dominates(parseLabel(u.clearance), parseLabel(label)))
          throw new ValiseError("not_cleared", `${to.name} is not cleared for ${label}`);
      } else {
        const u = (await directory.listUnits()).find((x) => x.name === to.name);
        if (!u) throw new ValiseError("not_found", `no unit ${to.name}`);
        if (!dominates(parseLabel(u.maxLabel), parseLabel(label)))
          throw new ValiseError("not_cleared", `unit ${to.name} may not hold ${label}`);
      }
      const bad = await blobs.checkAttachable(body.blob, v.handle);
      if (bad) throw bad;
      const d = await documents.create({ id: body.id, owner: v.handle, label, to, blob: body.blob });
      auditObject(req, { bytes: d.versions[0]?.size ?? 0 });
      return reply.status(201).send(presentDocument(d));
    },
  );

  app.post<{ Params: Static<typeof Params>; Body: Static<typeof VersionBody> }>(
    "/v1/documents/:id/versions",
    {
      ...audit({ action: "document.write", write: true, fromRoute: true }),
      schema: { params: Params, body: VersionBody },
    },
    async (req, reply) => {
      const v = await viewerOf(ctx, req);
      await accessible(req, v, req.params.id);
      auditObject(req, { bytes: 0 });
      const bad = await blobs.checkAttachable(req.body.blob, v.handle);
      if (bad) throw bad;
      const d = await documents.addVersion(req.params.id, req.body.blob, v.handle);
      auditObject(req, { bytes: d.versions.at(-1)?.size ?? 0 });
      return reply.status(201).send(presentDocument(d));
    },
  );

  const getDocumentsAudit = audit({ action: "document.list", fromRoute: true, object: auditOf.fixed("documents") });
  app.get("/v1/documents", getDocumentsAudit, async (req) => {
    const v = await viewerOf(ctx, req);
    auditObject(req, { unit: v.units[0] ?? null });
    const list = await documents.listEntitled(v.handle, v.units);
    return { documents: list.filter((d) => cleared(v, d.label)).map(presentDocument) };
  });

  const getDocumentsIdAudit = audit({ action: "document.read", fromRoute: true });
  app.get<{ Params: Static<typeof Params> }>(
    "/v1/documents/:id",
    { ...getDocumentsIdAudit, schema: { params: Params } },
    async (req) => {
      const v = await viewerOf(ctx, req);
      const d = await accessible(req, v, req.params.id);
      auditObject(req, { bytes: 0 });
      return presentDocument(d);
    },
  );

  app.put<{ Params: Static<typeof Params>; Body: Static<typeof CanaryBody> }>(
    "/v1/documents/:id/canary",
    {
      ...audit({ action: "document.write", write: true, fromRoute: true }),
      schema: { params: Params, body: CanaryBody },
    },
    async (req) => {
      const v = await viewerOf(ctx, req);
      auditObject(req, { object: req.params.id, bytes: 0 });
      requireOfficer(v, "marking canary documents");
      const d = await documents.get(req.params.id);
      if (!d) throw new ValiseError("not_found", `no document ${req.params.id}`);
      await documents.setCanary(d.id, req.body.canary);
      // The officer's own change is marked as touching a canary whenever the document is or was one.
      auditObject(req, { label: d.label, unit: await documentUnit(ctx, d), canary: d.canary || req.body.canary });
      return { id: d.id, canary: req.body.canary };
    },
  );

  const getOfficerCanariesAudit = audit({
    action: "document.list",
    fromRoute: true,
    object: auditOf.fixed("canaries"),
  });
  app.get("/v1/officer/canaries", getOfficerCanariesAudit, async (req) => {
    const v = await viewerOf(ctx, req);
    requireOfficer(v, "the canary list");
    const list = await documents.listCanaries();
    return {
      documents: list.map((d) => ({
        id: d.id,
        owner: d.owner,
        label: d.label,
        to: { kind: d.to.kind, name: d.to.name },
      })),
    };
  });
}
