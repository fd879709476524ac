/** Error edge: every failure leaves as `{ code, message }` with the right status; a 5xx on bad input is a bug. */
import type { FastifyError, FastifyInstance } from "fastify";
import { ValiseError, type ValiseErrorCode } from "@valise/core";

const STATUS: Record<ValiseErrorCode, number> = {
  bad_request: 400,
  bad_label: 400,
  bad_handle: 400,
  bad_unit: 400,
  bad_encoding: 400,
  too_large: 413,
  unauthenticated: 401,
  forbidden: 403,
  not_cleared: 403,
  not_found: 404,
  conflict: 409,
  epoch_conflict: 409,
  pending_removal: 409,
  offset_mismatch: 409,
  rate_limited: 429,
  enrollment_code_invalid: 403,
  device_not_verified: 403,
  log_not_verified: 502,
  protocol_error: 400,
  transport_error: 502,
  store_error: 503,
  internal: 500,
};

export function statusOf(code: ValiseErrorCode): number {
  return STATUS[code];
}

/** Seconds a client is told to wait (`Retry-After`) when the store cannot read or write right now. */
export const STORE_RETRY_AFTER_S = 2;

const PG_OUTAGE_CODES = new Set(["57P01", "57P02", "57P03", "53000", "53100", "53200", "53300", "58000", "58030"]);
const NODE_OUTAGE_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EAI_AGAIN",
  "ENOSPC",
  "EDQUOT",
  "EIO",
  "EROFS",
  "EMFILE",
  "ENFILE",
]);
const SQLITE_OUTAGE = /^SQLITE_(BUSY|LOCKED|FULL|IOERR|CANTOPEN|PROTOCOL|NOLFS)/;
const PG_OUTAGE_MESSAGES =
  /Connection terminated|connection error|not queryable|timeout exceeded when trying to connect|terminating connection|the database system is (starting up|shutting down|in recovery mode)|Client was closed|Cannot use a pool after calling end/i;

/**
 * Whether `err` says the database or the disk is unavailable (not that the request was wrong): PostgreSQL down,
 * restarting or failing over, its connection lost, a full disk or an I/O error, SQLite busy/full/I/O errors. Those
 * are `503 store_error` with `Retry-After`, never `500`: nothing was stored and a retry may succeed.
 */
export function isStoreOutage(err: unknown): boolean {
  for (let e = err, depth = 0; e && typeof e === "object" && depth < 5; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string") {
      if (PG_OUTAGE_CODES.has(code) || code.startsWith("08") || NODE_OUTAGE_CODES.has(code)) return true;
      if (SQLITE_OUTAGE.test(code)) return true;
    }
    const message = (e as { message?: unknown }).message;
    if (typeof message === "string" && PG_OUTAGE_MESSAGES.test(message)) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

export function installErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError | ValiseError | Error, req, reply) => {
    if (err instanceof ValiseError) {
      if (err.code === "store_error") reply.header("retry-after", String(STORE_RETRY_AFTER_S));
      return reply.status(statusOf(err.code)).send({ code: err.code, message: err.message, ...(err.details ?? {}) });
    }
    if (isStoreOutage(err)) {
      req.log.warn({ err: { message: err.message, code: (err as { code?: unknown }).code } }, "store unavailable");
      return reply
        .status(503)
        .header("retry-after", String(STORE_RETRY_AFTER_S))
        .send({ code: "store_error", message: "the server cannot store or read right now; retry later" });
    }
    const fe = err as FastifyError;
    if (fe.validation) return reply.status(400).send({ code: "bad_request", message: fe.message });
    if (fe.statusCode === 413 || fe.code === "FST_ERR_CTP_BODY_TOO_LARGE")
      return reply.status(413).send({ code: "too_large", message: "request body too large" });
    if (fe.statusCode === 415)
      return reply.status(415).send({ code: "bad_request", message: "unsupported content type" });
    if (fe.statusCode && fe.statusCode >= 400 && fe.statusCode < 500)
      return reply
        .status(fe.statusCode === 404 ? 404 : 400)
        .send({ code: fe.statusCode === 404 ? "not_found" : "bad_request", message: fe.message });
    req.log.error({ err: { message: err.message, stack: err.stack } }, "internal error");
    return reply.status(500).send({ code: "internal", message: "internal error" });
  });
  app.setNotFoundHandler((_req, reply) => reply.status(404).send({ code: "not_found", message: "no such endpoint" }));
}
