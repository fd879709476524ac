/**
 * One leader among the server nodes of a cluster (issue 18), elected through PostgreSQL: the node whose own database
 * session holds a session-level advisory lock (`pg_try_advisory_lock`) is the leader and runs what must run once —
 * the detection tailer, the checkpoint signers, the witness publishers. When the leader's node dies (or loses its
 * database connection), PostgreSQL ends its session and releases the lock; another node takes it at its next try
 * (every `intervalMs`, default 1 s) and starts those tasks from their stored state.
 *
 * The lock is for efficiency (one tailer, one webhook sender, one witness client), not the last line of safety: two
 * leaders for a moment (a node that has not yet noticed it lost its connection) still store each stretch of
 * detection once (the detector's conditional state update) and one checkpoint per size (its primary key; a tree size
 * has one root), so there are never duplicate alerts or two checkpoints of one size with different roots.
 */
import pg from "pg";

/** The advisory lock key ("valise" in ASCII). */
export const LEADER_LOCK_KEY = "130203331228517";

export interface LeaderOptions {
  databaseUrl: string;
  /** Started when this node becomes the leader. */
  onElected: () => Promise<void>;
  /** Stopped when it no longer is (lost connection, shutdown). */
  onDeposed: () => Promise<void>;
  intervalMs?: number;
  key?: string;
  log?: {
    info(msg: string, data?: Record<string, unknown>): void;
    warn(msg: string, data?: Record<string, unknown>): void;
  };
}

export class LeaderElection {
  private client: pg.Client | null = null;
  private timer: NodeJS.Timeout | null = null;
  private leading = false;
  private stopped = false;
  /** The running transition (elected/deposed) or try; serialized. */
  private chain: Promise<void> = Promise.resolve();
  private trying = false;

  constructor(private readonly o: LeaderOptions) {}

  get isLeader(): boolean {
    return this.leading;
  }

  start(): void {
    this.timer = setInterval(() => this.tick(), this.o.intervalMs ?? 1000);
    this.timer.unref();
    this.tick();
  }

  /** Resolves once this node leads (tests, the cluster script), or false after `timeoutMs`. */
  async elected(timeoutMs = 10_000): Promise<boolean> {
    const t0 = Date.now();
    while (!this.leading && Date.now() - t0 < timeoutMs) await new Promise((r) => setTimeout(r, 20));
    return this.leading;
  }

  private tick(): void {
    if (this.trying || this.stopped) return;
    this.trying = true;
    this.chain = this.chain
      .then(() => this.attempt())
      .catch((e: unknown) => {
        this.o.log?.warn("leader election: database unreachable", { err: e instanceof Error ? e.message : String(e) });
        return this.lost();
      })
      .finally(() => {
        this.trying = false;
      });
  }

  private async attempt(): Promise<void> {
    if (this.stopped) return;
    if (!this.client) {
      const c = new pg.Client({ connectionString: this.o.databaseUrl, connectionTimeoutMillis: 5000 });
      c.on("error", () => {
        if (this.client === c) this.client = null;
        this.chain = this.chain.then(() => this.lost());
      });
      c.on("end", () => {
        if (this.client === c) {
          this.client = null;
          this.chain = this.chain.then(() => this.lost());
        }
      });
      await c.connect();
      await c.query("SET application_name = 'valise-leader'");
      this.client = c;
    }
    if (this.leading) {
      // Still ours as long as the session lives: check it answers.
      await this.client.query("SELECT 1");
      return;
    }
    const r = await this.client.query<{ ok: boolean }>("SELECT pg_try_advisory_lock($1::bigint) AS ok", [
      this.o.key ?? LEADER_LOCK_KEY,
    ]);
    if (r.rows[0]?.ok && !this.stopped) {
      this.leading = true;
      this.o.log?.info("this node is the cluster leader (detection, checkpoint signing, witness publication)", {});
      await this.o.onElected();
    }
  }

  private async lost(): Promise<void> {
    const c = this.client;
    this.client = null;
    c?.end().catch(() => undefined);
    if (!this.leading) return;
    this.leading = false;
    this.o.log?.warn("this node is no longer the cluster leader", {});
    await this.o.onDeposed();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.chain;
    if (this.leading) {
      this.leading = false;
      await this.o.onDeposed();
    }
    const c = this.client;
    this.client = null;
    await c?.end().catch(() => undefined);
  }
}
