/**
 * Profile writes per send (issue 17 item 2): what a device writes to its key store for each message it sends, with
 * the profile repository (a save writes only when a slice changed) against writing the whole profile on every save
 * (the client before the repository), counted on the same saves in the same run (ProfileRepository.stats).
 * One sender, a direct peer and a unit channel of N members, all through one `valise serve` (SQLite, 127.0.0.1).
 *
 *   node bench/dist/profile-writes.js [--members N] [--messages N]
 */
import { parseArgs } from "node:util";
import { setCryptoProvider } from "@valise/protocol";
import { nodeCryptoProvider } from "@valise/protocol/node/provider";
import { MemoryKeyStore, ValiseClient } from "@valise/client";
import { openStore } from "@valise/server";
import { freshDataDir, startServe } from "./lib/serve.js";
import { printTable, writeResults } from "./lib/stats.js";

const { values: args } = parseArgs({
  options: { members: { type: "string", default: "8" }, messages: { type: "string", default: "20" } },
});
const MEMBERS = Number(args.members);
const MESSAGES = Number(args.messages);
setCryptoProvider(nodeCryptoProvider);

const dataDir = freshDataDir("valise-bench-profile-");
const codes: { handle: string; code: string }[] = [];
{
  const store = await openStore({ dataDir, databaseUrl: undefined });
  await store.directory.addUnit("HQ/DESK", "SECRET");
  for (let i = 0; i <= MEMBERS; i++) {
    const handle = i === 0 ? "sender" : `member${i}`;
    const r = await store.directory.addUser({ handle, units: ["HQ/DESK"], clearance: "SECRET", role: "user" });
    codes.push({ handle, code: r.enrollmentCode });
  }
  await store.close();
}
const server = await startServe({ dataDir, args: ["--login-rate", "1000"] });
try {
  const clients: ValiseClient[] = [];
  for (const c of codes)
    clients.push(await ValiseClient.enroll({ serverUrl: server.url, code: c.code, store: new MemoryKeyStore() }));
  const sender = clients[0]!;
  const rows: [string, string | number][] = [];
  const results: Record<string, unknown> = { members: MEMBERS, messages: MESSAGES };
  for (const [name, to] of [
    ["direct", "member1"],
    ["unit", "HQ/DESK"],
  ] as const) {
    await sender.send(to, "first: creates the conversation");
    const s0 = { ...sender.profileWrites };
    for (let i = 0; i < MESSAGES; i++) await sender.send(to, `message ${i}`);
    const s1 = sender.profileWrites;
    const per = (k: keyof typeof s0) => (s1[k] - s0[k]) / MESSAGES;
    const r = {
      savesPerSend: per("saves"),
      writesPerSend: per("writes"),
      bytesPerSend: Math.round(per("bytes")),
      baselineWritesPerSend: per("saves"),
      baselineBytesPerSend: Math.round(per("fullBytes")),
    };
    results[name] = r;
    rows.push(
      [`${name}: saves per send`, r.savesPerSend],
      [`${name}: writes per send (before → after)`, `${r.baselineWritesPerSend} → ${r.writesPerSend}`],
      [`${name}: bytes written per send (before → after)`, `${r.baselineBytesPerSend} → ${r.bytesPerSend}`],
    );
  }
  printTable(`Profile writes per send (${MEMBERS + 1} in the unit, ${MESSAGES} sends each)`, rows);
  console.log(writeResults("profile-writes", results));
} finally {
  await server.stop();
}
