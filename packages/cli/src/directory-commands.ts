/**
 * `valise directory changes`: security officers and administrators follow every directory change (issue 12) with
 * their own enrolled device: `GET /v1/directory/changes`, page by page from `--after`.
 */
import { ValiseError } from "@valise/core";
import type { DirectoryChange } from "@valise/client";
import { parse, str, UsageError } from "./args.js";
import { oneLine, printJson } from "./output.js";
import { openClient } from "./client-commands.js";
import { entryDetails } from "./admin.js";

export const DIRECTORY_USAGE = `usage: valise directory changes --profile DIR [--after N] [--limit M] [--json]

For security officers and administrators: every directory change (units, users, memberships, roles, clearances,
user state, devices) from the directory log, with its log index, time and type, after index N (default: from the
start), at most M (default: all). The entries are as the server decodes them; \`valise log verify\` checks the log
itself against its witnessed checkpoints. Output: one line per change, or with --json
{ "size": S, "changes": [{ "index", "time", "type", "entry" }] }; pass the last index as --after next time.`;

const PAGE = 1000;

export async function directory(argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    argv,
    { profile: { type: "string" }, after: { type: "string" }, limit: { type: "string" }, json: { type: "boolean" } },
    DIRECTORY_USAGE,
  );
  if (values.help) {
    console.log(DIRECTORY_USAGE);
    return 0;
  }
  if (positionals[0] !== "changes" || positionals.length !== 1)
    throw new UsageError(`unknown directory command ${positionals.join(" ")}\n\n${DIRECTORY_USAGE}`);
  const profile = str(values.profile, "--profile DIR", DIRECTORY_USAGE);
  const int = (v: string | undefined, name: string, min: number) => {
    if (v === undefined) return undefined;
    if (!/^-?[0-9]{1,15}$/.test(v) || Number(v) < min) throw new UsageError(`${name} must be an integer ≥ ${min}`);
    return Number(v);
  };
  let after = int(values.after, "--after", -1) ?? -1;
  const limit = int(values.limit, "--limit", 1);
  const c = await openClient(profile);
  const authed = async <T>(fn: () => Promise<T>): Promise<T> => {
    await c.login();
    try {
      return await fn();
    } catch (e) {
      if (!(e instanceof ValiseError) || e.code !== "unauthenticated") throw e;
      await c.login(true);
      return fn();
    }
  };
  const changes: DirectoryChange[] = [];
  let size = 0;
  for (;;) {
    const want = limit === undefined ? PAGE : Math.min(PAGE, limit - changes.length);
    if (want <= 0) break;
    const page = await authed(() => c.transport.directoryChanges(after, want));
    size = page.size;
    changes.push(...page.changes);
    if (!values.json)
      for (const h of page.changes)
        console.log(`#${Number(h.index)}\t${oneLine(h.time)}\t${oneLine(h.type)}\t${entryDetails(h.entry)}`);
    if (page.changes.length < want) break;
    after = page.changes[page.changes.length - 1]!.index;
  }
  if (values.json) printJson({ size, changes });
  return 0;
}
