/** `valise witness …`: run a key-transparency witness (c2sp.org/tlog-witness) for a Valise directory log. */
import { resolve } from "node:path";
import {
  DEFAULT_WITNESS_NAME,
  WitnessStateDir,
  buildWitnessApp,
  createWitnessKeyFile,
  loadWitnessKeyFile,
  parseLogKeySpec,
} from "@valise/server";
import { parse, str, UsageError } from "./args.js";
import { printJson } from "./output.js";

export const WITNESS_USAGE = `usage: valise witness init --key FILE [--name NAME] [--json]
       valise witness serve --key FILE --log-key [ORIGIN=]VKEY… --state DIR --port N [--host ADDR]

A witness is run by someone other than the server's operator (e.g. the national cyber-security authority). It
cosigns a directory log checkpoint only if it extends the last one it cosigned, so the server cannot show two
histories or roll one back without every client noticing.
  init    create an Ed25519 witness key in FILE (mode 0600, never overwritten) and print its verifier key
          (NAME+hash+key, C2SP tlog-cosignature) for the server operator (valise serve --witness URL=VKEY) and for
          clients; --name is the witness's name (default ${DEFAULT_WITNESS_NAME})
  serve   answer C2SP tlog-witness add-checkpoint requests at POST /add-checkpoint, and serve the latest cosigned
          checkpoint of each log at GET /<sha256(origin) hex>/checkpoint
    --key FILE      the witness key from init
    --log-key VKEY  a log's verifier key (valise admin log key; printed by valise serve), trusted for the origin
                    equal to its name; ORIGIN=VKEY trusts it for another origin (Valise's audit log is signed by
                    the directory key: --log-key valise.example/audit=VKEY); repeatable
    --state DIR     where the latest cosigned checkpoint of each log is kept (fsync'd before every answer);
                    keep it: a witness that loses its state can be rolled back
    --port N        TCP port
    --host ADDR     listen address; default 127.0.0.1`;

export async function witness(argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    argv,
    {
      key: { type: "string" },
      name: { type: "string" },
      "log-key": { type: "string", multiple: true },
      state: { type: "string" },
      port: { type: "string" },
      host: { type: "string" },
      "log-level": { type: "string" },
      json: { type: "boolean" },
    },
    WITNESS_USAGE,
  );
  if (values.help) {
    console.log(WITNESS_USAGE);
    return 0;
  }
  const cmd = positionals.join(" ");
  if (cmd === "init") {
    const file = resolve(str(values.key, "--key FILE", WITNESS_USAGE));
    const key = createWitnessKeyFile(file, values.name ?? DEFAULT_WITNESS_NAME);
    if (values.json) printJson({ name: key.name, vkey: key.vkey, keyFile: file });
    else
      process.stdout.write(
        `witness key written to ${file} (mode 0600; keep it secret)\n` +
          `witness verifier key (give it to the log operator and to clients):\n${key.vkey}\n`,
      );
    return 0;
  }
  if (cmd !== "serve") throw new UsageError(`unknown witness command ${JSON.stringify(cmd)}\n\n${WITNESS_USAGE}`);
  const key = loadWitnessKeyFile(resolve(str(values.key, "--key FILE", WITNESS_USAGE)));
  const vkeys = values["log-key"] ?? [];
  if (vkeys.length === 0) throw new UsageError(`missing --log-key VKEY\n\n${WITNESS_USAGE}`);
  const logKeys = vkeys.map((v) => {
    try {
      return parseLogKeySpec(v);
    } catch (e) {
      throw new UsageError(`${e instanceof Error ? e.message : String(e)}\n\n${WITNESS_USAGE}`);
    }
  });
  const stateDir = resolve(str(values.state, "--state DIR", WITNESS_USAGE));
  const port = Number(str(values.port, "--port N", WITNESS_USAGE));
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`invalid --port ${values.port}`);
  const host = values.host ?? "127.0.0.1";
  process.umask(0o077);
  const state = new WitnessStateDir(stateDir);
  const app = await buildWitnessApp({ key, logKeys, state, logger: { level: values["log-level"] ?? "info" } });
  let address: string;
  try {
    address = await app.listen({ port, host });
  } catch (e) {
    state.close();
    throw e;
  }
  process.stdout.write(
    `Valise witness ${key.name} is running at ${address}\n` +
      `  witness verifier key: ${key.vkey}\n` +
      `  witnessing: ${logKeys.map((k) => ("origin" in k ? k.origin : k.name)).join(", ")}\n` +
      `  state: ${stateDir}\n`,
  );
  await new Promise<void>((done) => {
    const stop = () => {
      void app.close().then(() => {
        state.close();
        done();
      });
    };
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
  return 0;
}
