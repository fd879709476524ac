import { CLASSIFICATIONS, dominates, formatLabel, levelRank, parseLabel, type Label } from "@valise/core";

/** The least upper bound of labels (highest level, all compartments): what a screen's banner shows. */
export function highest(labels: (string | null | undefined)[]): string {
  let level = 0;
  const comps = new Set<string>();
  for (const t of labels) {
    if (!t) continue;
    try {
      const l = parseLabel(t);
      level = Math.max(level, levelRank(l.level));
      for (const c of l.compartments) comps.add(c);
    } catch {
      /* an unparsable label is never shown as lower: ignore it here, the item shows its own text */
    }
  }
  return formatLabel({ level: CLASSIFICATIONS[level]!, compartments: [...comps].sort() });
}

export function levelClass(label: string): string {
  try {
    return `lvl-${parseLabel(label).level.toLowerCase()}`;
  } catch {
    return "lvl-unclassified";
  }
}

/** Labels a user may apply: every level up to the clearance, with each subset of its compartments (up to 2). */
export function usableLabels(clearance: string, unitMax?: string): string[] {
  const c: Label = parseLabel(clearance);
  const max = unitMax ? parseLabel(unitMax) : null;
  const out: string[] = [];
  const subsets: string[][] = [[]];
  for (const x of c.compartments) for (const s of [...subsets]) if (s.length < 2) subsets.push([...s, x]);
  for (const level of CLASSIFICATIONS.slice(0, levelRank(c.level) + 1))
    for (const s of subsets) {
      const l: Label = { level, compartments: [...s].sort() };
      if (max && !dominates(max, l)) continue;
      if (level === "UNCLASSIFIED" && s.length > 0) continue;
      out.push(formatLabel(l));
    }
  return out;
}

/**
 * Clearances an officer may choose: every level, with each subset of the compartments the directory's units use (in
 * their highest labels) — nothing typed, so no "SECERT/ASIA".
 */
export function directoryLabels(unitMaxLabels: string[], current: string[] = []): string[] {
  const comps = new Set<string>();
  for (const m of [...unitMaxLabels, ...current])
    try {
      parseLabel(m).compartments.forEach((c) => comps.add(c));
    } catch {
      /* an unparsable label offers nothing */
    }
  const subsets: string[][] = [[]];
  for (const x of [...comps].sort()) for (const s of [...subsets]) if (s.length < 3) subsets.push([...s, x]);
  const out: string[] = [];
  for (const level of CLASSIFICATIONS)
    for (const s of subsets) {
      if (level === "UNCLASSIFIED" && s.length > 0) continue;
      out.push(formatLabel({ level, compartments: [...s].sort() }));
    }
  return out;
}
