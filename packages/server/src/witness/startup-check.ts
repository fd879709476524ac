/**
 * Disaster recovery (issue 19): before a server signs or publishes anything, it asks each witness for the latest
 * checkpoint of each log the witness cosigned (c2sp.org/tlog-witness monitor retrieval, `GET <url>/<sha256(origin)
 * hex>/checkpoint`). A checkpoint signed by this server's own log key that the database cannot reproduce — a larger
 * tree, or another root at a size it has — means the database is older than what witnesses and devices have seen (a
 * restore from an older backup) or another history: signing on would fork the log. The server refuses to start and
 * says what to do. A witness that cannot be asked (down, 404: nothing cosigned yet) is reported, not refused: the
 * witnesses themselves still refuse a fork (409/422), so nothing is published; the check only makes it loud.
 */
import { equalBytes, openNote, parseCheckpoint, type NoteVerifier } from "@valise/core";
import { originHash } from "./state.js";
import type { WitnessEndpoint } from "./submit.js";

export interface WitnessCheckLog {
  /** "directory" or "audit": how the log is named in messages and in backup.json (`logs.<name>.size`). */
  name: string;
  origin: string;
  size(): Promise<number>;
  rootAt(size: number): Promise<Uint8Array>;
}

export interface WitnessCheckResult {
  /** Why the server must not start, or null. */
  refused: string | null;
  /** Per witness and log: the size it cosigned (null: none), or why it could not be asked. */
  seen: { witness: string; log: string; size: number | null; error?: string }[];
}

export async function checkLogsAgainstWitnesses(o: {
  logs: readonly WitnessCheckLog[];
  /** The log key in force, and any key it took over from (log-key hand-overs): a checkpoint by either counts. */
  logVerifiers: readonly NoteVerifier[];
  witnesses: readonly WitnessEndpoint[];
  timeoutMs?: number;
  fetch?: typeof fetch;
}): Promise<WitnessCheckResult> {
  const seen: WitnessCheckResult["seen"] = [];
  const problems: string[] = [];
  await Promise.all(
    o.witnesses.flatMap((w) =>
      o.logs.map(async (log) => {
        let note: string;
        try {
          const res = await (o.fetch ?? fetch)(`${w.url}/${originHash(log.origin)}/checkpoint`, {
            signal: AbortSignal.timeout(o.timeoutMs ?? 5000),
            redirect: "error",
          });
          if (res.status === 404) {
            await res.body?.cancel();
            seen.push({ witness: w.url, log: log.name, size: null });
            return;
          }
          if (!res.ok) throw new Error(`HTTP ${res.status}`);
          note = await res.text();
        } catch (e) {
          seen.push({ witness: w.url, log: log.name, size: null, error: e instanceof Error ? e.message : String(e) });
          return;
        }
        // Only a checkpoint this log key signed counts: anything else proves nothing about this log.
        const opened = openNote(note, o.logVerifiers);
        let cp: ReturnType<typeof parseCheckpoint>;
        try {
          if (!opened.ok) throw new Error(opened.reason);
          cp = parseCheckpoint(opened.text);
          if (cp.origin !== log.origin) throw new Error(`origin ${cp.origin}`);
        } catch (e) {
          seen.push({
            witness: w.url,
            log: log.name,
            size: null,
            error: `its checkpoint is not signed by this log key: ${e instanceof Error ? e.message : String(e)}`,
          });
          return;
        }
        seen.push({ witness: w.url, log: log.name, size: cp.size });
        const size = await log.size();
        if (cp.size > size)
          problems.push(
            `the ${log.name} log in this database has ${size} entries, but witness ${w.url} cosigned a checkpoint ` +
              `of ${cp.size} entries signed by this log key`,
          );
        else if (cp.size > 0 && !equalBytes(await log.rootAt(cp.size), cp.rootHash))
          problems.push(
            `the ${log.name} log in this database has another history than the checkpoint of ${cp.size} entries ` +
              `witness ${w.url} cosigned (another root at that size)`,
          );
      }),
    ),
  );
  if (problems.length === 0) return { refused: null, seen };
  const need = new Map<string, number>();
  for (const s of seen) if (s.size !== null) need.set(s.log, Math.max(need.get(s.log) ?? 0, s.size));
  const wants = [...need].map(([l, n]) => `logs.${l}.size ≥ ${n}`).join(" and ");
  return {
    refused:
      `${[...new Set(problems)].join("; ")}. This database is older than what the witnesses (and the devices) have ` +
      "seen — a restore from an older backup? — and signing on would fork the log, which witnesses and devices " +
      "refuse. Refusing to start. What to do: (1) stop; restore a newer backup, one whose backup.json shows " +
      `${wants} (valise admin restore FILE --data DIR), and start again; (2) if no backup holds that many entries, ` +
      "the entries after your backup are lost and this log cannot be continued: follow README " +
      '"Disaster recovery: a log that cannot be continued" (a new log origin and key, re-enrolment). ' +
      "Never edit the witnesses' state to make this message go away.",
    seen,
  };
}
