import { resolve } from "node:path";
import { buildApp, openStore, protocolServerMls } from "@valise/server";
import { parse } from "./args.js";
import { installNodeCrypto } from "./crypto.js";

export const SERVE_USAGE = `usage: valise serve [--data DIR] [--port N] [--host ADDR] [--log-level LEVEL]

Starts the Valise server: delivery service, directory, key packages, WebSocket push, /healthz, /metrics.
  --data DIR        data directory (SQLite database, blobs); default ./valise-data
  --port N          TCP port; default 8080
  --host ADDR       listen address; default 127.0.0.1 (put a TLS-terminating proxy in front for remote clients)
  --log-level L     pino level (fatal, error, warn, info, debug); default info
Environment: VALISE_DATABASE_URL=postgres://… uses PostgreSQL instead of the embedded SQLite.`;

export async function serve(argv: string[]): Promise<number> {
  const { values } = parse(
    argv,
    { data: { type: "string" }, port: { type: "string" }, host: { type: "string" }, "log-level": { type: "string" } },
    SERVE_USAGE,
  );
  if (values.help) {
    console.log(SERVE_USAGE);
    return 0;
  }
  await installNodeCrypto();
  const dataDir = resolve(values.data ?? "./valise-data");
  const port = Number(values.port ?? 8080);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`invalid --port ${values.port ?? ""}`);
  const host = values.host ?? "127.0.0.1";
  const databaseUrl = process.env.VALISE_DATABASE_URL;
  const store = await openStore({ dataDir, databaseUrl });
  const { app } = await buildApp({ store, mls: protocolServerMls, logger: { level: values["log-level"] ?? "info" } });
  const address = await app.listen({ port, host });
  const url = address.replace("[::1]", "localhost");
  process.stdout.write(
    `Valise is running at ${url}\n` +
      `  database: ${databaseUrl ? "PostgreSQL (VALISE_DATABASE_URL)" : `SQLite in ${dataDir}`}\n` +
      `  first administrator: npx valise admin --data ${dataDir} unit add HQ/IT && npx valise admin --data ${dataDir} user add admin --unit HQ/IT --role admin --json\n`,
  );
  await new Promise<void>((done) => {
    const stop = () => {
      void app
        .close()
        .then(() => store.close())
        .then(done);
    };
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
  return 0;
}
