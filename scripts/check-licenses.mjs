#!/usr/bin/env node
// Licence check over a CycloneDX SBOM of the production dependencies (`npm run sbom` → sbom.cdx.json).
// Usage: node scripts/check-licenses.mjs [sbom.cdx.json]
// Exit 0: every component's licence is allowed. Exit 1: at least one component has a disallowed, unknown or missing
// licence (each is printed with its name and version). Exit 2: the file is not a CycloneDX SBOM.
//
// Policy (the project is EUPL-1.2, deployed by a public administration): permissive licences and the EUPL's own
// compatible weak-copyleft MPL-2.0 are allowed; strong copyleft (GPL, AGPL), non-free or source-available licences
// (SSPL, BUSL, Commons Clause), "UNLICENSED" and components without any licence are refused. An SPDX expression
// passes when it is satisfiable with allowed licences: `A OR B` needs one of them, `A AND B` needs both;
// `X WITH exception` is judged by X.
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

export const ALLOWED = new Set([
  "0BSD",
  "Apache-2.0",
  "BlueOak-1.0.0",
  "BSD-2-Clause",
  "BSD-3-Clause",
  "CC0-1.0",
  "CC-BY-4.0",
  "EUPL-1.2",
  "ISC",
  "MIT",
  "MIT-0",
  "MPL-2.0",
  "Python-2.0",
  "Unlicense",
  "Zlib",
]);

/** Tokenises and evaluates an SPDX licence expression against ALLOWED (true = acceptable). Throws on a syntax error. */
export function expressionAllowed(expr) {
  const tokens = expr.match(/\(|\)|[^\s()]+/g) ?? [];
  let i = 0;
  const peek = () => tokens[i];
  const next = () => tokens[i++];
  const primary = () => {
    const t = next();
    if (t === undefined) throw new Error(`incomplete licence expression: ${expr}`);
    if (t === "(") {
      const v = orExpr();
      if (next() !== ")") throw new Error(`unbalanced licence expression: ${expr}`);
      return v;
    }
    if (/^(AND|OR|WITH|\))$/i.test(t)) throw new Error(`bad licence expression: ${expr}`);
    const ok = ALLOWED.has(t.replace(/\+$/, ""));
    if (peek()?.toUpperCase() === "WITH") {
      next();
      // The exception only widens what the licence allows; the licence itself decides.
      if (next() === undefined) throw new Error(`incomplete licence expression: ${expr}`);
    }
    return ok;
  };
  const andExpr = () => {
    let v = primary();
    while (peek()?.toUpperCase() === "AND") {
      next();
      v = primary() && v;
    }
    return v;
  };
  const orExpr = () => {
    let v = andExpr();
    while (peek()?.toUpperCase() === "OR") {
      next();
      v = andExpr() || v;
    }
    return v;
  };
  const v = orExpr();
  if (i !== tokens.length) throw new Error(`bad licence expression: ${expr}`);
  return v;
}

/** The licence expression of one CycloneDX component (several `licenses` entries count as AND), or undefined. */
export function componentLicence(c) {
  const parts = (c.licenses ?? [])
    .map((l) => l.expression ?? l.license?.id ?? l.license?.name)
    .filter((s) => typeof s === "string" && s.trim() !== "");
  if (parts.length === 0) return undefined;
  return parts.length === 1 ? parts[0] : parts.map((p) => `(${p})`).join(" AND ");
}

/** Every component that fails the policy, as { name, version, licence, reason }. */
export function checkSbom(sbom) {
  if (sbom?.bomFormat !== "CycloneDX" || !Array.isArray(sbom.components)) throw new Error("not a CycloneDX SBOM");
  const bad = [];
  for (const c of sbom.components) {
    const licence = componentLicence(c);
    const id = { name: c.name, version: c.version, licence: licence ?? "(none)" };
    if (licence === undefined) bad.push({ ...id, reason: "no licence" });
    else {
      let ok;
      try {
        ok = expressionAllowed(licence);
      } catch (e) {
        bad.push({ ...id, reason: e.message });
        continue;
      }
      if (!ok) bad.push({ ...id, reason: "licence not allowed" });
    }
  }
  return bad;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const file = process.argv[2] ?? "sbom.cdx.json";
  let sbom;
  try {
    sbom = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    console.error(`check-licenses: cannot read ${file}: ${e.message}`);
    process.exit(2);
  }
  let bad;
  try {
    bad = checkSbom(sbom);
  } catch (e) {
    console.error(`check-licenses: ${file}: ${e.message}`);
    process.exit(2);
  }
  const n = sbom.components.length;
  if (bad.length > 0) {
    for (const b of bad) console.error(`disallowed: ${b.name}@${b.version}: ${b.licence} (${b.reason})`);
    console.error(`check-licenses: ${bad.length} of ${n} production components have a disallowed licence`);
    process.exit(1);
  }
  console.log(`check-licenses: ${n} production components, all licences allowed`);
}
