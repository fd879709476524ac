/** Starts an in-process server on 127.0.0.1 with a fresh database, and helpers to enroll users. */
import {
  buildApp,
  loadOrCreateLogKey,
  openStore,
  protocolServerMls,
  type AppOptions,
  type LogKey,
  type ServerMls,
  type Store,
} from "../index.js";
import { freshDb, type TestDb } from "./databases.js";
import type { FastifyInstance } from "fastify";

export interface TestServer {
  url: string;
  store: Store;
  app: FastifyInstance;
  db: TestDb;
  logLines: string[];
  /** The directory log's signing key, when the server signs checkpoints (`opts.logKey`). */
  logKey: LogKey | undefined;
  close(): Promise<void>;
}

export async function startTestServer(
  kind: "sqlite" | "postgres" = "sqlite",
  opts: {
    loginRatePerMinute?: number;
    /** Sign directory log checkpoints: `true` makes a fresh key in the data directory. */
    logKey?: boolean | LogKey;
    checkpointIntervalMs?: number;
    /** Runs before the server listens (Fastify hooks can only be added then), e.g. to misbehave on purpose. */
    beforeListen?: (app: FastifyInstance, store: Store) => void | Promise<void>;
    /** Substitute MLS inspection (tests that route messages without real MLS groups); default @valise/protocol's. */
    mls?: ServerMls;
    /** More buildApp options (e.g. witnesses). */
    app?: Partial<Omit<AppOptions, "store" | "mls">>;
  } = {},
): Promise<TestServer> {
  const db = await freshDb(kind);
  const store = await openStore({ dataDir: db.dataDir, databaseUrl: db.databaseUrl });
  const logLines: string[] = [];
  const stream = { write: (s: string) => void logLines.push(s) } as unknown as NodeJS.WritableStream;
  const logKey =
    opts.logKey === true
      ? loadOrCreateLogKey({ dataDir: db.dataDir, origin: "test.valise.example/directory", env: {} })
      : opts.logKey || undefined;
  const { app } = await buildApp({
    store,
    mls: opts.mls ?? protocolServerMls,
    logger: { level: "info", stream },
    loginRatePerMinute: opts.loginRatePerMinute ?? 10_000,
    ...(logKey ? { logKey, checkpointIntervalMs: opts.checkpointIntervalMs ?? 20 } : {}),
    ...opts.app,
  });
  await opts.beforeListen?.(app, store);
  const url = await app.listen({ port: 0, host: "127.0.0.1" });
  return {
    url,
    store,
    app,
    db,
    logLines,
    logKey,
    async close() {
      await app.close();
      await store.close();
      await db.dispose();
    },
  };
}
