/**
 * Detection rules are data: a small Sigma-like JSON format, validated here with errors that name the file, the rule
 * and the offending path, so a security officer can add a rule without a release.
 *
 * A rule selects events with `match` (all conditions must hold) and `anyOf` (if given, at least one of its condition
 * sets must hold too), and optionally drops some with `exclude` (if all its conditions hold, the event is ignored). Without `threshold` every selected event fires; with `threshold` the rule
 * fires when, per `groupBy` key (default the actor), `count` selected events (or `count` distinct values of
 * `distinct`) fall inside `windowSeconds`. A rule with `score` does not alert by itself: it adds that score to the
 * actor's risk, and a `risk` rule fires when an actor's scores within its window reach its threshold.
 *
 * Condition forms (on raw event fields or on the engine's derived `$` fields, see FIELDS):
 *   "value" | 12 | true | null           equals
 *   ["a", "b"]                             any of
 *   { "in": [...], "eq": v, "not": <condition>, "startsWith": s|[s], "endsWith": s|[s], "contains": s|[s],
 *     "gt": n, "gte": n, "lt": n, "lte": n, "exists": bool }   all given operators must hold
 */

export type Severity = "low" | "medium" | "high" | "critical";
export const SEVERITIES: readonly Severity[] = ["low", "medium", "high", "critical"];

type Scalar = string | number | boolean | null;
export type Condition =
  | Scalar
  | Scalar[]
  | {
      eq?: Scalar;
      in?: Scalar[];
      not?: Condition;
      startsWith?: string | string[];
      endsWith?: string | string[];
      contains?: string | string[];
      gt?: number;
      gte?: number;
      lt?: number;
      lte?: number;
      exists?: boolean;
    };

export interface Threshold {
  count: number;
  windowSeconds: number;
  groupBy: string[];
  distinct?: string;
}

export interface Rule {
  id: string;
  title: string;
  severity: Severity;
  description?: string;
  /** Plain-language reason; `{field}` placeholders are filled from the triggering event and the rule's counts. */
  reason: string;
  match: Record<string, Condition>;
  /** At least one of these condition sets must hold too (Sigma's "1 of selection_*"). */
  anyOf?: Record<string, Condition>[];
  exclude?: Record<string, Condition>;
  threshold?: Threshold;
  /** A signal: adds this score to the actor's risk instead of alerting. */
  score?: number;
  /** A risk rule: fires when the actor's signal scores within `windowSeconds` reach `score`. */
  risk?: { score: number; windowSeconds: number };
  /** After firing, the same rule and group key stay quiet this long (default: the window, else 3600 s). */
  suppressSeconds: number;
  /** Where the rule came from (file name), for messages. */
  source?: string;
}

type FieldType = "string" | "number" | "boolean" | "strings";
/** Every field a rule may name: the raw event fields and the engine's derived `$` features. */
export const FIELDS: Readonly<Record<string, { type: FieldType; doc: string }>> = {
  id: { type: "string", doc: "event id" },
  actor: { type: "string", doc: "user handle acting (for directory.* the administrator/officer)" },
  device: { type: "string", doc: "device id the request came from" },
  source: { type: "string", doc: "network address" },
  client: { type: "string", doc: "client kind/version" },
  action: { type: "string", doc: "action name" },
  object: { type: "string", doc: "item id; for directory.* the affected user" },
  target_device: { type: "string", doc: "for directory device changes, the device" },
  label: { type: "string", doc: "classification label of the object" },
  unit: { type: "string", doc: "unit owning the object" },
  bytes: { type: "number", doc: "bytes transferred" },
  canary: { type: "boolean", doc: "the object is a canary" },
  outcome: { type: "string", doc: "ok or denied" },
  $read: { type: "boolean", doc: "the action reads an item's content (message/cable/document.read)" },
  $directoryChange: { type: "boolean", doc: "device add/revoke, clearance or role set" },
  $selfChange: { type: "boolean", doc: "a directory change whose affected user is the actor (self-enrollment)" },
  $network: { type: "string", doc: "the source's network (IPv4 /24, IPv6 /48)" },
  $compartments: { type: "strings", doc: "the label's compartments" },
  $newDevice: { type: "boolean", doc: "device not yet trusted for the actor (first seen, quarantined)" },
  $newNetwork: { type: "boolean", doc: "network not yet trusted for the actor" },
  $orgNewNetwork: { type: "boolean", doc: "network never trusted for any user of the organisation" },
  $newUnit: { type: "boolean", doc: "object's unit not yet trusted for the actor" },
  $newCompartment: { type: "boolean", doc: "a compartment of the label not yet trusted for the actor" },
  $unitNewCompartment: { type: "boolean", doc: "a compartment no member of the actor's home unit has read" },
  $newAction: { type: "boolean", doc: "an action the actor has not done on trusted days before" },
  $newTargetUnit: { type: "boolean", doc: "directory change in a unit the actor never changed before" },
  $outsideUnits: { type: "boolean", doc: "object's unit is not one of the actor's own units" },
  $unusualHour: {
    type: "boolean",
    doc: "the actor is rarely active at this hour (±1 h) of their post's time zone on learned days",
  },
  $localHour: {
    type: "number",
    doc: "hour of day (0-23) in the actor's post time zone (event tz, else the unit's, else UTC), daylight saving included",
  },
  $timeZone: { type: "string", doc: "the IANA time zone $localHour is in (UTC when none is known)" },
  $clearanceWidened: {
    type: "boolean",
    doc: "a compartment of the label was granted to the actor by a clearance change (directory.clearance.set) within grantDays (14) while not yet trusted for them, and is still not trusted",
  },
  $deviceAddedAgo: { type: "number", doc: "seconds since this device was added to the actor (absent if never)" },
  $historyDays: { type: "number", doc: "days of learned baseline for the actor" },
  $deviceNetworks1h: { type: "number", doc: "distinct networks this device of the actor used within the last hour" },
  $deviceAcked: {
    type: "boolean",
    doc: "the device was acknowledged by its owner (directory.device.ack) from another device already trusted for them",
  },
  $deviceEnrolment: {
    type: "string",
    doc: 'how the device came to the actor: "code" (they enrolled it themself with a one-time code), "admin" (added by another account), "unseen" (no enrolment seen)',
  },
  $deviceAckPending: {
    type: "boolean",
    doc: "the actor enrolled this device themself with a code less than ackGraceHours ago and has not approved it yet from a trusted device",
  },
  $deviceCodeIssuer: {
    type: "string",
    doc: "who issued the one-time code the device was enrolled with (device.enrolment code:ISSUER: an officer's handle or admin-cli); absent if no such event was seen",
  },
  $devicePasskey: {
    type: "boolean",
    doc: "the device registered a passkey at enrolment (device.enrolment passkey): its web logins need the passkey",
  },
  $knownDevice: { type: "boolean", doc: "the device is trusted for the actor (not $newDevice): e.g. travel with it" },
  $officer: { type: "boolean", doc: "the actor has read the audit log successfully (only officers can)" },
};

const RULE_KEYS = new Set([
  "id",
  "title",
  "severity",
  "description",
  "reason",
  "match",
  "anyOf",
  "exclude",
  "threshold",
  "score",
  "risk",
  "suppressSeconds",
  "enabled",
]);
const OPS = new Set(["eq", "in", "not", "startsWith", "endsWith", "contains", "gt", "gte", "lt", "lte", "exists"]);

export class RuleError extends Error {}

function isScalar(v: unknown): v is Scalar {
  return v === null || typeof v === "string" || typeof v === "boolean" || (typeof v === "number" && Number.isFinite(v));
}

function checkCondition(v: unknown, field: string, path: string, depth = 0): Condition {
  const type = FIELDS[field]!.type;
  const scalarOk = (s: Scalar, p: string): void => {
    if (s === null) return;
    const want = type === "strings" ? "string" : type;
    if (typeof s !== want) throw new RuleError(`${p}: expected a ${want} for field ${field}, got ${JSON.stringify(s)}`);
  };
  if (isScalar(v)) {
    scalarOk(v, path);
    return v;
  }
  if (Array.isArray(v)) {
    if (v.length === 0) throw new RuleError(`${path}: an any-of list must not be empty`);
    v.forEach((s, i) => {
      if (!isScalar(s)) throw new RuleError(`${path}[${i}]: expected a plain value`);
      scalarOk(s, `${path}[${i}]`);
    });
    return v as Scalar[];
  }
  if (typeof v !== "object" || depth > 4)
    throw new RuleError(`${path}: expected a value, a list or an operator object`);
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o);
  if (keys.length === 0) throw new RuleError(`${path}: an operator object needs at least one operator`);
  for (const k of keys) {
    const p = `${path}.${k}`;
    const x = o[k];
    if (!OPS.has(k)) throw new RuleError(`${p}: unknown operator (use one of ${[...OPS].join(", ")})`);
    if (k === "eq") {
      if (!isScalar(x)) throw new RuleError(`${p}: expected a plain value`);
      scalarOk(x, p);
    } else if (k === "in") {
      if (!Array.isArray(x) || x.length === 0 || !x.every(isScalar))
        throw new RuleError(`${p}: expected a non-empty list of values`);
      x.forEach((s, i) => scalarOk(s, `${p}[${i}]`));
    } else if (k === "not") checkCondition(x, field, p, depth + 1);
    else if (k === "startsWith" || k === "endsWith" || k === "contains") {
      if (type === "number" || type === "boolean") throw new RuleError(`${p}: ${k} applies to text fields only`);
      const ok = typeof x === "string" || (Array.isArray(x) && x.length > 0 && x.every((s) => typeof s === "string"));
      if (!ok) throw new RuleError(`${p}: expected a string or a non-empty list of strings`);
    } else if (k === "exists") {
      if (typeof x !== "boolean") throw new RuleError(`${p}: expected true or false`);
    } else {
      if (type !== "number") throw new RuleError(`${p}: ${k} applies to number fields only`);
      if (typeof x !== "number" || !Number.isFinite(x)) throw new RuleError(`${p}: expected a number`);
    }
  }
  return o;
}

function checkMatch(v: unknown, path: string): Record<string, Condition> {
  if (typeof v !== "object" || v === null || Array.isArray(v))
    throw new RuleError(`${path}: expected an object of field conditions`);
  const out: Record<string, Condition> = {};
  for (const [field, cond] of Object.entries(v)) {
    if (!Object.hasOwn(FIELDS, field))
      throw new RuleError(`${path}.${field}: unknown field (known: ${Object.keys(FIELDS).join(", ")})`);
    out[field] = checkCondition(cond, field, `${path}.${field}`);
  }
  return out;
}

function posNumber(v: unknown, path: string, integer: boolean): number {
  if (typeof v !== "number" || !Number.isFinite(v) || v <= 0 || (integer && !Number.isInteger(v)))
    throw new RuleError(`${path}: expected a positive ${integer ? "integer" : "number"}`);
  return v;
}

const MAX_WINDOW = 31 * 86400;

/** Validates one rule object; throws RuleError with a path such as `rules.json: rule "x": threshold.count: …`. */
export function validateRule(v: unknown, where = "rule"): Rule | null {
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw new RuleError(`${where}: expected a rule object`);
  const o = v as Record<string, unknown>;
  const id = o.id;
  if (typeof id !== "string" || !/^[a-z0-9][a-z0-9._-]{0,63}$/.test(id))
    throw new RuleError(`${where}: id must be 1-64 characters of a-z, 0-9, '.', '_', '-'`);
  const at = `${where} "${id}"`;
  for (const k of Object.keys(o)) if (!RULE_KEYS.has(k)) throw new RuleError(`${at}: unknown key ${k}`);
  if (o.enabled !== undefined && typeof o.enabled !== "boolean")
    throw new RuleError(`${at}: enabled: expected a boolean`);
  if (typeof o.title !== "string" || o.title.length === 0) throw new RuleError(`${at}: title: expected a string`);
  if (typeof o.reason !== "string" || o.reason.length === 0) throw new RuleError(`${at}: reason: expected a string`);
  if (o.description !== undefined && typeof o.description !== "string")
    throw new RuleError(`${at}: description: expected a string`);
  if (!SEVERITIES.includes(o.severity as Severity))
    throw new RuleError(`${at}: severity: expected one of ${SEVERITIES.join(", ")}`);
  const rule: Rule = {
    id,
    title: o.title,
    severity: o.severity as Severity,
    reason: o.reason,
    match: {},
    suppressSeconds: 3600,
  };
  if (typeof o.description === "string") rule.description = o.description;
  if (o.risk !== undefined) {
    if (typeof o.risk !== "object" || o.risk === null) throw new RuleError(`${at}: risk: expected an object`);
    const r = o.risk as Record<string, unknown>;
    for (const k of Object.keys(r))
      if (k !== "score" && k !== "windowSeconds") throw new RuleError(`${at}: risk: unknown key ${k}`);
    const windowSeconds = posNumber(r.windowSeconds, `${at}: risk.windowSeconds`, true);
    if (windowSeconds > MAX_WINDOW) throw new RuleError(`${at}: risk.windowSeconds: at most ${MAX_WINDOW}`);
    rule.risk = { score: posNumber(r.score, `${at}: risk.score`, false), windowSeconds };
    if (o.match !== undefined || o.anyOf !== undefined || o.threshold !== undefined || o.score !== undefined)
      throw new RuleError(`${at}: a risk rule takes no match, anyOf, threshold or score`);
    rule.suppressSeconds = windowSeconds;
  } else {
    if (o.match === undefined) throw new RuleError(`${at}: match: required`);
    rule.match = checkMatch(o.match, `${at}: match`);
    if (Object.keys(rule.match).length === 0) throw new RuleError(`${at}: match: needs at least one condition`);
    if (o.anyOf !== undefined) {
      if (!Array.isArray(o.anyOf) || o.anyOf.length === 0)
        throw new RuleError(`${at}: anyOf: expected a non-empty list of condition objects`);
      rule.anyOf = o.anyOf.map((m, i) => checkMatch(m, `${at}: anyOf[${i}]`));
    }
    if (o.exclude !== undefined) rule.exclude = checkMatch(o.exclude, `${at}: exclude`);
    if (o.score !== undefined) rule.score = posNumber(o.score, `${at}: score`, false);
    if (o.threshold !== undefined) {
      if (typeof o.threshold !== "object" || o.threshold === null || Array.isArray(o.threshold))
        throw new RuleError(`${at}: threshold: expected an object`);
      const t = o.threshold as Record<string, unknown>;
      for (const k of Object.keys(t))
        if (!["count", "windowSeconds", "groupBy", "distinct"].includes(k))
          throw new RuleError(`${at}: threshold: unknown key ${k}`);
      const count = posNumber(t.count, `${at}: threshold.count`, true);
      const windowSeconds = posNumber(t.windowSeconds, `${at}: threshold.windowSeconds`, true);
      if (windowSeconds > MAX_WINDOW) throw new RuleError(`${at}: threshold.windowSeconds: at most ${MAX_WINDOW}`);
      if (count > 10_000) throw new RuleError(`${at}: threshold.count: at most 10000`);
      const groupBy = t.groupBy ?? ["actor"];
      if (!Array.isArray(groupBy) || groupBy.length === 0 || groupBy.some((g) => typeof g !== "string"))
        throw new RuleError(`${at}: threshold.groupBy: expected a non-empty list of field names`);
      for (const g of groupBy as string[])
        if (!Object.hasOwn(FIELDS, g)) throw new RuleError(`${at}: threshold.groupBy: unknown field ${g}`);
      const th: Threshold = { count, windowSeconds, groupBy: groupBy as string[] };
      if (t.distinct !== undefined) {
        if (typeof t.distinct !== "string" || !Object.hasOwn(FIELDS, t.distinct))
          throw new RuleError(`${at}: threshold.distinct: expected a known field name`);
        th.distinct = t.distinct;
      }
      rule.threshold = th;
      rule.suppressSeconds = windowSeconds;
    }
  }
  if (o.suppressSeconds !== undefined) {
    if (typeof o.suppressSeconds !== "number" || !Number.isInteger(o.suppressSeconds) || o.suppressSeconds < 0)
      throw new RuleError(`${at}: suppressSeconds: expected a non-negative integer`);
    rule.suppressSeconds = o.suppressSeconds;
  }
  return o.enabled === false ? null : rule;
}

/**
 * Parses the text of a rules file: a rule object, a list of rules, or `{"rules": [...]}`. `name` prefixes errors.
 * Throws RuleError. Disabled rules (`"enabled": false`) are dropped.
 */
export function parseRules(text: string, name = "rules"): Rule[] {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new RuleError(`${name}: not JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  const list = Array.isArray(v) ? v : typeof v === "object" && v !== null && "rules" in v ? v.rules : [v];
  if (!Array.isArray(list)) throw new RuleError(`${name}: "rules" must be a list`);
  const out: Rule[] = [];
  list.forEach((r, i) => {
    const rule = validateRule(r, `${name}: rule[${i}]`);
    if (rule) out.push({ ...rule, source: name });
  });
  return out;
}

/** Checks a whole rule set: ids unique. Throws RuleError. */
export function checkRuleSet(rules: Rule[]): Rule[] {
  const seen = new Map<string, string>();
  for (const r of rules) {
    const prev = seen.get(r.id);
    if (prev !== undefined)
      throw new RuleError(`duplicate rule id "${r.id}" (in ${prev} and ${r.source ?? "rules"}); ids must be unique`);
    seen.set(r.id, r.source ?? "rules");
  }
  return rules;
}

// --- evaluation ---

export type FieldValue = string | number | boolean | null | string[] | undefined;

function eqv(a: FieldValue, b: Scalar): boolean {
  if (Array.isArray(a)) return a.some((x) => x === b);
  return (a ?? null) === b;
}

function textOp(a: FieldValue, arg: string | string[], f: (s: string, x: string) => boolean): boolean {
  const xs = typeof arg === "string" ? [arg] : arg;
  const as = Array.isArray(a) ? a : typeof a === "string" ? [a] : [];
  return as.some((s) => xs.some((x) => f(s, x)));
}

export function testCondition(a: FieldValue, c: Condition): boolean {
  if (isScalar(c)) return eqv(a, c);
  if (Array.isArray(c)) return c.some((x) => eqv(a, x));
  if (c.eq !== undefined && !eqv(a, c.eq)) return false;
  if (c.in !== undefined && !c.in.some((x) => eqv(a, x))) return false;
  if (c.not !== undefined && testCondition(a, c.not)) return false;
  if (c.startsWith !== undefined && !textOp(a, c.startsWith, (s, x) => s.startsWith(x))) return false;
  if (c.endsWith !== undefined && !textOp(a, c.endsWith, (s, x) => s.endsWith(x))) return false;
  if (c.contains !== undefined && !textOp(a, c.contains, (s, x) => s.includes(x))) return false;
  if (c.exists !== undefined && (a !== undefined && a !== null) !== c.exists) return false;
  const n = typeof a === "number" ? a : undefined;
  if (c.gt !== undefined && !(n !== undefined && n > c.gt)) return false;
  if (c.gte !== undefined && !(n !== undefined && n >= c.gte)) return false;
  if (c.lt !== undefined && !(n !== undefined && n < c.lt)) return false;
  if (c.lte !== undefined && !(n !== undefined && n <= c.lte)) return false;
  return true;
}

export function testMatch(get: (field: string) => FieldValue, m: Record<string, Condition>): boolean {
  for (const [field, c] of Object.entries(m)) if (!testCondition(get(field), c)) return false;
  return true;
}

/** Fills `{name}` placeholders; unknown names are left as they are. */
export function renderReason(template: string, get: (name: string) => FieldValue): string {
  return template.replace(/\{(\$?[A-Za-z_][A-Za-z0-9_]*)\}/g, (whole, name: string) => {
    const v = get(name);
    if (v === undefined) return whole;
    if (v === null) return "(none)";
    return Array.isArray(v) ? v.join(", ") : String(v);
  });
}
