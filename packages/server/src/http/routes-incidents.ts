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
 *   POST   /v1/taxii/partners             {url, token, name} a partner's TAXII collection to poll → 201 (token not shown)
 *   GET    /v1/taxii/partners             the partners, their cursor, last poll, last error and refusals
 *   DELETE /v1/taxii/partners/:id         stop polling; its indicators are dropped
 *   POST   /v1/taxii/partners/:id/poll    poll now → the import report (imported, refused [{id, reason}], retro matches)
 *   POST   /v1/taxii/import               a STIX 2.1 bundle (≤ 10 MiB) → the same report
 *   GET    /v1/taxii/indicators           the imported indicators
 * Every call, allowed (2xx) or refused (403/404), is an `audit.read` event (object `incident:<id>`, `incidents`,
 * `taxii-token:<id>`, …): these routes read and pass on the audit log's findings. Each route declares that
 * event in its config; the one audit hook (audit/http.ts) records it.
 */
import type { FastifyInstance, FastifyRequest } from "fastify";
import { ValiseError } from "@valise/core";
import { type ServerContext, requireSession } from "./context.js";
import { audit } from "../audit/http.js";
import { requireOfficerRequest } from "./need-to-know.js";
import { AddTaxiiPartnerBody, CreateIncidentBody, IssueTaxiiTokenBody } from "@valise/core/wire";
import { IncidentStore, TAXII_COLLECTION_ID, partnerCollectionId } from "../incidents/store.js";
import { TLP_LEVELS, type TlpLevel } from "../incidents/stix.js";
import { MAX_BATCH_BYTES } from "../incidents/ioc.js";

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
  if (url.startsWith("/v1/taxii/partners")) return id ? `taxii-partner:${id}` : "taxii-partners";
  if (url.startsWith("/v1/taxii/")) return `taxii-${url.slice("/v1/taxii/".length)}`;
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
        body: CreateIncidentBody,
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
    if (
      typeof b !== "object" ||
      Array.isArray(b) ||
      Object.keys(b).some((k) => k !== "includeAccounts" && k !== "partner" && k !== "tlp")
    )
      throw new ValiseError("bad_request", "body: {includeAccounts?: boolean, partner?: string, tlp?: string}");
    if (b.includeAccounts !== undefined && typeof b.includeAccounts !== "boolean")
      throw new ValiseError("bad_request", "includeAccounts must be a boolean");
    if (b.tlp !== undefined && !(TLP_LEVELS as readonly unknown[]).includes(b.tlp))
      throw new ValiseError("bad_request", `tlp must be one of ${TLP_LEVELS.join(", ")}`);
    let collection = TAXII_COLLECTION_ID;
    if (b.partner !== undefined) {
      if (typeof b.partner !== "string" || b.partner.trim() === "")
        throw new ValiseError("bad_request", "partner must be a partner name");
      const partner = b.partner.trim();
      if (!(await incidents.listTokens()).some((t) => t.partner === partner))
        throw new ValiseError("not_found", `no TAXII token was issued to a partner named ${JSON.stringify(partner)}`);
      collection = partnerCollectionId(partner);
    }
    const tlp = b.tlp as TlpLevel | undefined;
    const bundle = await incidents.bundle(inc, orgName, b.includeAccounts === true, tlp);
    const added = await incidents.share(inc, bundle.objects, by, collection);
    return {
      id: inc.id,
      collection,
      ...(b.partner !== undefined ? { partner: b.partner.trim() } : {}),
      tlp: tlp ?? "amber",
      objects: bundle.objects.length,
      added,
    };
  });

  app.post(
    "/v1/taxii/tokens",
    {
      ...opt,
      preValidation: async (req) => void (await requireOfficer(ctx, req)),
      schema: {
        body: IssueTaxiiTokenBody,
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

  const iocs = () => {
    if (!ctx.iocs) throw new ValiseError("bad_request", "allied indicators are not enabled on this server");
    return ctx.iocs;
  };

  app.post(
    "/v1/taxii/partners",
    {
      ...opt,
      preValidation: async (req) => void (await requireOfficer(ctx, req)),
      schema: {
        body: AddTaxiiPartnerBody,
      },
    },
    async (req, reply) => {
      const by = requireSession(req).handle;
      const b = req.body as { url: string; token: string; name: string };
      return reply.code(201).send(await iocs().addPartner({ name: b.name.trim(), url: b.url, token: b.token, by }));
    },
  );

  app.get("/v1/taxii/partners", opt, async (req) => {
    await requireOfficer(ctx, req);
    return { partners: await iocs().listPartners() };
  });

  app.delete("/v1/taxii/partners/:id", opt, async (req) => {
    await requireOfficer(ctx, req);
    const p = await iocs().removePartner(idParam(req, "partner"));
    if (!p) throw new ValiseError("not_found", "no such partner");
    return p;
  });

  app.post("/v1/taxii/partners/:id/poll", opt, async (req) => {
    await requireOfficer(ctx, req);
    return iocs().poll(idParam(req, "partner"));
  });

  app.post("/v1/taxii/import", { ...opt, bodyLimit: MAX_BATCH_BYTES }, async (req) => {
    const by = await requireOfficer(ctx, req);
    const b = req.body as Record<string, unknown> | null;
    if (typeof b !== "object" || b === null || Array.isArray(b) || b.type !== "bundle" || !Array.isArray(b.objects))
      throw new ValiseError("bad_request", 'expected a STIX 2.1 bundle: {"type": "bundle", "id": …, "objects": [...]}');
    return iocs().importObjects(b.objects, { id: `file:${by}`, name: `a bundle imported by ${by}` });
  });

  app.get("/v1/taxii/indicators", opt, async (req) => {
    await requireOfficer(ctx, req);
    const rows = await iocs().listIndicators();
    return {
      indicators: rows.map((r) => ({
        id: r.id,
        partner: r.partner,
        version: r.version,
        name: r.name,
        pattern: r.pattern,
        networks: JSON.parse(r.networks) as string[],
        techniques: JSON.parse(r.techniques) as string[],
        validFrom: new Date(Number(r.valid_from)).toISOString(),
        validUntil: r.valid_until === null ? null : new Date(Number(r.valid_until)).toISOString(),
        tlp: r.tlp,
        importedAt: new Date(Number(r.imported_at)).toISOString(),
        retroMatches: Number(r.retro_matches),
      })),
    };
  });
}
