/**
 * `valise incident` and `valise taxii token` (DESIGN.md T6, allied sharing): security officers group alerts into an
 * incident, export it as a STIX 2.1 bundle for the national authority and partners, share it to the server's
 * read-only TAXII 2.1 collection, and issue or revoke the partner tokens that read that collection.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import {
  ValiseClient,
  type IndicatorImportReport,
  type ServerIncident,
  type TaxiiPartner,
  type TaxiiToken,
  type TlpLevel,
} from "@valise/client";
import { FileKeyStore } from "@valise/client/node/file-store";
import { parse, str, UsageError } from "./args.js";
import { printJson } from "./output.js";
import { installNodeCrypto } from "./crypto.js";

const TLPS = ["clear", "green", "amber", "amber+strict", "red"] as const;

const TAXII_LINES = `       valise taxii token issue --partner NAME --profile DIR [--json]
       valise taxii token list --profile DIR [--json]
       valise taxii token revoke ID --profile DIR [--json]
       valise taxii partner add URL --token TOKEN --name NAME --profile DIR [--json]
       valise taxii partner list --profile DIR [--json]
       valise taxii partner poll ID --profile DIR [--json]
       valise taxii partner remove ID --profile DIR [--json]
       valise taxii import FILE --profile DIR [--json]
       valise taxii indicators --profile DIR [--json]`;

export const TAXII_USAGE = `usage: valise taxii token issue --partner NAME --profile DIR [--json]
       valise taxii token list --profile DIR [--json]
       valise taxii token revoke ID --profile DIR [--json]
       valise taxii partner add URL --token TOKEN --name NAME --profile DIR [--json]
       valise taxii partner list --profile DIR [--json]
       valise taxii partner poll ID --profile DIR [--json]
       valise taxii partner remove ID --profile DIR [--json]
       valise taxii import FILE --profile DIR [--json]
       valise taxii indicators --profile DIR [--json]

For security officers (role officer).
Sharing out: bearer tokens for partners' TAXII 2.1 clients, which read what valise incident share gave them
(GET /taxii2/…): the common collection and the partner's own, never another partner's.
  token issue    a new token for the partner: printed once, stored only as a hash
  token list     every token with its partner, issuer and revocation
  token revoke   the partner's next request gets 403
Bringing in: partners' TAXII 2.1 collections the server polls (every 15 minutes, and on poll) with added_after.
Their STIX 2.1 indicators with IPv4/IPv6 address or network patterns (= or ISSUBSET, joined by OR) are imported
with their ATT&CK references, searched for in the whole stored audit log (an alert per user with the matching
events, rule ioc-match) and matched live from then on. The search uses the audit log's index of source addresses;
a background check then compares every entry with that index, and entries whose indexed address was edited in the
database raise a critical audit-index-mismatch alert and the ioc-match alerts the edit hid. Objects that are schema-invalid, over 64 KiB, or whose
pattern the matcher does not support are refused with the object id and the reason (shown here).
  partner add URL   URL is the partner's collection (…/collections/<id>/); TOKEN is the bearer token the partner
                    issued to us (kept by the server to poll; never shown again)
  partner poll ID   poll now: imported, refused (id: reason), matches found in the past
  import FILE       import a STIX 2.1 bundle file (at most 10 MiB) the same way
  indicators        the imported indicators, their networks, techniques and past matches`;

export const INCIDENT_USAGE = `usage: valise incident create --profile DIR --alert ID [--alert ID …] --title T [--note TEXT] [--json]
       valise incident list --profile DIR [--json]
       valise incident show ID --profile DIR [--json]
       valise incident export ID --profile DIR [--out FILE] [--include-accounts]
       valise incident share ID --profile DIR [--partner NAME] [--tlp LEVEL] [--include-accounts] [--json]
${TAXII_LINES}

For security officers (role officer). An incident groups detection alerts (valise alerts) under a title and a note.
  export   writes the incident as a STIX 2.1 bundle (to FILE, mode 0600, or standard output): the ministry's identity,
           indicators for the source networks and devices, sightings, observed data, the MITRE ATT&CK attack
           patterns of the alerts' rules, the incident and the note. No message or document content, names, labels
           or item ids; users and devices appear as stable pseudonyms unless --include-accounts.
  share    adds the bundle's objects to the server's TAXII 2.1 collection (GET /taxii2/…), read by partners:
           with --partner NAME to that partner's own collection only (a partner with a token), and marked with
           the TLP 2.0 level chosen for this share: --tlp clear|green|amber|amber+strict|red (default: the
           TLP:AMBER marking of STIX 2.1)
  taxii token issue   a bearer token for a partner's TAXII client: printed once, stored only as a hash
  taxii token revoke  the partner's next request gets 403`;

async function officer(profile: unknown): Promise<ValiseClient> {
  await installNodeCrypto();
  const client = await ValiseClient.open({
    store: new FileKeyStore(resolve(str(profile, "--profile DIR", INCIDENT_USAGE))),
  });
  await client.login();
  return client;
}

function incidentLine(i: ServerIncident): string {
  const shared = i.shared ? `shared ${i.sharedAt ?? ""}` : "not shared";
  return `${i.id}  ${i.createdAt}  ${i.title}  (alerts ${i.alerts.join(", ")}; by ${i.createdBy}; ${shared})\n`;
}

function tokenLine(t: TaxiiToken): string {
  return `${t.id}  ${t.partner}  issued ${t.createdAt} by ${t.createdBy}${t.revokedAt ? `  REVOKED ${t.revokedAt}` : ""}\n`;
}

function needId(id: string | undefined, what: string): string {
  if (id === undefined || id.length === 0) throw new UsageError(`${what} needs an id\n\n${INCIDENT_USAGE}`);
  return id;
}

async function incident(argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    argv,
    {
      profile: { type: "string" },
      alert: { type: "string", multiple: true },
      title: { type: "string" },
      note: { type: "string" },
      out: { type: "string" },
      "include-accounts": { type: "boolean" },
      partner: { type: "string" },
      tlp: { type: "string" },
      json: { type: "boolean" },
    },
    INCIDENT_USAGE,
  );
  if (values.help) {
    console.log(INCIDENT_USAGE);
    return 0;
  }
  const [sub, id, ...extra] = positionals;
  if (extra.length > 0) throw new UsageError(`unexpected argument ${extra[0]}\n\n${INCIDENT_USAGE}`);
  const json = values.json === true;
  const includeAccounts = values["include-accounts"] === true;
  switch (sub) {
    case "create": {
      const alerts = (values.alert ?? []).flatMap((a) => a.split(",")).map((a) => a.trim());
      if (alerts.length === 0 || alerts.some((a) => !/^[1-9][0-9]{0,14}$/.test(a)))
        throw new UsageError(`--alert ID (a positive alert number) is needed, repeatable\n\n${INCIDENT_USAGE}`);
      const title = str(values.title, "--title T", INCIDENT_USAGE);
      const client = await officer(values.profile);
      const inc = await client.incidents.create({
        title,
        alerts: alerts.map(Number),
        ...(values.note !== undefined ? { note: values.note } : {}),
      });
      if (json) printJson(inc);
      else process.stdout.write(incidentLine(inc));
      return 0;
    }
    case "list": {
      const client = await officer(values.profile);
      const list = await client.incidents.list(1000);
      if (json) printJson(list);
      else for (const i of list) process.stdout.write(incidentLine(i));
      return 0;
    }
    case "show": {
      const client = await officer(values.profile);
      const inc = await client.incidents.show(needId(id, "show"));
      if (json) printJson(inc);
      else {
        process.stdout.write(incidentLine(inc));
        if (inc.note) process.stdout.write(`  note: ${inc.note}\n`);
        for (const a of inc.alertDetails ?? [])
          process.stdout.write(`  #${a.id}  ${a.time}  ${a.severity.toUpperCase().padEnd(8)} ${a.rule}  ${a.reason}\n`);
      }
      return 0;
    }
    case "export": {
      const client = await officer(values.profile);
      const bundle = await client.incidents.stix(needId(id, "export"), includeAccounts);
      const text = `${JSON.stringify(bundle, null, 2)}\n`;
      if (values.out !== undefined) {
        writeFileSync(resolve(values.out), text, { mode: 0o600 });
        process.stderr.write(`wrote ${bundle.objects.length} STIX objects to ${values.out}\n`);
      } else process.stdout.write(text);
      return 0;
    }
    case "share": {
      const tlp = values.tlp;
      if (tlp !== undefined && !(TLPS as readonly string[]).includes(tlp))
        throw new UsageError(`--tlp must be one of ${TLPS.join(", ")}\n\n${INCIDENT_USAGE}`);
      const client = await officer(values.profile);
      const r = await client.incidents.share(needId(id, "share"), includeAccounts, {
        ...(values.partner !== undefined ? { partner: values.partner } : {}),
        ...(tlp !== undefined ? { tlp: tlp as TlpLevel } : {}),
      });
      if (json) printJson(r);
      else
        process.stdout.write(
          `${r.id}: ${r.added} new of ${r.objects} objects in TAXII collection ${r.collection}` +
            `${r.partner ? ` (${r.partner} only)` : " (all partners)"}, TLP:${r.tlp.toUpperCase()}\n`,
        );
      return 0;
    }
    default:
      throw new UsageError(`unknown incident command ${sub ?? ""}\n\n${INCIDENT_USAGE}`);
  }
}

function partnerLine(p: TaxiiPartner): string {
  const polled = p.lastPollAt ? `last poll ${p.lastPollAt}` : "never polled";
  return (
    `${p.id}  ${p.name}  ${p.url}  (${polled}; ${p.imported} imported, ${p.refused} refused` +
    `${p.addedAfter ? `; added after ${p.addedAfter}` : ""})${p.lastError ? `  ERROR ${p.lastError}` : ""}\n`
  );
}

function reportLines(
  r: IndicatorImportReport | (Omit<IndicatorImportReport, "retro"> & { retro: IndicatorImportReport["retro"][] }),
): string {
  const retro = Array.isArray(r.retro) ? r.retro : [r.retro];
  const matches = retro.flatMap((x) => x.matches);
  let out =
    `imported ${r.imported} indicator(s), ${r.unchanged} unchanged, ${r.revoked} revoked, ` +
    `${r.refused.length} refused, ${r.skipped} other object(s)\n`;
  for (const x of r.refused) out += `  refused ${x.id}: ${x.reason}\n`;
  const scanned = retro.reduce((a, x) => a + x.scanned, 0);
  const ms = retro.reduce((a, x) => a + x.ms, 0);
  out += `searched ${scanned} audit event(s) in ${ms} ms: ${matches.length === 0 ? "no match" : ""}\n`;
  const pruned = Math.max(0, ...retro.map((x) => x.prunedBefore ?? 0));
  if (pruned > 0)
    out += `  audit events before index ${pruned} were exported and pruned: search those exports offline\n`;
  for (const m of matches)
    out += `  ${m.actor}: ${m.events} event(s) ${m.first} … ${m.last} (${m.indicators.length} indicator(s))\n`;
  return out;
}

async function taxii(argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    argv,
    {
      profile: { type: "string" },
      partner: { type: "string" },
      token: { type: "string" },
      name: { type: "string" },
      json: { type: "boolean" },
    },
    TAXII_USAGE,
  );
  if (values.help) {
    console.log(TAXII_USAGE);
    return 0;
  }
  const [what, sub, id, ...extra] = positionals;
  const json = values.json === true;
  if (what === "import") {
    if (sub === undefined || id !== undefined) throw new UsageError(`valise taxii import FILE\n\n${TAXII_USAGE}`);
    let bundle: unknown;
    try {
      bundle = JSON.parse(readFileSync(resolve(sub), "utf8"));
    } catch (e) {
      throw new UsageError(`cannot read ${sub} as JSON: ${e instanceof Error ? e.message : String(e)}`);
    }
    const client = await officer(values.profile);
    const r = await client.taxii.importBundle(bundle);
    if (json) printJson(r);
    else process.stdout.write(reportLines(r));
    return 0;
  }
  if (what === "indicators") {
    if (sub !== undefined) throw new UsageError(`unexpected argument ${sub}\n\n${TAXII_USAGE}`);
    const client = await officer(values.profile);
    const list = await client.taxii.indicators();
    if (json) printJson(list);
    else
      for (const i of list)
        process.stdout.write(
          `${i.id}  ${i.name}  ${i.networks.join(" ")}  ${i.techniques.join(",") || "-"}  ${i.tlp ?? ""}  ` +
            `(from ${i.partner}, ${i.retroMatches} past match(es))\n`,
        );
    return 0;
  }
  if (what === "partner") {
    if (extra.length > 0) throw new UsageError(`unexpected argument ${extra[0]}\n\n${TAXII_USAGE}`);
    switch (sub) {
      case "add": {
        if (id === undefined) throw new UsageError(`taxii partner add needs the collection URL\n\n${TAXII_USAGE}`);
        const token = str(values.token, "--token TOKEN", TAXII_USAGE);
        const name = str(values.name, "--name NAME", TAXII_USAGE);
        const client = await officer(values.profile);
        const p = await client.taxii.addPartner({ url: id, token, name });
        if (json) printJson(p);
        else process.stdout.write(partnerLine(p));
        return 0;
      }
      case "list": {
        const client = await officer(values.profile);
        const list = await client.taxii.partners();
        if (json) printJson(list);
        else for (const p of list) process.stdout.write(partnerLine(p));
        return 0;
      }
      case "poll": {
        const client = await officer(values.profile);
        const p = await client.taxii.poll(needId(id, "poll"));
        if (json) printJson(p);
        else process.stdout.write(partnerLine(p) + reportLines(p.report));
        return p.lastError ? 1 : 0;
      }
      case "remove": {
        const client = await officer(values.profile);
        const p = await client.taxii.removePartner(needId(id, "remove"));
        if (json) printJson(p);
        else process.stdout.write(`removed ${partnerLine(p)}`);
        return 0;
      }
      default:
        throw new UsageError(`unknown taxii partner command ${sub ?? ""}\n\n${TAXII_USAGE}`);
    }
  }
  if (what !== "token" || extra.length > 0)
    throw new UsageError(`expected valise taxii token|partner|import|indicators\n\n${TAXII_USAGE}`);
  switch (sub) {
    case "issue": {
      const partner = str(values.partner, "--partner NAME", TAXII_USAGE);
      const client = await officer(values.profile);
      const t = await client.transport.issueTaxiiToken(partner);
      if (json) printJson(t);
      else
        process.stdout.write(
          `${tokenLine(t)}token (shown once; give it to ${t.partner} over a protected channel):\n${t.token}\n`,
        );
      return 0;
    }
    case "list": {
      const client = await officer(values.profile);
      const list = await client.transport.taxiiTokens();
      if (json) printJson(list);
      else for (const t of list) process.stdout.write(tokenLine(t));
      return 0;
    }
    case "revoke": {
      const client = await officer(values.profile);
      const t = await client.transport.revokeTaxiiToken(needId(id, "revoke"));
      if (json) printJson(t);
      else process.stdout.write(tokenLine(t));
      return 0;
    }
    default:
      throw new UsageError(`unknown taxii token command ${sub ?? ""}\n\n${TAXII_USAGE}`);
  }
}

/** `valise incident …` and `valise taxii …`. */
export function incidentCommands(cmd: "incident" | "taxii", argv: string[]): Promise<number> {
  return cmd === "incident" ? incident(argv) : taxii(argv);
}
