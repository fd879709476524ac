/**
 * `valise audit …`: security officers read and verify the server's audit log (DESIGN.md §3 "Audit log") with their
 * own device's session. Everything printed is checked against a checkpoint signed with the log key: `tail` and
 * `query` show only events with a valid inclusion proof in it; `verify` and `export` download every entry and
 * recompute the root.
 */
import { resolve } from "node:path";
import { writeFileSync } from "node:fs";
import {
  ValiseError,
  auditEventJson,
  auditLogOrigin,
  parseCosignatureVerifierKey,
  equalBytes,
  leafHash,
  parseAuditEvent,
  parseNoteVerifierKey,
  rootFromLeafHashes,
  toBase64,
  verifyCheckpointQuorum,
  verifyInclusion,
  type AuditEvent,
  type Checkpoint,
} from "@valise/core";
import { ValiseClient, type HttpTransport } from "@valise/client";
import { FileKeyStore } from "@valise/client/node/file-store";
import { parse, str, UsageError } from "./args.js";
import { printJson } from "./output.js";
import { installNodeCrypto } from "./crypto.js";

export const AUDIT_USAGE = `usage: valise audit <command> --profile DIR [options]

For security officers (role officer or admin; anyone else is refused, and the refusal is itself audited). Every
command first verifies the audit log's latest checkpoint with the log key, and prints only what it proves.
  tail   [--n N] [--json]                the newest N events (default 20)
  query  [--actor HANDLE] [--action A] [--object ID] [--since ISO] [--until ISO] [--limit N] [--json]
                                         events matching all the given fields, newest first (default limit 100)
  verify --json                          download every event, recompute the Merkle root, compare it with the signed
                                         checkpoint: prints {"ok":true|false,"size":N,…,"reason"}; exit 1 if not ok
  export --jsonl [--out FILE]            every event of the checkpointed log, one JSON object per line (the DESIGN
                                         format: id, time, actor, device, source, client, action, object,
                                         target_device, label, unit, bytes, canary, outcome), verified as in verify
Options:
  --profile DIR     the officer's enrolled device profile (its session is used)
  --log-key VKEY    the log's verifier key (valise admin log key); default: the profile's enrollment trust anchors,
                    else the key the server announces (trust on first use: say so in "keySource")
Actions: login, message.read, message.send, directory.read, directory.keypackage.add, directory.device.add,
  directory.device.revoke, directory.clearance.set, directory.role.set, audit.read (cable.* and document.* later).`;

const PAGE = 1000;

interface Verified {
  checkpoint: Checkpoint;
  keySource: "flag" | "profile" | "server";
}

interface Witnessing {
  witnesses: string[];
  quorum: number;
}

async function openOfficer(
  profile: string,
): Promise<{ client: ValiseClient; trustKey: string | undefined; witnessing: Witnessing }> {
  await installNodeCrypto();
  const store = new FileKeyStore(resolve(profile));
  const state = await store.load();
  const client = await ValiseClient.open({ store });
  await client.login();
  const trust = state?.trust;
  return {
    client,
    trustKey: trust?.logKey,
    // The witnesses and quorum pinned at enrollment apply to the audit log too (it is witnessed like the directory).
    witnessing: { witnesses: trust?.witnesses ?? [], quorum: trust?.quorum ?? 0 },
  };
}

/** Fetch and verify the audit checkpoint: the log key's signature, the audit origin. Throws what is wrong. */
async function verifiedCheckpoint(
  t: HttpTransport,
  flagKey: string | undefined,
  trustKey: string | undefined,
  witnessing: Witnessing = { witnesses: [], quorum: 0 },
) {
  let vkey = flagKey ?? trustKey;
  const keySource: Verified["keySource"] = flagKey ? "flag" : trustKey ? "profile" : "server";
  if (!vkey) vkey = (await t.auditKey()).vkey;
  let verifier;
  try {
    verifier = parseNoteVerifierKey(vkey);
  } catch (e) {
    throw new UsageError(`--log-key: ${e instanceof Error ? e.message : String(e)}`);
  }
  const note = await t.auditCheckpoint();
  const witnesses = witnessing.witnesses.map((w) => parseCosignatureVerifierKey(w));
  const r = verifyCheckpointQuorum(note, verifier, witnesses, witnessing.quorum, {
    origin: auditLogOrigin(verifier.name),
  });
  if (!r.ok) throw new ValiseError("bad_encoding", `audit checkpoint does not verify: ${r.reason}`);
  return { checkpoint: r.checkpoint, keySource } satisfies Verified;
}

type Result = { ok: true; events: AuditEvent[] } | { ok: false; reason: string; index?: number };

/** Every entry of the tree of `cp.size`, each a well-formed event, hashing to the checkpoint's root. */
async function downloadAll(t: HttpTransport, cp: Checkpoint): Promise<Result> {
  const leaves: Uint8Array[] = [];
  const events: AuditEvent[] = [];
  for (let start = 0; start < cp.size; start += PAGE) {
    const count = Math.min(PAGE, cp.size - start);
    const page = await t.auditEntries(start, count);
    for (const [i, data] of page.entries()) {
      const p = parseAuditEvent(data);
      if (!p.ok)
        return { ok: false, reason: `entry ${start + i} is not an audit event: ${p.reason}`, index: start + i };
      events.push(p.event);
      leaves.push(leafHash(data));
    }
    if (page.length !== count)
      return {
        ok: false,
        reason: `the server returned ${page.length} of entries ${start}…${start + count - 1}: entries are missing`,
        index: start + page.length,
      };
  }
  if (!equalBytes(rootFromLeafHashes(leaves), cp.rootHash))
    return { ok: false, reason: "the entries do not hash to the checkpoint's root: the log was altered" };
  return { ok: true, events };
}

/** Query (or tail), keeping only events proven included in the checkpoint. */
async function provenEvents(
  t: HttpTransport,
  cp: Checkpoint,
  f: Parameters<HttpTransport["auditEvents"]>[0],
): Promise<AuditEvent[]> {
  const found = await t.auditEvents({ ...f, size: cp.size });
  const out: AuditEvent[] = [];
  for (const e of found) {
    const p = parseAuditEvent(e.entry);
    if (!p.ok) throw new ValiseError("bad_encoding", `entry ${e.index} is not an audit event: ${p.reason}`);
    if (!verifyInclusion(leafHash(e.entry), e.index, cp.size, e.proof, cp.rootHash))
      throw new ValiseError("bad_encoding", `entry ${e.index} is not in the signed audit log (inclusion proof fails)`);
    const ev = p.event;
    // The server filtered on its own index columns: check the proven events really match.
    if (
      (f.actor && ev.actor !== f.actor) ||
      (f.action && ev.action !== f.action) ||
      (f.object && ev.object !== f.object)
    )
      throw new ValiseError("bad_encoding", `entry ${e.index} does not match the query`);
    out.push(ev);
  }
  return out;
}

function printEvents(events: AuditEvent[], json: boolean, size: number): void {
  if (json) {
    printJson({ size, events: events.map((e) => JSON.parse(auditEventJson(e)) as unknown) });
    return;
  }
  if (events.length === 0) console.log("no events");
  for (const e of events)
    console.log(
      `${e.time} ${e.outcome === "denied" ? "DENIED " : ""}${e.actor}${e.device ? `/${e.device}` : ""} ${e.action} ` +
        `${e.object}${e.target_device ? ` ${e.target_device}` : ""}${e.label ? ` [${e.label}]` : ""} ${e.bytes} B ` +
        `from ${e.source}`,
    );
}

function positiveInt(v: string | undefined, name: string, dflt: number, max: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 1 || n > max) throw new UsageError(`${name} must be an integer 1-${max}`);
  return n;
}

function isoTime(v: string | undefined, name: string): string | undefined {
  if (v === undefined) return undefined;
  if (Number.isNaN(Date.parse(v))) throw new UsageError(`${name} must be an ISO 8601 time, e.g. 2026-03-02T09:00Z`);
  return new Date(Date.parse(v)).toISOString();
}

export async function audit(argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    argv,
    {
      profile: { type: "string" },
      "log-key": { type: "string" },
      n: { type: "string" },
      limit: { type: "string" },
      actor: { type: "string" },
      action: { type: "string" },
      object: { type: "string" },
      since: { type: "string" },
      until: { type: "string" },
      json: { type: "boolean" },
      jsonl: { type: "boolean" },
      out: { type: "string" },
    },
    AUDIT_USAGE,
  );
  if (values.help || positionals.length === 0) {
    console.log(AUDIT_USAGE);
    return values.help ? 0 : 2;
  }
  const cmd = positionals.join(" ");
  if (!["tail", "query", "verify", "export"].includes(cmd))
    throw new UsageError(`unknown audit command ${JSON.stringify(cmd)}\n\n${AUDIT_USAGE}`);
  const { client, trustKey, witnessing } = await openOfficer(str(values.profile, "--profile DIR", AUDIT_USAGE));
  const t = client.transport;
  try {
    const { checkpoint: cp, keySource } = await verifiedCheckpoint(
      t,
      values["log-key"],
      trustKey,
      values["log-key"] ? undefined : witnessing,
    );
    switch (cmd) {
      case "tail": {
        const events = await provenEvents(t, cp, { limit: positiveInt(values.n, "--n", 20, 1000) });
        printEvents(events.reverse(), values.json === true, cp.size);
        return 0;
      }
      case "query": {
        const since = isoTime(values.since, "--since");
        const until = isoTime(values.until, "--until");
        const events = await provenEvents(t, cp, {
          actor: values.actor,
          action: values.action,
          object: values.object,
          since,
          until,
          limit: positiveInt(values.limit, "--limit", 100, 1000),
        });
        printEvents(events, values.json === true, cp.size);
        return 0;
      }
      case "verify": {
        const r = await downloadAll(t, cp);
        const base = { size: cp.size, origin: cp.origin, rootHash: toBase64(cp.rootHash), keySource };
        if (values.json)
          printJson(r.ok ? { ok: true, ...base } : { ok: false, ...base, reason: r.reason, index: r.index });
        else
          console.log(
            r.ok
              ? `ok: ${cp.size} events, all in the signed checkpoint (${cp.origin})`
              : `NOT OK: ${r.reason} (checkpoint size ${cp.size})`,
          );
        return r.ok ? 0 : 1;
      }
      case "export": {
        if (!values.jsonl) throw new UsageError(`export needs --jsonl\n\n${AUDIT_USAGE}`);
        const r = await downloadAll(t, cp);
        if (!r.ok) throw new ValiseError("bad_encoding", `audit log does not verify, nothing exported: ${r.reason}`);
        const text = r.events.map((e) => `${auditEventJson(e)}\n`).join("");
        if (values.out) writeFileSync(resolve(values.out), text, { mode: 0o600 });
        else await new Promise<void>((done) => process.stdout.write(text, () => done()));
        return 0;
      }
    }
    return 2;
  } finally {
    await client.save();
  }
}
