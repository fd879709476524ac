/** Shared set-up for system tests: a server with units and users, and enrolled clients (in-memory key stores). */
import { MemoryKeyStore, ValiseClient, type TrustAnchors } from "@valise/client";
import { nodeStreamCipher } from "@valise/client/node/docstream";
import { startTestServer, type TestServer } from "@valise/server/testing/server";
import { testWitnesses, misbehave, type Misbehaviour, type TestWitness } from "./malicious.js";

export interface World {
  server: TestServer;
  statuses: number[];
  /** Enrolls a device (optionally with its own fetch, e.g. one that drops connections). */
  enroll(handle: string, name?: string, fetchImpl?: typeof fetch): Promise<ValiseClient>;
  close(): Promise<void>;
  /** With `transparency`: what every enrolled device pins (log key, test witnesses, quorum). */
  trust: TrustAnchors | undefined;
  /** With `transparency`: the test witnesses that cosign every checkpoint the server serves. */
  witnesses: TestWitness[];
  /** With `transparency`: switches that make the server misbehave on purpose (see malicious.ts). */
  evil: Misbehaviour;
}

export interface WorldOptions {
  /**
   * Key transparency: the server signs directory log checkpoints, `witnesses` test witnesses (default 2) cosign
   * every checkpoint it serves, and devices enroll with the bundle (log key, witness keys, `quorum`, default all).
   */
  transparency?: boolean;
  witnesses?: number;
  quorum?: number;
}

export async function world(
  kind: "sqlite" | "postgres",
  users: { handle: string; units: string[]; clearance: string; role?: "user" | "officer" | "admin" }[],
  opts: WorldOptions = {},
): Promise<World> {
  const witnesses = opts.transparency ? testWitnesses(opts.witnesses ?? 2) : [];
  const evil: Misbehaviour = {};
  const server = await startTestServer(
    kind,
    opts.transparency ? { logKey: true, beforeListen: (app) => misbehave(app, witnesses, evil) } : {},
  );
  const trust: TrustAnchors | undefined =
    opts.transparency && server.logKey
      ? { logKey: server.logKey.vkey, witnesses: witnesses.map((w) => w.vkey), quorum: opts.quorum ?? witnesses.length }
      : undefined;
  const statuses: number[] = [];
  const recordingFetch: typeof fetch = async (input, init) => {
    const r = await fetch(input, init);
    statuses.push(r.status);
    return r;
  };
  const units = new Set(users.flatMap((u) => u.units));
  for (const u of units) await server.store.directory.addUnit(u, "SECRET/ASIA,NATO");
  for (const u of users)
    await server.store.directory.addUser({
      handle: u.handle,
      units: u.units,
      clearance: u.clearance,
      role: u.role ?? "user",
    });
  return {
    server,
    statuses,
    trust,
    witnesses,
    evil,
    async enroll(handle, name = "laptop", fetchImpl?: typeof fetch) {
      const { enrollmentCode } = await server.store.directory.newEnrollmentCode(handle);
      return ValiseClient.enroll({
        serverUrl: server.url,
        code: enrollmentCode,
        deviceName: name,
        store: new MemoryKeyStore(),
        fetch: fetchImpl ?? recordingFetch,
        cipher: nodeStreamCipher(),
        ...(trust ? { trust, transparency: { pollMs: 20 } } : {}),
      });
    },
    close: () => server.close(),
  };
}

export function texts(items: { type: string; text: string }[]): string[] {
  return items.filter((i) => i.type === "message").map((i) => i.text);
}

/** A fetch that lets a test play a malicious server: it rewrites message payloads on their way to one device. */
export function tamperingFetch() {
  const rules: { conversation: string; seq: number; payload: (old: string) => string }[] = [];
  const f: typeof fetch = async (input, init) => {
    const r = await fetch(input, init);
    const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
    const m = /\/v1\/conversations\/([^/]+)\/messages\?/.exec(url);
    if (!m || (init?.method ?? "GET") !== "GET" || !r.ok) return r;
    const body = (await r.json()) as { messages: { seq: number; payload: string }[] };
    for (const msg of body.messages)
      for (const rule of rules)
        if (rule.conversation === decodeURIComponent(m[1]!) && rule.seq === msg.seq)
          msg.payload = rule.payload(msg.payload);
    return new Response(JSON.stringify(body), { status: r.status, headers: { "content-type": "application/json" } });
  };
  return { fetch: f, rules };
}

/** Waits until the server has signed a checkpoint covering every entry of its directory log. */
export async function settled(w: World): Promise<void> {
  const log = w.server.store.directory.log;
  for (let i = 0; i < 500; i++) {
    const size = await log.size();
    if ((await log.latestCheckpoint())?.size === size) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error("no checkpoint covers the log");
}
