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

export function installErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError | ValiseError | Error, req, reply) => {
    if (err instanceof ValiseError) {
      return reply.status(statusOf(err.code)).send({ code: err.code, message: err.message, ...(err.details ?? {}) });
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
