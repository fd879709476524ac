/**
 * Auditing at the HTTP edge: every route declares in its config what it records (`config.audit`, see
 * AuditDeclaration: an action, or `{none: reason}`), and one `onSend` hook reads that declaration and appends the event before the answer leaves — a 2xx is `ok`, a 403/404 (and a
 * failed login for a known device) is `denied`; other errors (400, 409, 413, 429, 5xx) touched nothing and are not
 * audit events. If the append fails the client gets 503 instead of the answer.
 *
 * `bytes` is the size of what was stored (the request body) for writes, of what was served (the response body) for
 * reads. Labels and units come from the object: a conversation's label and unit, a user's (first) unit.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest, FastifySchema } from "fastify";
import { ValiseError, isConversationId, isDeviceId, type AuditAction } from "@valise/core";
import type { ServerContext } from "../http/context.js";
import type { AuditRecord } from "./recorder.js";

/** What a route records (`config.audit` on the route): the event the onSend hook appends for it. */
export interface RouteAudit {
  action: AuditAction;
  /**
   * The route states its object itself (`req.auditObject`, set as soon as it is known, also before a denial): its
   * action, id, label, unit, canary flag and bytes override the defaults here.
   */
  fromRoute?: boolean;
  write?: boolean;
  /** Successes are audited in the append's own transaction (sendRecord); the hook records denials only. */
  inTransaction?: boolean;
  /** What the object is (label and unit are looked up from it); default: a conversation. */
  kind?: "user" | "unit" | "other";
  /** The object id; default: the `:id` conversation parameter. */
  object?: (req: FastifyRequest) => string | undefined;
  /**
   * Before any session: `login` (a login for a known device, ok or — on 401 — denied; actor the device's user) and
   * `enroll` (a device added by redeeming an enrollment code).
   */
  presession?: "login" | "enroll";
}

/**
 * Every route declares one (test/audit-declared.test.ts fails for a route that declares nothing): the event it
 * records, or `{none: reason}` — public data, no stored data touched, or audited by the handler itself (say how).
 */
export type AuditDeclaration = RouteAudit | { none: string };

declare module "fastify" {
  interface FastifyContextConfig {
    audit?: AuditDeclaration;
  }
}

const params = (req: FastifyRequest) => (req.params ?? {}) as Record<string, string | undefined>;
const query = (req: FastifyRequest) => (req.query ?? {}) as Record<string, unknown>;
const body = (req: FastifyRequest) =>
  (req.body && typeof req.body === "object" && !(req.body instanceof Uint8Array) ? req.body : {}) as Record<
    string,
    unknown
  >;
const text = (v: unknown) => (typeof v === "string" ? v : "");

/** Object extractors for declarations: the caller, a path parameter, a query or body field, a fixed name. */
export const auditOf = {
  own: (req: FastifyRequest) => req.session?.handle,
  param: (name: string) => (req: FastifyRequest) => params(req)[name],
  query:
    (name: string, otherwise = "") =>
    (req: FastifyRequest) =>
      text(query(req)[name]) || otherwise,
  body:
    (name: string, otherwise = "") =>
    (req: FastifyRequest) =>
      text(body(req)[name]) || otherwise,
  fixed: (s: string) => () => s,
};

/** Route options that declare an audit event (spread into a route's options: `{...audit({...}), schema}`). */
export function audit(decl: AuditDeclaration): { config: { audit: AuditDeclaration } } {
  return { config: { audit: decl } };
}
/** Route options that declare the route records no audit event, and why. */
export function notAudited(reason: string): { config: { audit: AuditDeclaration } } {
  return { config: { audit: { none: reason } } };
}

export interface DeclaredRoute {
  method: string;
  url: string;
  audit: AuditDeclaration | undefined;
  /** The route's schemas (body, querystring, params), for the wire contract's test. */
  schema: FastifySchema | undefined;
}
const declared = new WeakMap<FastifyInstance, DeclaredRoute[]>();
/** Every route registered on `app` since installAuditHook, with its audit declaration (undefined: none). */
export function declaredRoutes(app: FastifyInstance): DeclaredRoute[] {
  return [...(declared.get(app) ?? [])];
}

/** What a blob, document or cable route says about the object it touched (see RouteAudit.fromRoute). */
export interface ObjectAudit {
  action?: AuditAction;
  object?: string;
  label?: string | null;
  unit?: string | null;
  canary?: boolean;
  bytes?: number;
  /** For directory device actions: the device concerned. */
  targetDevice?: string | null;
}

declare module "fastify" {
  interface FastifyRequest {
    auditObject: ObjectAudit | null;
  }
}

/** Records what the request touched, for the audit hook (merged with anything stated before). */
export function auditObject(req: FastifyRequest, o: ObjectAudit): void {
  req.auditObject = { ...(req.auditObject ?? {}), ...o };
}

/** Client kind/version: `x-valise-client` if the client sent one, else its user-agent. */
export function clientOf(headers: Record<string, string | string[] | undefined>): string | null {
  const v = headers["x-valise-client"] ?? headers["user-agent"];
  return typeof v === "string" && v.length > 0 ? v : null;
}

function payloadBytes(p: unknown): number {
  if (typeof p === "string") return Buffer.byteLength(p);
  if (p instanceof Uint8Array) return p.byteLength;
  return 0;
}

type Meta = (id: string | undefined) => Promise<{ label: string | null; unit: string | null }>;
const metas = new WeakMap<ServerContext, Meta>();

/** Conversation label and unit, cached per server (a conversation's label never changes). */
export function conversationMeta(ctx: ServerContext): Meta {
  const known = metas.get(ctx);
  if (known) return known;
  const cache = new Map<string, { label: string; unit: string | null }>();
  const meta: Meta = async (id) => {
    if (!isConversationId(id)) return { label: null, unit: null };
    const hit = cache.get(id);
    if (hit) return hit;
    const c = await ctx.store.conversations.get(id);
    if (!c) return { label: null, unit: null };
    if (cache.size > 100_000) cache.clear();
    const m = { label: c.label, unit: c.unit };
    cache.set(id, m);
    return m;
  };
  metas.set(ctx, meta);
  return meta;
}

/**
 * The audit record of a message send (HTTP or WebSocket): its event is appended in the message's own transaction
 * (see AppendRequest.audit), so the onSend hook records only denials for these routes.
 */
export async function sendRecord(
  ctx: ServerContext,
  s: { handle: string; deviceId: string },
  origin: { source: string; client: string | null },
  conversationId: string,
  bytes: number,
): Promise<AuditRecord> {
  return {
    actor: s.handle,
    device: s.deviceId,
    ...origin,
    action: "message.send",
    object: conversationId,
    ...(await conversationMeta(ctx)(conversationId)),
    bytes,
    outcome: "ok",
  };
}

export function installAuditHook(app: FastifyInstance, ctx: ServerContext): void {
  const meta = conversationMeta(ctx);
  app.decorateRequest("auditObject", null);
  const routes: DeclaredRoute[] = [];
  declared.set(app, routes);
  app.addHook("onRoute", (r) => {
    const methods = Array.isArray(r.method) ? r.method : [r.method];
    const decl = r.config?.audit;
    for (const m of methods) routes.push({ method: String(m), url: r.url, audit: decl, schema: r.schema });
  });
  const firstUnit = async (handle: string | undefined) =>
    handle ? ((await ctx.store.directory.getUser(handle))?.units[0] ?? null) : null;

  async function recordFor(req: FastifyRequest, reply: FastifyReply, payload: unknown): Promise<AuditRecord | null> {
    const decl = req.routeOptions.config?.audit;
    if (!decl || "none" in decl) return null;
    const status = reply.statusCode;
    const ok = status >= 200 && status < 300;
    const source = req.ip;
    const client = clientOf(req.headers);
    // Login and enrollment have no session yet: the actor is the device's user.
    if (decl.presession) {
      const b = body(req);
      const enroll = decl.presession === "enroll";
      const deviceId = enroll ? (b.device as Record<string, unknown> | undefined)?.id : b.device;
      if (!isDeviceId(deviceId) || !(ok || (!enroll && status === 401))) return null;
      const dev = await ctx.store.directory.getDevice(deviceId);
      if (!dev) return null;
      const unit = await firstUnit(dev.handle);
      return enroll
        ? {
            actor: dev.handle,
            device: deviceId,
            source,
            client,
            action: decl.action,
            object: dev.handle,
            targetDevice: deviceId,
            unit,
            bytes: Number(req.headers["content-length"] ?? 0),
            outcome: "ok",
          }
        : {
            actor: dev.handle,
            device: deviceId,
            source,
            client,
            action: decl.action,
            object: dev.handle,
            unit,
            bytes: 0,
            outcome: ok ? "ok" : "denied",
          };
    }
    if (!req.session) return null;
    const denied = status === 403 || status === 404;
    if (!ok && !denied) return null;
    const route = decl;
    if (ok && route.inTransaction) return null;
    let object = route.object ? route.object(req) : params(req).id;
    let label: string | null = null;
    let unit: string | null = null;
    if (route.fromRoute) {
      const o = req.auditObject ?? {};
      object = o.object ?? object;
      return {
        actor: req.session.handle,
        device: req.session.deviceId,
        source,
        client,
        action: o.action ?? route.action,
        object: object ?? "",
        label: o.label ?? null,
        unit: o.unit ?? null,
        bytes: o.bytes ?? (route.write ? Number(req.headers["content-length"] ?? 0) : payloadBytes(payload)),
        canary: o.canary ?? false,
        ...(o.targetDevice ? { targetDevice: o.targetDevice } : {}),
        outcome: ok ? "ok" : "denied",
      };
    }
    if (route.action === "message.send" && req.routeOptions.url === "/v1/conversations" && req.method === "POST") {
      label = typeof body(req).label === "string" ? (body(req).label as string) : null;
      unit = typeof body(req).unit === "string" ? (body(req).unit as string) : null;
    } else if (!route.kind) ({ label, unit } = await meta(object));
    else if (route.kind === "user") unit = await firstUnit(object);
    else if (route.kind === "unit") unit = object || null;
    return {
      actor: req.session.handle,
      device: req.session.deviceId,
      source,
      client,
      action: route.action,
      object: object ?? "",
      label,
      unit,
      bytes: route.write ? Number(req.headers["content-length"] ?? 0) : payloadBytes(payload),
      outcome: ok ? "ok" : "denied",
    };
  }

  app.addHook("onSend", async (req, reply, payload) => {
    let r: AuditRecord | null;
    try {
      r = await recordFor(req, reply, payload);
      if (r) await ctx.audit.record(r);
    } catch (e) {
      req.log.error({ err: { message: e instanceof Error ? e.message : String(e) } }, "audit append failed");
      // A streamed answer (blob download) is not sent: close its file.
      if (payload && typeof payload === "object" && "destroy" in payload && typeof payload.destroy === "function")
        (payload as { destroy(): void }).destroy();
      const err = e instanceof ValiseError ? e : new ValiseError("store_error", "audit log unavailable");
      reply.code(503).header("content-type", "application/json; charset=utf-8").header("retry-after", "2");
      return JSON.stringify({
        code: "store_error",
        message: `not served: the audit log is unavailable (${err.message})`,
      });
    }
    return payload;
  });
}
