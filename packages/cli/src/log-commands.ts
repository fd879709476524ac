/** `valise log …`: read the server's directory log (key transparency). */
import { ValiseError, openNote, parseCheckpoint, parseNoteVerifierKey } from "@valise/core";
import { parse, str, UsageError } from "./args.js";
import { printJson } from "./output.js";

export const LOG_USAGE = `usage: valise log checkpoint --server URL [--key VKEY] [--json]

Prints the directory log's latest checkpoint as a signed note (C2SP tlog-checkpoint), with all its signatures.
  --key VKEY   verify the log's signature with this verifier key (from valise admin log key); fail if it does not
  --json       print {"origin","size","rootHash","note"} instead`;

export async function log(argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    argv,
    { server: { type: "string" }, key: { type: "string" }, json: { type: "boolean" } },
    LOG_USAGE,
  );
  if (values.help) {
    console.log(LOG_USAGE);
    return 0;
  }
  if (positionals.join(" ") !== "checkpoint") throw new UsageError(`unknown log command\n\n${LOG_USAGE}`);
  const server = str(values.server, "--server URL", LOG_USAGE).replace(/\/+$/, "");
  const res = await fetch(`${server}/v1/log/directory/checkpoint`);
  const body = await res.text();
  if (!res.ok) throw new ValiseError("transport_error", `server answered ${res.status}: ${body.slice(0, 200)}`);
  let text = body.slice(0, body.lastIndexOf("\n\n") + 1);
  if (values.key) {
    const opened = openNote(body, [parseNoteVerifierKey(values.key)]);
    if (!opened.ok) throw new ValiseError("bad_encoding", `checkpoint does not verify: ${opened.reason}`);
    text = opened.text;
  }
  const cp = parseCheckpoint(text);
  if (values.json) printJson({ origin: cp.origin, size: cp.size, rootHash: text.split("\n")[2], note: body });
  else process.stdout.write(body);
  return 0;
}
