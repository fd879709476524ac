/**
 * STIX 2.1 bundle of an incident (DESIGN.md T6: allied sharing). Pure: the same incident, alerts, audit events and
 * options give the same bundle, byte for byte — ids are UUIDv5 (STIX 2.1 §2.9 allows v5; SCOs use the spec's
 * deterministic-id namespace and contributing properties), timestamps come from the incident and the events.
 *
 * What goes in: the ministry's identity; one indicator per source network (IPv4 /24, IPv6 /48: `ISSUBSET` patterns)
 * and per device, each with a sighting (count, first/last seen, where sighted: the ministry) and observed data (the
 * addresses seen; user accounts only with `includeAccounts`); the MITRE ATT&CK attack patterns of the alerts' rules
 * (`attack.ts`) with `indicates` relationships; the incident; a note with the officer's text; a TLP marking.
 *
 * What never goes in: message or document content, subjects, file names, object ids, labels, alert reasons (they
 * name users and items). Actor handles and device ids are pseudonymised (`pseudonym`, an HMAC with a server secret:
 * stable across incidents, so partners can correlate, but not reversible by them) unless `includeAccounts`.
 * Loopback, private and link-local addresses (the ministry's own networks) are left out of indicators and
 * observed data: they mean nothing to a partner and would map the internal network.
 */
import { createHash } from "node:crypto";
import type { AuditEvent } from "@valise/core";
import { TECHNIQUES, RULE_TITLES, techniquesFor } from "./attack.js";

export type StixObject = Record<string, unknown> & { type: string; id: string };

export interface StixBundle {
  type: "bundle";
  id: string;
  objects: StixObject[];
}

export interface IncidentAlert {
  id: string;
  /** ISO 8601 time of the triggering event. */
  time: string;
  actor: string;
  rule: string;
  severity: string;
  events: string[];
}

export interface IncidentInput {
  id: string;
  title: string;
  note: string | null;
  /** Milliseconds since the epoch. */
  createdAt: number;
  alerts: readonly IncidentAlert[];
  /** The audit events behind the alerts (others are ignored; missing ones are skipped). */
  events: readonly AuditEvent[];
}

export interface StixOptions {
  orgName: string;
  /** Put user handles and device ids (and user-account SCOs) in the bundle; default: pseudonyms only. */
  includeAccounts?: boolean;
  /** Stable pseudonym of a user handle or device id (e.g. `user-<hmac>`). */
  pseudonym: (kind: "user" | "device", value: string) => string;
  /**
   * TLP level of every SDO/SRO. Chosen per share, it is a TLP 2.0 marking (FIRST TLP 2.0 as the OASIS TLP 2.0
   * extension defines it: fixed marking-definition ids); not chosen, the bundle keeps the STIX 2.1 predefined
   * TLP 1.0 AMBER marking it always had.
   */
  tlp?: TlpLevel;
}

/** TLP 2.0 levels an officer chooses per share. */
export const TLP_LEVELS = ["clear", "green", "amber", "amber+strict", "red"] as const;
export type TlpLevel = (typeof TLP_LEVELS)[number];

/** The OASIS TLP 2.0 extension definition and its marking definitions (cti-stix-common-objects). */
export const TLP2_EXTENSION = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d";
export const TLP2: Record<TlpLevel, { id: string; name: string }> = {
  clear: { id: "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487", name: "TLP:CLEAR" },
  green: { id: "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb", name: "TLP:GREEN" },
  amber: { id: "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421", name: "TLP:AMBER" },
  "amber+strict": { id: "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003", name: "TLP:AMBER+STRICT" },
  red: { id: "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1", name: "TLP:RED" },
};

function tlpMarking(level: TlpLevel | undefined): { id: string; object: StixObject } {
  if (level === undefined) {
    const t = TLP.amber;
    return {
      id: t.id,
      object: {
        type: "marking-definition",
        spec_version: "2.1",
        id: t.id,
        created: "2017-01-20T00:00:00.000Z",
        definition_type: "tlp",
        name: t.name,
        definition: { tlp: t.tlp },
      },
    };
  }
  const t = TLP2[level];
  return {
    id: t.id,
    object: {
      type: "marking-definition",
      spec_version: "2.1",
      id: t.id,
      created: "2022-10-01T00:00:00.000Z",
      name: t.name,
      extensions: { [TLP2_EXTENSION]: { extension_type: "property-extension", tlp_2_0: level } },
    },
  };
}

/** STIX 2.1 §2.9: the namespace of deterministic SCO ids. */
export const STIX_SCO_NAMESPACE = "00abedb4-aa42-466c-9c01-fed23315a9b7";
/** Valise's own namespace for SDO/SRO ids (UUIDv5 of "valise" in the SCO namespace). */
export const VALISE_NAMESPACE = uuidv5(STIX_SCO_NAMESPACE, "valise");
/** created/modified of the objects shared by every incident (identity, attack patterns): one version each. */
export const STIX_FIXED_TIME = "2026-01-01T00:00:00.000Z";

/**
 * The TLP 1.0 marking definitions predefined in STIX 2.1 §7.2.1.4 (fixed ids and content). TLP:CLEAR has no
 * predefined STIX object; it is shared as TLP:WHITE, its 1.0 name.
 */
const TLP: Record<"clear" | "green" | "amber" | "red", { id: string; name: string; tlp: string }> = {
  clear: { id: "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9", name: "TLP:WHITE", tlp: "white" },
  green: { id: "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da", name: "TLP:GREEN", tlp: "green" },
  amber: { id: "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82", name: "TLP:AMBER", tlp: "amber" },
  red: { id: "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed", name: "TLP:RED", tlp: "red" },
};

/** RFC 4122 name-based UUID, version 5 (SHA-1). */
export function uuidv5(namespace: string, name: string): string {
  const ns = Buffer.from(namespace.replace(/-/g, ""), "hex");
  const h = createHash("sha1").update(ns).update(name, "utf8").digest();
  h[6] = (h[6]! & 0x0f) | 0x50;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString("hex");
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

const sdoId = (type: string, key: string) => `${type}--${uuidv5(VALISE_NAMESPACE, `${type}/${key}`)}`;
/** SCO ids: UUIDv5 over the JCS-canonical JSON of the contributing properties (keys sorted, strings only here). */
function scoId(type: string, props: Record<string, string>): string {
  const sorted = Object.fromEntries(Object.entries(props).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  return `${type}--${uuidv5(STIX_SCO_NAMESPACE, JSON.stringify(sorted))}`;
}

const iso = (ms: number) => new Date(ms).toISOString();
/** STIX pattern string literal: backslash and quote escaped. */
const lit = (s: string) => `'${s.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;

export interface Network {
  kind: "ipv4-addr" | "ipv6-addr";
  /** CIDR: a.b.c.0/24 or x:y:z::/48. */
  cidr: string;
  /** The exact address. */
  address: string;
}

/** The network of a source address (IPv4 /24, IPv6 /48, as the detector's `networkOf`), or null if not an IP. */
export function networkOfSource(source: string): Network | null {
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(source);
  if (v4) {
    const o = v4.slice(1, 5).map(Number);
    if (o.some((n) => n > 255)) return null;
    return { kind: "ipv4-addr", cidr: `${o[0]}.${o[1]}.${o[2]}.0/24`, address: o.join(".") };
  }
  const s = source.replace(/^\[|\]$/g, "").toLowerCase();
  if (s.includes(":") && /^[0-9a-f:.]+$/.test(s)) {
    const mapped = /^::ffff:(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})$/.exec(s);
    if (mapped) return networkOfSource(mapped[1]!);
    const [head = ""] = s.split("::");
    const groups = head.split(":").filter((g) => g.length > 0);
    while (groups.length < 3) groups.push("0");
    const prefix = groups
      .slice(0, 3)
      .map((g) => g.replace(/^0+(?=.)/, ""))
      .join(":");
    return { kind: "ipv6-addr", cidr: `${prefix}::/48`, address: s };
  }
  return null;
}

/** Loopback, private (RFC 1918, fc00::/7), link-local, unspecified and CGNAT addresses: the ministry's own. */
export function isInternalAddress(n: Network): boolean {
  if (n.kind === "ipv4-addr") {
    const [a = 0, b = 0] = n.address.split(".").map(Number);
    return (
      a === 0 ||
      a === 10 ||
      a === 127 ||
      (a === 169 && b === 254) ||
      (a === 172 && b >= 16 && b <= 31) ||
      (a === 192 && b === 168) ||
      (a === 100 && b >= 64 && b <= 127)
    );
  }
  const a = n.address;
  return a === "::1" || a === "::" || /^f[cd]/.test(a) || /^fe[89ab]/.test(a);
}

interface Seen {
  count: number;
  first: string;
  last: string;
  addresses: Set<string>;
  actors: Set<string>;
  alerts: Set<string>;
}

function see(map: Map<string, Seen>, key: string, e: AuditEvent, address: string | null, alerts: string[]): Seen {
  let s = map.get(key);
  if (!s) {
    s = { count: 0, first: e.time, last: e.time, addresses: new Set(), actors: new Set(), alerts: new Set() };
    map.set(key, s);
  }
  s.count++;
  if (e.time < s.first) s.first = e.time;
  if (e.time > s.last) s.last = e.time;
  if (address) s.addresses.add(address);
  s.actors.add(e.actor);
  for (const a of alerts) s.alerts.add(a);
  return s;
}

/** The bundle of an incident (see the module comment for what is in it and what is not). */
export function incidentBundle(inc: IncidentInput, opts: StixOptions): StixBundle {
  const includeAccounts = opts.includeAccounts ?? false;
  const tlp = tlpMarking(opts.tlp);
  const created = iso(inc.createdAt);
  const identityId = sdoId("identity", opts.orgName);
  const common = (fixed: boolean) => ({
    spec_version: "2.1",
    created: fixed ? STIX_FIXED_TIME : created,
    modified: fixed ? STIX_FIXED_TIME : created,
  });
  const marked = { created_by_ref: identityId, object_marking_refs: [tlp.id] };
  const user = (h: string) => (includeAccounts ? h : opts.pseudonym("user", h));
  const device = (d: string) => (includeAccounts ? d : opts.pseudonym("device", d));
  const scope =
    `incident/${inc.id}/${includeAccounts ? "accounts" : "pseudonymous"}` + (opts.tlp ? `/tlp:${opts.tlp}` : "");

  // What the alerts' events show, per network, per device, and which techniques each alert is evidence of.
  const byId = new Map(inc.events.map((e) => [e.id, e]));
  const networks = new Map<string, Seen>();
  const netInfo = new Map<string, Network>();
  const devices = new Map<string, Seen>();
  const alertTechniques = new Map<string, string[]>();
  let internal = 0;
  let eventCount = 0;
  // An event behind several alerts counts once; it is evidence for each of them.
  const eventAlerts = new Map<string, { e: AuditEvent; alerts: string[] }>();
  for (const a of inc.alerts) {
    const evs = a.events.map((id) => byId.get(id)).filter((e): e is AuditEvent => e !== undefined);
    alertTechniques.set(a.id, techniquesFor(a.rule, evs));
    for (const e of evs) {
      const known = eventAlerts.get(e.id);
      if (known) known.alerts.push(a.id);
      else eventAlerts.set(e.id, { e, alerts: [a.id] });
    }
  }
  for (const { e, alerts } of eventAlerts.values()) {
    eventCount++;
    const n = networkOfSource(e.source);
    const external = n !== null && !isInternalAddress(n);
    if (n && external) {
      netInfo.set(n.cidr, n);
      see(networks, n.cidr, e, n.address, alerts);
    } else internal++;
    if (e.device) see(devices, e.device, e, external ? n.address : null, alerts);
  }
  const techniques = [...new Set([...alertTechniques.values()].flat())].sort();

  const objects: StixObject[] = [];
  objects.push(tlp.object);
  objects.push({
    type: "identity",
    id: identityId,
    ...common(true),
    name: opts.orgName,
    identity_class: "organization",
    sectors: ["government"],
    object_marking_refs: [tlp.id],
  });

  const attackIds = new Map<string, string>();
  for (const t of techniques) {
    const tech = TECHNIQUES[t]!;
    const id = sdoId("attack-pattern", `mitre-attack/${t}`);
    attackIds.set(t, id);
    objects.push({
      type: "attack-pattern",
      id,
      ...common(true),
      ...marked,
      name: tech.name,
      description: tech.description,
      kill_chain_phases: tech.tactics.map((p) => ({ kill_chain_name: "mitre-attack", phase_name: p })),
      external_references: [
        { source_name: "mitre-attack", external_id: t, url: `https://attack.mitre.org/techniques/${t}/` },
      ],
    });
  }

  // SCOs: addresses (and user accounts on request), referenced by observed data.
  const scos = new Map<string, StixObject>();
  const addressRef = (address: string): string => {
    const n = networkOfSource(address)!;
    const id = scoId(n.kind, { value: n.address });
    if (!scos.has(id)) scos.set(id, { type: n.kind, spec_version: "2.1", id, value: n.address });
    return id;
  };
  const accountRef = (handle: string): string => {
    const props = { account_type: "valise", user_id: handle, account_login: handle };
    const id = scoId("user-account", props);
    if (!scos.has(id)) scos.set(id, { type: "user-account", spec_version: "2.1", id, ...props });
    return id;
  };
  const observedRefs = (s: Seen): string[] => [
    ...[...s.addresses].sort().map(addressRef),
    ...(includeAccounts ? [...s.actors].sort().map(accountRef) : []),
  ];

  const indicatorIds: string[] = [];
  const sros: StixObject[] = [];
  const sdos: StixObject[] = [];
  const indicate = (indicatorId: string, s: Seen) => {
    const ts = [...new Set([...s.alerts].flatMap((a) => alertTechniques.get(a) ?? []))].sort();
    for (const t of ts)
      sros.push({
        type: "relationship",
        id: sdoId("relationship", `${scope}/${indicatorId}/indicates/${t}`),
        ...common(false),
        ...marked,
        relationship_type: "indicates",
        source_ref: indicatorId,
        target_ref: attackIds.get(t)!,
      });
  };
  const sighting = (key: string, indicatorId: string, observedId: string | null, s: Seen) =>
    sros.push({
      type: "sighting",
      id: sdoId("sighting", `${scope}/${key}`),
      ...common(false),
      ...marked,
      sighting_of_ref: indicatorId,
      ...(observedId ? { observed_data_refs: [observedId] } : {}),
      where_sighted_refs: [identityId],
      count: Math.min(s.count, 999_999_999),
      first_seen: s.first,
      last_seen: s.last,
    });
  const observed = (key: string, s: Seen): string | null => {
    const refs = observedRefs(s);
    if (refs.length === 0) return null;
    const id = sdoId("observed-data", `${scope}/${key}`);
    sdos.push({
      type: "observed-data",
      id,
      ...common(false),
      ...marked,
      first_observed: s.first,
      last_observed: s.last,
      number_observed: Math.min(Math.max(s.count, 1), 999_999_999),
      object_refs: refs,
    });
    return id;
  };

  for (const [cidr, s] of [...networks].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const n = netInfo.get(cidr)!;
    const id = sdoId("indicator", `${scope}/network/${cidr}`);
    indicatorIds.push(id);
    sdos.push({
      type: "indicator",
      id,
      ...common(false),
      ...marked,
      name: `Source network ${cidr}`,
      description: `Network from which ${s.count} audited request(s) behind the incident's alerts came.`,
      indicator_types: ["anomalous-activity"],
      pattern: `[${n.kind}:value ISSUBSET ${lit(cidr)}]`,
      pattern_type: "stix",
      pattern_version: "2.1",
      valid_from: s.first,
    });
    sighting(`network/${cidr}`, id, observed(`network/${cidr}`, s), s);
    indicate(id, s);
  }
  for (const [dev, s] of [...devices].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const name = device(dev);
    const id = sdoId("indicator", `${scope}/device/${name}`);
    indicatorIds.push(id);
    const owners = [...s.actors].sort().map(user).join(", ");
    sdos.push({
      type: "indicator",
      id,
      ...common(false),
      ...marked,
      name: `Device ${name}`,
      description:
        `Valise device ${includeAccounts ? "" : "(pseudonymised) "}of ${owners}, used for ${s.count} audited ` +
        `request(s) behind the incident's alerts.`,
      indicator_types: ["anomalous-activity"],
      pattern: `[x-valise-device:id = ${lit(name)}]`,
      pattern_type: "stix",
      pattern_version: "2.1",
      valid_from: s.first,
    });
    sighting(`device/${name}`, id, observed(`device/${name}`, s), s);
    indicate(id, s);
  }

  const times = inc.alerts.map((a) => a.time).sort();
  const rules = [...new Set(inc.alerts.map((a) => a.rule))].sort();
  const severities = ["critical", "high", "medium", "low"].filter((sev) => inc.alerts.some((a) => a.severity === sev));
  const incidentId = sdoId("incident", scope);
  const incident: StixObject = {
    type: "incident",
    id: incidentId,
    ...common(false),
    ...marked,
    name: inc.title,
    description:
      `${inc.alerts.length} alert(s)` +
      (times.length ? ` between ${times[0]} and ${times[times.length - 1]}` : "") +
      (severities.length ? `, highest severity ${severities[0]}` : "") +
      `, ${eventCount} audited request(s) (${internal} from the ministry's own networks, not listed). Rules: ` +
      (rules.map((r) => `${RULE_TITLES[r] ?? r} (${r})`).join("; ") || "none") +
      ".",
    external_references: [{ source_name: "valise", external_id: inc.id }],
  };
  sdos.push(incident);
  for (const ref of [...indicatorIds, ...techniques.map((t) => attackIds.get(t)!)])
    sros.push({
      type: "relationship",
      id: sdoId("relationship", `${scope}/${incidentId}/related-to/${ref}`),
      ...common(false),
      ...marked,
      relationship_type: "related-to",
      source_ref: incidentId,
      target_ref: ref,
    });
  sdos.push({
    type: "note",
    id: sdoId("note", scope),
    ...common(false),
    ...marked,
    abstract: inc.title,
    content: inc.note && inc.note.trim().length > 0 ? inc.note : incident.description,
    object_refs: [incidentId, ...indicatorIds, ...techniques.map((t) => attackIds.get(t)!)],
  });

  objects.push(...sdos, ...[...scos.values()], ...sros);
  return { type: "bundle", id: `bundle--${uuidv5(VALISE_NAMESPACE, `bundle/${scope}`)}`, objects };
}
