/**
 * Alert webhooks: every stored alert is POSTed as JSON (`{"type":"alert", …AlertView}`) to each configured URL.
 * Delivery runs beside the detector, never in its way: a bounded queue per URL, one request at a time, a timeout
 * per request, bounded retries with exponential backoff; a full queue drops its oldest alert. Every outcome is
 * logged and counted (`valise_alert_webhook_total{outcome}`), and the alerts stay in the database and the API
 * whatever a webhook does.
 */
import type { AlertView } from "./alert-store.js";

export interface WebhookOptions {
  urls: readonly string[];
  /** Per request (default 5 s). */
  timeoutMs?: number;
  /** Attempts per alert and URL (default 5). */
  attempts?: number;
  /** First retry delay, doubled each time (default 1 s, at most 60 s). */
  backoffMs?: number;
  /** Queued alerts per URL before the oldest is dropped (default 10,000). */
  maxQueue?: number;
  fetch?: typeof fetch;
  onOutcome?: (outcome: "ok" | "retry" | "failed" | "dropped", url: string, detail?: string) => void;
}

/** Webhook URLs must be absolute http(s) URLs; returns the normalised URL or throws with the reason. */
export function checkWebhookUrl(u: string): string {
  let url: URL;
  try {
    url = new URL(u);
  } catch {
    throw new Error(`--alert-webhook ${JSON.stringify(u)} is not a URL`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:")
    throw new Error(`--alert-webhook ${JSON.stringify(u)} must be an http:// or https:// URL`);
  return url.toString();
}

class Target {
  private readonly queue: string[] = [];
  private running: Promise<void> | null = null;
  private stopped = false;
  private wake: (() => void) | null = null;
  constructor(
    readonly url: string,
    private readonly o: Required<Omit<WebhookOptions, "urls" | "onOutcome">> & Pick<WebhookOptions, "onOutcome">,
  ) {}

  push(body: string): void {
    if (this.stopped) return;
    this.queue.push(body);
    while (this.queue.length > this.o.maxQueue) {
      this.queue.shift();
      this.o.onOutcome?.("dropped", this.url, "queue full");
    }
    this.running ??= this.drain().finally(() => (this.running = null));
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((done) => {
      const t = setTimeout(() => {
        this.wake = null;
        done();
      }, ms);
      this.wake = () => {
        clearTimeout(t);
        this.wake = null;
        done();
      };
    });
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0 && !this.stopped) {
      const body = this.queue[0]!;
      let delay = this.o.backoffMs;
      for (let attempt = 1; ; attempt++) {
        let detail: string;
        try {
          const res = await this.o.fetch(this.url, {
            method: "POST",
            headers: { "content-type": "application/json", "user-agent": "valise-server/alerts" },
            body,
            signal: AbortSignal.timeout(this.o.timeoutMs),
          });
          await res.arrayBuffer().catch(() => undefined);
          if (res.ok) {
            this.o.onOutcome?.("ok", this.url);
            break;
          }
          detail = `HTTP ${res.status}`;
        } catch (e) {
          detail = e instanceof Error ? e.message : String(e);
        }
        if (attempt >= this.o.attempts || this.stopped) {
          this.o.onOutcome?.("failed", this.url, `${detail} (after ${attempt} attempts)`);
          break;
        }
        this.o.onOutcome?.("retry", this.url, detail);
        await this.sleep(delay);
        delay = Math.min(delay * 2, 60_000);
      }
      // The body is still the head unless push() dropped it meanwhile (queue full).
      if (this.queue[0] === body) this.queue.shift();
    }
  }

  async stop(graceMs: number): Promise<void> {
    const running = this.running;
    if (!running) {
      this.stopped = true;
      return;
    }
    // Let an in-flight request finish (bounded), then give up on the rest.
    const timer = new Promise<void>((done) => setTimeout(done, graceMs).unref());
    this.stopped = true;
    this.wake?.();
    await Promise.race([running, timer]);
  }
}

export class WebhookSender {
  private readonly targets: Target[];
  constructor(opts: WebhookOptions) {
    const o = {
      timeoutMs: opts.timeoutMs ?? 5000,
      attempts: Math.max(1, opts.attempts ?? 5),
      backoffMs: opts.backoffMs ?? 1000,
      maxQueue: opts.maxQueue ?? 10_000,
      fetch: opts.fetch ?? globalThis.fetch.bind(globalThis),
      onOutcome: opts.onOutcome,
    };
    this.targets = opts.urls.map((u) => new Target(u, o));
  }

  get size(): number {
    return this.targets.length;
  }

  /** Queues the alerts for every URL; returns at once. */
  send(alerts: readonly AlertView[]): void {
    if (this.targets.length === 0) return;
    for (const a of alerts) {
      const body = JSON.stringify({ type: "alert", ...a });
      for (const t of this.targets) t.push(body);
    }
  }

  /** Stops delivery: waits up to `graceMs` for requests in flight; queued alerts are not sent (they are stored). */
  async stop(graceMs = 2000): Promise<void> {
    await Promise.all(this.targets.map((t) => t.stop(graceMs)));
  }
}
