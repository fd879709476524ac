/** Small argument helpers over node:util parseArgs: every command declares its options and gets a clear error. */
import { parseArgs, type ParseArgsConfig } from "node:util";

export class UsageError extends Error {}

type Options = NonNullable<ParseArgsConfig["options"]>;
type Values<O extends Options> = {
  [K in keyof O]?: O[K] extends { multiple: true } ? string[] : O[K] extends { type: "boolean" } ? boolean : string;
} & { help?: boolean };

export function parse<const O extends Options>(
  argv: string[],
  options: O,
  usage: string,
): { values: Values<O>; positionals: string[] } {
  try {
    const r = parseArgs({
      args: argv,
      options: { ...options, help: { type: "boolean", short: "h" } },
      allowPositionals: true,
      strict: true,
    });
    return { values: r.values, positionals: r.positionals };
  } catch (e) {
    throw new UsageError(`${e instanceof Error ? e.message : String(e)}\n\n${usage}`);
  }
}

export function str(v: unknown, name: string, usage: string): string {
  if (typeof v !== "string" || v.length === 0) throw new UsageError(`missing ${name}\n\n${usage}`);
  return v;
}
