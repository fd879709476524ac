/**
 * `valise admin retention …` and `valise admin audit prune` (issue 19 part 6), on the server machine like the other
 * admin commands: rules of how long a unit's or a label's ciphertext is kept, the records archive's mark, a run by
 * hand (the server's leader also runs them every `retentionInterval`), and pruning an exported audit segment.
 */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { ValiseError, auditLogOrigin, fromBase64, parseNoteVerifierKey, verifyCheckpointQuorum } from "@valise/core";
import { ADMIN_CLI, type RetentionRule, type RetentionScope, type Store } from "@valise/server";
import { UsageError } from "./args.js";
import { parseDuration } from "./config.js";
import { printJson } from "./output.js";
import { OFFLINE_FORMAT, verifyOfflineExport } from "./audit-offline.js";

export const RETENTION_USAGE = `  retention set UNIT|--label LABEL --keep DURATION [--json]
                                               keep the unit's (or the label's) ciphertext — conversation
                                               messages, cables and document versions with their blobs — for
                                               DURATION (365d, 720h, …), then the server deletes it (its leader,
                                               every retentionInterval, default 1h), auditing counts per rule
                                               (retention.delete), never content. Several rules matching one
                                               item: the longest keep wins; an item no rule matches is kept
  retention remove UNIT|--label LABEL [--json] drop the rule
  retention list [--json]                      the rules and the archive marks
  retention archived UNIT --through TIME [--json]
                                               the unit's records archive holds its records created before TIME
                                               (ISO 8601; after valise archive export + verify up to then). A unit
                                               with an archive assigned loses nothing newer than this mark (and
                                               nothing at all without one): the run reports it as "held"
  retention run [--json]                       enforce the rules now; prints the counts deleted and held units
  audit prune --export FILE [--json]           drop the audit entries of an offline export (valise audit export
                                               --out FILE --from F --to T) from the database: the file must verify
                                               with this server's log key, hold exactly this log's entries, start
                                               at or below where the log is already pruned and end at or below
                                               the detector's position. The tree's hashes stay, so every
                                               checkpoint and proof still verifies, and the file verifies offline
                                               for ever (valise audit verify --offline); logged as audit.prune`;

function scopeOf(positional: string | undefined, label: string | undefined): { scope: RetentionScope; name: string } {
  if (label !== undefined && positional !== undefined) throw new UsageError("give a UNIT or --label LABEL, not both");
  if (label !== undefined) return { scope: "label", name: label };
  if (positional === undefined) throw new UsageError("give a UNIT or --label LABEL");
  return { scope: "unit", name: positional };
}

const ruleJson = (r: RetentionRule) => ({
  scope: r.scope,
  name: r.name,
  keep: humanKeep(r.keepMs),
  keepSeconds: r.keepMs / 1000,
  setAt: new Date(r.setAt).toISOString(),
});

function humanKeep(ms: number): string {
  for (const [unit, n] of [
    ["d", 86_400_000],
    ["h", 3_600_000],
    ["m", 60_000],
  ] as const)
    if (ms % n === 0) return `${ms / n}${unit}`;
  return `${Math.round(ms / 1000)}s`;
}

export async function retentionCommand(
  store: Store,
  positionals: string[],
  values: { label?: string | undefined; keep?: string | undefined; through?: string | undefined },
  json: boolean,
): Promise<number> {
  const verb = positionals[1];
  switch (verb) {
    case "set": {
      const { scope, name } = scopeOf(positionals[2], values.label);
      const keepMs = values.keep === undefined ? null : parseDuration(values.keep);
      if (keepMs === null) throw new UsageError("--keep DURATION is required, e.g. --keep 365d");
      const r = await store.retention.setRule(scope, name, keepMs, ADMIN_CLI);
      if (json) printJson(ruleJson(r));
      else console.log(`retention of ${scope} ${r.name}: ${humanKeep(r.keepMs)}`);
      return 0;
    }
    case "remove": {
      const { scope, name } = scopeOf(positionals[2], values.label);
      const removed = await store.retention.removeRule(scope, name, ADMIN_CLI);
      if (!removed) throw new ValiseError("not_found", `no retention rule for ${scope} ${name}`);
      if (json) printJson({ scope, name, removed });
      else console.log(`retention rule for ${scope} ${name} removed: its items are kept`);
      return 0;
    }
    case "list": {
      const rules = (await store.retention.rules()).map(ruleJson);
      const archives = (await store.retention.archiveMarks()).map((m) => ({
        unit: m.unit,
        archivedThrough: new Date(m.archivedThrough).toISOString(),
      }));
      if (json) printJson({ rules, archives });
      else {
        if (rules.length === 0) console.log("no retention rules: everything is kept");
        for (const r of rules) console.log(`${r.scope}\t${r.name}\t${r.keep}`);
        for (const a of archives) console.log(`archive\t${a.unit}\tthrough ${a.archivedThrough}`);
      }
      return 0;
    }
    case "archived": {
      const unit = positionals[2];
      if (unit === undefined) throw new UsageError("retention archived UNIT --through TIME");
      const t = values.through === undefined ? NaN : Date.parse(values.through);
      if (Number.isNaN(t)) throw new UsageError("--through TIME (ISO 8601) is required");
      if (t > Date.now()) throw new UsageError("--through cannot be in the future");
      await store.retention.markArchived(unit, t, ADMIN_CLI);
      if (json) printJson({ unit, archivedThrough: new Date(t).toISOString() });
      else console.log(`the archive of ${unit} holds its records created before ${new Date(t).toISOString()}`);
      return 0;
    }
    case "run": {
      const r = await store.retention.run();
      if (json) printJson(r);
      else {
        console.log(
          `deleted ${r.messages} messages, ${r.inbox} inbox entries, ${r.cables} cables, ` +
            `${r.documentVersions} document versions (${r.documents} documents), ${r.blobs} blobs, ${r.bytes} bytes`,
        );
        for (const h of r.held)
          console.log(
            `held: ${h.unit} has an archive ${h.archivedThrough ? `marked through ${h.archivedThrough}` : "and no archive mark"}`,
          );
      }
      return 0;
    }
    default:
      throw new UsageError(`unknown retention command ${JSON.stringify(verb ?? "")}`);
  }
}

interface ExportFile {
  format: string;
  from: number;
  to: number;
  checkpoint: string;
  entries: { index: number; entry: string }[];
}

/** `valise admin audit prune --export FILE`: see RETENTION_USAGE. */
export async function auditPrune(store: Store, file: string, vkey: string, json: boolean): Promise<number> {
  const bytes = readFileSync(resolve(file));
  // The export itself: canonical, signed by this log's key (witness cosignatures are not needed here), every proof.
  const v = verifyOfflineExport(bytes, vkey, [], 0, { otherSignatures: "allow" });
  if (!v.ok) throw new ValiseError("bad_request", `${file} does not verify: ${v.reason}`);
  const f = JSON.parse(new TextDecoder().decode(bytes)) as ExportFile;
  if (f.format !== OFFLINE_FORMAT) throw new ValiseError("bad_request", `${file} is not a ${OFFLINE_FORMAT} file`);
  const log = store.audit;
  const q = verifyCheckpointQuorum(f.checkpoint, parseNoteVerifierKey(vkey), [], 0, {
    origin: auditLogOrigin(parseNoteVerifierKey(vkey).name),
  });
  if (!q.ok) throw new ValiseError("bad_request", `${file}: checkpoint does not verify: ${q.reason}`);
  // Made from this very log: its root is this database's tree at that size.
  const size = await log.size();
  if (q.checkpoint.size > size) throw new ValiseError("conflict", `${file} is of a log larger than this one`);
  const root = await log.rootAt(q.checkpoint.size);
  if (Buffer.compare(Buffer.from(root), Buffer.from(q.checkpoint.rootHash)) !== 0)
    throw new ValiseError("conflict", `${file} is not an export of this database's audit log (another root)`);
  const { before } = await log.pruned();
  if (f.from > before)
    throw new ValiseError(
      "conflict",
      `the log is pruned below ${before}; ${file} starts at ${f.from}: entries ${before}…${f.from - 1} were never exported`,
    );
  if (f.to <= before) {
    if (json) printJson({ prunedBefore: before, deleted: 0 });
    else console.log(`nothing to prune: the log is already pruned below ${before}`);
    return 0;
  }
  // Byte for byte what the database holds (the rest of the file is proven by the checks above).
  const held = await log.entries(before, f.to - before);
  for (const e of f.entries) {
    if (e.index < before) continue;
    const mine = held[e.index - before];
    if (!mine || Buffer.compare(Buffer.from(mine), Buffer.from(fromBase64(e.entry))) !== 0)
      throw new ValiseError("conflict", `entry ${e.index} of ${file} differs from the database's`);
  }
  // The detector reads the log in order: never prune what it has not read yet.
  const det = await store.handle.db
    .selectFrom("detect_state")
    .select("next_index")
    .where("id", "=", 1)
    .executeTakeFirst();
  const detNext = Number(det?.next_index ?? 0);
  if (f.to > detNext)
    throw new ValiseError(
      "conflict",
      `the detector has read the audit log up to ${detNext} only; prune after it has passed ${f.to} (is the server running?)`,
    );
  // The prune is recorded first (durable), then done: a reader of the pruned log requires that record.
  await log.appendEvents([
    {
      id: `e-${Buffer.from(crypto.getRandomValues(new Uint8Array(10))).toString("hex")}`,
      time: new Date().toISOString(),
      actor: ADMIN_CLI.actor,
      device: null,
      source: ADMIN_CLI.source,
      client: ADMIN_CLI.client ?? null,
      action: "audit.prune",
      object: `entries:${before}-${f.to}`,
      target_device: null,
      label: null,
      unit: null,
      bytes: 0,
      canary: false,
      outcome: "ok",
    },
  ]);
  const deleted = await log.pruneBefore(f.to);
  if (json) printJson({ prunedBefore: f.to, deleted, export: resolve(file) });
  else console.log(`pruned the audit log below ${f.to} (${deleted} entries deleted; ${resolve(file)} holds them)`);
  return 0;
}
