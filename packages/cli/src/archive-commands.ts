/**
 * `valise archive export|verify` (issue 14 part 3): the records archive of a unit, decrypted on the archivist's
 * machine only, with a signed manifest a third party can check without a profile or a server.
 */
import { createHash } from "node:crypto";
import {
  createReadStream,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { basename, join, relative, resolve, sep } from "node:path";
import { ValiseError, fromBase64, toBase64 } from "@valise/core";
import {
  ARCHIVE_FORMAT,
  parseTrustAnchors,
  verifyArchiveProofs,
  verifyArchiveSignature,
  type ArchiveEvidence,
} from "@valise/client";
import { writeFileAtomic } from "@valise/client/node/files";
import { parse, str, UsageError } from "./args.js";
import { openClient } from "./client-commands.js";
import { printJson } from "./output.js";

export const ARCHIVE_USAGE = `usage: valise archive <export|verify> [options] [--json]

  archive export --profile DIR [--since TIME] [--until TIME] --out DIR
      The records archive of the units the directory log makes this device's user the archive of (valise admin
      archive assign): every cable (header, body, attachments) and document version created from --since (ISO
      8601, default the beginning) until before --until (default now), decrypted on this machine into --out (a
      new or empty directory; files readable by this user only), with manifest.json (format valise-archive/1:
      references, labels, the SHA-256 and size of every file, the directory-log checkpoint the export was verified
      at, the log entries with inclusion proofs that add this device and assign its units) and manifest.sig (this
      device's Ed25519 signature over manifest.json). Items this device holds no key for are listed under
      "missing". Conversation messages: those of the units' channels and link conversations that this device
      holds in its sealed history (valise history: every message it received or sent as a member, kept as it
      decrypts them; MLS gives it nothing from before its device joined a conversation), sent from --since until
      before --until (server time), one directory per conversation: conversations/NNNN/conversation.json (id,
      kind, unit, from unit, label, first and last seq held) and messages.json (seq, time, from, device, label,
      kind, text), both listed with their SHA-256 in the manifest like every other file.
  archive verify DIR [--bundle FILE]
      Checks an export as a third party: the signature over manifest.json by the key it names, every listed file's
      SHA-256 and size, no file missing and none added. With --bundle (an enrollment bundle or {logKey,witnesses,
      quorum}): the checkpoint is signed by the log and a witness quorum, and it holds the entries adding the
      signing device to the archivist and assigning each unit. Exit 0 only if everything holds; prints each problem.`;

interface FileRecord {
  path: string;
  size: number;
  sha256: string;
}
type ArchiveItem =
  | {
      kind: "cable";
      reference: string;
      id: string;
      label: string;
      precedence: string;
      originator: string;
      createdAt: string;
      files: string[];
    }
  | {
      kind: "document";
      id: string;
      version: number;
      label: string;
      to: string;
      name: string;
      createdAt: string;
      files: string[];
    }
  | {
      kind: "conversation";
      id: string;
      conversationKind: string;
      unit: string | null;
      fromUnit: string | null;
      label: string;
      messages: number;
      files: string[];
    };
interface Manifest extends ArchiveEvidence {
  format: string;
  server: string;
  exportedAt: string;
  since: string;
  until: string;
  messages: { included: boolean; conversations: number; count: number; source: string };
  items: ArchiveItem[];
  missing: { kind: string; reference?: string; id: string; version?: number; label: string; reason: string }[];
  files: FileRecord[];
}

const MANIFEST = "manifest.json";
const SIGNATURE = "manifest.sig";

async function sha256File(path: string): Promise<string> {
  const h = createHash("sha256");
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest("hex");
}

/** A name from a peer is never a path. */
function safeName(name: string, fallback: string): string {
  const b = basename(name.replace(/\\/g, "/"))
    .replace(/[\x00-\x1f]/g, "")
    .slice(0, 200);
  return b && b !== "." && b !== ".." && b !== MANIFEST && b !== SIGNATURE ? b : fallback;
}

function time(v: string | undefined, name: string, fallback: number): number {
  if (v === undefined) return fallback;
  const t = Date.parse(v);
  if (!Number.isFinite(t)) throw new UsageError(`${name} must be an ISO 8601 date or time (not ${JSON.stringify(v)})`);
  return t;
}

const pad = (n: number) => String(n).padStart(4, "0");

export async function archive(argv: string[]): Promise<number> {
  const [verb, ...rest] = argv;
  const { values, positionals } = parse(
    rest,
    {
      profile: { type: "string" },
      since: { type: "string" },
      until: { type: "string" },
      out: { type: "string" },
      bundle: { type: "string" },
      json: { type: "boolean" },
    },
    ARCHIVE_USAGE,
  );
  if (values.help || verb === undefined || verb === "--help" || verb === "-h") {
    console.log(ARCHIVE_USAGE);
    return verb === undefined ? 2 : 0;
  }
  if (verb === "export") return exportArchive(values);
  if (verb === "verify") return verifyArchive(str(positionals[0], "DIR", ARCHIVE_USAGE), values);
  throw new UsageError(`unknown archive command ${JSON.stringify(verb)}\n\n${ARCHIVE_USAGE}`);
}

async function exportArchive(values: {
  profile?: string | undefined;
  since?: string | undefined;
  until?: string | undefined;
  out?: string | undefined;
  json?: boolean | undefined;
}): Promise<number> {
  const out = resolve(str(values.out, "--out DIR", ARCHIVE_USAGE));
  const since = time(values.since, "--since", 0);
  const until = time(values.until, "--until", Date.now());
  if (until <= since) throw new UsageError("--until must be after --since");
  if (existsSync(out) && readdirSync(out).length > 0)
    throw new ValiseError("conflict", `${out} is not empty: an export goes into a new or empty directory`);
  const c = await openClient(str(values.profile, "--profile DIR", ARCHIVE_USAGE));
  // Which units, per the verified log (refused for a user the log does not make an archive), after a catch-up.
  const evidence = await c.archiveEvidence();
  const units = new Set(evidence.units);
  process.umask(0o077);
  mkdirSync(out, { recursive: true, mode: 0o700 });
  const files: FileRecord[] = [];
  const items: ArchiveItem[] = [];
  const missing: Manifest["missing"] = [];
  const write = (rel: string, data: string | Uint8Array) => {
    const path = join(out, rel);
    mkdirSync(join(path, ".."), { recursive: true, mode: 0o700 });
    writeFileSync(path, data, { mode: 0o600 });
    return rel;
  };
  const inRange = (t: number) => t >= since && t < until;

  // Cables addressed to or from the archive's units (the server lists those of the user's units, paged).
  const seen = new Set<string>();
  const cables = [];
  for (let offset = 0; ; offset += 1000) {
    const page = await c.transport.cables({ offset, limit: 1000 });
    cables.push(...page);
    if (page.length < 1000) break;
  }
  cables.sort((a, b) => a.createdAt - b.createdAt || a.id.localeCompare(b.id));
  let n = 0;
  for (const cable of cables) {
    if (seen.has(cable.id) || !inRange(cable.createdAt)) continue;
    seen.add(cable.id);
    if (![cable.originator, ...cable.action, ...cable.info].some((u) => units.has(u))) continue;
    const dir = `cables/${pad(++n)}`;
    const written: string[] = [];
    try {
      const r = await c.cables.open(cable.id, {
        markRead: false, // the archive reading a cable is not the unit reading it
        onAttachment: async (a, bytes) => {
          const rel = `${dir}/attachments/${String(a.index + 1).padStart(2, "0")}-${safeName(a.name, "attachment")}`;
          mkdirSync(join(out, dir, "attachments"), { recursive: true, mode: 0o700 });
          await writeFileAtomic(join(out, rel), bytes);
          written.push(rel);
        },
      });
      const meta = {
        reference: r.cable.reference,
        id: r.cable.id,
        precedence: r.cable.precedence,
        label: r.cable.label,
        originator: r.cable.originator,
        sender: r.cable.sender,
        action: r.cable.action,
        info: r.cable.info,
        corrects: r.cable.corrects ?? null,
        createdAt: new Date(r.cable.createdAt).toISOString(),
        subject: r.subject,
        attachments: r.attachments,
      };
      const metaPath = write(`${dir}/cable.json`, `${JSON.stringify(meta, null, 2)}\n`);
      const bodyPath = write(`${dir}/body.txt`, r.body);
      items.push({
        kind: "cable",
        reference: meta.reference,
        id: meta.id,
        label: meta.label,
        precedence: meta.precedence,
        originator: meta.originator,
        createdAt: meta.createdAt,
        files: [metaPath, bodyPath, ...written],
      });
    } catch (e) {
      rmSync(join(out, dir), { recursive: true, force: true });
      n--;
      missing.push({
        kind: "cable",
        reference: cable.reference,
        id: cable.id,
        label: cable.label,
        reason: e instanceof Error ? e.message : String(e),
      });
    }
  }

  // Document versions shared with the archive's units.
  let m = 0;
  for (const d of await c.documents.list()) {
    if (d.to.kind !== "unit" || !units.has(d.to.name)) continue;
    for (const v of [...d.versions].sort((a, b) => a.version - b.version)) {
      if (!inRange(v.createdAt)) continue;
      const dir = `documents/${pad(++m)}`;
      try {
        const r = await c.documents.get(d.id, { version: v.version });
        const rel = `${dir}/content/${safeName(r.name, "document")}`;
        mkdirSync(join(out, dir, "content"), { recursive: true, mode: 0o700 });
        await writeFileAtomic(join(out, rel), r.bytes);
        const meta = {
          id: d.id,
          version: v.version,
          label: r.label,
          owner: d.owner,
          to: d.to,
          name: r.name,
          size: r.size,
          createdAt: new Date(v.createdAt).toISOString(),
          createdBy: v.createdBy,
        };
        const metaPath = write(`${dir}/document.json`, `${JSON.stringify(meta, null, 2)}\n`);
        items.push({
          kind: "document",
          id: d.id,
          version: v.version,
          label: r.label,
          to: d.to.name,
          name: r.name,
          createdAt: meta.createdAt,
          files: [metaPath, rel],
        });
      } catch (e) {
        rmSync(join(out, dir), { recursive: true, force: true });
        m--;
        missing.push({
          kind: "document",
          id: d.id,
          version: v.version,
          label: d.label,
          reason: e instanceof Error ? e.message : String(e),
        });
      }
    }
  }

  // Conversation messages of the archive's units, from this device's own sealed history (recorded as they were
  // decrypted, including by the catch-up above).
  const h = await c.history();
  if (!h) throw new ValiseError("bad_request", "this client keeps no message history: no conversations to export");
  const convMeta = new Map<string, { kind: string; unit: string | null; fromUnit: string | null; label: string }>();
  for (const rc of await c.transport.conversations())
    convMeta.set(rc.id, { kind: rc.kind, unit: rc.unit, fromUnit: rc.fromUnit ?? null, label: rc.label });
  for (const lc of c.conversationList())
    // this device's own view wins over the server's list
    convMeta.set(lc.id, { kind: lc.kind, unit: lc.unit, fromUnit: lc.fromUnit ?? null, label: lc.label });
  let k = 0;
  let messageCount = 0;
  for (const conv of [...new Set(h.data.messages.map((x) => x.conversation))].sort()) {
    const meta = convMeta.get(conv);
    if (!meta || (meta.kind !== "unit" && meta.kind !== "link")) continue;
    if (!(meta.unit !== null && units.has(meta.unit)) && !(meta.fromUnit !== null && units.has(meta.fromUnit)))
      continue;
    const msgs = h.messages(conv).filter((x) => inRange(Date.parse(x.time)));
    if (msgs.length === 0) continue;
    const dir = `conversations/${pad(++k)}`;
    const info = {
      id: conv,
      kind: meta.kind,
      unit: meta.unit,
      fromUnit: meta.fromUnit,
      label: meta.label,
      messages: msgs.length,
      firstSeq: msgs[0]!.seq,
      lastSeq: msgs[msgs.length - 1]!.seq,
    };
    const rows = msgs.map((x) => ({
      seq: x.seq,
      time: x.time,
      from: x.from,
      device: x.device ?? null,
      label: x.label,
      kind: x.kind,
      text: x.text,
    }));
    const infoPath = write(`${dir}/conversation.json`, `${JSON.stringify(info, null, 2)}\n`);
    const msgPath = write(`${dir}/messages.json`, `${JSON.stringify(rows, null, 2)}\n`);
    messageCount += msgs.length;
    items.push({
      kind: "conversation",
      id: conv,
      conversationKind: meta.kind,
      unit: meta.unit,
      fromUnit: meta.fromUnit,
      label: meta.label,
      messages: msgs.length,
      files: [infoPath, msgPath],
    });
  }

  for (const it of items)
    for (const rel of it.files) {
      const path = join(out, rel);
      files.push({ path: rel, size: lstatSync(path).size, sha256: await sha256File(path) });
    }
  files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const manifest: Manifest = {
    format: ARCHIVE_FORMAT,
    ...evidence,
    server: c.serverUrl,
    exportedAt: new Date().toISOString(),
    since: new Date(since).toISOString(),
    until: new Date(until).toISOString(),
    messages: {
      included: true,
      conversations: k,
      count: messageCount,
      source: "the messages this archivist device received or sent as a member (its sealed history)",
    },
    items,
    missing,
    files,
  };
  const bytes = Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`);
  writeFileSync(join(out, MANIFEST), bytes, { mode: 0o600 });
  writeFileSync(join(out, SIGNATURE), `${toBase64(await c.signArchiveManifest(bytes))}\n`, { mode: 0o600 });
  const summary = {
    out,
    units: evidence.units,
    cables: items.filter((i) => i.kind === "cable").length,
    documents: items.filter((i) => i.kind === "document").length,
    conversations: k,
    messages: messageCount,
    files: files.length,
    missing: missing.length,
    checkpoint: evidence.checkpoint.size,
  };
  if (values.json) printJson(summary);
  else {
    console.log(
      `archive of ${summary.units.join(", ")}: ${summary.cables} cable(s), ${summary.documents} document version(s), ` +
        `${summary.messages} message(s) in ${summary.conversations} conversation(s), ` +
        `${summary.files} file(s) in ${out}; verified at directory log size ${summary.checkpoint}`,
    );
    for (const x of missing)
      console.log(`  missing ${x.kind} ${x.reference ?? `${x.id} v${x.version}`} [${x.label}]: ${x.reason}`);
  }
  return 0;
}

/** Every regular file under `root`, relative, with `/` separators; symlinks and other kinds are problems. */
function walk(root: string, problems: string[]): string[] {
  const out: string[] = [];
  const visit = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      const st = lstatSync(path);
      const rel = relative(root, path).split(sep).join("/");
      if (st.isDirectory()) visit(path);
      else if (st.isFile()) out.push(rel);
      else problems.push(`${rel} is not a regular file`);
    }
  };
  visit(root);
  return out.sort();
}

async function verifyArchive(
  dirArg: string,
  values: { bundle?: string | undefined; json?: boolean | undefined },
): Promise<number> {
  const dir = resolve(dirArg);
  const problems: string[] = [];
  let manifest: Manifest | null = null;
  let raw: Buffer | null = null;
  try {
    raw = readFileSync(join(dir, MANIFEST));
    manifest = JSON.parse(raw.toString("utf8")) as Manifest;
    if (manifest.format !== ARCHIVE_FORMAT) problems.push(`unknown format ${JSON.stringify(manifest.format)}`);
    if (!Array.isArray(manifest.files) || typeof manifest.deviceKey !== "string")
      throw new Error("manifest.json lacks files or deviceKey");
  } catch (e) {
    problems.push(`manifest.json cannot be read: ${e instanceof Error ? e.message : String(e)}`);
    manifest = null;
  }
  if (manifest && raw) {
    let sig: Uint8Array | null = null;
    try {
      sig = fromBase64(readFileSync(join(dir, SIGNATURE), "utf8").trim());
    } catch (e) {
      problems.push(`manifest.sig cannot be read: ${e instanceof Error ? e.message : String(e)}`);
    }
    if (sig && !(await verifyArchiveSignature(manifest.deviceKey, raw, sig)))
      problems.push(`manifest.sig is not a valid signature over manifest.json by device ${String(manifest.device)}`);
    const listed = new Map<string, FileRecord>();
    for (const f of manifest.files) {
      const p = typeof f?.path === "string" ? f.path : "";
      if (!p || p.startsWith("/") || p.split("/").some((s) => s === ".." || s === "." || s === "")) {
        problems.push(`manifest lists an unsafe path ${JSON.stringify(f?.path)}`);
        continue;
      }
      if (listed.has(p)) problems.push(`manifest lists ${p} twice`);
      listed.set(p, f);
    }
    const present = walk(dir, problems).filter((p) => p !== MANIFEST && p !== SIGNATURE);
    for (const p of present) if (!listed.has(p)) problems.push(`${p} is not in the manifest (added)`);
    for (const [p, f] of listed) {
      const path = join(dir, ...p.split("/"));
      if (!existsSync(path) || !lstatSync(path).isFile()) {
        problems.push(`${p} is missing`);
        continue;
      }
      const size = lstatSync(path).size;
      if (size !== f.size) problems.push(`${p}: ${size} bytes, the manifest says ${f.size}`);
      if ((await sha256File(path)) !== f.sha256) problems.push(`${p}: SHA-256 differs from the manifest`);
    }
    if (values.bundle !== undefined) {
      const trust = parseTrustAnchors(JSON.parse(readFileSync(resolve(values.bundle), "utf8")));
      problems.push(...verifyArchiveProofs(manifest, trust));
    }
  }
  const ok = problems.length === 0;
  const result = {
    ok,
    dir,
    archivist: manifest?.archivist ?? null,
    device: manifest?.device ?? null,
    units: manifest?.units ?? [],
    items: manifest?.items?.length ?? 0,
    files: manifest?.files?.length ?? 0,
    checkpoint: manifest?.checkpoint?.size ?? null,
    logProofs: values.bundle !== undefined ? ok : null,
    problems,
  };
  if (values.json) printJson(result);
  else if (ok)
    console.log(
      `archive verified: ${result.items} item(s), ${result.files} file(s), signed by ${result.archivist} (device ` +
        `${result.device}) at directory log size ${result.checkpoint}` +
        (values.bundle !== undefined ? "; the log proves the device and its archive assignments" : ""),
    );
  else for (const p of problems) console.error(`archive NOT verified: ${p}`);
  return ok ? 0 : 1;
}
