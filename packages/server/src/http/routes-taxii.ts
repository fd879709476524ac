/**
 * Read-only TAXII 2.1 (OASIS TAXII Version 2.1) for partners: the incidents officers shared, as one collection.
 *   GET /taxii2/                                              discovery
 *   GET /taxii2/valise/                                       API root information
 *   GET /taxii2/valise/collections/                           collections (one: shared incidents; read-only)
 *   GET /taxii2/valise/collections/:id/                       one collection
 *   GET /taxii2/valise/collections/:id/objects/               envelope {more, next?, objects?}
 *   GET /taxii2/valise/collections/:id/manifest/              {more, next?, objects?: manifest-records}
 *   GET /taxii2/valise/collections/:id/objects/:object-id/    envelope of that object's versions (default: last)
 *   GET /taxii2/valise/collections/:id/objects/:object-id/versions/   {more, next?, versions?}
 *   GET /taxii2/valise/status/:status-id/                     always 404: a read-only server never creates a status
 * Objects and manifest take ?added_after=&limit=&next=&match[id]=&match[type]=&match[version]=&match[spec_version]=;
 * one object takes added_after, limit, next, match[version], match[spec_version]; versions takes added_after, limit,
 * next, match[spec_version]. `match[version]` is `last` (default), `first`, `all` or exact timestamps (a version is
 * the object's `modified`, else `created`, else its date added). All four page by date added, the same way:
 * `more`/`next` and X-TAXII-Date-Added-First/-Last headers. An object that is not in the collection (never shared)
 * is 404 exactly like one that does not exist.
 * Authentication is a partner token an officer issued (`Authorization: Bearer taxii_…`), never a user session: 401
 * without one (or with an unknown one), 403 for a revoked one. The session hook in app.ts leaves `/taxii2/` alone.
 * Responses are `application/taxii+json;version=2.1`; a request whose Accept excludes that is answered 406. Errors
 * are TAXII error messages `{title, description, http_status}`. Content reads are audited (`audit.read`, actor
 * `taxii:<partner>`, object `taxii:<collection>`, `taxii:<collection>/manifest`, `taxii:<collection>/objects/<id>`
 * or `…/objects/<id>/versions`; unknown collections and objects as denied), so the ministry knows which partner
 * pulled what and when, and who asked for something that was not shared.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { clientOf, notAudited } from "../audit/http.js";
import type { ServerContext } from "./context.js";
import {
  IncidentStore,
  TAXII_COLLECTION_ID,
  partnerCollectionId,
  type TaxiiEntry,
  type TaxiiQuery,
  type TaxiiTokenView,
} from "../incidents/store.js";

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

const TIMESTAMP_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.(\d+))?Z$/;

function timestampParam(v: unknown, name: string): number {
  const t = typeof v === "string" && TIMESTAMP_RE.test(v) ? Date.parse(v) : NaN;
  if (Number.isNaN(t))
    throw new TaxiiError(400, "Bad request", `${name} must be a timestamp like 2026-03-02T09:14:03.120Z`);
  // Sub-millisecond digits: anything after X.yyy9 is still after X.yyy (added_at is whole ms).
  return t;
}

const iso = (ms: number) => new Date(ms).toISOString();

export const STIX_MEDIA_TYPE = "application/stix+json;version=2.1";
/** A STIX identifier, `type--UUID` (STIX 2.1 §2.9). */
const STIX_ID_RE = /^[a-z0-9][a-z0-9-]{0,249}--[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const MATCH_ALL = ["match[type]", "match[id]", "match[spec_version]", "match[version]"] as const;

const colId = (req: FastifyRequest) => (req.params as { id: string }).id;

/**
 * The query parameters of a read (TAXII 2.1 filtering and pagination): only those in `allowed`, each at most once. `next` is the date
 * added (ms) of the last entry of the previous page, as this server gave it. `match[version]` is `last` (default),
 * `first`, `all` and/or exact timestamps, comma-separated (alternatives); a timestamp finer than the millisecond
 * matches nothing (every version here is whole milliseconds).
 */
function parseQuery(req: FastifyRequest, allowed: readonly string[]): { query: TaxiiQuery; limit: number } {
  const q = (req.query ?? {}) as Record<string, unknown>;
  for (const [k, v] of Object.entries(q)) {
    if (!allowed.includes(k)) throw new TaxiiError(400, "Bad request", `unsupported query parameter ${k}`);
    if (typeof v !== "string") throw new TaxiiError(400, "Bad request", `${k} given more than once`);
  }
  const limit = q.limit === undefined ? DEFAULT_PAGE : Number(q.limit);
  if (!Number.isInteger(limit) || limit < 1)
    throw new TaxiiError(400, "Bad request", "limit must be a positive integer");
  let after = q.added_after === undefined ? undefined : timestampParam(q.added_after, "added_after");
  if (q.next !== undefined) {
    const n = /^[0-9]{1,16}$/.test(q.next as string) ? Number(q.next) : NaN;
    if (!Number.isSafeInteger(n)) throw new TaxiiError(400, "Bad request", "next is not a value this server gave");
    after = Math.max(after ?? 0, n);
  }
  const list = (k: string) =>
    q[k] === undefined
      ? undefined
      : (q[k] as string)
          .split(",")
          .map((s) => s.trim())
          .filter((s) => s !== "");
  const versions: TaxiiQuery["versions"] = {};
  const at: number[] = [];
  for (const x of list("match[version]") ?? ["last"]) {
    if (x === "first" || x === "last" || x === "all") versions[x] = true;
    else {
      const ms = timestampParam(x, "match[version]");
      if (/^0*$/.test((TIMESTAMP_RE.exec(x)?.[1] ?? "").slice(3))) at.push(ms);
    }
  }
  if (at.length > 0) versions.at = at;
  const specs = list("match[spec_version]");
  return {
    query: {
      ...(after !== undefined ? { after } : {}),
      ...(q["match[id]"] !== undefined ? { ids: list("match[id]") } : {}),
      ...(q["match[type]"] !== undefined ? { types: list("match[type]") } : {}),
      ...(specs !== undefined ? { specVersions: new Set(specs) } : {}),
      versions,
    },
    limit: Math.min(limit, MAX_PAGE),
  };
}

/** A manifest-record (TAXII 2.1 Get Object Manifests). */
const manifestRecord = (e: TaxiiEntry) => ({
  id: e.id,
  date_added: iso(e.addedAt),
  version: e.version,
  media_type: `application/stix+json;version=${e.specVersion}`,
});

export function taxiiRoutes(app: FastifyInstance, ctx: ServerContext, opts: { orgName: string }): void {
  const incidents = new IncidentStore(ctx.store.handle.db, ctx.store.audit, ctx.now);

  /** The common collection (every partner) and the partner's own (issue 16: per-partner sharing). */
  const collectionsOf = (who: TaxiiTokenView) => [
    {
      id: TAXII_COLLECTION_ID,
      title: "Shared incidents",
      description: `Incidents, indicators and attack patterns that the ${opts.orgName} security officers shared with all partners.`,
      can_read: true,
      can_write: false,
      media_types: [STIX_MEDIA_TYPE],
    },
    {
      id: partnerCollectionId(who.partner),
      title: `Shared with ${who.partner}`,
      description: `Incidents that the ${opts.orgName} security officers shared with ${who.partner} only, each with the TLP marking chosen for it.`,
      can_read: true,
      can_write: false,
      media_types: [STIX_MEDIA_TYPE],
    },
  ];

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

  async function audit(
    req: FastifyRequest,
    who: TaxiiTokenView,
    object: string,
    outcome: "ok" | "denied",
    bytes: number,
  ) {
    await ctx.audit.record({
      actor: `taxii:${who.partner}`,
      device: null,
      source: req.ip,
      client: clientOf(req.headers),
      action: "audit.read",
      object: object.slice(0, 200),
      bytes,
      outcome,
    });
  }

  // Partners have no session: each content read is audited by its handler (audit() above, actor the partner's
  // token); discovery reveals no stored data.
  const TAXII_AUDIT = notAudited(
    "TAXII partners (no session): the handler audits each content read, actor the partner",
  );
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

      taxii.get("/", TAXII_AUDIT, async (req, reply) => {
        await partner(req);
        return send(reply, 200, {
          title: `${opts.orgName}: Valise TAXII server`,
          description: "Read-only TAXII 2.1 feed of security incidents shared with partners.",
          default: TAXII_API_ROOT,
          api_roots: [TAXII_API_ROOT],
        });
      });

      taxii.get(root, TAXII_AUDIT, async (req, reply) => {
        await partner(req);
        return send(reply, 200, {
          title: "Valise",
          description: "Shared incidents (STIX 2.1).",
          versions: [TAXII_MEDIA_TYPE],
          max_content_length: 0,
        });
      });

      taxii.get(`${root}collections/`, TAXII_AUDIT, async (req, reply) => {
        const who = await partner(req);
        return send(reply, 200, { collections: collectionsOf(who) });
      });

      /** One of the partner's collections; another partner's (or an unknown one) is a 404, as if it did not exist. */
      const knownCollection = (req: FastifyRequest, who: TaxiiTokenView) => {
        const c = collectionsOf(who).find((x) => x.id === colId(req));
        if (!c) throw new TaxiiError(404, "Not found", "no such collection");
        return c;
      };

      /** The collection of a read of its content; an unknown one is a 404 audited as denied. */
      async function collectionRead(req: FastifyRequest, who: TaxiiTokenView, object: string): Promise<string> {
        try {
          return knownCollection(req, who).id;
        } catch (e) {
          await audit(req, who, object, "denied", 0);
          throw e;
        }
      }

      /** A page of entries: `more`/`next`, the date-added headers, the audit record; `body` adds the content. */
      async function page(
        req: FastifyRequest,
        reply: FastifyReply,
        who: TaxiiTokenView,
        object: string,
        r: { entries: TaxiiEntry[]; more: boolean },
        body: Record<string, unknown>,
      ) {
        const { entries, more } = r;
        if (entries.length > 0) {
          reply.header("X-TAXII-Date-Added-First", iso(entries[0]!.addedAt));
          reply.header("X-TAXII-Date-Added-Last", iso(entries[entries.length - 1]!.addedAt));
        }
        const text = JSON.stringify({
          more,
          ...(more ? { next: String(entries[entries.length - 1]!.addedAt) } : {}),
          ...body,
        });
        await audit(req, who, object, "ok", Buffer.byteLength(text));
        return reply.code(200).header("content-type", TAXII_MEDIA_TYPE).send(Buffer.from(text));
      }

      taxii.get(`${root}collections/:id/`, TAXII_AUDIT, async (req, reply) => {
        const who = await partner(req);
        return send(reply, 200, knownCollection(req, who));
      });

      const colPath = `${root}collections/:id/`;

      taxii.get(`${colPath}objects/`, TAXII_AUDIT, async (req, reply) => {
        const who = await partner(req);
        const col = await collectionRead(req, who, `taxii:${colId(req)}`);
        const { query, limit } = parseQuery(req, ["added_after", "limit", "next", ...MATCH_ALL]);
        const r = await incidents.entries(col, query, limit);
        return page(req, reply, who, `taxii:${col}`, r, {
          ...(r.entries.length > 0 ? { objects: r.entries.map((e) => e.object) } : {}),
        });
      });

      taxii.get(`${colPath}manifest/`, TAXII_AUDIT, async (req, reply) => {
        const who = await partner(req);
        const col = await collectionRead(req, who, `taxii:${colId(req)}/manifest`);
        const { query, limit } = parseQuery(req, ["added_after", "limit", "next", ...MATCH_ALL]);
        const r = await incidents.entries(col, query, limit);
        return page(req, reply, who, `taxii:${col}/manifest`, r, {
          ...(r.entries.length > 0 ? { objects: r.entries.map(manifestRecord) } : {}),
        });
      });

      /** The object named in the path, if it is in the collection; otherwise a (denied, audited) 404. */
      async function sharedObject(req: FastifyRequest, who: TaxiiTokenView, suffix: string) {
        const raw = (req.params as { objectId: string }).objectId;
        const id = STIX_ID_RE.test(raw) ? raw : null;
        const object = `taxii:${colId(req)}/objects/${id ?? "(not a STIX id)"}${suffix}`;
        const col = await collectionRead(req, who, object);
        if (id === null || !(await incidents.hasObject(col, id))) {
          await audit(req, who, object, "denied", 0);
          throw new TaxiiError(404, "Not found", "no such object in this collection");
        }
        return { col, id, object };
      }

      taxii.get(`${colPath}objects/:objectId/`, TAXII_AUDIT, async (req, reply) => {
        const who = await partner(req);
        const { col, id, object } = await sharedObject(req, who, "");
        const { query, limit } = parseQuery(req, [
          "added_after",
          "limit",
          "next",
          "match[version]",
          "match[spec_version]",
        ]);
        const r = await incidents.entries(col, { ...query, ids: [id] }, limit);
        return page(req, reply, who, object, r, {
          ...(r.entries.length > 0 ? { objects: r.entries.map((e) => e.object) } : {}),
        });
      });

      taxii.get(`${colPath}objects/:objectId/versions/`, TAXII_AUDIT, async (req, reply) => {
        const who = await partner(req);
        const { col, id, object } = await sharedObject(req, who, "/versions");
        const { query, limit } = parseQuery(req, ["added_after", "limit", "next", "match[spec_version]"]);
        const r = await incidents.entries(col, { ...query, ids: [id], versions: { all: true } }, limit);
        return page(req, reply, who, object, r, {
          ...(r.entries.length > 0 ? { versions: r.entries.map((e) => e.version) } : {}),
        });
      });

      // Get Status (TAXII 2.1): status resources report on Add Objects requests; this server accepts none (the
      // collection is read-only, can_write false), so there is never a status to get.
      taxii.get(`${root}status/:statusId/`, TAXII_AUDIT, async (req) => {
        await partner(req);
        throw new TaxiiError(404, "Not found", "no such status: this server is read-only and never creates one");
      });
    },
    { prefix: TAXII_PREFIX.slice(0, -1) },
  );
}
