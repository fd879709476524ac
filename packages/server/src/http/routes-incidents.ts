/**
 * Incidents and partner tokens for security officers (role `officer` only; anyone else gets 403 `forbidden`):
 *   POST   /v1/incidents                  {title, alerts:[ids], note?} → 201 the incident
 *   GET    /v1/incidents?limit=N          newest first
 *   GET    /v1/incidents/:id              the incident and its alerts
 *   GET    /v1/incidents/:id/stix?includeAccounts=true   the STIX 2.1 bundle (application/stix+json;version=2.1)
 *   POST   /v1/incidents/:id/share        {includeAccounts?} adds the bundle's objects to the TAXII collection
 *   POST   /v1/taxii/tokens               {partner} → 201 {id, token, …}: the token is shown once, stored hashed
 *   GET    /v1/taxii/tokens               the tokens (never the secrets)
 *   DELETE /v1/taxii/tokens/:id           revoke
 * Every call, allowed (2xx) or refused (403/404), is an `audit.read` event (object `incident:<id>`, `incidents`,
 * `taxii-token:<id>`, …): these routes read and pass on the audit log's findings. Each route declares that
 * event in its config; the one audit hook (audit/http.ts) records it.
 */
import type { FastifyInstance, FastifyRequest } from "fastify";
import { Type } from "typebox";
import { ValiseError } from "@valise/core";
import { type ServerContext, requireSession } from "./context.js";
import { audit } from "../audit/http.js";
import { requireOfficerRequest } from "./need-to-know.js";
import { IncidentStore, MAX_INCIDENT_ALERTS, TAXII_COLLECTION_ID } from "../incidents/store.js";

export const STIX_MEDIA_TYPE = "application/stix+json;version=2.1";
export const DEFAULT_ORG_NAME = "Ministry of Foreign Affairs";

const requireOfficer = (ctx: ServerContext, req: FastifyRequest) =>
  requireOfficerRequest(ctx, req, "incidents and partner tokens");

const ID_RE = /^[a-z]{2,3}-[0-9a-f]{16}$/;
function idParam(req: FastifyRequest, what: string): string {
  const id = (req.params as { id?: string }).id ?? "";
  if (!ID_RE.test(id)) throw new ValiseError("not_found", `no such ${what}`);
  return id;
}

function boolParam(v: unknown, name: string): boolean {
  if (v === undefined || v === "false" || v === "0") return false;
  if (v === "true" || v === "1" || v === "") return true;
  throw new ValiseError("bad_request", `${name} must be true or false`);
}

/** The audit object of a request (what it touched), for the route-level audit hook. */
function auditObjectOf(req: FastifyRequest): string {
  const url = req.routeOptions.url ?? "";
  const id = (req.params as { id?: string } | undefined)?.id;
  if (url.startsWith("/v1/taxii/tokens")) return id ? `taxii-token:${id}` : "taxii-tokens";
  if (!id) return "incidents";
  const tail = url.slice("/v1/incidents/:id".length);
  return `incident:${id}${tail ? `:${tail.slice(1)}` : ""}`;
}

export function incidentRoutes(app: FastifyInstance, ctx: ServerContext, opts: { orgName?: string } = {}): void {
  const orgName = opts.orgName ?? DEFAULT_ORG_NAME;
  const incidents = new IncidentStore(ctx.store.handle.db, ctx.store.audit, ctx.now);

  // Every call, allowed or refused, reads the audit log's findings: one declaration for all of them.
  const opt = audit({ action: "audit.read", kind: "other", object: auditObjectOf });

  const load = async (req: FastifyRequest) => {
    const inc = await incidents.get(idParam(req, "incident"));
    if (!inc) throw new ValiseError("not_found", "no such incident");
    return inc;
  };

  app.post(
    "/v1/incidents",
    {
      ...opt,
      preValidation: async (req) => void (await requireOfficer(ctx, req)),
      schema: {
        body: Type.Object(
          {
            title: Type.String({ minLength: 1, maxLength: 200 }),
            alerts: Type.Array(Type.Integer({ minimum: 1 }), { minItems: 1, maxItems: MAX_INCIDENT_ALERTS }),
            note: Type.Optional(Type.String({ maxLength: 20_000 })),
          },
          { additionalProperties: false },
        ),
      },
    },
    async (req, reply) => {
      const by = requireSession(req).handle;
      const b = req.body as { title: string; alerts: number[]; note?: string };
      const inc = await incidents.create({ title: b.title, alerts: b.alerts, note: b.note ?? null, createdBy: by });
      return reply.code(201).send(inc);
    },
  );

  app.get("/v1/incidents", opt, async (req) => {
    await requireOfficer(ctx, req);
    const q = (req.query ?? {}) as Record<string, unknown>;
    const limit = q.limit === undefined ? 100 : Number(q.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000)
      throw new ValiseError("bad_request", "limit must be an integer 1-1000");
    return { incidents: await incidents.list(limit) };
  });

  app.get("/v1/incidents/:id", opt, async (req) => {
    await requireOfficer(ctx, req);
    const inc = await load(req);
    const rows = inc.alerts.length
      ? await ctx.store.handle.db
          .selectFrom("alerts")
          .select(["id", "time", "actor", "rule", "severity", "reason", "events"])
          .where("id", "in", inc.alerts)
          .orderBy("id")
          .execute()
      : [];
    return {
      ...inc,
      alertDetails: rows.map((r) => ({
        id: Number(r.id),
        time: new Date(Number(r.time)).toISOString(),
        actor: r.actor,
        rule: r.rule,
        severity: r.severity,
        reason: r.reason,
        events: JSON.parse(r.events) as string[],
      })),
    };
  });

  app.get("/v1/incidents/:id/stix", opt, async (req, reply) => {
    await requireOfficer(ctx, req);
    const inc = await load(req);
    const q = (req.query ?? {}) as Record<string, unknown>;
    for (const k of Object.keys(q))
      if (k !== "includeAccounts") throw new ValiseError("bad_request", `unknown query parameter ${JSON.stringify(k)}`);
    const bundle = await incidents.bundle(inc, orgName, boolParam(q.includeAccounts, "includeAccounts"));
    return reply.header("content-type", STIX_MEDIA_TYPE).send(Buffer.from(JSON.stringify(bundle)));
  });

  app.post("/v1/incidents/:id/share", opt, async (req) => {
    const by = await requireOfficer(ctx, req);
    const inc = await load(req);
    const b = (req.body ?? {}) as Record<string, unknown>;
    if (typeof b !== "object" || Array.isArray(b) || Object.keys(b).some((k) => k !== "includeAccounts"))
      throw new ValiseError("bad_request", "body: {includeAccounts?: boolean}");
    if (b.includeAccounts !== undefined && typeof b.includeAccounts !== "boolean")
      throw new ValiseError("bad_request", "includeAccounts must be a boolean");
    const bundle = await incidents.bundle(inc, orgName, b.includeAccounts === true);
    const added = await incidents.share(inc, bundle.objects, by);
    return { id: inc.id, collection: TAXII_COLLECTION_ID, objects: bundle.objects.length, added };
  });

  app.post(
    "/v1/taxii/tokens",
    {
      ...opt,
      preValidation: async (req) => void (await requireOfficer(ctx, req)),
      schema: {
        body: Type.Object(
          { partner: Type.String({ minLength: 1, maxLength: 200, pattern: "\\S" }) },
          { additionalProperties: false },
        ),
      },
    },
    async (req, reply) => {
      const by = requireSession(req).handle;
      const { partner } = req.body as { partner: string };
      const t = await incidents.issueToken(partner.trim(), by);
      return reply.code(201).send({ ...t.view, token: t.token });
    },
  );

  app.get("/v1/taxii/tokens", opt, async (req) => {
    await requireOfficer(ctx, req);
    return { tokens: await incidents.listTokens() };
  });

  app.delete("/v1/taxii/tokens/:id", opt, async (req) => {
    await requireOfficer(ctx, req);
    const t = await incidents.revokeToken(idParam(req, "token"));
    if (!t) throw new ValiseError("not_found", "no such token");
    return t;
  });
}
