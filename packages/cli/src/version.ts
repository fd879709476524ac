/** `valise --version` / `valise version [--json]`: the release, the Node runtime and the database schema version. */
import { readFileSync } from "node:fs";
import { migrationProvider } from "@valise/server/storage/migrations";
import { parse } from "./args.js";
import { printJson } from "./output.js";

export const VERSION_USAGE = `usage: valise --version | valise version [--json]

Prints the Valise release (the repository's package.json version), the Node.js version it runs on and the database
schema version (the newest migration this release applies at start-up, and how many there are).`;

export interface VersionInfo {
  valise: string;
  node: string;
  schema: { latest: string; migrations: number };
}

export async function versionInfo(): Promise<VersionInfo> {
  // packages/cli/dist/src/version.js → the repository's package.json (the release version).
  const pkg = JSON.parse(readFileSync(new URL("../../../../package.json", import.meta.url), "utf8")) as {
    version?: string;
  };
  const names = Object.keys(await migrationProvider("sqlite").getMigrations()).sort();
  return {
    valise: pkg.version ?? "unknown",
    node: process.versions.node,
    schema: { latest: names[names.length - 1] ?? "", migrations: names.length },
  };
}

export async function version(argv: string[]): Promise<number> {
  const { values } = parse(argv, { json: { type: "boolean" } }, VERSION_USAGE);
  if (values.help) {
    console.log(VERSION_USAGE);
    return 0;
  }
  const v = await versionInfo();
  if (values.json) printJson(v);
  else console.log(`valise ${v.valise} (node ${v.node}, schema ${v.schema.latest}, ${v.schema.migrations} migrations)`);
  return 0;
}
