/**
 * Need-to-know, server side (docs/cables-documents-api.md): who is *entitled* to an item (owner, share target, unit
 * membership) and who is *cleared* for its label (clearance dominates label). Entitled but not cleared is 403
 * `not_cleared`; not entitled is 403 `forbidden`; both are audited as denials by the routes' audit hook.
 */
import type { FastifyRequest } from "fastify";
import { ValiseError, dominates, parseLabel, type Label } from "@valise/core";
import type { ServerContext } from "./context.js";
import { requireSession } from "./context.js";
import type { DocumentRecord } from "../storage/document-store.js";
import type { CableRecord } from "../storage/cable-store.js";

export interface Viewer {
  handle: string;
  deviceId: string;
  role: string;
  clearance: Label;
  units: readonly string[];
}

export async function viewerOf(ctx: ServerContext, req: FastifyRequest): Promise<Viewer> {
  const s = requireSession(req);
  const user = await ctx.store.directory.getUser(s.handle);
  if (!user) throw new ValiseError("unauthenticated", "user no longer exists");
  return {
    handle: user.handle,
    deviceId: s.deviceId,
    role: user.role,
    clearance: parseLabel(user.clearance),
    units: user.units,
  };
}

export function cleared(v: Viewer, label: string): boolean {
  return dominates(v.clearance, parseLabel(label));
}

export function documentEntitled(v: Viewer, d: Pick<DocumentRecord, "owner" | "to">): boolean {
  return (
    d.owner === v.handle ||
    (d.to.kind === "user" && d.to.name === v.handle) ||
    (d.to.kind === "unit" && v.units.includes(d.to.name))
  );
}

export function cableEntitled(v: Viewer, c: Pick<CableRecord, "originator" | "action" | "info">): boolean {
  return (
    v.units.includes(c.originator) ||
    c.action.some((u) => v.units.includes(u)) ||
    c.info.some((u) => v.units.includes(u))
  );
}

/** Entitled and cleared, else the matching 403. */
export function requireAccess(v: Viewer, entitled: boolean, label: string, what: string): void {
  if (!entitled) throw new ValiseError("forbidden", `you are not entitled to ${what}`);
  if (!cleared(v, label)) throw new ValiseError("not_cleared", `your clearance does not cover ${what} (${label})`);
}

/** Who a security-officer route admits: role `officer` (the audit log's reads also `admin`). */
export const OFFICER_ROLES: readonly string[] = ["officer"];

/** The one role guard: `v` holds one of `roles` (default: officer), else 403 `forbidden` naming what is guarded. */
export function requireOfficer(v: Pick<Viewer, "role">, what: string, roles: readonly string[] = OFFICER_ROLES): void {
  if (!roles.includes(v.role))
    throw new ValiseError("forbidden", `${what}: for security officers only (role ${roles.join(" or ")})`);
}

/** The role guard for a request: the caller's user (403 if gone) holds one of `roles`; resolves with the handle. */
export async function requireOfficerRequest(
  ctx: ServerContext,
  req: FastifyRequest,
  what: string,
  roles: readonly string[] = OFFICER_ROLES,
): Promise<string> {
  const s = requireSession(req);
  const user = await ctx.store.directory.getUser(s.handle);
  requireOfficer({ role: user?.role ?? "" }, what, roles);
  return s.handle;
}
