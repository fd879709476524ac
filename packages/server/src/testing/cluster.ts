/**
 * Test and bench support: several server nodes in one process on one fresh PostgreSQL database, each with its own
 * connection pool, data directory, NATS connection (when a NATS URL is given) and leader election — what several
 * `valise serve --nats URL` processes are, minus the processes (packages/cli/test/cluster.test.ts runs those).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { FastifyInstance } from "fastify";
import {
  buildApp,
  loadOrCreateLogKey,
  NatsFanout,
  openStore,
  protocolServerMls,
  type AppOptions,
  type LogKey,
  type ServerMls,
  type Store,
} from "../index.js";
import type { ServerContext } from "../http/context.js";
import { freshDb, type TestDb } from "./databases.js";

export interface ClusterNode {
  name: string;
  url: string;
  app: FastifyInstance;
  ctx: ServerContext;
  store: Store;
  fanout: NatsFanout | undefined;
  dataDir: string;
  logLines: string[];
  readonly closed: boolean;
  /** Stops the node (its app, NATS connection and database pool). */
  close(): Promise<void>;
}

export interface TestCluster {
  db: TestDb;
  nodes: ClusterNode[];
  logKey: LogKey | undefined;
  /** Starts one more node on the same database. */
  addNode(): Promise<ClusterNode>;
  /** The nodes not closed. */
  live(): ClusterNode[];
  /** The node leading now (or undefined). */
  leader(): ClusterNode | undefined;
  close(): Promise<void>;
}

export async function startTestCluster(
  n: number,
  opts: {
    nats?: string;
    blobStore?: "fs" | "pg";
    logKey?: boolean;
    mls?: ServerMls;
    app?: Partial<Omit<AppOptions, "store" | "mls" | "fanout">>;
    leaderIntervalMs?: number;
  } = {},
): Promise<TestCluster> {
  const db = await freshDb("postgres");
  const logKey = opts.logKey
    ? loadOrCreateLogKey({ dataDir: db.dataDir, origin: "test.valise.example/directory", env: {} })
    : undefined;
  const nodes: ClusterNode[] = [];
  const all = new Set<ClusterNode>();
  let count = 0;
  const addNode = async (): Promise<ClusterNode> => {
    const name = `node${++count}`;
    const dataDir = mkdtempSync(join(tmpdir(), `valise-${name}-`));
    const store = await openStore({ dataDir, databaseUrl: db.databaseUrl, blobStore: opts.blobStore ?? "pg" });
    const logLines: string[] = [];
    const stream = { write: (s: string) => void logLines.push(s) } as unknown as NodeJS.WritableStream;
    const fanout = opts.nats
      ? new NatsFanout({ servers: opts.nats, heartbeatMs: 200, reconnectWaitMs: 100, name: `valise-${name}` })
      : undefined;
    const { app, ctx } = await buildApp({
      store,
      mls: opts.mls ?? protocolServerMls,
      logger: { level: "info", stream },
      loginRatePerMinute: 10_000,
      ...(fanout ? { fanout } : {}),
      cluster: { leaderIntervalMs: opts.leaderIntervalMs ?? 200 },
      ...(logKey ? { logKey, checkpointIntervalMs: 50 } : {}),
      ...opts.app,
    });
    const url = await app.listen({ port: 0, host: "127.0.0.1" });
    if (fanout) await fanout.ready();
    let closed = false;
    const node: ClusterNode = {
      name,
      url,
      app,
      ctx,
      store,
      fanout,
      dataDir,
      logLines,
      get closed() {
        return closed;
      },
      async close() {
        if (closed) return;
        closed = true;
        all.delete(node);
        await app.close();
        await fanout?.close();
        await store.close();
        rmSync(dataDir, { recursive: true, force: true });
      },
    };
    nodes.push(node);
    all.add(node);
    return node;
  };
  for (let i = 0; i < n; i++) await addNode();
  return {
    db,
    nodes,
    logKey,
    addNode,
    live: () => nodes.filter((x) => !x.closed),
    leader: () => [...all].find((x) => x.ctx.leader?.isLeader),
    async close() {
      for (const node of [...all]) await node.close();
      await db.dispose();
    },
  };
}
