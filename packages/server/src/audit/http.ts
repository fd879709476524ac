/**
 * Auditing at the HTTP edge: one `onSend` hook maps every authenticated route that reads or writes stored data to
 * an audit action (ROUTES below), and appends the event before the answer leaves — a 2xx is `ok`, a 403/404 (and a
 * failed login for a known device) is `denied`; other errors (400, 409, 413, 429, 5xx) touched nothing and are not
 * audit events. If the append fails the client gets 503 instead of the answer.
 *
 * `bytes` is the size of what was stored (the request body) for writes, of what was served (the response body) for
 * reads. Labels and units come from the object: a conversation's label and unit, a user's (first) unit.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { ValiseError, isConversationId, isDeviceId, type AuditAction } from "@valise/core";
import type { ServerContext } from "../http/context.js";
import type { AuditRecord } from "./recorder.js";

interface RouteAudit {
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
}

const params = (req: FastifyRequest) => (req.params ?? {}) as Record<string, string | undefined>;
const query = (req: FastifyRequest) => (req.query ?? {}) as Record<string, unknown>;
const body = (req: FastifyRequest) =>
  (req.body && typeof req.body === "object" && !(req.body instanceof Uint8Array) ? req.body : {}) as Record<
    string,
    unknown
  >;
const own = (req: FastifyRequest) => req.session?.handle;
const text = (v: unknown) => (typeof v === "string" ? v : "");
const fixed = (s: string) => () => s;

export const AUDITED_ROUTES: Record<string, RouteAudit> = {
  "GET /v1/me": { action: "directory.read", kind: "user", object: own },
  "GET /v1/users/:handle": { action: "directory.read", kind: "user", object: (r) => params(r).handle },
  "GET /v1/units": { action: "directory.read", kind: "other", object: fixed("units") },
  "GET /v1/unit-members": { action: "directory.read", kind: "unit", object: (r) => text(query(r).unit) },
  "POST /v1/keypackages": { action: "directory.keypackage.add", write: true, kind: "user", object: own },
  "GET /v1/keypackages/count": { action: "directory.read", kind: "user", object: own },
  // Each claimed device is audited by the route (object its user, target_device the device); denials here.
  "POST /v1/keypackages/claim": {
    action: "directory.read",
    inTransaction: true,
    kind: "other",
    object: (r) => text(body(r).conversation) || "key-packages",
  },
  "POST /v1/conversations": { action: "message.send", write: true, object: (r) => text(body(r).id) },
  "GET /v1/conversations": { action: "message.read", kind: "other", object: fixed("conversations") },
  "GET /v1/conversations/:id": { action: "message.read" },
  "GET /v1/conversations/:id/messages": { action: "message.read" },
  "GET /v1/conversations/:id/group-info": { action: "message.read" },
  "POST /v1/conversations/:id/messages": { action: "message.send", write: true, inTransaction: true },
  "POST /v1/conversations/:id/commits": { action: "message.send", write: true, inTransaction: true },
  "GET /v1/inbox": { action: "message.read", kind: "other", object: fixed("inbox") },
  // Blobs, documents and cables (issue 3): the routes state object, label, unit, canary and bytes.
  "POST /v1/blobs": { action: "document.write", write: true, fromRoute: true },
  "PATCH /v1/blobs/:id": { action: "document.write", write: true, fromRoute: true },
  "GET /v1/blobs/:id/status": { action: "document.read", fromRoute: true },
  "GET /v1/blobs/:id": { action: "document.read", fromRoute: true },
  "POST /v1/documents": { action: "document.write", write: true, fromRoute: true },
  "POST /v1/documents/:id/versions": { action: "document.write", write: true, fromRoute: true },
  "GET /v1/documents": { action: "document.list", fromRoute: true, object: fixed("documents") },
  "GET /v1/documents/:id": { action: "document.read", fromRoute: true },
  "PUT /v1/documents/:id/canary": { action: "document.write", write: true, fromRoute: true },
  "GET /v1/officer/canaries": { action: "document.list", fromRoute: true, object: fixed("canaries") },
  "POST /v1/cables": { action: "cable.send", write: true, fromRoute: true },
  "GET /v1/cables": { action: "cable.list", fromRoute: true, object: fixed("cables") },
  "GET /v1/cables/queue": { action: "cable.list", fromRoute: true, object: fixed("cable-queue") },
  "GET /v1/cables/by-reference": { action: "cable.read", fromRoute: true, object: (r) => text(query(r).reference) },
  "GET /v1/cables/:id": { action: "cable.read", fromRoute: true },
  "POST /v1/cables/:id/receipts": { action: "cable.read", fromRoute: true },
  // Officers look a cable up by reference to query the audit log for its id (audit/routes.ts).
  "GET /v1/audit/cables/by-reference": {
    action: "audit.read",
    fromRoute: true,
    object: (r) => text(query(r).reference),
  },
  // Alerts (detect/routes.ts): reading or acknowledging them reads the audit log's findings.
  "GET /v1/alerts": { action: "audit.read", kind: "other", object: fixed("alerts") },
  "POST /v1/alerts/:id/ack": { action: "audit.read", kind: "other", object: (r) => `alert:${params(r).id ?? ""}` },
  // Staff lifecycle (routes-lifecycle.ts): reads audited here; changes audited in their own transaction (actor = the
  // caller), denials here with the object and unit the route states.
  "GET /v1/users": { action: "directory.read", kind: "other", object: (r) => text(query(r).unit) || "users" },
  "GET /v1/users/:handle/history": { action: "directory.read", kind: "user", object: (r) => params(r).handle },
  "GET /v1/units/:unit/members": { action: "directory.read", kind: "unit", object: (r) => params(r).unit },
  "GET /v1/directory/changes": { action: "directory.read", kind: "other", object: fixed("directory-changes") },
  "POST /v1/units/:unit/members": { action: "directory.member.add", write: true, inTransaction: true, fromRoute: true },
  "DELETE /v1/units/:unit/members/:handle": {
    action: "directory.member.remove",
    write: true,
    inTransaction: true,
    fromRoute: true,
  },
  "POST /v1/users/:handle/move": {
    action: "directory.member.remove",
    write: true,
    inTransaction: true,
    fromRoute: true,
  },
  "PUT /v1/users/:handle/role": { action: "directory.role.set", write: true, inTransaction: true, fromRoute: true },
  "POST /v1/users/:handle/disable": {
    action: "directory.user.disable",
    write: true,
    inTransaction: true,
    fromRoute: true,
  },
  "POST /v1/users/:handle/enable": {
    action: "directory.user.enable",
    write: true,
    inTransaction: true,
    fromRoute: true,
  },
  "PUT /v1/units/:unit/max-label": {
    action: "directory.unit.label",
    write: true,
    inTransaction: true,
    fromRoute: true,
  },
  // A user acknowledges their own device (detect/device-ack.ts): detection trusts it from then on.
  "POST /v1/devices/:id/ack": { action: "directory.device.ack", write: true, fromRoute: true },
  // Key-transparency reports (detect/kt-reports.ts): audited with the alert they raise, in one transaction.
  "POST /v1/kt/reports": { action: "kt.report", write: true, inTransaction: true, fromRoute: true },
  // Successes are audited in the clearance change's own transaction (actor = the officer); denials here.
  "PUT /v1/users/:handle/clearance": {
    action: "directory.clearance.set",
    write: true,
    inTransaction: true,
    kind: "user",
    object: (r) => params(r).handle,
  },
};

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

/** Route prefixes audited as a whole (the logs' authenticated reads). */
const PREFIXES: [string, RouteAudit][] = [
  ["GET /v1/log/audit/", { action: "audit.read", kind: "other", object: fixed("audit-log") }],
  ["GET /v1/log/directory/", { action: "directory.read", kind: "other", object: fixed("directory-log") }],
];

export function routeAudit(method: string, url: string): RouteAudit | undefined {
  const key = `${method} ${url}`;
  return AUDITED_ROUTES[key] ?? PREFIXES.find(([p]) => key.startsWith(p))?.[1];
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
  const firstUnit = async (handle: string | undefined) =>
    handle ? ((await ctx.store.directory.getUser(handle))?.units[0] ?? null) : null;

  async function recordFor(req: FastifyRequest, reply: FastifyReply, payload: unknown): Promise<AuditRecord | null> {
    const url = req.routeOptions.url;
    if (!url) return null;
    const status = reply.statusCode;
    const ok = status >= 200 && status < 300;
    const source = req.ip;
    const client = clientOf(req.headers);
    // Login and enrollment have no session yet: the actor is the device's user.
    const login = url === "/v1/auth/session" || url === "/v1/auth/passkey/session";
    if (req.method === "POST" && (login || url === "/v1/enroll")) {
      const b = body(req);
      const deviceId = url === "/v1/enroll" ? (b.device as Record<string, unknown> | undefined)?.id : b.device;
      if (!isDeviceId(deviceId) || !(ok || (login && status === 401))) return null;
      const dev = await ctx.store.directory.getDevice(deviceId);
      if (!dev) return null;
      const unit = await firstUnit(dev.handle);
      return url === "/v1/enroll"
        ? {
            actor: dev.handle,
            device: deviceId,
            source,
            client,
            action: "directory.device.add",
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
            action: "login",
            object: dev.handle,
            unit,
            bytes: 0,
            outcome: ok ? "ok" : "denied",
          };
    }
    if (!req.session) return null;
    const denied = status === 403 || status === 404;
    if (!ok && !denied) return null;
    const route = routeAudit(req.method, url);
    if (!route || (ok && route.inTransaction)) return null;
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
    if (url === "/v1/conversations" && req.method === "POST") {
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
