/** `valise`: the command-line entry point. */
import { guardOutput, reportError } from "./output.js";
import { profileOptions } from "./profile-options.js";

// Every command's module is imported when that command runs, not at start: a client command (send, sync, cable …)
// then loads the client SDK only, not the server, its database drivers and the detection engine (about half of a
// short command's time was spent loading modules it never used).
async function help(): Promise<string> {
  const [
    { SERVE_USAGE },
    { ADMIN_USAGE },
    { BACKUP_USAGE },
    { CABLE_USAGE, DOC_USAGE },
    { ARCHIVE_USAGE },
    { LOG_USAGE },
    { AUDIT_USAGE },
    { DIRECTORY_USAGE },
    { INCIDENT_USAGE },
    { WITNESS_USAGE },
  ] = await Promise.all([
    import("./serve.js"),
    import("./admin.js"),
    import("./backup.js"),
    import("./content-commands.js"),
    import("./archive-commands.js"),
    import("./log-commands.js"),
    import("./audit-commands.js"),
    import("./directory-commands.js"),
    import("./incident-commands.js"),
    import("./witness-commands.js"),
  ]);
  return `valise — end-to-end encrypted cables, conversations and documents

usage: valise <command> [options]     (valise <command> --help for details)

Server and operator:
  serve          run the server (default: SQLite in ./valise-data, port 8080)
  admin          units, users, one-time enrollment codes, device revocation, log key (local, on the server machine)
  log            the directory log: latest signed checkpoint; status (this device: rollback, fork, freshness)
  witness        run a witness that cosigns the directory log's checkpoints (for another organisation)
Device:
  enroll         enroll this machine with a one-time code into a profile directory
  send           send an encrypted message to a user or unit
  cable          send, list and read cables (precedence, reference numbers, receipts)
  doc            upload, version, list and download encrypted documents of any size
  sync           fetch and decrypt what is new (messages, cables FLASH first, document shares)
  conversations  list this device's conversations
  history        past messages kept on this device (sealed at rest), including history from an approved device
  search         search this device's messages, cables, document and attachment names (index on the device only)
  devices        this user's devices per the verified directory log, and own-account alerts (--ack DEVICE)
Records:
  archive        export a unit's records decrypted with a signed manifest (archivists); verify an export
Security officer:
  audit          tail, query, verify and export the audit log (every access to stored data)
  detect         replay audit events (JSONL) through the detection rules and baselines, print alerts
  alerts         the server's detection alerts: list, acknowledge, --follow them live
  incident       group alerts into incidents, export STIX 2.1, share them over TAXII 2.1
  directory      follow every directory change (units, users, memberships, roles, devices) with its log index
  taxii          TAXII 2.1 with allies: partner tokens for our feed; partners' feeds polled for indicators
Operations:
  version        the release, Node.js and database schema versions (also valise --version; --json)
  admin backup   an online copy of the data directory and database; admin restore into an empty directory

Profiles: one process at a time uses a profile (--profile DIR): another valise command on the same profile waits
until the first has finished (it says so on stderr); add --no-wait to fail at once instead. While the server cannot
store or read (503, unreachable), commands say "the server cannot store or read right now; nothing was lost,
retrying" and retry reads and idempotent writes with backoff for up to a minute.

Example (five minutes):
  npx valise serve &
  npx valise admin unit add HQ/ASIA-1
  npx valise admin user add jnovak --unit HQ/ASIA-1 --clearance CONFIDENTIAL/ASIA --json > jnovak.json
  npx valise enroll --server http://127.0.0.1:8080 --bundle jnovak.json --profile ./jnovak
  npx valise send --profile ./jnovak --to pdvorak "Meeting at 10"
  npx valise sync --profile ./pdvorak --json

${SERVE_USAGE}

${ADMIN_USAGE}

${BACKUP_USAGE}

${CABLE_USAGE}

${DOC_USAGE}

${ARCHIVE_USAGE}

${LOG_USAGE}

${AUDIT_USAGE}

${DIRECTORY_USAGE}

${INCIDENT_USAGE}

${WITNESS_USAGE}`;
}

const clientCommands = () => import("./client-commands.js");

async function main(argv: string[]): Promise<number> {
  const [cmd, ...args] = argv;
  // A global option of every profile command (see HELP "Profiles").
  profileOptions.noWait = args.includes("--no-wait");
  const rest = args.filter((a) => a !== "--no-wait");
  const json = rest.includes("--json");
  try {
    switch (cmd) {
      case undefined:
      case "help":
      case "--help":
      case "-h":
        console.log(await help());
        return cmd === undefined ? 2 : 0;
      case "--version":
      case "-V":
      case "version":
        return await (await import("./version.js")).version(rest);
      case "serve":
        return await (await import("./serve.js")).serve(rest);
      case "admin": {
        // valise admin [--data DIR] backup|restore …
        const at = rest[0] === "--data" ? 2 : 0;
        if (rest[at] === "backup" || rest[at] === "restore")
          return await (
            await import("./backup.js")
          ).backupRestore([rest[at], ...rest.slice(0, at), ...rest.slice(at + 1)]);
        return await (await import("./admin.js")).admin(rest);
      }
      case "log":
        return await (await import("./log-commands.js")).log(rest);
      case "audit":
        return await (await import("./audit-commands.js")).audit(rest);
      case "detect":
        return await (await import("./detect-commands.js")).detect(rest);
      case "alerts":
        return await (await import("./alerts-commands.js")).alerts(rest);
      case "directory":
        return await (await import("./directory-commands.js")).directory(rest);
      case "incident":
      case "taxii":
        return await (await import("./incident-commands.js")).incidentCommands(cmd, rest);
      case "witness":
        return await (await import("./witness-commands.js")).witness(rest);
      case "enroll":
        return await (await clientCommands()).enroll(rest);
      case "send":
        return await (await clientCommands()).send(rest);
      case "sync":
        return await (await clientCommands()).sync(rest);
      case "cable":
        return await (await import("./content-commands.js")).cable(rest);
      case "doc":
        return await (await import("./content-commands.js")).doc(rest);
      case "conversations":
        return await (await clientCommands()).conversations(rest);
      case "devices":
        return await (await clientCommands()).devices(rest);
      case "history":
        return await (await import("./history-commands.js")).history(rest);
      case "search":
        return await (await import("./history-commands.js")).search(rest);
      case "archive":
        return await (await import("./archive-commands.js")).archive(rest);
      default:
        process.stderr.write(`valise: unknown command ${JSON.stringify(cmd)}; see valise --help\n`);
        return 2;
    }
  } catch (e) {
    return reportError(e, json);
  }
}

guardOutput();
const argv = process.argv.slice(2);
const code = await main(argv);
process.exitCode = code;
// Long-running commands (serve, witness serve, audit tail -f, alerts --follow) keep their own handles; every other command is done
// here: exit even if a pooled worker thread or a keep-alive socket is still around (stdout is flushed first).
const longRunning =
  ["serve", "witness", "audit"].includes(argv[0] ?? "") || (argv[0] === "alerts" && argv.includes("--follow"));
if (!longRunning) process.stdout.write("", () => process.exit(code));
