/**
 * MLS group benchmark (DESIGN.md §5 "Groups" and "Client"): for groups of 10, 100 and 1,000 devices, the time to
 * commit the addition of one member and to process that commit, through @valise/protocol with the Node crypto
 * provider and through raw ts-mls with its default provider, in the same run; plus 1 KiB application message
 * encrypt/decrypt. Groups are built once per size with one big Add commit; every measurement starts from the same
 * (immutable) base state, so repetitions are independent. Writes bench/results/mls.json.
 *
 *   node bench/dist/mls.js [--profile]
 *
 * --profile records a CPU profile of the application-message decrypt loop (bench/results/mls-decrypt.cpuprofile;
 * `node scripts/profile-top.mjs` summarises it). Profiling slows the loop: mls.json is written only without it.
 */
import { generateKeyPairSync, sign, verify } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { Session } from "node:inspector/promises";
import { loadavg } from "node:os";
import { parseArgs } from "node:util";
import { OK, parseDeviceId, parseUserHandle } from "@valise/core";
import type { DeviceId } from "@valise/core";
import {
  addDevices,
  createGroup,
  encryptMessage,
  generateDeviceKeys,
  generateKeyPackages,
  joinFromWelcome,
  processApplications,
  processMessage,
} from "@valise/protocol";
import type { Group, GroupContext } from "@valise/protocol";
import { nodeCryptoProvider } from "@valise/protocol/node/provider";
import {
  createApplicationMessage,
  createCommit,
  createGroup as mlsCreateGroup,
  decodeMlsMessage,
  defaultCapabilities,
  defaultCryptoProvider,
  defaultLifetime,
  emptyPskIndex,
  encodeMlsMessage,
  generateKeyPackage,
  getCiphersuiteFromName,
  joinGroup,
  processPrivateMessage,
} from "ts-mls";
import type { CiphersuiteImpl, ClientState, CryptoProvider } from "ts-mls";

const SUITE = "MLS_256_XWING_AES256GCM_SHA512_Ed25519";
const { values: args } = parseArgs({ options: { profile: { type: "boolean", default: false } } });
const SIZES = [10, 100, 1000];
const acceptAll = { verifyDevice: async () => OK };
let seq = 0;
const dev = (): DeviceId => parseDeviceId(`d-bench${String(++seq).padStart(8, "0")}`);

async function time<T>(f: () => Promise<T>): Promise<[number, T]> {
  const t = performance.now();
  const r = await f();
  return [performance.now() - t, r];
}
function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}
const reps = (n: number) => (n >= 1000 ? 3 : 5);

// ---- through @valise/protocol ----
async function ctxFor(provider: CryptoProvider): Promise<GroupContext> {
  return { keys: await generateDeviceKeys(parseUserHandle("bench"), dev()), verifier: acceptAll, crypto: provider };
}

async function oursAddOne(n: number, provider: CryptoProvider) {
  const a = await ctxFor(provider);
  const b = await ctxFor(provider);
  const bKps = await generateKeyPackages(b.keys, 1, provider);
  const others = await Promise.all(
    Array.from({ length: n - 2 }, async () => {
      const c = await ctxFor(provider);
      return (await generateKeyPackages(c.keys, 1, provider))[0]!.publicBytes;
    }),
  );
  const built = await addDevices(a, await createGroup(a, new TextEncoder().encode(`g${n}`)), [
    bKps[0]!.publicBytes,
    ...others,
  ]);
  const ga = built.group;
  const gb = (await joinFromWelcome(b, built.welcome!, bKps)).group;
  const commitMs: number[] = [];
  const processMs: number[] = [];
  for (let i = 0; i < reps(n); i++) {
    const c = await ctxFor(provider);
    const kp = (await generateKeyPackages(c.keys, 1, provider))[0]!.publicBytes;
    const [tc, out] = await time(() => addDevices(a, ga, [kp]));
    const [tp] = await time(() => processMessage(b, gb, out.commit));
    commitMs.push(tc);
    processMs.push(tp);
  }
  return { commitMs: median(commitMs), processMs: median(processMs), a, b, ga, gb };
}

async function oursAppMessages(a: GroupContext, b: GroupContext, ga0: Group, gb0: Group, count: number) {
  const body = new Uint8Array(1024).fill(0x61);
  const aad = new TextEncoder().encode("CONFIDENTIAL/ASIA");
  let ga = ga0;
  const msgs: Uint8Array[] = [];
  const [te] = await time(async () => {
    for (let i = 0; i < count; i++) {
      const r = await encryptMessage(a, ga, body, aad);
      ga = r.group;
      msgs.push(r.message);
    }
  });
  let gb = gb0;
  const session = args.profile ? new Session() : null;
  if (session) {
    session.connect();
    await session.post("Profiler.enable");
    await session.post("Profiler.start");
  }
  const c0 = process.cpuUsage();
  const [td] = await time(async () => {
    for (const m of msgs) gb = (await processMessage(b, gb, m)).group;
  });
  const c = process.cpuUsage(c0);
  if (session) {
    const { profile } = await session.post("Profiler.stop");
    writeFileSync(new URL("../results/mls-decrypt.cpuprofile", import.meta.url), JSON.stringify(profile));
    session.disconnect();
  }
  // The same messages from the same state as runs (catch-up: processApplications, signatures in the thread pool).
  let gr = gb0;
  const [tr] = await time(async () => {
    for (let i = 0; i < msgs.length; i += 256) {
      const run = await processApplications(b, gr, msgs.slice(i, i + 256));
      if (run.results.length !== Math.min(256, msgs.length - i)) throw new Error("a run stopped early");
      gr = run.group;
    }
  });
  return {
    encryptUs: (te * 1000) / count,
    decryptUs: (td * 1000) / count,
    decryptCpuUs: (c.user + c.system) / count,
    runDecryptUs: (tr * 1000) / count,
  };
}

/**
 * Same-run floor of a decrypt: one Ed25519 verify (node:crypto, KeyObject), wall and CPU time. On a shared machine
 * the CPU time (this process only, one thread) moves far less with other users' load than the wall time.
 */
function ed25519Verify(n = 3000): { us: number; cpuUs: number } {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  const m = new Uint8Array(1200);
  const sig = sign(null, m, privateKey);
  for (let i = 0; i < 300; i++) verify(null, m, publicKey, sig);
  const c0 = process.cpuUsage();
  const t = performance.now();
  for (let i = 0; i < n; i++) verify(null, m, publicKey, sig);
  const c = process.cpuUsage(c0);
  return { us: ((performance.now() - t) * 1000) / n, cpuUs: (c.user + c.system) / n };
}

// ---- raw ts-mls, default provider ----
async function rawKp(cs: CiphersuiteImpl, name: string) {
  return generateKeyPackage(
    { credentialType: "basic", identity: new TextEncoder().encode(name) },
    defaultCapabilities(),
    defaultLifetime,
    [],
    cs,
  );
}
async function rawAddOne(n: number, cs: CiphersuiteImpl) {
  const a = await rawKp(cs, "a");
  const b = await rawKp(cs, "b");
  const others = await Promise.all(Array.from({ length: n - 2 }, (_, i) => rawKp(cs, `m${i}`)));
  const g0 = await mlsCreateGroup(new TextEncoder().encode(`raw${n}`), a.publicPackage, a.privatePackage, [], cs);
  const adds = [b, ...others].map((k) => ({ proposalType: "add" as const, add: { keyPackage: k.publicPackage } }));
  const built = await createCommit(
    { state: g0, cipherSuite: cs },
    { extraProposals: adds, ratchetTreeExtension: true },
  );
  const ga = built.newState;
  const gb = await joinGroup(built.welcome!, b.publicPackage, b.privatePackage, emptyPskIndex, cs);
  const commitMs: number[] = [];
  const processMs: number[] = [];
  for (let i = 0; i < reps(n); i++) {
    const k = await rawKp(cs, `new${i}`);
    const [tc, out] = await time(() =>
      createCommit(
        { state: ga, cipherSuite: cs },
        { extraProposals: [{ proposalType: "add", add: { keyPackage: k.publicPackage } }], ratchetTreeExtension: true },
      ),
    );
    // Same wire round trip as ours: encode, decode, process.
    const wire = encodeMlsMessage(out.commit);
    const [tp] = await time(async () => {
      const m = decodeMlsMessage(wire, 0)![0];
      if (m.wireformat !== "mls_private_message") throw new Error("expected private commit");
      return processPrivateMessage(gb, m.privateMessage, emptyPskIndex, cs);
    });
    commitMs.push(tc);
    processMs.push(tp);
  }
  return { commitMs: median(commitMs), processMs: median(processMs), ga, gb };
}

async function rawAppMessages(ga0: ClientState, gb0: ClientState, cs: CiphersuiteImpl, count: number) {
  const body = new Uint8Array(1024).fill(0x61);
  let ga = ga0;
  const msgs: Uint8Array[] = [];
  const [te] = await time(async () => {
    for (let i = 0; i < count; i++) {
      const r = await createApplicationMessage(ga, body, cs);
      ga = r.newState;
      msgs.push(
        encodeMlsMessage({ version: "mls10", wireformat: "mls_private_message", privateMessage: r.privateMessage }),
      );
    }
  });
  let gb = gb0;
  const [td] = await time(async () => {
    for (const w of msgs) {
      const m = decodeMlsMessage(w, 0)![0];
      if (m.wireformat !== "mls_private_message") throw new Error("expected private message");
      gb = (await processPrivateMessage(gb, m.privateMessage, emptyPskIndex, cs)).newState;
    }
  });
  return { encryptUs: (te * 1000) / count, decryptUs: (td * 1000) / count };
}

async function main() {
  const started = performance.now();
  const rawCs = await defaultCryptoProvider.getCiphersuiteImpl(getCiphersuiteFromName(SUITE));
  const rows: Record<string, number | string>[] = [];
  let app: Record<string, number> = {};
  for (const n of SIZES) {
    const ours = await oursAddOne(n, nodeCryptoProvider);
    const raw = await rawAddOne(n, rawCs);
    rows.push({
      members: n,
      oursCommitMs: +ours.commitMs.toFixed(1),
      rawCommitMs: +raw.commitMs.toFixed(1),
      commitRatio: +(ours.commitMs / raw.commitMs).toFixed(3),
      oursProcessMs: +ours.processMs.toFixed(1),
      rawProcessMs: +raw.processMs.toFixed(1),
      processRatio: +(ours.processMs / raw.processMs).toFixed(3),
    });
    if (n === 100) {
      const v = ed25519Verify();
      const o = await oursAppMessages(ours.a, ours.b, ours.ga, ours.gb, 1000);
      const v2 = ed25519Verify();
      const r = await rawAppMessages(raw.ga, raw.gb, rawCs, 300);
      const verifyUs = Math.min(v.us, v2.us);
      const verifyCpuUs = Math.min(v.cpuUs, v2.cpuUs);
      app = {
        appMessageEncryptUs: +o.encryptUs.toFixed(1),
        appMessageDecryptUs: +o.decryptUs.toFixed(1),
        appMessageDecryptCpuUs: +o.decryptCpuUs.toFixed(1),
        appMessageRunDecryptUs: +o.runDecryptUs.toFixed(1),
        ed25519VerifyUs: +verifyUs.toFixed(1),
        ed25519VerifyCpuUs: +verifyCpuUs.toFixed(1),
        decryptVsVerify: +(o.decryptUs / verifyUs).toFixed(2),
        decryptCpuVsVerifyCpu: +(o.decryptCpuUs / verifyCpuUs).toFixed(2),
        rawAppMessageEncryptUs: +r.encryptUs.toFixed(1),
        rawAppMessageDecryptUs: +r.decryptUs.toFixed(1),
      };
    }
    console.error(`  size ${n} done at ${((performance.now() - started) / 1000).toFixed(1)} s`);
  }
  console.table(rows);
  console.table([app]);
  const result = {
    bench: "mls",
    ciphersuite: SUITE,
    ours: "@valise/protocol + nodeCryptoProvider (verifier: accept-all)",
    raw: "ts-mls 1.6.4 createCommit/processPrivateMessage, default provider, ratchet tree in Welcome",
    node: process.version,
    addOne: rows,
    ...app,
    loadAverage: loadavg().map((x) => +x.toFixed(2)),
    targets: { appMessageDecryptUs: 250 },
    totalSeconds: +((performance.now() - started) / 1000).toFixed(1),
  };
  mkdirSync(new URL("../results/", import.meta.url), { recursive: true });
  if (args.profile) {
    console.error("profiled run: bench/results/mls-decrypt.cpuprofile written, mls.json left as it was");
    return;
  }
  writeFileSync(new URL("../results/mls.json", import.meta.url), JSON.stringify(result, null, 2) + "\n");
}

await main();
