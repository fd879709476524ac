/**
 * `valise incident` and `valise taxii token` (DESIGN.md T6, allied sharing): security officers group alerts into an
 * incident, export it as a STIX 2.1 bundle for the national authority and partners, share it to the server's
 * read-only TAXII 2.1 collection, and issue or revoke the partner tokens that read that collection.
 */
import { writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { ValiseClient, type ServerIncident, type TaxiiToken } from "@valise/client";
import { FileKeyStore } from "@valise/client/node/file-store";
import { parse, str, UsageError } from "./args.js";
import { printJson } from "./output.js";
import { installNodeCrypto } from "./crypto.js";

const TAXII_LINES = `       valise taxii token issue --partner NAME --profile DIR [--json]
       valise taxii token list --profile DIR [--json]
       valise taxii token revoke ID --profile DIR [--json]`;

export const TAXII_USAGE = `usage: valise taxii token issue --partner NAME --profile DIR [--json]
       valise taxii token list --profile DIR [--json]
       valise taxii token revoke ID --profile DIR [--json]

For security officers (role officer): bearer tokens for partners' TAXII 2.1 clients, which read the incidents shared
with valise incident share (GET /taxii2/…).
  issue   a new token for the partner: printed once, stored only as a hash
  list    every token with its partner, issuer and revocation
  revoke  the partner's next request gets 403`;

export const INCIDENT_USAGE = `usage: valise incident create --profile DIR --alert ID [--alert ID …] --title T [--note TEXT] [--json]
       valise incident list --profile DIR [--json]
       valise incident show ID --profile DIR [--json]
       valise incident export ID --profile DIR [--out FILE] [--include-accounts]
       valise incident share ID --profile DIR [--include-accounts] [--json]
${TAXII_LINES}

For security officers (role officer). An incident groups detection alerts (valise alerts) under a title and a note.
  export   writes the incident as a STIX 2.1 bundle (to FILE, mode 0600, or standard output): the ministry's identity,
           indicators for the source networks and devices, sightings, observed data, the MITRE ATT&CK attack
           patterns of the alerts' rules, the incident and the note. No message or document content, names, labels
           or item ids; users and devices appear as stable pseudonyms unless --include-accounts.
  share    adds the bundle's objects to the server's TAXII 2.1 collection (GET /taxii2/…), read by partners
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
      const client = await officer(values.profile);
      const r = await client.incidents.share(needId(id, "share"), includeAccounts);
      if (json) printJson(r);
      else
        process.stdout.write(`${r.id}: ${r.added} new of ${r.objects} objects in TAXII collection ${r.collection}\n`);
      return 0;
    }
    default:
      throw new UsageError(`unknown incident command ${sub ?? ""}\n\n${INCIDENT_USAGE}`);
  }
}

async function taxii(argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    argv,
    { profile: { type: "string" }, partner: { type: "string" }, json: { type: "boolean" } },
    TAXII_USAGE,
  );
  if (values.help) {
    console.log(TAXII_USAGE);
    return 0;
  }
  const [what, sub, id, ...extra] = positionals;
  if (what !== "token" || extra.length > 0)
    throw new UsageError(`expected valise taxii token issue|list|revoke\n\n${TAXII_USAGE}`);
  const json = values.json === true;
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
