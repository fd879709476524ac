/**
 * Output: JSON for scripts (`--json`), short human lines otherwise. Errors carry the stable code.
 *
 * Terminal safety: strings from peers and the server (message text, subjects, file names, handles, alert texts…)
 * may carry control characters that move the cursor, erase lines or reorder text (ESC, CSI, bidi overrides). Every
 * byte this process writes to stdout/stderr goes through `guardOutput`'s escaper (C0 except \n and \t, DEL, C1,
 * bidi embeddings/overrides/isolates become visible `\uXXXX` text; JSON stays valid and means the same), and the
 * commands pass single-line fields through `oneLine` so a peer cannot start a new (fake) line either.
 */
import { ValiseError } from "@valise/core";
import { UsageError } from "./args.js";

// C0 except \t (09) and \n (0a); DEL and C1; bidi embeddings/overrides (U+202A–U+202E) and isolates (U+2066–U+2069).

const UNSAFE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;
// The same plus \t, \n and the Unicode line/paragraph separators: for fields shown on one line.

const UNSAFE_LINE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

const hex = (c: string) => c.charCodeAt(0).toString(16).padStart(4, "0");
const visible = (c: string) => {
  const n = c.charCodeAt(0);
  if (n === 0x0a) return "\\n";
  if (n === 0x09) return "\\t";
  if (n === 0x0d) return "\\r";
  return n < 0x100 ? `\\x${n.toString(16).padStart(2, "0")}` : `\\u${hex(c)}`;
};

/** A multi-line text (a message or cable body) safe for a terminal: keeps \n and \t, escapes other controls. */
export function safeText(s: unknown): string {
  return String(s).replace(UNSAFE, visible);
}

/** A field shown on one line (subject, file name, handle, alert text): every control character escaped. */
export function oneLine(s: unknown): string {
  return String(s).replace(UNSAFE_LINE, visible);
}

/** What the stream guard does to every write: the remaining unsafe characters as JSON-compatible `\uXXXX`. */
export function escapeForTerminal(text: string): string {
  return text.replace(UNSAFE, (c) => `\\u${hex(c)}`);
}

let rawStderr: ((s: string) => boolean) | null = null;

/**
 * Installs the escaper on process.stdout and process.stderr (once, by the CLI's main). Whatever a command prints,
 * no control sequence from a peer or the server reaches the terminal.
 */
export function guardOutput(): void {
  if (rawStderr) return;
  for (const stream of [process.stdout, process.stderr]) {
    const write = stream.write.bind(stream) as (chunk: unknown, ...rest: unknown[]) => boolean;
    if (stream === process.stderr) rawStderr = (s) => write(s);
    stream.write = (chunk: unknown, ...rest: unknown[]) =>
      write(
        typeof chunk === "string"
          ? escapeForTerminal(chunk)
          : chunk instanceof Uint8Array
            ? escapeForTerminal(Buffer.from(chunk).toString("utf8"))
            : chunk,
        ...rest,
      );
  }
}

/** Writes our own terminal control text (the progress bar's carriage return) to stderr, past the guard. */
export function writeStderrRaw(s: string): void {
  if (rawStderr) rawStderr(s);
  else process.stderr.write(s);
}

export function printJson(v: unknown): void {
  process.stdout.write(`${escapeForTerminal(JSON.stringify(v, null, 2))}\n`);
}

export function reportError(e: unknown, json: boolean): number {
  if (e instanceof UsageError) {
    if (json)
      process.stdout.write(`${escapeForTerminal(JSON.stringify({ error: { code: "usage", message: e.message } }))}\n`);
    process.stderr.write(`valise: ${safeText(e.message)}\n`);
    return 2;
  }
  const code = e instanceof ValiseError ? e.code : "internal";
  const message = e instanceof Error ? e.message : String(e);
  if (json) process.stdout.write(`${escapeForTerminal(JSON.stringify({ error: { code, message } }))}\n`);
  process.stderr.write(`valise: ${oneLine(message)}${code !== "internal" ? ` [${oneLine(code)}]` : ""}\n`);
  return 1;
}
