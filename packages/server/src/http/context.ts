/** What every route gets: storage, the MLS inspector, the append batcher, fan-out, metrics, clock. */
import type { FastifyReply, FastifyRequest } from "fastify";
import { ValiseError, fromBase64 } from "@valise/core";
import type { Store } from "../storage/store.js";
import type { ServerMls } from "./capabilities.js";
import type { AppendBatcher } from "../delivery/batcher.js";
import type { Fanout } from "../delivery/fanout.js";
import type { Metrics } from "../metrics.js";
import { sourceKey, type Limiter } from "./rate-limit.js";
import type { AuditRecorder } from "../audit/recorder.js";
import type { CosignedCheckpoints } from "../witness/publisher.js";
import type { Detector } from "../detect/detector.js";
import type { IocService } from "../incidents/ioc-service.js";

export interface Session {
  handle: string;
  deviceId: string;
}

export interface ServerContext {
  store: Store;
  mls: ServerMls;
  batcher: AppendBatcher;
  fanout: Fanout;
  metrics: Metrics;
  /** Per source address: enrollment and login attempts (shared by every node on PostgreSQL). */
  loginLimiter: Limiter;
  /** Per device: idempotency keys reused for another conversation (each one audited as a denied send). */
  abuseLimiter: Limiter;
  /** Per device: key-package claim requests (each claimed device audited). */
  claimLimiter: Limiter;
  /** Per (claiming device, target device): how often one caller may take another device's key packages. */
  claimPairLimiter: Limiter;
  now: () => number;
  lookupSession: (token: string) => Promise<Session | null>;
  /** Appends audit events (batched; resolves when durable). */
  audit: AuditRecorder;
  /** The directory log's verifier key, the witnesses' keys and the quorum (with a log key). */
  trustAnchors?: { logKey: string; witnesses: string[]; quorum: number };
  /** With witnesses configured: the published, quorum-cosigned directory log checkpoints (served instead). */
  witnessed?: CosignedCheckpoints;
  /** With witnesses: the audit log's quorum-cosigned checkpoints (the only ones published). */
  auditWitnessed?: CosignedCheckpoints;
  /** Online detection over the audit log (unless turned off). */
  detector?: Detector;
  /** In a cluster: the leader election (this node runs the detector, signers and publishers while it leads). */
  leader?: { readonly isLeader: boolean; elected(timeoutMs?: number): Promise<boolean> };
  /** Allies' indicators: TAXII partners polled, indicators imported and matched (incidents/ioc-service.ts). */
  iocs?: IocService;
}

declare module "fastify" {
  interface FastifyRequest {
    session: Session | null;
  }
}

export function requireSession(req: FastifyRequest): Session {
  if (!req.session)
    throw new ValiseError("unauthenticated", "authentication required: Authorization: Bearer <session token>");
  return req.session;
}

/** Decode a base64 field from a request; bad encoding is a 400 naming the field. */
export function b64(field: string, value: string): Uint8Array {
  try {
    return fromBase64(value);
  } catch {
    throw new ValiseError("bad_encoding", `${field}: invalid base64`);
  }
}

export async function rateLimit(ctx: ServerContext, req: FastifyRequest, _reply: FastifyReply): Promise<void> {
  if (!(await ctx.loginLimiter.take(sourceKey(req.ip))))
    throw new ValiseError("rate_limited", "too many attempts from this address; wait a minute");
}
