/**
 * STIX 2.1 validation against the official JSON schemas in `<repo root>/vectors/stix2.1/schemas`, with
 * Ajv 8 as in that folder's README: draft 2020-12, `unicodeRegExp: false` (the `type` pattern has `\-`), formats
 * from ajv-formats, `idn-hostname` accepted unchecked. Each object is checked against the schema of its type
 * (bundle.json rejects valid incident/note objects; see the README's "Known gap"), the envelope by hand.
 */
import { Ajv2020 } from "ajv/dist/2020.js";
import addFormatsModule from "ajv-formats";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const addFormats = addFormatsModule.default;

function repoRoot(): string {
  let d = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(d, "package-lock.json"))) {
    const up = dirname(d);
    if (up === d) throw new Error("repository root not found");
    d = up;
  }
  return d;
}

export const STIX_DIR = resolve(repoRoot(), "vectors/stix2.1");
export function stixPath(...parts: string[]): string {
  const p = join(STIX_DIR, ...parts);
  if (!existsSync(p)) throw new Error(`official vectors missing: ${p} (vectors/ is part of the repository)`);
  return p;
}

const BASE = "http://raw.githubusercontent.com/oasis-open/cti-stix2-json-schemas/stix2.1/schemas/";

function listJson(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? listJson(join(dir, e.name)) : e.name.endsWith(".json") ? [join(dir, e.name)] : [],
  );
}

export interface StixValidator {
  schemaCount: number;
  /** Errors of each object against its type's schema, plus envelope errors; empty when valid. */
  validate(bundle: unknown): string[];
  /** bundle.json alone (true when valid). */
  bundleSchemaValid(bundle: unknown): boolean;
}

export function stixValidator(): StixValidator {
  const ajv = new Ajv2020({ unicodeRegExp: false, strict: false, allErrors: true });
  addFormats(ajv);
  ajv.addFormat("idn-hostname", true);
  const schemas = listJson(stixPath("schemas")).map((f) => JSON.parse(readFileSync(f, "utf8")) as { $id: string });
  for (const s of schemas) ajv.addSchema(s);
  const byType = new Map(schemas.map((s) => [s.$id.slice(s.$id.lastIndexOf("/") + 1, -".json".length), s.$id]));
  const bundleSchema = ajv.getSchema(BASE + "common/bundle.json")!;
  return {
    schemaCount: schemas.length,
    bundleSchemaValid: (b) => bundleSchema(b) as boolean,
    validate(bundle) {
      const out: string[] = [];
      const b = bundle as { type?: unknown; id?: unknown; objects?: unknown };
      if (b?.type !== "bundle") out.push("bundle: type must be bundle");
      if (typeof b?.id !== "string" || !/^bundle--[0-9a-f-]{36}$/.test(b.id)) out.push("bundle: bad id");
      if (!Array.isArray(b?.objects)) return [...out, "bundle: objects must be an array"];
      b.objects.forEach((o: unknown, i) => {
        const obj = o as Record<string, unknown> | null;
        const id =
          byType.get(String(obj?.type)) ??
          BASE + (obj && "created" in obj ? "common/core.json" : "common/cyber-observable-core.json");
        const v = ajv.getSchema(id)!;
        if (!v(o))
          for (const e of v.errors ?? [])
            out.push(`objects[${i}] (${String(obj?.type)})${e.instancePath} ${e.message}`);
      });
      return out;
    },
  };
}
