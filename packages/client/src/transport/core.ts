/**
 * The request core every transport area shares: the session's bearer token, the client header, retries of
 * idempotent requests while the server is unreachable or overloaded, the mapping of error answers to ValiseError
 * with the server's stable `code`, and the check of every answer against the wire contract (@valise/core/wire):
 * a route is named by its contract key, so no answer reaches a caller unchecked.
 */
import { ValiseError, type ValiseErrorCode } from "@valise/core";
import {
  DIRECTORY_SIZE_HEADER,
  WIRE,
  parseWire,
  parseWireJson,
  pathMatchesRoute,
  type WireAnswer,
  type WireRoute,
} from "@valise/core/wire";

/** Sent as `x-valise-client` with every request: the client kind/version in the server's audit events. */
export const VALISE_CLIENT = "valise-sdk/0.1.0";

/** What the CLI and the web app tell the user while the server cannot store or read (503 store_error, unreachable). */
export const STORE_OUTAGE_NOTICE = "the server cannot store or read right now; nothing was lost, retrying";

/** Told to `onRetry` before each wait: which request, the attempt (1 = first retry), the wait and why. */
export interface RetryNotice {
  method: string;
  path: string;
  attempt: number;
  waitMs: number;
  reason: string;
  /** True on the first retry of an outage (the moment to tell the user); false for the next ones. */
  first: boolean;
}

export interface RetryPolicy {
  /** Give up after retrying this long (ms); default 60 s. 0 turns retries off. */
  budgetMs: number;
  /** First wait (ms), doubled each time up to `maxDelayMs` (a server's Retry-After is honoured up to that). */
  baseDelayMs: number;
  maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { budgetMs: 60_000, baseDelayMs: 250, maxDelayMs: 5000 };

export interface RequestOptions {
  /** JSON-encoded, or sent as is when bytes (content-type application/octet-stream unless a header says else). */
  body?: unknown;
  headers?: Record<string, string>;
  /** Retry while unreachable or 502/503/504 (default: when the request is idempotent, see `retryable`). */
  retry?: boolean;
  /**
   * Sent without the session token: the routes that log in or enroll. The server refuses any request bearing an
   * invalid token, so logging in again with an expired one still held would fail.
   */
  anonymous?: boolean;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Requests that are safe to send again when the first answer was lost or was 502/503/504: reads, and writes the
 * server deduplicates (an idempotency key; a blob append at an explicit offset, refused with 409 offset_mismatch if
 * the first one landed).
 */
function retryable(method: string, path: string, headers: Record<string, string>, body: unknown): boolean {
  if (method === "GET" || method === "HEAD") return true;
  if (headers["idempotency-key"] !== undefined || headers["upload-offset"] !== undefined) return true;
  if (path === "/v1/auth/challenge") return true;
  return (
    body !== null &&
    typeof body === "object" &&
    !(body instanceof Uint8Array) &&
    typeof (body as { idempotencyKey?: unknown }).idempotencyKey === "string"
  );
}

/** The ValiseError for an error answer: the server's `code` (or one from the status) and its message. */
export function answerError(method: string, what: string, status: number, text: string): ValiseError {
  let err: { code?: unknown; message?: unknown; epoch?: unknown } = {};
  try {
    const j = text ? (JSON.parse(text) as unknown) : null;
    if (j && typeof j === "object" && !Array.isArray(j)) err = j;
  } catch {
    /* non-JSON */
  }
  const code = (
    typeof err.code === "string" ? err.code : status >= 500 ? "transport_error" : "bad_request"
  ) as ValiseErrorCode;
  const message = typeof err.message === "string" ? err.message : text.slice(0, 200);
  return new ValiseError(code, `${method} ${what}: ${status} ${message}`, {
    status,
    epoch: typeof err.epoch === "number" ? err.epoch : undefined,
  });
}

export class RequestCore {
  token: string | null = null;
  /** Retries of idempotent requests while the server is unreachable or answers 502/503/504 (see DEFAULT_RETRY). */
  retry: RetryPolicy = { ...DEFAULT_RETRY };
  /** Called before each retry wait; the CLI and the web app print STORE_OUTAGE_NOTICE on the first one. */
  onRetry: ((n: RetryNotice) => void) | null = null;
  /**
   * The directory log's head size as the last successful write's answer gave it (DIRECTORY_SIZE_HEADER), and when
   * (Date.now()); null before any.
   */
  directorySize: { size: number; at: number } | null = null;
  constructor(
    readonly baseUrl: string,
    private readonly fetchImpl: typeof fetch = globalThis.fetch.bind(globalThis),
  ) {}

  /** The directory log's head size a write answered with at most `maxAgeMs` ago, else null. */
  recentDirectorySize(maxAgeMs: number): number | null {
    const d = this.directorySize;
    return d !== null && Date.now() - d.at <= maxAgeMs ? d.size : null;
  }

  /**
   * Sends a request to a route of the contract (`route`, e.g. "GET /v1/cables/:id"; `path` its instance with the
   * query) and resolves the response, whatever its status. Retries as `RequestOptions.retry` says.
   */
  async send(route: WireRoute, path: string, o: RequestOptions = {}): Promise<Response> {
    if (!pathMatchesRoute(route, path)) throw new Error(`transport: ${path} is not an instance of ${route}`);
    const method = route.slice(0, route.indexOf(" "));
    const headers: Record<string, string> = { ...o.headers };
    let payload: BodyInit | null = null;
    if (o.body instanceof Uint8Array) {
      headers["content-type"] ??= "application/octet-stream";
      payload = o.body as unknown as BodyInit;
    } else if (o.body !== undefined) {
      headers["content-type"] = "application/json";
      payload = JSON.stringify(o.body);
    }
    if (this.token && !o.anonymous) headers.authorization = `Bearer ${this.token}`;
    headers["x-valise-client"] ??= VALISE_CLIENT;
    const url = new URL(path, this.baseUrl);
    const res = await this.withRetry(
      method,
      path,
      o.retry ?? retryable(method, path, headers, o.body),
      this.reach(url, { method, headers, body: payload }),
    );
    const size = res.ok ? res.headers.get(DIRECTORY_SIZE_HEADER) : null;
    if (size !== null && /^(0|[1-9][0-9]{0,14})$/.test(size))
      this.directorySize = { size: Number(size), at: Date.now() };
    return res;
  }

  /**
   * Sends the request and resolves its answer checked against the contract: JSON against the route's schema (a
   * mismatch is a `protocol_error` naming the route and the field), a note as text, tile bytes, a blob stream, or
   * nothing. An error answer throws ValiseError with the server's `code`.
   */
  async request<K extends WireRoute>(route: K, path: string, o: RequestOptions = {}): Promise<WireAnswer<K>> {
    const res = await this.send(route, path, o);
    const method = route.slice(0, route.indexOf(" "));
    if (!res.ok) throw answerError(method, path, res.status, await res.text());
    const kind = WIRE[route].response;
    const what = `${method} ${path.split("?")[0]}`;
    let out: unknown;
    if (kind === "empty") {
      await res.arrayBuffer().catch(() => undefined);
      out = undefined;
    } else if (kind === "text") out = await res.text();
    else if (kind === "bytes") out = new Uint8Array(await res.arrayBuffer());
    else if (kind === "stream") {
      if (!res.body) throw new ValiseError("protocol_error", `${what}: the server sent no body`);
      out = res.body;
    } else {
      const text = await res.text();
      let json: unknown;
      try {
        json = text ? parseWireJson(text, what) : undefined;
      } catch (e) {
        if (e instanceof ValiseError) throw e;
        throw new ValiseError("protocol_error", `${what}: malformed answer from the server (not JSON)`);
      }
      out = parseWire(kind, json, what);
    }
    return out as WireAnswer<K>;
  }

  /**
   * Sends with `send` (one attempt: resolves the response, or throws transport_error when unreachable), retrying
   * idempotent requests with exponential backoff while the server is unreachable or answers 502/503/504. A 503's
   * body is read here only when the request is retried (otherwise the caller reads it).
   */
  private async withRetry(
    method: string,
    path: string,
    canRetry: boolean,
    send: () => Promise<Response>,
  ): Promise<Response> {
    const started = Date.now();
    for (let attempt = 1; ; attempt++) {
      let res: Response | null = null;
      let reason: string;
      let after: number | null = null;
      try {
        res = await send();
        if (![502, 503, 504].includes(res.status)) return res;
        reason = `${res.status}`;
        const ra = Number(res.headers.get("retry-after"));
        if (Number.isFinite(ra) && ra > 0) after = ra * 1000;
      } catch (e) {
        if (!(e instanceof ValiseError && e.code === "transport_error")) throw e;
        if (!canRetry) throw e;
        reason = e.message;
      }
      const delay = Math.min(
        this.retry.maxDelayMs,
        Math.max(after ?? 0, this.retry.baseDelayMs * 2 ** Math.min(attempt - 1, 10)),
      );
      if (!canRetry || Date.now() + delay - started > this.retry.budgetMs) {
        if (res) return res;
        throw new ValiseError("transport_error", `${reason} (gave up after ${attempt} attempts)`);
      }
      if (res) await res.arrayBuffer().catch(() => undefined); // this answer is dropped: free its body
      this.onRetry?.({ method, path, attempt, waitMs: delay, reason, first: attempt === 1 });
      await sleep(delay);
    }
  }

  private reach(url: URL, init: RequestInit): () => Promise<Response> {
    return async () => {
      try {
        return await this.fetchImpl(url, init);
      } catch (e) {
        throw new ValiseError(
          "transport_error",
          `cannot reach ${this.baseUrl}: ${e instanceof Error ? e.message : String(e)}`,
        );
      }
    };
  }
}
