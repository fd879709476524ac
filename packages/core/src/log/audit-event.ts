/**
 * Audit events (DESIGN.md §3 "Audit log"): one leaf of the audit log per access to stored data. The leaf bytes are
 * exactly the event's export line — JSON with the DESIGN fields in DESIGN order, every field present (null where it
 * does not apply), no whitespace — so an exported JSONL file can be hashed back into the log's root.
 * `parseAuditEvent` runs over server data: it returns a result, never throws, and accepts only canonical bytes.
 */
import { equalBytes, utf8 } from "../bytes.js";
import { parseJsonObjectLeaf } from "./json-leaf.js";

/** The export format's actions (detection issue), plus `directory.read` and `directory.keypackage.add`. */
export const AUDIT_ACTIONS = [
  "login",
  // A session ended by its own device (POST /v1/auth/logout; issue 15): its token is refused from then on.
  "logout",
  "message.read",
  "message.send",
  "cable.read",
  "cable.send",
  "cable.list",
  "document.read",
  "document.write",
  "document.list",
  "directory.read",
  "directory.keypackage.add",
  "directory.device.add",
  "directory.device.revoke",
  // The owner acknowledged their own device (POST /v1/devices/:id/ack; issue 16).
  "directory.device.ack",
  // How a device was enrolled (issue 16): actor the owner, device and target_device the device, object the method —
  // `code:<issuer>` (a one-time code issued by that officer, or admin-cli; appended in the redeeming transaction) or
  // `passkey` (the browser device registered its passkey).
  "device.enrolment",
  "directory.clearance.set",
  "directory.role.set",
  // Staff lifecycle (issue 12).
  "directory.unit.add",
  "directory.unit.label",
  // A unit's time zone set or cleared (valise admin unit tz; issue 16): detection profiles hours in it.
  "directory.unit.tz",
  "directory.user.add",
  "directory.user.disable",
  "directory.user.enable",
  "directory.member.add",
  "directory.member.remove",
  // Records archive and a unit's key sharing window (issue 14).
  "directory.archive.assign",
  "directory.archive.remove",
  "directory.unit.share",
  // A client's key-transparency report (POST /v1/kt/reports), raised to officers as an alert.
  "kt.report",
  "audit.read",
  // The server reclaimed an abandoned upload (never attached, older than `valise serve --upload-ttl`); actor
  // "server", object the blob id, bytes what was freed.
  "blob.expire",
  // Retention (issue 19): a rule set or removed (`valise admin retention`; object "unit:NAME" or "label:LABEL"), the
  // server deleting ciphertext past its rule (actor "server", object "<kind>:<count>", bytes the blob bytes freed;
  // counts only, never content) and an exported audit segment pruned (object "entries:<from>-<to>").
  "retention.set",
  "retention.delete",
  "audit.prune",
] as const;
export type AuditAction = (typeof AUDIT_ACTIONS)[number];
export type AuditOutcome = "ok" | "denied";

export interface AuditEvent {
  id: string;
  /** ISO 8601 UTC with milliseconds, e.g. 2026-03-02T09:14:03.120Z. */
  time: string;
  actor: string;
  device: string | null;
  source: string;
  client: string | null;
  action: AuditAction;
  object: string;
  target_device: string | null;
  label: string | null;
  unit: string | null;
  bytes: number;
  canary: boolean;
  outcome: AuditOutcome;
}

/**
 * The audit log's checkpoint origin, from the log key's name (the directory log's origin): `…/directory` becomes
 * `…/audit`, any other name gets `/audit` appended. The server signs audit checkpoints with the directory log's key.
 */
export function auditLogOrigin(logOrigin: string): string {
  return logOrigin.endsWith("/directory") ? `${logOrigin.slice(0, -"/directory".length)}/audit` : `${logOrigin}/audit`;
}

/** The DESIGN field order, which is also the canonical key order. */
export const AUDIT_FIELDS = [
  "id",
  "time",
  "actor",
  "device",
  "source",
  "client",
  "action",
  "object",
  "target_device",
  "label",
  "unit",
  "bytes",
  "canary",
  "outcome",
] as const satisfies readonly (keyof AuditEvent)[];

/** Entry bundles (C2SP tlog-tiles) prefix each entry with a uint16 length. */
export const MAX_AUDIT_EVENT_BYTES = 65_535;
/** Longest string field the server stores (a user-agent is cut to this). */
export const MAX_AUDIT_STRING = 256;

const TIME_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const NULLABLE = new Set(["device", "client", "target_device", "label", "unit"]);

/** The canonical line (without newline) of an event: only the DESIGN fields, in DESIGN order. */
export function auditEventJson(e: AuditEvent): string {
  const o: Record<string, unknown> = {};
  for (const k of AUDIT_FIELDS) o[k] = e[k] ?? (NULLABLE.has(k) ? null : e[k]);
  return JSON.stringify(o);
}

export function encodeAuditEvent(e: AuditEvent): Uint8Array {
  const out = utf8(auditEventJson(e));
  if (out.length > MAX_AUDIT_EVENT_BYTES) throw new RangeError("audit event too large");
  return out;
}

export type ParsedAuditEvent = { ok: true; event: AuditEvent } | { ok: false; reason: string };

/** Parse leaf bytes strictly: exactly the DESIGN fields with their types, a known action, canonical encoding. */
export function parseAuditEvent(bytes: Uint8Array): ParsedAuditEvent {
  const leaf = parseJsonObjectLeaf(bytes, MAX_AUDIT_EVENT_BYTES, "an event");
  if (!leaf.ok) return leaf;
  const o = leaf.obj;
  const keys = Object.keys(o);
  if (keys.length !== AUDIT_FIELDS.length || !AUDIT_FIELDS.every((k) => Object.hasOwn(o, k)))
    return { ok: false, reason: "unexpected or missing fields" };
  for (const k of AUDIT_FIELDS) {
    const v = o[k];
    const ok =
      k === "bytes"
        ? Number.isSafeInteger(v) && (v as number) >= 0
        : k === "canary"
          ? typeof v === "boolean"
          : k === "outcome"
            ? v === "ok" || v === "denied"
            : k === "action"
              ? (AUDIT_ACTIONS as readonly unknown[]).includes(v)
              : k === "time"
                ? typeof v === "string" && TIME_RE.test(v) && !Number.isNaN(Date.parse(v))
                : typeof v === "string" || (v === null && NULLABLE.has(k));
    if (!ok) return { ok: false, reason: `bad field ${k}` };
  }
  const event = o as unknown as AuditEvent;
  if (!equalBytes(utf8(auditEventJson(event)), bytes)) return { ok: false, reason: "not canonical" };
  return { ok: true, event };
}
