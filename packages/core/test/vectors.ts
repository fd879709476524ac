/** Loads official vectors from `<repo root>/vectors/…` (copied into the repository with their sources and licences). Missing = fail. */
import { readFileSync, readdirSync, statSync, existsSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

// This file runs from packages/core/dist/test/: four levels up is the repo root.
const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../../..");
export const VECTORS_DIR = resolve(REPO_ROOT, "vectors");

export function vectorPath(...parts: string[]): string {
  const p = join(VECTORS_DIR, ...parts);
  if (!existsSync(p)) throw new Error(`official vectors missing: ${p} (vectors/ is part of the repository)`);
  return p;
}

export function readVectorText(...parts: string[]): string {
  return readFileSync(vectorPath(...parts), "utf8");
}

/** Every *.json file under a vector folder, recursively, as paths relative to that folder (sorted). */
export function listJson(...parts: string[]): string[] {
  const root = vectorPath(...parts);
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (name.endsWith(".json")) out.push(relative(root, p));
    }
  };
  walk(root);
  return out.sort();
}
