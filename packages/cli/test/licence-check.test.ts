/**
 * Issue 19 supply chain: the project's licence (EUPL-1.2, LICENSE + every package.json), the CycloneDX SBOM of the
 * production dependencies (`npm sbom`, as `npm run sbom` in CI) passes `scripts/check-licenses.mjs`, and the check
 * fails (exit 1, naming the package) on a planted disallowed licence, a missing licence or an expression that needs
 * one; a file that is not an SBOM is exit 2. The script runs as a separate process, as in `.ci/run`.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

function repoRoot(): string {
  let d = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(d, "package-lock.json"))) {
    const up = dirname(d);
    if (up === d) throw new Error("repository root not found");
    d = up;
  }
  return d;
}
const ROOT = repoRoot();
const SCRIPT = join(ROOT, "scripts", "check-licenses.mjs");

interface Component {
  name: string;
  version: string;
  licenses?: { license?: { id?: string; name?: string }; expression?: string }[];
}
interface Sbom {
  bomFormat: string;
  components: Component[];
}

function check(sbom: unknown): { status: number | null; stdout: string; stderr: string } {
  const dir = mkdtempSync(join(tmpdir(), "valise-lic-"));
  try {
    const file = join(dir, "sbom.cdx.json");
    writeFileSync(file, typeof sbom === "string" ? sbom : JSON.stringify(sbom));
    const r = spawnSync(process.execPath, [SCRIPT, file], { encoding: "utf8" });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The real SBOM of this checkout's production dependencies, made once (works offline from package-lock.json). */
let real: Sbom | undefined;
function realSbom(): Sbom {
  if (real) return structuredClone(real);
  const npm = process.platform === "win32" ? "npm.cmd" : "npm";
  const r = spawnSync(npm, ["sbom", "--sbom-format", "cyclonedx", "--omit", "dev"], {
    cwd: ROOT,
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
  });
  assert.equal(r.status, 0, `npm sbom failed: ${r.stderr}`);
  real = JSON.parse(r.stdout) as Sbom;
  return structuredClone(real);
}

test("the project is EUPL-1.2: LICENSE holds the licence text and every package.json says so", () => {
  const text = readFileSync(join(ROOT, "LICENSE"), "utf8");
  assert.match(text, /^EUROPEAN UNION PUBLIC LICENCE v\. 1\.2/);
  assert.match(text, /Compatible Licences/);
  const manifests = [
    "package.json",
    "bench/package.json",
    ...readdirSync(join(ROOT, "packages")).map((p) => `packages/${p}/package.json`),
  ].filter((p) => existsSync(join(ROOT, p)));
  assert.ok(manifests.length >= 8);
  for (const m of manifests) {
    const j = JSON.parse(readFileSync(join(ROOT, m), "utf8")) as { license?: string };
    assert.equal(j.license, "EUPL-1.2", m);
  }
});

test("the SBOM of the production dependencies passes the licence check", () => {
  const sbom = realSbom();
  assert.ok(sbom.components.length > 50, "the SBOM lists the production dependencies");
  assert.ok(!sbom.components.some((c) => c.name === "typescript" || c.name === "eslint"), "no dev dependencies");
  const r = check(sbom);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /all licences allowed/);
});

test("a planted disallowed licence fails the check and is named", () => {
  for (const planted of ["GPL-3.0-only", "AGPL-3.0-or-later", "SSPL-1.0", "BUSL-1.1", "UNLICENSED"]) {
    const sbom = realSbom();
    const victim = sbom.components.find((c) => c.name === "fastify") ?? sbom.components[0]!;
    victim.licenses = [{ license: { id: planted } }];
    const r = check(sbom);
    assert.equal(r.status, 1, `${planted} must fail`);
    assert.match(
      r.stderr,
      new RegExp(`disallowed: ${victim.name}@${victim.version.replace(/\./g, "\\.")}: ${planted}`),
    );
    assert.match(r.stderr, /1 of \d+ production components/);
  }
});

test("a component without a licence fails; expressions need an allowed choice", () => {
  const none = realSbom();
  delete none.components[3]!.licenses;
  const r0 = check(none);
  assert.equal(r0.status, 1);
  assert.match(r0.stderr, /\(none\) \(no licence\)/);

  const cases: [string, number][] = [
    ["(MIT OR GPL-3.0-only)", 0],
    ["GPL-2.0-only OR Apache-2.0", 0],
    ["Apache-2.0 WITH LLVM-exception", 0],
    ["MIT AND GPL-3.0-only", 1],
    ["(MIT AND (BSD-3-Clause OR GPL-2.0-only))", 0],
    ["(MIT AND (LGPL-2.1-only OR GPL-2.0-only))", 1],
    ["MIT OR", 1],
    ["(MIT", 1],
  ];
  for (const [expr, status] of cases) {
    const sbom = realSbom();
    sbom.components[0]!.licenses = [{ expression: expr }];
    assert.equal(check(sbom).status, status, expr);
  }
  // Two licence entries on one component count as both applying.
  const two = realSbom();
  two.components[0]!.licenses = [{ license: { id: "MIT" } }, { license: { id: "GPL-3.0-only" } }];
  assert.equal(check(two).status, 1);
});

test("a file that is not a CycloneDX SBOM is exit 2", () => {
  assert.equal(check("not json").status, 2);
  assert.equal(check({ bomFormat: "SPDX", components: [] }).status, 2);
});
