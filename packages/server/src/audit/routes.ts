/**
 * The audit log over HTTP, beside the directory log (routes-log.ts) and in the same layout: the latest signed
 * checkpoint, C2SP tlog-tiles under /v1/log/audit/tile/, RFC 9162 proofs, and for officers JSON pages of entries
 * and an indexed query. Each entry is the event's leaf bytes (base64), so a reader can hash it into the root.
 *
 * Public, as for the directory log: the checkpoint, consistency proofs (what a witness needs: sizes and hashes) and
 * the log's verifier key. Everything that reveals events — entries, tiles, inclusion proofs, queries — is for
 * security officers (role `officer` or `admin`); anyone else gets 403, and that denial is itself an audit event.
 */
import type { FastifyInstance, FastifyRequest } from "fastify";
import { ValiseError, auditLogOrigin, formatCableReference, parseCableReference, toBase64 } from "@valise/core";
import type { ServerContext } from "../http/context.js";
import { requireOfficerRequest } from "../http/need-to-know.js";
import { auditObject, audit, auditOf } from "./http.js";
import { intParams, parseTilePath } from "../http/routes-log.js";
import type { LogKey } from "../storage/log-key.js";

export const AUDIT_PREFIX = "/v1/log/audit";
export const PUBLIC_AUDIT_ROUTES = [
  `${AUDIT_PREFIX}/checkpoint`,
  `${AUDIT_PREFIX}/proof/consistency`,
  `${AUDIT_PREFIX}/key`,
];
export const MAX_AUDIT_PAGE = 1000;
/** Every audit-log route: public ones are audited too when the caller has a session (an audit-log read). */
const AUDIT_READ = audit({ action: "audit.read", kind: "other", object: auditOf.fixed("audit-log") });
/** Officers' lookup of a cable's id by its reference, to query the audit log for it (no subject or content). */
export const AUDIT_CABLE_ROUTE = "/v1/audit/cables/by-reference";

/** The audit log's checkpoint origin (core `auditLogOrigin`). */
export const auditOrigin = auditLogOrigin;

const requireOfficer = (ctx: ServerContext, req: FastifyRequest) =>
  requireOfficerRequest(ctx, req, "the audit log", ["officer", "admin"]);

const FILTER_KEYS = ["actor", "action", "object", "since", "until", "before", "limit", "size"];

function timeParam(v: unknown, name: string): number | undefined {
  if (v === undefined) return undefined;
  const t = typeof v === "string" && v.length <= 40 ? Date.parse(v) : NaN;
  if (Number.isNaN(t)) throw new ValiseError("bad_request", `${name} must be an ISO 8601 time`);
  return t;
}

function strParam(v: unknown, name: string): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== "string" || v.length === 0 || v.length > 256)
    throw new ValiseError("bad_request", `${name} must be one string of 1-256 characters`);
  return v;
}

function intParam(v: unknown, name: string, max: number): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== "string" || !/^(0|[1-9][0-9]{0,15})$/.test(v) || Number(v) > max)
    throw new ValiseError("bad_request", `${name} must be a decimal integer ≤ ${max}`);
  return Number(v);
}

export function auditRoutes(app: FastifyInstance, ctx: ServerContext, logKey?: LogKey): void {
  const log = ctx.store.audit;

  app.get(`${AUDIT_PREFIX}/checkpoint`, AUDIT_READ, async (_req, reply) => {
    // With witnesses configured, only a checkpoint cosigned by a quorum of them is published, as for the directory.
    const cp = ctx.auditWitnessed ? await ctx.auditWitnessed.latest() : await log.latestCheckpoint();
    if (!cp)
      throw new ValiseError(
        "not_found",
        ctx.auditWitnessed
          ? "no audit checkpoint has a quorum of witness cosignatures yet"
          : "the audit log has no checkpoint yet",
      );
    return reply
      .header("content-type", "text/plain; charset=utf-8")
      .header("cache-control", "no-cache, max-age=1")
      .send(cp.note);
  });

  app.get(`${AUDIT_PREFIX}/key`, AUDIT_READ, async () => {
    if (!logKey) throw new ValiseError("not_found", "this server signs no checkpoints");
    return { vkey: logKey.vkey, origin: auditOrigin(logKey.origin) };
  });

  app.get(`${AUDIT_PREFIX}/proof/consistency`, AUDIT_READ, async (req) => {
    const { from, to } = intParams(req.query, ["from", "to"]);
    const proof = await log.consistencyProof(from, to);
    return { from, to, proof: proof.map(toBase64) };
  });

  app.get(`${AUDIT_PREFIX}/proof/inclusion`, AUDIT_READ, async (req) => {
    await requireOfficer(ctx, req);
    const { index, size } = intParams(req.query, ["index", "size"]);
    const proof = await log.inclusionProof(index, size);
    return { index, size, proof: proof.map(toBase64) };
  });

  app.get(`${AUDIT_PREFIX}/tile/*`, AUDIT_READ, async (req, reply) => {
    await requireOfficer(ctx, req);
    const t = parseTilePath((req.params as { "*": string })["*"]);
    if (!t) throw new ValiseError("bad_request", "expected tile/<L>/<N>[.p/<W>] or tile/entries/<N>[.p/<W>]");
    const body =
      t.level === "entries" ? await log.entryBundle(t.index, t.width) : await log.tile(t.level, t.index, t.width);
    if (!body) throw new ValiseError("not_found", "no such tile in the audit log (yet)");
    return reply
      .header("content-type", "application/octet-stream")
      .header("cache-control", "private, max-age=31536000, immutable")
      .send(Buffer.from(body.buffer, body.byteOffset, body.byteLength));
  });

  /**
   * Where the log was pruned (issue 19): entries below `before` were exported and deleted; `frontier` is the prefix's
   * perfect-subtree roots (largest first), from which a reader hashes the remaining entries into the signed root.
   */
  app.get(`${AUDIT_PREFIX}/pruned`, AUDIT_READ, async (req) => {
    await requireOfficer(ctx, req);
    const p = await log.pruned();
    return { before: p.before, frontier: p.frontier.map(toBase64) };
  });

  /** Entries [start, start+count) as base64 leaf bytes, in log order. */
  app.get(`${AUDIT_PREFIX}/entries`, AUDIT_READ, async (req) => {
    await requireOfficer(ctx, req);
    const { start, count } = intParams(req.query, ["start", "count"]);
    if (count < 1 || count > MAX_AUDIT_PAGE) throw new ValiseError("bad_request", `count must be 1-${MAX_AUDIT_PAGE}`);
    const entries = await log.entries(start, count);
    return { start, entries: entries.map(toBase64) };
  });

  /**
   * A cable's metadata by reference, for officers asking "who read cable REF?": the audit log names cables by id.
   * `ORIGINATOR YYYY/NNNNNN`, or `YYYY/NNNNNN` alone when one originator has that number (else 409 listing them).
   * Metadata only — id, reference, originator, label, release time — and no need-to-know check: the officer sees no
   * more than the audit log's own events already say. Audited (`audit.read`, object the cable id), denials too.
   */
  const getAudit = audit({ action: "audit.read", fromRoute: true, object: auditOf.query("reference") });
  app.get(AUDIT_CABLE_ROUTE, getAudit, async (req) => {
    await requireOfficer(ctx, req);
    const q = (req.query ?? {}) as Record<string, unknown>;
    for (const k of Object.keys(q))
      if (k !== "reference") throw new ValiseError("bad_request", `unknown query parameter ${JSON.stringify(k)}`);
    const text = strParam(q.reference, "reference")?.trim();
    if (!text) throw new ValiseError("bad_request", "reference is required, e.g. EMB/BEIJING 2026/000123");
    const bare = /^(\d{4})\/(\d{6,})$/.exec(text);
    let found;
    if (bare) {
      const all = await ctx.store.cables.findBySerial(Number(bare[1]), Number(bare[2]));
      if (all.length > 1)
        throw new ValiseError(
          "conflict",
          `${all.length} cables are numbered ${text}: give the originator (${all.map((c) => c.reference).join(", ")})`,
          { references: all.map((c) => c.reference) },
        );
      found = all[0] ?? null;
    } else found = await ctx.store.cables.getByReference(formatCableReference(parseCableReference(text)));
    if (!found) throw new ValiseError("not_found", `no cable ${text}`);
    auditObject(req, { object: found.id, label: found.label, unit: found.originator });
    return {
      id: found.id,
      reference: found.reference,
      originator: found.originator,
      label: found.label,
      createdAt: found.createdAt,
    };
  });

  /**
   * Entries matching a filter on actor, action, object and time, newest first; page with `before`. With `size`
   * (a checkpoint's size), only entries below it, each with its inclusion proof in that tree.
   */
  app.get(`${AUDIT_PREFIX}/events`, AUDIT_READ, async (req) => {
    await requireOfficer(ctx, req);
    const q = (req.query ?? {}) as Record<string, unknown>;
    for (const k of Object.keys(q))
      if (!FILTER_KEYS.includes(k))
        throw new ValiseError("bad_request", `unknown query parameter ${JSON.stringify(k)}`);
    const size = intParam(q.size, "size", Number.MAX_SAFE_INTEGER);
    const before = intParam(q.before, "before", Number.MAX_SAFE_INTEGER);
    const limit = intParam(q.limit, "limit", MAX_AUDIT_PAGE) ?? 100;
    if (size !== undefined && size > (await log.size()))
      throw new ValiseError("bad_request", `size ${size} is beyond the log size`);
    const found = await log.query({
      actor: strParam(q.actor, "actor"),
      action: strParam(q.action, "action"),
      object: strParam(q.object, "object"),
      since: timeParam(q.since, "since"),
      until: timeParam(q.until, "until"),
      before: size === undefined ? before : Math.min(before ?? size, size),
      limit: size === 0 ? 0 : limit,
    });
    const events = [];
    for (const e of found)
      events.push({
        index: e.index,
        entry: toBase64(e.data),
        ...(size !== undefined ? { proof: (await log.inclusionProof(e.index, size)).map(toBase64) } : {}),
      });
    return { events };
  });
}
