/**
 * Read-only TAXII 2.1 (OASIS TAXII Version 2.1) for partners: the incidents officers shared, as one collection.
 *   GET /taxii2/                                    discovery
 *   GET /taxii2/valise/                             API root
 *   GET /taxii2/valise/collections/                 collections (one: shared incidents; can_read, not can_write)
 *   GET /taxii2/valise/collections/:id/             one collection
 *   GET /taxii2/valise/collections/:id/objects/     envelope {more, next?, objects?}; ?added_after=&limit=&next=
 *                                                   &match[type]=&match[id]=; X-TAXII-Date-Added-First/-Last headers
 * Authentication is a partner token an officer issued (`Authorization: Bearer taxii_…`), never a user session: 401
 * without one (or with an unknown one), 403 for a revoked one. The session hook in app.ts leaves `/taxii2/` alone.
 * Responses are `application/taxii+json;version=2.1`; a request whose Accept excludes that is answered 406. Errors
 * are TAXII error messages `{title, description, http_status}`. Object reads are audited (`audit.read`, actor
 * `taxii:<partner>`, object `taxii:<collection>`), so the ministry knows which partner pulled what and when.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { clientOf } from "../audit/http.js";
import type { ServerContext } from "./context.js";
import { IncidentStore, TAXII_COLLECTION_ID, type TaxiiTokenView } from "../incidents/store.js";

export const TAXII_MEDIA_TYPE = "application/taxii+json;version=2.1";
export const TAXII_PREFIX = "/taxii2/";
export const TAXII_API_ROOT = "/taxii2/valise/";
const MAX_PAGE = 1000;
const DEFAULT_PAGE = 100;

class TaxiiError extends Error {
  constructor(
    readonly status: number,
    readonly title: string,
    readonly description: string,
  ) {
    super(title);
  }
}

/** Does the Accept header allow `application/taxii+json;version=2.1`? (absent: yes) */
export function acceptsTaxii(accept: string | undefined): boolean {
  if (accept === undefined || accept.trim() === "") return true;
  return accept.split(",").some((part) => {
    const [type = "", ...params] = part.split(";").map((s) => s.trim().toLowerCase());
    const p = new Map(
      params.map((kv) => {
        const i = kv.indexOf("=");
        return [
          kv.slice(0, i).trim(),
          kv
            .slice(i + 1)
            .trim()
            .replace(/^"|"$/g, ""),
        ] as const;
      }),
    );
    if (p.get("q") === "0" || p.get("q") === "0.0" || p.get("q") === "0.00" || p.get("q") === "0.000") return false;
    if (type === "*/*" || type === "application/*") return true;
    if (type !== "application/taxii+json") return false;
    const v = p.get("version");
    return v === undefined || v === "2.1";
  });
}

function timestampParam(v: unknown, name: string): number {
  const t = typeof v === "string" && /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/.test(v) ? Date.parse(v) : NaN;
  if (Number.isNaN(t))
    throw new TaxiiError(400, "Bad request", `${name} must be a timestamp like 2026-03-02T09:14:03.120Z`);
  // Sub-millisecond digits: anything after X.yyy9 is still after X.yyy (added_at is whole ms).
  return t;
}

const iso = (ms: number) => new Date(ms).toISOString();

export function taxiiRoutes(app: FastifyInstance, ctx: ServerContext, opts: { orgName: string }): void {
  const incidents = new IncidentStore(ctx.store.handle.db, ctx.store.audit, ctx.now);

  const collection = () => ({
    id: TAXII_COLLECTION_ID,
    title: "Shared incidents",
    description: `Incidents, indicators and attack patterns that the ${opts.orgName} security officers chose to share.`,
    can_read: true,
    can_write: false,
    media_types: ["application/stix+json;version=2.1"],
  });

  async function partner(req: FastifyRequest): Promise<TaxiiTokenView> {
    const auth = req.headers.authorization;
    if (!auth?.startsWith("Bearer "))
      throw new TaxiiError(401, "Unauthorized", "a partner token is required: Authorization: Bearer <token>");
    const token = auth.slice(7).trim();
    const t = token.length > 0 && token.length < 200 ? await incidents.findToken(token) : null;
    if (!t) throw new TaxiiError(401, "Unauthorized", "unknown partner token");
    if (t.revokedAt !== null) throw new TaxiiError(403, "Forbidden", "this partner token has been revoked");
    return t;
  }

  const send = (reply: FastifyReply, status: number, body: unknown) =>
    reply
      .code(status)
      .header("content-type", TAXII_MEDIA_TYPE)
      .send(Buffer.from(JSON.stringify(body)));

  async function audit(req: FastifyRequest, who: TaxiiTokenView, outcome: "ok" | "denied", bytes: number) {
    await ctx.audit.record({
      actor: `taxii:${who.partner}`,
      device: null,
      source: req.ip,
      client: clientOf(req.headers),
      action: "audit.read",
      object: `taxii:${(req.params as { id?: string }).id ?? ""}`,
      bytes,
      outcome,
    });
  }

  const root = TAXII_API_ROOT.slice(TAXII_PREFIX.length - 1); // "/valise/"
  void app.register(
    async (taxii) => {
      taxii.setErrorHandler((err: Error, _req, reply) => {
        if (err instanceof TaxiiError) {
          if (err.status === 401) reply.header("www-authenticate", 'Bearer realm="valise-taxii"');
          return send(reply, err.status, {
            title: err.title,
            description: err.description,
            http_status: String(err.status),
          });
        }
        const status = (err as { statusCode?: number }).statusCode;
        if (status && status >= 400 && status < 500)
          return send(reply, status, { title: "Bad request", description: err.message, http_status: String(status) });
        reply.log.error({ err: { message: err.message } }, "taxii internal error");
        return send(reply, 500, { title: "Internal error", http_status: "500" });
      });
      taxii.setNotFoundHandler((_req, reply) =>
        send(reply, 404, { title: "Not found", description: "no such TAXII resource", http_status: "404" }),
      );
      // Content negotiation before anything else (also before authentication: it reveals nothing).
      taxii.addHook("onRequest", async (req) => {
        if (!acceptsTaxii(req.headers.accept))
          throw new TaxiiError(406, "Not acceptable", `this server answers only ${TAXII_MEDIA_TYPE}`);
      });

      taxii.get("/", async (req, reply) => {
        await partner(req);
        return send(reply, 200, {
          title: `${opts.orgName}: Valise TAXII server`,
          description: "Read-only TAXII 2.1 feed of security incidents shared with partners.",
          default: TAXII_API_ROOT,
          api_roots: [TAXII_API_ROOT],
        });
      });

      taxii.get(root, async (req, reply) => {
        await partner(req);
        return send(reply, 200, {
          title: "Valise",
          description: "Shared incidents (STIX 2.1).",
          versions: [TAXII_MEDIA_TYPE],
          max_content_length: 0,
        });
      });

      taxii.get(`${root}collections/`, async (req, reply) => {
        await partner(req);
        return send(reply, 200, { collections: [collection()] });
      });

      const knownCollection = (req: FastifyRequest) => {
        if ((req.params as { id: string }).id !== TAXII_COLLECTION_ID)
          throw new TaxiiError(404, "Not found", "no such collection");
      };

      taxii.get(`${root}collections/:id/`, async (req, reply) => {
        await partner(req);
        knownCollection(req);
        return send(reply, 200, collection());
      });

      taxii.get(`${root}collections/:id/objects/`, async (req, reply) => {
        const who = await partner(req);
        try {
          knownCollection(req);
        } catch (e) {
          await audit(req, who, "denied", 0);
          throw e;
        }
        const q = (req.query ?? {}) as Record<string, unknown>;
        for (const [k, v] of Object.entries(q)) {
          if (
            ![
              "added_after",
              "limit",
              "next",
              "match[type]",
              "match[id]",
              "match[spec_version]",
              "match[version]",
            ].includes(k)
          )
            throw new TaxiiError(400, "Bad request", `unsupported query parameter ${k}`);
          if (typeof v !== "string") throw new TaxiiError(400, "Bad request", `${k} given more than once`);
        }
        const limit = q.limit === undefined ? DEFAULT_PAGE : Number(q.limit);
        if (!Number.isInteger(limit) || limit < 1)
          throw new TaxiiError(400, "Bad request", "limit must be a positive integer");
        let after = q.added_after === undefined ? undefined : timestampParam(q.added_after, "added_after");
        if (q.next !== undefined) {
          const n = /^[0-9]{1,16}$/.test(q.next as string) ? Number(q.next) : NaN;
          if (!Number.isSafeInteger(n))
            throw new TaxiiError(400, "Bad request", "next is not a value this server gave");
          after = Math.max(after ?? 0, n);
        }
        const list = (k: string) =>
          q[k] === undefined ? undefined : new Set((q[k] as string).split(",").map((s) => s.trim()));
        const types = list("match[type]");
        const ids = list("match[id]");
        const specs = list("match[spec_version]");
        const page = Math.min(limit, MAX_PAGE);
        // Filters apply after paging by date added: read ahead until a page is full or the collection ends.
        const picked: { addedAt: number; object: Record<string, unknown> }[] = [];
        let cursor = after;
        let more = false;
        for (;;) {
          const rows = await incidents.objects(TAXII_COLLECTION_ID, cursor, page);
          const batch = rows.slice(0, page);
          for (const r of batch) {
            cursor = r.addedAt;
            const o = r.object;
            if (types && !types.has(String(o.type))) continue;
            if (ids && !ids.has(String(o.id))) continue;
            if (specs && !specs.has(typeof o.spec_version === "string" ? o.spec_version : "2.1")) continue;
            picked.push(r);
            if (picked.length === page) break;
          }
          if (picked.length === page) {
            more = (await incidents.objects(TAXII_COLLECTION_ID, picked[picked.length - 1]!.addedAt, 1)).length > 0;
            break;
          }
          if (rows.length <= page) break;
        }
        if (picked.length > 0) {
          reply.header("X-TAXII-Date-Added-First", iso(picked[0]!.addedAt));
          reply.header("X-TAXII-Date-Added-Last", iso(picked[picked.length - 1]!.addedAt));
        }
        const body = {
          more,
          ...(more ? { next: String(picked[picked.length - 1]!.addedAt) } : {}),
          ...(picked.length > 0 ? { objects: picked.map((p) => p.object) } : {}),
        };
        const text = JSON.stringify(body);
        await audit(req, who, "ok", Buffer.byteLength(text));
        return reply.code(200).header("content-type", TAXII_MEDIA_TYPE).send(Buffer.from(text));
      });
    },
    { prefix: TAXII_PREFIX.slice(0, -1) },
  );
}
