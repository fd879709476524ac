/** Shared set-up for system tests: a server with units and users, and enrolled clients (in-memory key stores). */
import { MemoryKeyStore, ValiseClient } from "@valise/client";
import { startTestServer, type TestServer } from "@valise/server/testing/server";

export interface World {
  server: TestServer;
  statuses: number[];
  enroll(handle: string, name?: string): Promise<ValiseClient>;
  close(): Promise<void>;
}

export async function world(
  kind: "sqlite" | "postgres",
  users: { handle: string; units: string[]; clearance: string }[],
): Promise<World> {
  const server = await startTestServer(kind);
  const statuses: number[] = [];
  const recordingFetch: typeof fetch = async (input, init) => {
    const r = await fetch(input, init);
    statuses.push(r.status);
    return r;
  };
  const units = new Set(users.flatMap((u) => u.units));
  for (const u of units) await server.store.directory.addUnit(u, "SECRET/ASIA,NATO");
  for (const u of users)
    await server.store.directory.addUser({ handle: u.handle, units: u.units, clearance: u.clearance, role: "user" });
  return {
    server,
    statuses,
    async enroll(handle, name = "laptop") {
      const { enrollmentCode } = await server.store.directory.newEnrollmentCode(handle);
      return ValiseClient.enroll({
        serverUrl: server.url,
        code: enrollmentCode,
        deviceName: name,
        store: new MemoryKeyStore(),
        fetch: recordingFetch,
      });
    },
    close: () => server.close(),
  };
}

export function texts(items: { type: string; text: string }[]): string[] {
  return items.filter((i) => i.type === "message").map((i) => i.text);
}
