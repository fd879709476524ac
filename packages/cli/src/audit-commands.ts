/**
 * `valise audit …`: security officers read and verify the server's audit log (DESIGN.md §3 "Audit log") with their
 * own device's session. Everything printed is checked against a checkpoint signed with the log key: `tail` and
 * `query` show only events with a valid inclusion proof in it; `verify` and `export` download every entry and
 * recompute the root.
 */
import { resolve } from "node:path";
import { readFileSync, writeFileSync } from "node:fs";
import {
  ValiseError,
  auditEventJson,
  describeStaleness,
  parseNoteVerifierKey,
  toBase64,
  type AuditEvent,
  type CheckpointFreshness,
} from "@valise/core";
import {
  ValiseClient,
  checkpointRefusal,
  type AuditAnchors,
  type AuditFilter,
  type AuditQueryResult,
} from "@valise/client";
import { FileKeyStore } from "@valise/client/node/file-store";
import { parse, str, UsageError } from "./args.js";
import { printJson } from "./output.js";
import { buildOfflineExport, verifyOfflineExport } from "./audit-offline.js";
import { installNodeCrypto } from "./crypto.js";
import { freshnessJson, maxCheckpointAgeMs, MAX_AGE_ENV } from "./freshness.js";

export const AUDIT_USAGE = `usage: valise audit <command> --profile DIR [options]

For security officers (role officer or admin; anyone else is refused, and the refusal is itself audited). Every
command first verifies the audit log's latest checkpoint with the log key, and prints only what it proves.
  tail   [--n N] [--json]                the newest N events (default 20)
  query  [--actor HANDLE] [--action A] [--object ID] [--since ISO] [--until ISO] [--limit N] [--json]
                                         events matching all the given fields, newest first (default limit 100)
  verify --json                          download every event, recompute the Merkle root, compare it with the signed
                                         checkpoint: prints {"ok":true|false,"size":N,…,"reason"}; exit 1 if not ok
                                         (also for a rollback or fork, "refused":"rollback"|"fork", and for a
                                         stale checkpoint, "stale":true with its "age" in seconds)
  export --jsonl [--out FILE]            every event of the checkpointed log, one JSON object per line (the DESIGN
                                         format: id, time, actor, device, source, client, action, object,
                                         target_device, label, unit, bytes, canary, outcome), verified as in verify
  export --out FILE [--from F] [--to T]  an offline export for an outside investigator: entries [F, T) (indices,
                                         or ISO times: the events from F up to before T; default the whole log)
                                         with their inclusion proofs, the signed and cosigned checkpoint and a
                                         consistency proof from the first T entries to it (one canonical JSON line)
  verify --offline FILE --log-key VKEY [--witness [URL=]VKEY …] [--quorum K] [--json]
                                         check such a file with no server and no profile: every signature line of
                                         the checkpoint by a given key, K (default: all given) witness cosignatures,
                                         every entry's proof, the file byte for byte; exit 0 ok, 1 not ok
Options:
  --profile DIR     the officer's enrolled device profile (its session is used)
  --log-key VKEY    the log's verifier key (valise admin log key); default: the profile's enrollment trust anchors,
                    else the key the server announces (trust on first use: say so in "keySource")
  --max-age S       freshness bound in seconds (default ${MAX_AGE_ENV} or 600): a checkpoint whose witness
                    quorum last cosigned it longer ago is stale (the server may be hiding newer events)
Rollback protection: the profile keeps the last audit checkpoint it accepted; a smaller one (rollback), another
root at the same size (fork) or a larger one without a valid consistency proof is refused by every command.
Freshness needs witnesses: with no witness quorum pinned it is "unproven". tail, query and export warn on stderr
about a stale checkpoint and add "stale" and "age" to --json output.
Actions: login, message.read, message.send, directory.read, directory.keypackage.add, directory.device.add,
  directory.device.revoke, directory.clearance.set, directory.role.set, audit.read (cable.* and document.* later).`;

async function openOfficer(profile: string, maxAgeMs: number | undefined): Promise<ValiseClient> {
  await installNodeCrypto();
  const client = await ValiseClient.open({
    store: new FileKeyStore(resolve(profile)),
    ...(maxAgeMs !== undefined ? { transparency: { maxCheckpointAgeMs: maxAgeMs } } : {}),
  });
  await client.login();
  return client;
}

/** Query (or tail) through the SDK: only events proven in the verified checkpoint; anything else is an error here. */
async function provenEvents(client: ValiseClient, f: AuditFilter, anchors?: AuditAnchors): Promise<AuditQueryResult> {
  const r = await client.audit.query(f, anchors);
  const bad = r.unproven[0];
  if (bad) throw new ValiseError("bad_encoding", bad.reason);
  return r;
}

/** Never silent: a stale checkpoint is said on stderr (the events shown may not be the newest). */
function warnStale(f: CheckpointFreshness): void {
  if (f.stale) process.stderr.write(`valise: WARNING: ${describeStaleness("audit log", f)}\n`);
}

function printEvents(events: AuditEvent[], json: boolean, size: number, f: CheckpointFreshness): void {
  warnStale(f);
  if (json) {
    const { stale, age } = freshnessJson(f);
    printJson({ size, stale, age, events: events.map((e) => JSON.parse(auditEventJson(e)) as unknown) });
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
      "max-age": { type: "string" },
      from: { type: "string" },
      to: { type: "string" },
      offline: { type: "string" },
      witness: { type: "string", multiple: true },
      quorum: { type: "string" },
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
  if (cmd === "verify" && values.offline !== undefined) {
    // No server, no profile: the investigator's own keys.
    const logKey = str(values["log-key"], "--log-key VKEY (the log's verifier key)", AUDIT_USAGE);
    const witnesses = values.witness ?? [];
    const quorum = values.quorum === undefined ? witnesses.length : Number(values.quorum);
    if (!/^[0-9]+$/.test(values.quorum ?? "0") || quorum > witnesses.length)
      throw new UsageError(`--quorum must be between 0 and the number of --witness (${witnesses.length})`);
    let bytes: Uint8Array;
    try {
      bytes = readFileSync(resolve(values.offline));
    } catch (e) {
      throw new UsageError(`--offline ${values.offline}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
    }
    const r = verifyOfflineExport(bytes, logKey, witnesses, quorum);
    if (values.json) printJson(r);
    else
      console.log(
        r.ok
          ? `ok: entries ${r.from}…${r.to - 1} (${r.entries}) are in the signed audit log ${r.origin} of size ${r.size}` +
              (r.cosigners.length > 0 ? `, cosigned by ${r.cosigners.join(", ")}` : ", no witness cosignature required")
          : `NOT OK: ${r.reason}`,
      );
    return r.ok ? 0 : 1;
  }
  const profile = str(values.profile, "--profile DIR", AUDIT_USAGE);
  // An explicit --log-key: that key alone (no witness quorum), as before; else the profile's anchors (SDK default).
  let anchors: AuditAnchors | undefined;
  if (values["log-key"] !== undefined) {
    try {
      parseNoteVerifierKey(values["log-key"]);
    } catch (e) {
      throw new UsageError(`--log-key: ${e instanceof Error ? e.message : String(e)}`);
    }
    anchors = { logKey: values["log-key"] };
  }
  const n = cmd === "tail" ? positiveInt(values.n, "--n", 20, 1000) : undefined;
  const since = isoTime(values.since, "--since");
  const until = isoTime(values.until, "--until");
  const limit = positiveInt(values.limit, "--limit", 100, 1000);
  const maxAgeMs = maxCheckpointAgeMs(values["max-age"]);
  const client = await openOfficer(profile, maxAgeMs);
  try {
    switch (cmd) {
      case "tail": {
        const r = await provenEvents(client, { limit: n }, anchors);
        printEvents(r.events.reverse(), values.json === true, r.checkpoint.size, r.freshness);
        return 0;
      }
      case "query": {
        const r = await provenEvents(
          client,
          { actor: values.actor, action: values.action, object: values.object, since, until, limit },
          anchors,
        );
        printEvents(r.events, values.json === true, r.checkpoint.size, r.freshness);
        return 0;
      }
    }
    let verified;
    try {
      verified = await client.audit.checkpoint(anchors);
    } catch (e) {
      // A rollback or fork is the answer `verify` exists to give: said as a result, not only as an error.
      const refusal = checkpointRefusal(e);
      if (cmd !== "verify" || !refusal || !(e instanceof ValiseError)) throw e;
      if (values.json)
        printJson({
          ok: false,
          refused: refusal,
          size: e.details?.size,
          acceptedSize: e.details?.acceptedSize,
          reason: e.message,
        });
      else console.log(`NOT OK: ${e.message}`);
      return 1;
    }
    const { checkpoint: cp, keySource, freshness } = verified;
    switch (cmd) {
      case "verify": {
        const r = await client.audit.download(cp);
        const base = {
          size: cp.size,
          origin: cp.origin,
          rootHash: toBase64(cp.rootHash),
          // Entries below this were exported and pruned (retention); their hashes still count in the root.
          prunedBefore: r.ok ? r.prunedBefore : undefined,
          keySource,
          acceptedSize: verified.acceptedSize,
          ...freshnessJson(freshness),
        };
        const staleReason = freshness.stale ? describeStaleness("audit log", freshness) : null;
        const ok = r.ok && !freshness.stale;
        if (values.json)
          printJson(
            ok
              ? { ok: true, ...base }
              : r.ok
                ? { ok: false, ...base, reason: staleReason }
                : { ok: false, ...base, reason: r.reason, index: r.index },
          );
        else
          console.log(
            ok
              ? `ok: ${cp.size} events, all in the signed checkpoint (${cp.origin})` +
                  (r.ok && r.prunedBefore > 0 ? `; entries below ${r.prunedBefore} were exported and pruned` : "") +
                  (freshness.proven ? `, cosigned ${freshness.age} s ago` : ", freshness unproven (no witness quorum)")
              : r.ok
                ? `NOT OK: ${staleReason} (checkpoint size ${cp.size}; its ${cp.size} events do verify)`
                : `NOT OK: ${r.reason} (checkpoint size ${cp.size})`,
          );
        return ok ? 0 : 1;
      }
      case "export": {
        if (!values.jsonl) {
          const out = str(values.out, "--jsonl or --out FILE", AUDIT_USAGE);
          const r = await client.audit.download(cp);
          if (!r.ok) throw new ValiseError("bad_encoding", `audit log does not verify, nothing exported: ${r.reason}`);
          warnStale(freshness);
          const base = r.prunedBefore;
          const from = rangeBound(values.from, r.events, base, base, "--from");
          const to = rangeBound(values.to, r.events, base, cp.size, "--to");
          if (from < base)
            throw new UsageError(`entries below ${base} were exported and pruned: start --from at ${base} or later`);
          if (!(from < to)) throw new UsageError(`no audit entries in ${values.from ?? "0"}…${values.to ?? "end"}`);
          const pruned = { before: base, frontier: r.prefix };
          writeFileSync(resolve(out), buildOfflineExport(verified.note, r.entries, from, to, pruned), {
            mode: 0o600,
          });
          const summary = { out: resolve(out), from, to, entries: to - from, size: cp.size, origin: cp.origin };
          if (values.json) printJson(summary);
          else console.error(`exported entries ${from}…${to - 1} of ${cp.size} to ${summary.out}`);
          return 0;
        }
        const r = await client.audit.download(cp);
        if (!r.ok) throw new ValiseError("bad_encoding", `audit log does not verify, nothing exported: ${r.reason}`);
        warnStale(freshness);
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

/**
 * An export bound: an entry index, or an ISO time (the first event at or after it); `dflt` when absent. `events`
 * are the log's from index `base` on (the entries below were pruned).
 */
function rangeBound(
  v: string | undefined,
  events: readonly AuditEvent[],
  base: number,
  dflt: number,
  name: string,
): number {
  if (v === undefined) return dflt;
  if (/^[0-9]{1,15}$/.test(v)) return Math.min(Number(v), base + events.length);
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw new UsageError(`${name} must be an entry index or an ISO 8601 time`);
  const i = events.findIndex((e) => Date.parse(e.time) >= t);
  return base + (i === -1 ? events.length : i);
}
