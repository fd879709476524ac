/** Output: JSON for scripts (`--json`), short human lines otherwise. Errors carry the stable code. */
import { ValiseError } from "@valise/core";
import { UsageError } from "./args.js";

export function printJson(v: unknown): void {
  process.stdout.write(`${JSON.stringify(v, null, 2)}\n`);
}

export function reportError(e: unknown, json: boolean): number {
  if (e instanceof UsageError) {
    if (json) process.stdout.write(`${JSON.stringify({ error: { code: "usage", message: e.message } })}\n`);
    process.stderr.write(`valise: ${e.message}\n`);
    return 2;
  }
  const code = e instanceof ValiseError ? e.code : "internal";
  const message = e instanceof Error ? e.message : String(e);
  if (json) process.stdout.write(`${JSON.stringify({ error: { code, message } })}\n`);
  process.stderr.write(`valise: ${message}${code !== "internal" ? ` [${code}]` : ""}\n`);
  return 1;
}
