/**
 * One error base class for all of Valise with a closed `code` union (as jose and sigstore do): callers switch on
 * `code`, never on message text. HTTP status mapping lives at the server edge.
 */
export type ValiseErrorCode =
  | "bad_request"
  | "bad_label"
  | "bad_handle"
  | "bad_unit"
  | "bad_encoding"
  | "too_large"
  | "unauthenticated"
  | "forbidden"
  | "not_cleared"
  | "not_found"
  | "conflict"
  | "epoch_conflict"
  | "pending_removal"
  /** A resumable upload's `Upload-Offset` is not the bytes the server holds (`details.received` says how many). */
  | "offset_mismatch"
  | "rate_limited"
  | "enrollment_code_invalid"
  | "device_not_verified"
  /** A directory log checkpoint or proof failed the client's checks (quorum, rollback, fork, inclusion). */
  | "log_not_verified"
  | "protocol_error"
  | "transport_error"
  | "store_error"
  | "internal";

export class ValiseError extends Error {
  readonly code: ValiseErrorCode;
  readonly details: Readonly<Record<string, unknown>> | undefined;
  constructor(code: ValiseErrorCode, message: string, details?: Record<string, unknown>) {
    super(message);
    this.name = "ValiseError";
    this.code = code;
    this.details = details;
  }
}

export function isValiseError(e: unknown): e is ValiseError {
  return e instanceof ValiseError;
}

/** A result for verification over attacker data: never throws, says why. */
export type Verdict = { ok: true } | { ok: false; reason: string; revoked?: true };
export const OK: Verdict = Object.freeze({ ok: true });
export function fail(reason: string): Verdict {
  return { ok: false, reason };
}
/** The device was in the directory and has since been revoked (a member a later Remove takes out, not a stranger). */
export function revokedVerdict(reason: string): Verdict {
  return { ok: false, reason, revoked: true };
}
