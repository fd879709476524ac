/**
 * Cable vocabulary shared by server and clients: precedence (ordering of every queue and listing) and the
 * server-assigned reference number, `ORIGINATOR YEAR/NNNNNN` (e.g. `EMB/BEIJING 2026/000123`), one series per
 * originator unit and calendar year (UTC), never reused.
 */
import { ValiseError } from "./errors.js";
import { isUnitName } from "./ids.js";

/** Lowest to highest: FLASH is served first everywhere. */
export const PRECEDENCES = ["ROUTINE", "PRIORITY", "IMMEDIATE", "FLASH"] as const;
export type Precedence = (typeof PRECEDENCES)[number];

export function parsePrecedence(text: string): Precedence {
  const p = typeof text === "string" ? text.toUpperCase() : "";
  if (!(PRECEDENCES as readonly string[]).includes(p))
    throw new ValiseError(
      "bad_request",
      `unknown precedence ${JSON.stringify(text)}: expected ${PRECEDENCES.join(", ")}`,
    );
  return p as Precedence;
}

/** 0 (ROUTINE) … 3 (FLASH); sort descending to serve FLASH first. */
export function precedenceRank(p: Precedence): number {
  return PRECEDENCES.indexOf(p);
}

export interface CableReference {
  originator: string;
  year: number;
  serial: number;
}

export function formatCableReference(r: CableReference): string {
  return `${r.originator} ${r.year}/${String(r.serial).padStart(6, "0")}`;
}

const REF_RE = /^(\S+) (\d{4})\/(\d{6,})$/;
export function parseCableReference(text: string): CableReference {
  const m = REF_RE.exec(typeof text === "string" ? text.trim() : "");
  if (!m || !isUnitName(m[1]))
    throw new ValiseError(
      "bad_request",
      `invalid cable reference ${JSON.stringify(text)}: expected e.g. EMB/BEIJING 2026/000123`,
    );
  return { originator: m[1], year: Number(m[2]), serial: Number(m[3]) };
}
