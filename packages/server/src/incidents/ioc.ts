/**
 * Allies' indicators (issue 16, part 5): STIX 2.1 objects from partners' TAXII collections (or a bundle file) are
 * checked here, and the indicators whose patterns the matcher understands become an `IndicatorSet` that answers
 * "which indicators does this source address match?" in a few map lookups. Pure: no I/O.
 *
 * Supported patterns (STIX 2.1 §9): observation expressions joined by OR, each a comparison or an OR of comparisons
 * on `ipv4-addr:value` / `ipv6-addr:value` with `=` (an address) or `ISSUBSET` (a CIDR network), e.g.
 *   [ipv4-addr:value = '203.0.113.7'] OR [ipv6-addr:value ISSUBSET '2001:db8:aa::/48']
 * Anything else (AND, FOLLOWEDBY, qualifiers, other object types or operators) is refused with the object id and the
 * reason, as are schema-invalid objects (missing or ill-typed required properties, an id of another type, bad
 * timestamps), objects over MAX_OBJECT_BYTES and networks wider than IPv4 /16 or IPv6 /32 (they would match a good
 * part of the Internet). ATT&CK references come from the indicator's own `external_references` (source_name
 * `mitre-attack`) and from `indicates` relationships to attack patterns in the same batch.
 */

export const MAX_OBJECT_BYTES = 64 * 1024;
export const MAX_PATTERN_CHARS = 4096;
export const MAX_BATCH_BYTES = 10 * 1024 * 1024;
export const MAX_BATCH_OBJECTS = 10_000;
const MAX_NETWORKS = 256;
const MIN_PREFIX_V4 = 16;
const MIN_PREFIX_V6 = 32;

const TYPE_RE = /^[a-z0-9][a-z0-9-]{1,248}[a-z0-9]$/;
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const STIX_TIME_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;
const TECHNIQUE_RE = /^T\d{4}(\.\d{3})?$/;

/** A network of an indicator: IPv4 or IPv6, as a masked value and a prefix length. */
export interface Cidr {
  v: 4 | 6;
  /** The network address (host bits cleared). */
  net: bigint;
  prefix: number;
  /** Canonical text, e.g. 203.0.113.0/24 or 2001:db8:aa::/48. */
  text: string;
}

export interface ImportedIndicator {
  id: string;
  /** The object's `modified` (else `created`): the version. */
  version: string;
  name: string;
  pattern: string;
  networks: Cidr[];
  /** ATT&CK technique ids (T1078, T1078.004). */
  techniques: string[];
  validFrom: number;
  validUntil: number | null;
  revoked: boolean;
  /** TLP of the object as the partner marked it (TLP:AMBER, …), if a known TLP marking. */
  tlp: string | null;
}

export interface Refusal {
  id: string;
  reason: string;
}

export interface ImportResult {
  indicators: ImportedIndicator[];
  refused: Refusal[];
  /** Objects of other types (identities, markings, attack patterns, relationships…): read, not imported. */
  skipped: number;
}

// --- addresses ---

function parseV4(s: string): bigint | null {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) return null;
  let v = 0n;
  for (let i = 1; i <= 4; i++) {
    const n = Number(m[i]);
    if (n > 255 || (m[i]!.length > 1 && m[i]!.startsWith("0"))) return null;
    v = (v << 8n) | BigInt(n);
  }
  return v;
}

function parseV6(input: string): bigint | null {
  let s = input.toLowerCase();
  if (s.startsWith("[") && s.endsWith("]")) s = s.slice(1, -1);
  if (!/^[0-9a-f:.]+$/.test(s) || s.length > 45) return null;
  let tail: bigint[] = [];
  const v4 = /(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})$/.exec(s);
  if (v4) {
    const x = parseV4(v4[1]!);
    if (x === null) return null;
    tail = [x >> 16n, x & 0xffffn];
    s = s.slice(0, -v4[1]!.length);
    if (s.endsWith("::")) s = `${s}`;
    else if (s.endsWith(":")) s = s.slice(0, -1);
    else return null;
  }
  const halves = s.split("::");
  if (halves.length > 2) return null;
  const part = (h: string): bigint[] | null => {
    if (h === "") return [];
    const groups = h.split(":");
    const out: bigint[] = [];
    for (const g of groups) {
      if (!/^[0-9a-f]{1,4}$/.test(g)) return null;
      out.push(BigInt(`0x${g}`));
    }
    return out;
  };
  const head = part(halves[0]!);
  const rest = halves.length === 2 ? part(halves[1]!) : [];
  if (head === null || rest === null) return null;
  const total = head.length + rest.length + tail.length;
  let groups: bigint[];
  if (halves.length === 2) {
    if (total > 7) return null;
    groups = [...head, ...new Array<bigint>(8 - total).fill(0n), ...rest, ...tail];
  } else {
    if (total !== 8) return null;
    groups = [...head, ...tail];
  }
  return groups.reduce((a, g) => (a << 16n) | g, 0n);
}

function v6Text(v: bigint): string {
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((v >> BigInt(i * 16)) & 0xffffn));
  // The longest run of zero groups (2+) becomes "::" (RFC 5952).
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(":");
  return `${hex.slice(0, best).join(":")}::${hex.slice(best + bestLen).join(":")}`;
}

const v4Text = (v: bigint) => [24n, 16n, 8n, 0n].map((s) => String((v >> s) & 255n)).join(".");

/** A source address (as the audit log holds it) as a number; null if not an IP address. */
export function parseAddress(source: string): { v: 4 | 6; value: bigint } | null {
  const a = parseV4(source);
  if (a !== null) return { v: 4, value: a };
  if (!source.includes(":")) return null;
  const b = parseV6(source);
  if (b === null) return null;
  // An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is that IPv4 address.
  if (b >> 32n === 0xffffn) return { v: 4, value: b & 0xffffffffn };
  return { v: 6, value: b };
}

/** `a.b.c.d`, `a.b.c.d/n`, an IPv6 address or network; an error message if not, or if too broad. */
export function parseCidr(text: string, kind: 4 | 6): Cidr | string {
  const [addr = "", len, ...more] = text.split("/");
  if (more.length > 0) return `not an address or network: ${text}`;
  const value = kind === 4 ? parseV4(addr) : parseV6(addr);
  if (value === null) return `not an IPv${kind} address or network: ${text}`;
  const bits = kind === 4 ? 32 : 128;
  const prefix = len === undefined ? bits : /^\d{1,3}$/.test(len) ? Number(len) : NaN;
  if (!(prefix >= 0 && prefix <= bits)) return `bad prefix length in ${text}`;
  const min = kind === 4 ? MIN_PREFIX_V4 : MIN_PREFIX_V6;
  if (prefix < min) return `network ${text} is wider than /${min}: it would match a large part of the Internet`;
  const mask = ((1n << BigInt(bits)) - 1n) ^ ((1n << BigInt(bits - prefix)) - 1n);
  const net = value & mask;
  return { v: kind, net, prefix, text: `${kind === 4 ? v4Text(net) : v6Text(net)}/${prefix}` };
}

export function cidrContains(c: Cidr, a: { v: 4 | 6; value: bigint }): boolean {
  if (c.v !== a.v) return false;
  const bits = c.v === 4 ? 32 : 128;
  return a.value >> BigInt(bits - c.prefix) === c.net >> BigInt(bits - c.prefix);
}

// --- patterns ---

type Tok = { k: "[" | "]" | "(" | ")" | "or" | "and" | "followedby" | "op" | "str" | "path" | "other"; t: string };

function tokenize(p: string): Tok[] | string {
  const out: Tok[] = [];
  const re =
    /\s*(?:(\[|\]|\(|\))|('(?:[^'\\]|\\.)*')|\b(OR|AND|FOLLOWEDBY)\b|(NOT\s+)?(=|!=|<=|>=|<|>|\bISSUBSET\b|\bISSUPERSET\b|\bLIKE\b|\bMATCHES\b|\bIN\b)|([a-z0-9][a-z0-9-]*:[A-Za-z0-9_.[\]*-]+)|(\S+))/y;
  while (re.lastIndex < p.length) {
    if (/^\s*$/.test(p.slice(re.lastIndex))) break;
    const m = re.exec(p);
    if (!m) return "cannot read the pattern";
    if (m[1]) out.push({ k: m[1] as "[", t: m[1] });
    else if (m[2]) out.push({ k: "str", t: m[2].slice(1, -1).replace(/\\(.)/g, "$1") });
    else if (m[3]) out.push({ k: m[3].toLowerCase() as "or", t: m[3] });
    else if (m[5]) out.push({ k: "op", t: (m[4] ? "NOT " : "") + m[5] });
    else if (m[6]) out.push({ k: "path", t: m[6] });
    else out.push({ k: "other", t: m[7]! });
  }
  return out;
}

/**
 * The networks a supported STIX pattern matches (any of them), or the reason it is not supported. Single addresses
 * are /32 (/128) networks.
 */
export function parseIndicatorPattern(pattern: string): Cidr[] | string {
  if (pattern.length > MAX_PATTERN_CHARS) return `pattern longer than ${MAX_PATTERN_CHARS} characters`;
  const toks = tokenize(pattern);
  if (typeof toks === "string") return toks;
  const nets: Cidr[] = [];
  let i = 0;
  const peek = () => toks[i];
  const fail = (why: string) => `unsupported pattern: ${why}`;
  // comparison := path op str | ( comparisons )
  const comparison = (): string | null => {
    const t = peek();
    if (t?.k === "(") {
      i++;
      const e = comparisons();
      if (e) return e;
      if (peek()?.k !== ")") return fail("unbalanced parentheses");
      i++;
      return null;
    }
    if (t?.k !== "path") return fail(`expected an object path, found ${t ? JSON.stringify(t.t) : "the end"}`);
    i++;
    const [type, path] = t.t.split(":") as [string, string];
    if (type !== "ipv4-addr" && type !== "ipv6-addr")
      return fail(`only ipv4-addr and ipv6-addr values are matched (not ${type})`);
    if (path !== "value") return fail(`only ${type}:value is matched (not ${type}:${path})`);
    const op = peek();
    if (op?.k !== "op" || (op.t !== "=" && op.t !== "ISSUBSET"))
      return fail(`only = and ISSUBSET are matched (not ${op ? op.t : "nothing"})`);
    i++;
    const lit = peek();
    if (lit?.k !== "str") return fail(`expected a quoted address after ${op.t}`);
    i++;
    const c = parseCidr(lit.t, type === "ipv4-addr" ? 4 : 6);
    if (typeof c === "string") return c;
    if (op.t === "=" && c.prefix !== (c.v === 4 ? 32 : 128)) return fail(`= compares to an address, not ${lit.t}`);
    nets.push(c);
    return null;
  };
  const comparisons = (): string | null => {
    for (;;) {
      const e = comparison();
      if (e) return e;
      const t = peek();
      if (t?.k === "or") {
        i++;
        continue;
      }
      if (t?.k === "and") return fail("AND is not supported (an address cannot be two things at once)");
      return null;
    }
  };
  // observation := [ comparisons ] | ( observations )
  const observation = (): string | null => {
    const t = peek();
    if (t?.k === "(") {
      i++;
      const e = observations();
      if (e) return e;
      if (peek()?.k !== ")") return fail("unbalanced parentheses");
      i++;
      return null;
    }
    if (t?.k !== "[") return fail("expected [");
    i++;
    const e = comparisons();
    if (e) return e;
    if (peek()?.k !== "]") return fail(`expected ], found ${peek() ? JSON.stringify(peek()!.t) : "the end"}`);
    i++;
    const q = peek();
    if (q?.k === "other" || q?.k === "path") return fail(`qualifiers are not supported (${q.t})`);
    return null;
  };
  const observations = (): string | null => {
    for (;;) {
      const e = observation();
      if (e) return e;
      const t = peek();
      if (t?.k === "or") {
        i++;
        continue;
      }
      if (t?.k === "and" || t?.k === "followedby") return fail(`${t.t} between observations is not supported`);
      return null;
    }
  };
  const e = observations();
  if (e) return e;
  if (i !== toks.length) return fail(`unexpected ${JSON.stringify(toks[i]!.t)}`);
  if (nets.length === 0) return fail("no address");
  if (nets.length > MAX_NETWORKS) return `more than ${MAX_NETWORKS} networks in one pattern`;
  return nets;
}

// --- objects ---

const TLP_NAMES: Record<string, string> = {
  // TLP 2.0 (OASIS extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d)
  "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487": "TLP:CLEAR",
  "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb": "TLP:GREEN",
  "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421": "TLP:AMBER",
  "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003": "TLP:AMBER+STRICT",
  "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1": "TLP:RED",
  // TLP 1.0 (STIX 2.1 §7.2.1.4)
  "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9": "TLP:WHITE",
  "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da": "TLP:GREEN",
  "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82": "TLP:AMBER",
  "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed": "TLP:RED",
};

function idOf(o: unknown, i: number): string {
  if (typeof o === "object" && o !== null && !Array.isArray(o)) {
    const id = (o as Record<string, unknown>).id;
    if (typeof id === "string" && id.length > 0) return id.slice(0, 300);
  }
  return `(object ${i} without an id)`;
}

/** Schema checks common to every STIX 2.1 object; the reason, or null. */
function checkCommon(o: Record<string, unknown>): string | null {
  const type = o.type;
  if (typeof type !== "string" || !TYPE_RE.test(type) || type.includes("--"))
    return "type: missing or not a STIX type name";
  const id = o.id;
  if (typeof id !== "string") return "id: missing";
  const [t, uuid, ...more] = id.split("--");
  if (more.length > 0 || t !== type || uuid === undefined || !UUID_RE.test(uuid))
    return `id: must be "${type}--" and a UUID`;
  if (type === "bundle") return "a bundle inside the objects is not allowed";
  const sco = ["ipv4-addr", "ipv6-addr", "domain-name", "url", "file", "network-traffic", "user-account"].includes(
    type,
  );
  if (!sco || o.spec_version !== undefined)
    if (o.spec_version !== "2.1") return `spec_version: must be "2.1" (found ${JSON.stringify(o.spec_version)})`;
  if (!sco && type !== "marking-definition") {
    for (const k of ["created", "modified"])
      if (typeof o[k] !== "string" || !STIX_TIME_RE.test(o[k]) || Number.isNaN(Date.parse(o[k])))
        return `${k}: missing or not a STIX timestamp`;
    if ((o.modified as string) < (o.created as string)) return "modified: before created";
  }
  if (o.object_marking_refs !== undefined) {
    if (!Array.isArray(o.object_marking_refs) || !o.object_marking_refs.every((r) => typeof r === "string"))
      return "object_marking_refs: must be a list of identifiers";
  }
  if (o.external_references !== undefined) {
    if (
      !Array.isArray(o.external_references) ||
      !o.external_references.every(
        (r) => typeof r === "object" && r !== null && typeof (r as Record<string, unknown>).source_name === "string",
      )
    )
      return "external_references: must be a list of objects with a source_name";
  }
  return null;
}

function attackIds(o: Record<string, unknown>): string[] {
  const refs = Array.isArray(o.external_references) ? (o.external_references as Record<string, unknown>[]) : [];
  return refs
    .filter((r) => r.source_name === "mitre-attack" && typeof r.external_id === "string")
    .map((r) => (r.external_id as string).toUpperCase())
    .filter((x) => TECHNIQUE_RE.test(x));
}

/**
 * Checks a batch of STIX objects (a TAXII page's `objects` or a bundle's) and returns the indicators the matcher can
 * use, the refusals (object id and reason) and how many other objects were read but not imported.
 */
export function importStixObjects(objects: readonly unknown[]): ImportResult {
  const refused: Refusal[] = [];
  const indicators: ImportedIndicator[] = [];
  let skipped = 0;
  const techniquesOf = new Map<string, string[]>();
  const indicates: [string, string][] = [];
  const checked: [number, Record<string, unknown>][] = [];
  objects.forEach((raw, i) => {
    const id = idOf(raw, i);
    if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
      refused.push({ id, reason: "not a JSON object" });
      return;
    }
    const size = JSON.stringify(raw).length;
    if (size > MAX_OBJECT_BYTES) {
      refused.push({ id, reason: `object of ${size} bytes is over the limit of ${MAX_OBJECT_BYTES}` });
      return;
    }
    const o = raw as Record<string, unknown>;
    const bad = checkCommon(o);
    if (bad) {
      refused.push({ id, reason: `schema: ${bad}` });
      return;
    }
    if (o.type === "attack-pattern") techniquesOf.set(o.id as string, attackIds(o));
    if (o.type === "relationship" && o.relationship_type === "indicates")
      if (typeof o.source_ref === "string" && typeof o.target_ref === "string")
        indicates.push([o.source_ref, o.target_ref]);
    checked.push([i, o]);
  });
  for (const [, o] of checked) {
    if (o.type !== "indicator") {
      skipped++;
      continue;
    }
    const id = o.id as string;
    const refuse = (reason: string) => refused.push({ id, reason });
    if (typeof o.pattern !== "string" || o.pattern.length === 0) {
      refuse("schema: pattern: missing");
      continue;
    }
    if (typeof o.pattern_type !== "string") {
      refuse("schema: pattern_type: missing");
      continue;
    }
    if (
      typeof o.valid_from !== "string" ||
      !STIX_TIME_RE.test(o.valid_from) ||
      Number.isNaN(Date.parse(o.valid_from))
    ) {
      refuse("schema: valid_from: missing or not a STIX timestamp");
      continue;
    }
    let validUntil: number | null = null;
    if (o.valid_until !== undefined) {
      if (typeof o.valid_until !== "string" || !STIX_TIME_RE.test(o.valid_until)) {
        refuse("schema: valid_until: not a STIX timestamp");
        continue;
      }
      validUntil = Date.parse(o.valid_until);
      if (!(validUntil > Date.parse(o.valid_from))) {
        refuse("schema: valid_until: must be after valid_from");
        continue;
      }
    }
    if (o.name !== undefined && typeof o.name !== "string") {
      refuse("schema: name: must be a string");
      continue;
    }
    if (o.revoked !== undefined && typeof o.revoked !== "boolean") {
      refuse("schema: revoked: must be true or false");
      continue;
    }
    if (o.pattern_type !== "stix") {
      refuse(`unsupported pattern_type ${JSON.stringify(o.pattern_type).slice(0, 40)} (only stix)`);
      continue;
    }
    const nets = parseIndicatorPattern(o.pattern);
    if (typeof nets === "string") {
      refuse(nets);
      continue;
    }
    const techniques = new Set(attackIds(o));
    for (const [src, dst] of indicates) if (src === id) for (const t of techniquesOf.get(dst) ?? []) techniques.add(t);
    const marks = (o.object_marking_refs as string[] | undefined) ?? [];
    indicators.push({
      id,
      version: (o.modified as string) ?? (o.created as string),
      name: typeof o.name === "string" ? o.name.slice(0, 200) : o.pattern.slice(0, 200),
      pattern: o.pattern,
      networks: nets,
      techniques: [...techniques].sort(),
      validFrom: Date.parse(o.valid_from),
      validUntil,
      revoked: o.revoked === true,
      tlp: marks.map((m) => TLP_NAMES[m]).find((x) => x !== undefined) ?? null,
    });
  }
  return { indicators, refused, skipped };
}

// --- matching ---

/** An indicator as the matcher holds it. */
export interface MatchIndicator {
  id: string;
  name: string;
  partner: string;
  networks: Cidr[];
  techniques: string[];
  validFrom: number;
  validUntil: number | null;
  /** Live matching applies to audit entries from this index on; the ones before were matched retroactively. */
  fromIndex: number;
}

/**
 * Indicators by network: per address family and prefix length, a map from the masked address to the indicators.
 * A lookup masks the address once per distinct prefix length in use (a handful), so matching costs the same for
 * ten indicators as for a hundred thousand.
 */
export class IndicatorSet {
  private readonly v4 = new Map<number, Map<bigint, MatchIndicator[]>>();
  private readonly v6 = new Map<number, Map<bigint, MatchIndicator[]>>();
  private count = 0;
  /** Every network of the indicators, once (the indexed retroactive search looks each one up). */
  private readonly nets = new Map<string, Cidr>();
  /** Addresses already looked up (audit logs repeat the same few thousand sources). */
  private readonly cache = new Map<string, MatchIndicator[]>();

  constructor(indicators: readonly MatchIndicator[] = []) {
    for (const i of indicators) this.add(i);
  }

  get size(): number {
    return this.count;
  }

  add(ind: MatchIndicator): void {
    this.count++;
    this.cache.clear();
    for (const c of ind.networks) {
      this.nets.set(`${c.v}/${c.prefix}/${c.net}`, c);
      const byPrefix = c.v === 4 ? this.v4 : this.v6;
      let m = byPrefix.get(c.prefix);
      if (!m) byPrefix.set(c.prefix, (m = new Map<bigint, MatchIndicator[]>()));
      const list = m.get(c.net) ?? [];
      if (!list.includes(ind)) list.push(ind);
      m.set(c.net, list);
    }
  }

  /** Every network of the set's indicators, once. */
  networks(): Cidr[] {
    return [...this.nets.values()];
  }

  /** The indicators whose networks contain this source address (valid or not at any time). */
  lookup(source: string): MatchIndicator[] {
    const hit = this.cache.get(source);
    if (hit) return hit;
    const a = parseAddress(source);
    let out: MatchIndicator[] = [];
    if (a) {
      const bits = a.v === 4 ? 32 : 128;
      for (const [prefix, m] of a.v === 4 ? this.v4 : this.v6) {
        const net = (a.value >> BigInt(bits - prefix)) << BigInt(bits - prefix);
        const l = m.get(net);
        if (l) out = out.length === 0 ? l : [...new Set([...out, ...l])];
      }
    }
    if (this.cache.size > 100_000) this.cache.clear();
    this.cache.set(source, out);
    return out;
  }

  /**
   * The indicators matching an event's source at its time: not after an indicator's `valid_until`. Events before its
   * `valid_from` do match: a partner dates an indicator from when they saw it, and the same infrastructure may have
   * been used against us earlier (that is what searching the past is for).
   */
  match(source: string, time: number): MatchIndicator[] {
    const l = this.lookup(source);
    if (l.length === 0) return l;
    return l.filter((i) => i.validUntil === null || time < i.validUntil);
  }
}
