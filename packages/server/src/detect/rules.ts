/**
 * Rule files for the online detector: the defaults shipped with @valise/detect (packages/detect/rules/*.json) plus
 * any the operator names with `valise serve --rules DIR|FILE`. A bad file is a RuleError naming the file, the rule
 * and the path (the validator's own message), so the server refuses to start rather than run blind.
 */
import { readFileSync, readdirSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { RuleError, checkRuleSet, parseRules, type Rule } from "@valise/detect";

/** The directory of the rules shipped with @valise/detect. */
export function defaultRulesDir(): string {
  const entry = fileURLToPath(import.meta.resolve("@valise/detect"));
  return join(dirname(entry), "..", "..", "rules");
}

/** Loads rule files from files and directories (*.json, sorted by name); ids must be unique. Throws RuleError. */
export function loadRuleFiles(paths: readonly string[]): Rule[] {
  const rules: Rule[] = [];
  for (const p of paths) {
    const full = resolve(p);
    let files: string[];
    try {
      files = statSync(full).isDirectory()
        ? readdirSync(full)
            .filter((f) => f.endsWith(".json"))
            .sort()
            .map((f) => join(full, f))
        : [full];
    } catch (e) {
      throw new RuleError(`${p}: cannot read rules (${e instanceof Error ? e.message : String(e)})`);
    }
    for (const f of files) {
      let text: string;
      try {
        text = readFileSync(f, "utf8");
      } catch (e) {
        throw new RuleError(`${f}: cannot read rules (${e instanceof Error ? e.message : String(e)})`);
      }
      rules.push(...parseRules(text, f));
    }
  }
  return checkRuleSet(rules);
}

/** The detector's rule set: the defaults (unless `noDefaults`) and the extra files. Throws RuleError. */
export function detectorRules(extra: readonly string[] = [], noDefaults = false): Rule[] {
  if (noDefaults && extra.length === 0) throw new RuleError("no rules: --no-default-rules needs at least one --rules");
  return loadRuleFiles([...(noDefaults ? [] : [defaultRulesDir()]), ...extra]);
}
