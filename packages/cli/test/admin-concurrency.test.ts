/**
 * Operators run `valise admin` next to a running server and sometimes several at once. On SQLite every write
 * transaction begins IMMEDIATE (waits for the write lock) instead of deferred, which failed at once with "database is
 * locked" when another process wrote between the transaction's first read and its first write.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCli, startServeProcess } from "./cli-process.js";

test(
  "eight concurrent valise admin commands next to a running server all succeed (SQLite)",
  { timeout: 120_000 },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), "valise-admin-conc-"));
    const data = join(dir, "data");
    const srv = await startServeProcess(data);
    try {
      await runCli(["admin", "--data", data, "unit", "add", "HQ/X"]);
      const handles = Array.from({ length: 8 }, (_, i) => `user${i}`);
      const results = await Promise.allSettled(
        handles.map((h) => runCli(["admin", "--data", data, "user", "add", h, "--unit", "HQ/X", "--json"])),
      );
      const failed = results.flatMap((r, i) =>
        r.status === "rejected"
          ? [`${handles[i]}: ${String((r.reason as { stderr?: string }).stderr ?? r.reason)}`]
          : [],
      );
      assert.deepEqual(failed, []);
      for (const h of handles) {
        const shown = JSON.parse((await runCli(["admin", "--data", data, "user", "show", h, "--json"])).stdout) as {
          handle: string;
        };
        assert.equal(shown.handle, h);
      }
      // The server kept serving the directory the admin processes wrote.
      assert.equal((await fetch(`${srv.url}/healthz`)).status, 200);
    } finally {
      srv.kill();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
