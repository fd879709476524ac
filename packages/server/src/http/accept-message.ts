/**
 * Accepting one application message (or standalone proposal): the same checks whether it arrives as an HTTP POST or
 * as a WebSocket `send` frame. The MLS header (bounded parse) must name this conversation's group and not be a
 * commit; the sender must be a current member; no revoked or no longer cleared device may still be in the group
 * (DESIGN §3; `pending_removals`); then the
 * message is appended (durable before this resolves) under the sender's idempotency key.
 */
import { ValiseError, utf8 } from "@valise/core";
import type { ServerContext, Session } from "./context.js";
import type { AppendRequest, AppendResult, MessageKind } from "../storage/conversation-store.js";
import type { AuditRecord } from "../audit/recorder.js";

export const IDEMPOTENCY_KEY_RE = /^[A-Za-z0-9_-]{8,128}$/;

export interface Accepted {
  seq: number;
  epoch: number;
  duplicate: boolean;
}

export async function acceptMessage(
  ctx: ServerContext,
  s: Session,
  conversationId: string,
  body: Uint8Array,
  idem: string,
  audit?: AuditRecord,
): Promise<Accepted> {
  if (!IDEMPOTENCY_KEY_RE.test(idem))
    throw new ValiseError("bad_request", "idempotency key must be 8-128 url-safe chars");
  const h = ctx.mls.inspectMlsMessage(body);
  if (!h || (h.wireformat !== "private" && h.wireformat !== "public") || h.epoch === undefined || !h.groupId)
    throw new ValiseError("protocol_error", "body is not an MLS group message");
  if (h.contentType === "commit") throw new ValiseError("bad_request", "commits go to /commits");
  checkGroup(h.groupId, conversationId);
  await requireActiveMember(ctx, conversationId, s.deviceId);
  // Revoked devices and devices whose user is no longer cleared for the label must be removed first (DESIGN §3).
  const pending = await ctx.store.conversations.pendingRemovals(conversationId);
  if (pending.includes(s.deviceId))
    throw new ValiseError("not_cleared", "this device is no longer cleared for the conversation's label");
  if (pending.length > 0)
    throw new ValiseError(
      "pending_removal",
      "the conversation still contains revoked or no longer cleared devices; commit their removal first",
      { devices: pending },
    );
  const kind: MessageKind = h.contentType === "proposal" ? "proposal" : "application";
  return appendChecked(
    ctx,
    s,
    {
      conversationId,
      senderDevice: s.deviceId,
      kind,
      epoch: Number(h.epoch),
      payload: body,
      idemKey: idem,
    },
    audit,
  );
}

/**
 * Appends through the group commit and answers this request only. Idempotency keys are the sender device's own
 * (looked up by device and key, so nobody else's key can collide with it); a key reused for another conversation is
 * refused for this request alone (409), audited as a denied send, and limited per device: past the budget the device
 * gets 429 before its requests reach the shared batch.
 */
export async function appendChecked(
  ctx: ServerContext,
  s: Session,
  req: AppendRequest,
  audit?: AuditRecord,
): Promise<Accepted> {
  if (await ctx.abuseLimiter.exhausted(s.deviceId))
    throw new ValiseError("rate_limited", "too many idempotency keys reused for other conversations; wait a minute");
  const r = await ctx.batcher.append(audit ? { ...req, audit: ctx.audit.event(audit) } : req);
  if (!r.ok && r.code === "idempotency_conflict") {
    await ctx.abuseLimiter.take(s.deviceId);
    if (audit) await ctx.audit.record({ ...audit, outcome: "denied" });
  }
  return answer(r);
}

export async function requireActiveMember(ctx: ServerContext, conversationId: string, deviceId: string): Promise<void> {
  const m = await ctx.store.conversations.membership(conversationId, deviceId);
  if (!m) throw new ValiseError("not_found", "no such conversation");
  if (m.leftSeq !== null) throw new ValiseError("forbidden", "this device was removed from the conversation");
}

export function checkGroup(groupId: Uint8Array, conversationId: string): void {
  const want = utf8(conversationId);
  if (groupId.length !== want.length || !groupId.every((b, i) => b === want[i]))
    throw new ValiseError("bad_request", "MLS group id does not match the conversation");
}

export function answer(r: AppendResult): Accepted {
  if (r.ok) return { seq: r.seq, epoch: r.epoch, duplicate: r.duplicate };
  if (r.code === "not_found") throw new ValiseError("not_found", "no such conversation");
  if (r.code === "idempotency_conflict")
    throw new ValiseError("conflict", "idempotency key reused for another conversation");
  if (r.code === "failed") throw r.error;
  throw new ValiseError("epoch_conflict", `the conversation is at epoch ${r.epoch}; fetch, process and retry`, {
    epoch: r.epoch,
  });
}
