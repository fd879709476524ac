/** Starts an in-process server on 127.0.0.1 with a fresh database, and helpers to enroll users. */
import { buildApp, openStore, protocolServerMls, type Store } from "../index.js";
import { freshDb, type TestDb } from "./databases.js";
import type { FastifyInstance } from "fastify";

export interface TestServer {
  url: string;
  store: Store;
  app: FastifyInstance;
  db: TestDb;
  logLines: string[];
  close(): Promise<void>;
}

export async function startTestServer(
  kind: "sqlite" | "postgres" = "sqlite",
  opts: { loginRatePerMinute?: number } = {},
): Promise<TestServer> {
  const db = await freshDb(kind);
  const store = await openStore({ dataDir: db.dataDir, databaseUrl: db.databaseUrl });
  const logLines: string[] = [];
  const stream = { write: (s: string) => void logLines.push(s) } as unknown as NodeJS.WritableStream;
  const { app } = await buildApp({
    store,
    mls: protocolServerMls,
    logger: { level: "info", stream },
    loginRatePerMinute: opts.loginRatePerMinute ?? 10_000,
  });
  const url = await app.listen({ port: 0, host: "127.0.0.1" });
  return {
    url,
    store,
    app,
    db,
    logLines,
    async close() {
      await app.close();
      await store.close();
      await db.dispose();
    },
  };
}
