/**
 * `valise serve` takes its witnesses from VALISE_WITNESSES / VALISE_WITNESS_QUORUM when no --witness is given — the
 * same variables `valise admin` writes into enrollment bundles, so the server cannot silently publish checkpoints
 * the bundles' devices would refuse (or the reverse). A bare key (no URL) and an impossible quorum are refused.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCli, startServeProcess } from "./cli-process.js";

test("serve reads VALISE_WITNESSES and VALISE_WITNESS_QUORUM; bad values refused", { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "valise-serve-env-"));
  try {
    const { vkey } = JSON.parse((await runCli(["witness", "init", "--key", join(dir, "w.key"), "--json"])).stdout) as {
      vkey: string;
    };

    const srv = await startServeProcess(join(dir, "data"), [], {
      VALISE_WITNESSES: `http://127.0.0.1:9=${vkey}`,
      VALISE_WITNESS_QUORUM: "1",
    });
    try {
      assert.match(srv.output(), /witnesses: 1 \(checkpoints published with 1 cosignatures\)/);
      // In effect: the witness at port 9 never answers, so no checkpoint is ever published.
      await runCli(["admin", "--data", join(dir, "data"), "unit", "add", "HQ/IT"]);
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal((await fetch(`${srv.url}/v1/log/directory/checkpoint`)).status, 404);
    } finally {
      srv.kill();
    }

    // Without the variables the same data directory publishes log-key-signed checkpoints.
    const plain = await startServeProcess(join(dir, "data"));
    try {
      assert.doesNotMatch(plain.output(), /witnesses:/);
      let status = 0;
      for (let i = 0; i < 100 && status !== 200; i++) {
        status = (await fetch(`${plain.url}/v1/log/directory/checkpoint`)).status;
        if (status !== 200) await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(status, 200);
    } finally {
      plain.kill();
    }

    const refused = async (env: NodeJS.ProcessEnv, re: RegExp) =>
      assert.rejects(runCli(["serve", "--data", join(dir, "data"), "--port", "0"], env), (e: { stderr?: string }) =>
        re.test(e.stderr ?? ""),
      );
    await refused({ VALISE_WITNESSES: vkey }, /has no URL/);
    await refused(
      { VALISE_WITNESSES: `http://127.0.0.1:9=${vkey}`, VALISE_WITNESS_QUORUM: "2" },
      /witness-quorum must be between 0 and the number of --witness \(1\)/,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
