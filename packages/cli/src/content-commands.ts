/** `valise cable …` and `valise doc …`: cables and documents from the command line, in the foundation's style. */
import { mkdirSync } from "node:fs";
import { join, resolve, basename } from "node:path";
import { readFileSync, statSync } from "node:fs";
import { ValiseError, canonicalLabel } from "@valise/core";
import { fileSource, writeFileAtomic } from "@valise/client/node/files";
import { parse, str, UsageError } from "./args.js";
import { oneLine as q, printJson, safeText } from "./output.js";
import { progressBar } from "./progress.js";
import { openClient } from "./client-commands.js";

export const CABLE_USAGE = `usage: valise cable <send|list|show> --profile DIR [options] [--json]

  cable send --action UNIT[,UNIT…] [--info UNIT[,UNIT…]] --precedence P --label LABEL --subject TEXT
             (--body TEXT | --body-file F) [--attach FILE]… [--from UNIT] [--corrects REF]
      Encrypts the cable once, uploads it, releases it (the server assigns the reference, e.g.
      EMB/BEIJING 2026/000123) and sends its key to every addressee unit. Prints {"reference","id",…} with --json.
      P is ROUTINE, PRIORITY, IMMEDIATE or FLASH. A released cable cannot be edited: send a new one with
      --corrects REF. --from picks the originating unit when you belong to several.
  cable list [--unit UNIT] [--precedence P] [--limit N]
      Cables of your units you are cleared for, FLASH first, then oldest first.
  cable show REF|ID [--save-attachments DIR]
      Decrypts the cable (subject, body, attachments), checks it against what its sender signed, marks it read
      for your unit(s) and prints it with its per-addressee receipts (delivered, read).`;

export const DOC_USAGE = `usage: valise doc <put|get|list> --profile DIR [options] [--json]

  doc put --to HANDLE|UNIT --label LABEL FILE     encrypt and upload FILE as a new document, shared with a user
                                                  or a unit; prints {"id","version",…} with --json
  doc put --doc ID FILE                           upload FILE as a new version of document ID (old versions kept)
  doc put --resume FILE                           continue an upload of FILE that was stopped (this command was
                                                  interrupted, killed or timed out): same document, same key, from
                                                  the server's byte count; FILE must be unchanged (the part
                                                  already sent is read again and checked by SHA-256: another
                                                  content is refused with [conflict] before anything is sent)
  doc put --resume                                list the interrupted uploads this profile can resume
  doc get ID [--version N] --out FILE             download, verify and decrypt (default: the latest version)
  doc list                                        documents you may read, with versions and file names
Files of any size are encrypted in 1 MiB chunks on this machine; uploads and downloads are streamed, resume
after a dropped connection or a server restart (retrying with backoff for up to a minute) and show a progress bar
on a terminal. An upload in progress is recorded in the profile until its document version exists, so
--resume continues it; the server deletes uploads never completed after its --upload-ttl (default 24h).
File names are encrypted too.`;

const list = (v: string[] | string | undefined) =>
  (Array.isArray(v) ? v : v === undefined ? [] : [v])
    .flatMap((x) => x.split(","))
    .map((x) => x.trim())
    .filter((x) => x.length > 0);

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

export async function cable(argv: string[]): Promise<number> {
  const [verb, ...rest] = argv;
  const { values, positionals } = parse(
    rest,
    {
      profile: { type: "string" },
      action: { type: "string", multiple: true },
      info: { type: "string", multiple: true },
      precedence: { type: "string" },
      label: { type: "string" },
      subject: { type: "string" },
      body: { type: "string" },
      "body-file": { type: "string" },
      attach: { type: "string", multiple: true },
      from: { type: "string" },
      corrects: { type: "string" },
      unit: { type: "string" },
      limit: { type: "string" },
      "save-attachments": { type: "string" },
      json: { type: "boolean" },
    },
    CABLE_USAGE,
  );
  if (values.help || verb === undefined || verb === "--help" || verb === "-h") {
    console.log(CABLE_USAGE);
    return verb === undefined ? 2 : 0;
  }
  const c = await openClient(str(values.profile, "--profile DIR", CABLE_USAGE));
  switch (verb) {
    case "send": {
      const action = list(values.action);
      if (action.length === 0) throw new UsageError(`missing --action UNIT[,UNIT…]\n\n${CABLE_USAGE}`);
      if (values.body !== undefined && values["body-file"] !== undefined)
        throw new UsageError("give either --body or --body-file, not both");
      const body =
        values.body ?? (values["body-file"] !== undefined ? readFileSync(values["body-file"], "utf8") : undefined);
      if (body === undefined) throw new UsageError(`missing --body TEXT or --body-file F\n\n${CABLE_USAGE}`);
      const attachments = (values.attach ?? []).map((f) => {
        const s = fileSource(resolve(f));
        return { name: s.name, source: s };
      });
      const bar = progressBar("upload");
      const r = await c.cables.send(
        {
          from: values.from,
          action,
          info: list(values.info),
          precedence: str(values.precedence, "--precedence P", CABLE_USAGE),
          label: str(values.label, "--label LABEL", CABLE_USAGE),
          subject: str(values.subject, "--subject TEXT", CABLE_USAGE),
          body,
          attachments,
          corrects: values.corrects,
        },
        bar,
      );
      bar.end();
      const h = await c.history();
      if (h) {
        // A cable this device released is searchable here like one it received.
        h.noteCable({
          id: r.id,
          reference: r.reference,
          subject: str(values.subject, "--subject TEXT", CABLE_USAGE),
          from: c.handle,
          originator: r.cable.originator,
          label: r.cable.label,
          time: iso(r.cable.createdAt) ?? new Date().toISOString(),
          precedence: r.cable.precedence,
          body,
          attachments: attachments.map((a) => a.name),
        });
        await h.save();
      }
      if (values.json)
        printJson({
          reference: r.reference,
          id: r.id,
          precedence: r.cable.precedence,
          label: r.cable.label,
          originator: r.cable.originator,
          action: r.cable.action,
          info: r.cable.info,
          size: r.cable.size,
          createdAt: iso(r.cable.createdAt),
        });
      else console.log(`released ${q(r.reference)} [${q(r.cable.label)}] ${q(r.cable.precedence)} (${q(r.id)})`);
      return 0;
    }
    case "list": {
      const limit = values.limit !== undefined ? Number(values.limit) : undefined;
      if (limit !== undefined && (!Number.isInteger(limit) || limit < 1))
        throw new UsageError("--limit must be a positive integer");
      const cables = await c.cables.list({
        ...(values.unit ? { unit: values.unit } : {}),
        ...(values.precedence ? { precedence: values.precedence.toUpperCase() } : {}),
        ...(limit ? { limit } : {}),
      });
      const out = cables.map((x) => ({
        reference: x.reference,
        id: x.id,
        precedence: x.precedence,
        label: x.label,
        originator: x.originator,
        sender: x.sender,
        action: x.action,
        info: x.info,
        subject: x.subject,
        corrects: x.corrects,
        createdAt: iso(x.createdAt),
        receipts: x.receipts.map(receiptJson),
        ...(x.problem ? { problem: x.problem } : {}),
      }));
      // The search index learns every cable whose subject this device can read.
      const h = await c.history();
      if (h) {
        for (const x of out)
          if (x.subject !== null)
            h.noteCable({
              id: x.id,
              reference: x.reference,
              subject: x.subject,
              from: x.sender ?? x.originator,
              originator: x.originator,
              label: x.label,
              time: x.createdAt ?? "",
              precedence: x.precedence,
            });
        await h.save();
      }
      if (values.json) printJson({ cables: out });
      else if (out.length === 0) console.log("no cables");
      else
        for (const x of out)
          console.log(
            `${q(x.precedence).padEnd(9)} ${q(x.reference)}  [${q(x.label)}]  ${x.subject === null ? "(no key on this device)" : q(x.subject)}${x.problem ? `  ALERT ${q(x.problem)}` : ""}`,
          );
      return 0;
    }
    case "show": {
      const ref = str(positionals.join(" "), "REF", CABLE_USAGE);
      const dir = values["save-attachments"] ? resolve(values["save-attachments"]) : null;
      if (dir) mkdirSync(dir, { recursive: true, mode: 0o700 });
      const saved: string[] = [];
      const bar = progressBar("download");
      const r = await c.cables.open(ref, {
        onProgress: bar,
        ...(dir
          ? {
              onAttachment: async (a, bytes) => {
                const path = join(dir, safeName(a.name, a.index));
                await writeFileAtomic(path, bytes);
                saved.push(path);
              },
            }
          : {}),
      });
      bar.end();
      const out = {
        reference: r.cable.reference,
        id: r.cable.id,
        precedence: r.cable.precedence,
        label: r.cable.label,
        originator: r.cable.originator,
        sender: r.cable.sender,
        action: r.cable.action,
        info: r.cable.info,
        corrects: r.cable.corrects,
        createdAt: iso(r.cable.createdAt),
        subject: r.subject,
        body: r.body,
        attachments: r.attachments.map((a, i) => ({ ...a, ...(saved[i] ? { saved: saved[i] } : {}) })),
        receipts: r.cable.receipts.map(receiptJson),
      };
      const h = await c.history();
      if (h) {
        // Opened: its body and attachment names join the search index (sealed on this device like the history).
        h.noteCable({
          id: out.id,
          reference: out.reference,
          subject: out.subject,
          from: out.sender ?? out.originator,
          originator: out.originator,
          label: out.label,
          time: out.createdAt ?? "",
          precedence: out.precedence,
          body: out.body,
          attachments: out.attachments.map((a) => a.name),
        });
        await h.save();
      }
      if (values.json) printJson(out);
      else {
        console.log(`${q(out.label)}\n${q(out.precedence)}  ${q(out.reference)}  ${out.createdAt ?? ""}`);
        console.log(`FROM ${q(out.originator)} (${q(out.sender)})`);
        console.log(`ACTION ${q(out.action.join(", "))}${out.info.length ? `\nINFO ${q(out.info.join(", "))}` : ""}`);
        if (out.corrects) console.log(`CORRECTS ${q(out.corrects)}`);
        console.log(`SUBJECT ${q(out.subject)}\n\n${safeText(out.body)}\n`);
        for (const a of out.attachments)
          console.log(`attachment ${q(a.name)} (${a.size} bytes)${a.saved ? ` → ${q(a.saved)}` : ""}`);
        for (const x of out.receipts)
          console.log(
            `receipt ${q(x.unit)} (${q(x.role)}): ${x.deliveredAt ? `delivered ${x.deliveredAt} to ${q(x.deliveredBy)}` : "not delivered"}` +
              `${x.readAt ? `, read ${x.readAt} by ${q(x.readBy)}` : ""}`,
          );
        console.log(q(out.label));
      }
      return 0;
    }
    default:
      throw new UsageError(`unknown cable command ${JSON.stringify(verb)}\n\n${CABLE_USAGE}`);
  }
}

function receiptJson(x: {
  unit: string;
  role: string;
  deliveredAt: number | null;
  deliveredBy: string | null;
  readAt: number | null;
  readBy: string | null;
}) {
  return {
    unit: x.unit,
    role: x.role,
    deliveredAt: iso(x.deliveredAt),
    deliveredBy: x.deliveredBy,
    readAt: iso(x.readAt),
    readBy: x.readBy,
  };
}

/** An attachment name from a sender is untrusted: never a path. */
function safeName(name: string, index: number): string {
  const b = basename(name.replace(/\\/g, "/")).replace(/[\x00-\x1f]/g, "");
  return b && b !== "." && b !== ".." ? b : `attachment-${index + 1}`;
}

export async function doc(argv: string[]): Promise<number> {
  const [verb, ...rest] = argv;
  const { values, positionals } = parse(
    rest,
    {
      profile: { type: "string" },
      to: { type: "string" },
      label: { type: "string" },
      doc: { type: "string" },
      from: { type: "string" },
      resume: { type: "boolean" },
      version: { type: "string" },
      out: { type: "string" },
      json: { type: "boolean" },
    },
    DOC_USAGE,
  );
  if (values.help || verb === undefined || verb === "--help" || verb === "-h") {
    console.log(DOC_USAGE);
    return verb === undefined ? 2 : 0;
  }
  const c = await openClient(str(values.profile, "--profile DIR", DOC_USAGE));
  switch (verb) {
    case "put": {
      if (values.resume && positionals[0] === undefined) {
        const pending = c.documents.pendingUploads();
        if (values.json)
          printJson({
            uploads: pending.map((u) => ({
              blob: u.blob,
              source: u.source,
              name: u.name,
              id: u.id,
              version: u.version,
              started: iso(u.startedAt),
            })),
          });
        else if (pending.length === 0) console.log("no interrupted uploads");
        else
          for (const u of pending)
            console.log(`${u.source.split("\n")[0] ?? ""}  ${u.id} v${u.version}  started ${iso(u.startedAt) ?? ""}`);
        return 0;
      }
      const file = str(positionals[0], "FILE", DOC_USAGE);
      const src = fileSource(resolve(file));
      const sourceId = fileSourceId(resolve(file));
      if (values.resume) {
        const pending = c.documents.pendingUploads().filter((u) => u.source === sourceId);
        const u = pending.at(-1);
        if (!u)
          throw new ValiseError(
            "not_found",
            `no interrupted upload of ${file} (unchanged since) in this profile; see valise doc put --resume`,
          );
        const bar = progressBar("upload");
        const r = await c.documents.put({ name: u.name, source: src, sourceId, resume: u }, bar);
        bar.end();
        if (values.json)
          printJson({
            id: r.id,
            version: r.version,
            label: r.document.label,
            to: r.document.to,
            name: u.name,
            size: src.size,
            resumed: true,
          });
        else console.log(`uploaded ${u.name} as ${r.id} version ${r.version} [${r.document.label}] (resumed)`);
        return 0;
      }
      if (!values.doc) {
        str(values.to, "--to HANDLE|UNIT", DOC_USAGE);
        canonicalLabel(str(values.label, "--label LABEL", DOC_USAGE));
      }
      const bar = progressBar("upload");
      const r = await c.documents.put(
        {
          to: values.to,
          label: values.label,
          name: src.name,
          source: src,
          document: values.doc,
          fromUnit: values.from,
          sourceId,
        },
        bar,
      );
      bar.end();
      const v = r.document.versions.find((x) => x.version === r.version);
      if (values.json)
        printJson({
          id: r.id,
          version: r.version,
          label: r.document.label,
          to: r.document.to,
          name: src.name,
          size: src.size,
          encryptedSize: v?.size ?? null,
        });
      else console.log(`uploaded ${q(src.name)} as ${q(r.id)} version ${r.version} [${q(r.document.label)}]`);
      return 0;
    }
    case "get": {
      const id = str(positionals[0], "ID", DOC_USAGE);
      const out = resolve(str(values.out, "--out FILE", DOC_USAGE));
      const version = values.version !== undefined ? Number(values.version) : undefined;
      if (version !== undefined && (!Number.isInteger(version) || version < 1))
        throw new UsageError("--version must be a positive integer");
      const bar = progressBar("download");
      const r = await c.documents.get(id, { version, onProgress: bar });
      const n = await writeFileAtomic(out, r.bytes);
      bar.end();
      if (values.json) printJson({ id, version: r.version, name: r.name, label: r.label, size: n, out });
      else console.log(`${q(r.name)} (version ${r.version}, ${n} bytes, [${q(r.label)}]) → ${q(out)}`);
      return 0;
    }
    case "list": {
      const docs = await c.documents.list();
      const out = docs.map((d) => ({
        id: d.id,
        name: d.versions.at(-1)?.name ?? null,
        label: d.label,
        owner: d.owner,
        to: d.to,
        createdAt: iso(d.createdAt),
        versions: d.versions.map((v) => ({
          version: v.version,
          name: v.name,
          size: v.plainSize,
          createdAt: iso(v.createdAt),
          createdBy: v.createdBy,
        })),
      }));
      const h = await c.history();
      if (h) {
        // Document names this device can read join the search index (kept sealed on this device).
        for (const d of out)
          for (const v of d.versions)
            if (v.name !== null)
              h.noteDocument({
                id: d.id,
                version: v.version,
                name: v.name,
                label: d.label,
                from: v.createdBy ?? d.owner,
                time: v.createdAt ?? "",
              });
        await h.save();
      }
      if (values.json) printJson({ documents: out });
      else if (out.length === 0) console.log("no documents");
      else
        for (const d of out)
          console.log(
            `${q(d.id)}  [${q(d.label)}]  ${d.name === null ? "(no key on this device)" : q(d.name)}  v${d.versions.length}  from ${q(d.owner)} to ${q(d.to.name)}`,
          );
      return 0;
    }
    default:
      throw new ValiseError("bad_request", `unknown doc command ${JSON.stringify(verb)}; see valise doc --help`);
  }
}

/** A file as the same plaintext again: its absolute path, size and modification time (one per line). */
function fileSourceId(path: string): string {
  const st = statSync(path);
  return `${path}\n${st.size}\n${Math.floor(st.mtimeMs)}`;
}
