/**
 * The enrollment bundle (issue 4 item 5): what an administrator hands a user with the one-time code — the directory
 * log's verifier key, the witnesses' keys and the quorum a client requires — so that the device pins them at
 * enrollment and the server cannot swap them later.
 */
import { readFileSync } from "node:fs";
import { ValiseError, parseCosignatureVerifierKey } from "@valise/core";
import { parseTrustAnchors, type TrustAnchors } from "@valise/client";

export const BUNDLE_ENV_HELP = `Witnesses for the bundle: --witness [URL=]VKEY (repeatable) and --witness-quorum K, or VALISE_WITNESSES
  (space- or comma-separated [URL=]VKEY) and VALISE_WITNESS_QUORUM; the quorum defaults to the number of
  witnesses, as for valise serve. None configured: quorum 0 (clients check the log key's signature only).`;

/** A witness given as `URL=VKEY` (as for valise serve --witness) or a bare VKEY: the verifier key. */
export function witnessVkey(spec: string): string {
  const candidates = [spec, ...[...spec.matchAll(/=/g)].map((m) => spec.slice(m.index + 1))];
  for (const c of candidates) {
    try {
      parseCosignatureVerifierKey(c);
      return c;
    } catch {
      /* try the next split */
    }
  }
  throw new ValiseError("bad_request", `not a witness verifier key (or URL=VKEY): ${JSON.stringify(spec)}`);
}

/** Trust anchors from flags, else the environment. */
export function bundleTrust(
  logKey: string,
  flags: { witness?: string[] | undefined; quorum?: string | undefined },
  env: NodeJS.ProcessEnv = process.env,
): TrustAnchors & { note: string } {
  const specs = flags.witness ?? (env.VALISE_WITNESSES ?? "").split(/[\s,]+/).filter((s) => s.length > 0);
  const witnesses = [...new Set(specs.map(witnessVkey))];
  const q = flags.quorum ?? env.VALISE_WITNESS_QUORUM;
  if (q !== undefined && !/^[0-9]+$/.test(q)) throw new ValiseError("bad_request", "witness quorum must be a number");
  const trust = parseTrustAnchors({ logKey, witnesses, quorum: q === undefined ? witnesses.length : Number(q) });
  const note =
    trust.quorum === 0
      ? "no witnesses configured (quorum 0): clients accept checkpoints signed by the log key alone"
      : `clients accept only checkpoints cosigned by ${trust.quorum} of these ${witnesses.length} witnesses`;
  return { ...trust, note };
}

/** `--bundle FILE|JSON`: the JSON printed by `valise admin user add|code --json`. */
export function readBundle(arg: string): { enrollmentCode?: string; trust: TrustAnchors } {
  let text = arg.trim();
  if (!text.startsWith("{")) {
    try {
      text = readFileSync(arg, "utf8");
    } catch (e) {
      throw new ValiseError(
        "bad_request",
        `--bundle: cannot read ${arg}: ${e instanceof Error ? e.message : String(e)}`,
      );
    }
  }
  let o: unknown;
  try {
    o = JSON.parse(text);
  } catch {
    throw new ValiseError("bad_request", "--bundle: not JSON (expected the output of valise admin user add --json)");
  }
  const trust = parseTrustAnchors(o);
  const code = (o as { enrollmentCode?: unknown }).enrollmentCode;
  return { ...(typeof code === "string" ? { enrollmentCode: code } : {}), trust };
}
