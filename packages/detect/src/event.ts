/**
 * Audit events as the detection engine sees them. Two input shapes are accepted: the server's canonical export
 * (`valise audit export --jsonl`, every DESIGN field present, nulls where a field does not apply) and the looser
 * replay shape of the detection issue (optional `client`/`target_device`, times with or without milliseconds, extra
 * fields ignored). Both are parsed into one typed value; anything else is rejected with a reason, never thrown.
 */

import { isTimeZone } from "./stats.js";

/** The actions of the export format. Unknown actions are accepted (forward compatibility) but match no read logic. */
export const KNOWN_ACTIONS = [
  "login",
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
  "directory.device.ack",
  "directory.clearance.set",
  "directory.role.set",
  "audit.read",
] as const;

/** Actions that fetch an item's content: these feed the volume baselines. */
export const READ_ACTIONS: ReadonlySet<string> = new Set(["message.read", "cable.read", "document.read"]);
/** Actions that change the directory on behalf of an administrator or officer. */
export const DIRECTORY_CHANGE_ACTIONS: ReadonlySet<string> = new Set([
  "directory.device.add",
  "directory.device.revoke",
  "directory.clearance.set",
  "directory.role.set",
  "directory.unit.add",
  "directory.unit.label",
  "directory.user.add",
  "directory.user.disable",
  "directory.user.enable",
  "directory.member.add",
  "directory.member.remove",
]);
/** Actions whose `unit` is the acting user's own unit (they teach the engine which units a user belongs to). */
export const OWN_UNIT_ACTIONS: ReadonlySet<string> = new Set(["login", "message.send", "cable.send", "document.write"]);

export interface DetectEvent {
  id: string;
  /** The event time as given (echoed in alerts). */
  timeText: string;
  /** Milliseconds since the epoch. */
  time: number;
  actor: string;
  device: string | null;
  source: string;
  client: string | null;
  action: string;
  object: string;
  target_device: string | null;
  label: string | null;
  unit: string | null;
  bytes: number;
  canary: boolean;
  outcome: "ok" | "denied";
  /**
   * The IANA time zone of the actor's post (e.g. Asia/Tokyo), when the event's context carries it; hours of day are
   * profiled in it. Absent: the engine's `timeZones` for the actor's unit, else UTC.
   */
  tz?: string | null;
}

export type ParsedEvent = { ok: true; event: DetectEvent } | { ok: false; reason: string };

const MAX_STRING = 1024;
// ISO 8601 UTC (Z or an explicit offset), seconds required, fraction optional.
const TIME_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;
const ACTION_RE = /^[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)*$/;

function str(o: Record<string, unknown>, k: string, required: boolean): string | null | { err: string } {
  const v = o[k];
  if (v === undefined || v === null) return required ? { err: `missing field ${k}` } : null;
  if (typeof v !== "string") return { err: `field ${k} must be a string` };
  if (v.length > MAX_STRING) return { err: `field ${k} is longer than ${MAX_STRING} characters` };
  if (required && v.length === 0) return { err: `field ${k} must not be empty` };
  return v;
}

function isErr(v: unknown): v is { err: string } {
  return typeof v === "object" && v !== null && "err" in v;
}

/** Parses one already-JSON-decoded value into an event. Never throws. */
export function parseEvent(value: unknown): ParsedEvent {
  if (typeof value !== "object" || value === null || Array.isArray(value))
    return { ok: false, reason: "an event must be a JSON object" };
  const o = value as Record<string, unknown>;
  const fields: Record<string, string | null> = {};
  for (const [k, required] of [
    ["id", true],
    ["time", true],
    ["actor", true],
    ["action", true],
    ["device", false],
    ["source", false],
    ["client", false],
    ["object", false],
    ["target_device", false],
    ["label", false],
    ["unit", false],
    ["tz", false],
  ] as const) {
    const v = str(o, k, required);
    if (isErr(v)) return { ok: false, reason: v.err };
    fields[k] = v;
  }
  const timeText = fields.time!;
  if (!TIME_RE.test(timeText)) return { ok: false, reason: `field time is not an ISO 8601 time: ${timeText}` };
  const time = Date.parse(timeText);
  if (Number.isNaN(time)) return { ok: false, reason: `field time is not a valid time: ${timeText}` };
  const action = fields.action!;
  if (!ACTION_RE.test(action)) return { ok: false, reason: `field action is not an action name: ${action}` };
  const tz = fields.tz ?? null;
  if (tz !== null && !isTimeZone(tz)) return { ok: false, reason: `field tz is not an IANA time zone: ${tz}` };
  const bytes = o.bytes ?? 0;
  if (typeof bytes !== "number" || !Number.isFinite(bytes) || bytes < 0)
    return { ok: false, reason: "field bytes must be a non-negative number" };
  const canary = o.canary ?? false;
  if (typeof canary !== "boolean") return { ok: false, reason: "field canary must be true or false" };
  const outcome = o.outcome ?? "ok";
  if (outcome !== "ok" && outcome !== "denied") return { ok: false, reason: 'field outcome must be "ok" or "denied"' };
  return {
    ok: true,
    event: {
      id: fields.id!,
      timeText,
      time,
      actor: fields.actor!,
      device: fields.device ?? null,
      source: fields.source ?? "",
      client: fields.client ?? null,
      action,
      object: fields.object ?? "",
      target_device: fields.target_device ?? null,
      label: fields.label ?? null,
      unit: fields.unit ?? null,
      bytes: Math.floor(bytes),
      canary,
      outcome,
      ...(tz !== null ? { tz } : {}),
    },
  };
}

/** Parses one JSONL line. Never throws. */
export function parseEventLine(line: string): ParsedEvent {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch (e) {
    return { ok: false, reason: `not JSON (${e instanceof Error ? e.message : String(e)})` };
  }
  return parseEvent(v);
}

/** The network an address belongs to: IPv4 /24, IPv6 /48, anything else as given. */
export function networkOf(source: string): string {
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.\d{1,3}$/.exec(source);
  if (v4) return `${v4[1]}.${v4[2]}.${v4[3]}.0/24`;
  if (source.includes(":")) {
    const s = source.replace(/^\[|\]$/g, "").toLowerCase();
    const [head = ""] = s.split("::");
    const groups = head.split(":").filter((g) => g.length > 0);
    while (groups.length < 3) groups.push("0");
    return `${groups.slice(0, 3).join(":")}::/48`;
  }
  return source;
}

/** Compartments of a label: the parts after the classification level, e.g. CONFIDENTIAL/ASIA → [ASIA]. */
export function compartmentsOf(label: string | null): string[] {
  if (!label) return [];
  return label
    .split("/")
    .slice(1)
    .map((s) => s.trim().toUpperCase())
    .filter((s) => s.length > 0);
}

/** For `directory.*` events: the affected user (the `object`). */
export function affectedUser(e: DetectEvent): string | null {
  return e.action.startsWith("directory.") && e.object ? e.object : null;
}
