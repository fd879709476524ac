/**
 * `valise detect` replays a small generated JSONL file: alerts one per line with the fields (training days
 * quiet), bad lines named by number or skipped, out-of-order input sorted within the tolerance and refused beyond it,
 * extra rule files loaded and bad ones named.
 */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const CLI = fileURLToPath(new URL("../../bin/valise.js", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "valise-detect-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { timeout: 60_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

const T0 = Date.parse("2026-03-02T00:00:00Z");
const DAY = 86_400_000;
const HOUR = 3_600_000;
type Ev = Record<string, unknown> & { time: string };

/** Three desk officers over 18 days; on day 16 a stolen credential is enrolled and used, and a canary is opened. */
function office(): Ev[] {
  const out: Ev[] = [];
  let n = 0;
  let seed = 7;
  const r = (): number => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  const ev = (t: number, p: Record<string, unknown>): void => {
    out.push({
      id: `e${++n}`,
      time: new Date(t).toISOString().replace(".000Z", "Z"),
      device: null,
      source: "10.20.3.14",
      object: "",
      label: "CONFIDENTIAL/ASIA",
      unit: "HQ/ASIA-1",
      bytes: 1000,
      canary: false,
      outcome: "ok",
      ...p,
    });
  };
  for (let d = 0; d < 18; d++) {
    for (const who of ["jnovak", "pdvorak", "kmala"]) {
      const base = T0 + d * DAY + 8 * HOUR;
      ev(base, { actor: who, action: "login", device: `d-${who}` });
      for (let k = 0; k < 15; k++)
        ev(base + 600_000 + Math.floor(r() * 8 * HOUR), {
          actor: who,
          action: "document.read",
          device: `d-${who}`,
          object: `doc-${Math.floor(r() * 40)}`,
        });
    }
  }
  const t = T0 + 16 * DAY + 2 * HOUR;
  ev(t, {
    actor: "jnovak",
    action: "directory.device.add",
    device: "d-evil",
    target_device: "d-evil",
    object: "jnovak",
    source: "185.174.3.7",
  });
  ev(t + 60_000, {
    actor: "jnovak",
    action: "document.read",
    device: "d-evil",
    object: "doc-5",
    source: "185.174.3.7",
    id: "evil-read",
  });
  ev(t + 120_000, {
    actor: "jnovak",
    action: "document.read",
    device: "d-evil",
    object: "doc-canary",
    canary: true,
    source: "185.174.3.7",
    id: "evil-canary",
  });
  return out.sort((a, b) => Date.parse(a.time) - Date.parse(b.time));
}

function write(name: string, lines: string[]): string {
  const p = join(dir, name);
  writeFileSync(p, lines.map((l) => `${l}\n`).join(""));
  return p;
}

describe("valise detect", () => {
  const events = office();
  const file = write(
    "events.jsonl",
    events.map((e) => JSON.stringify(e)),
  );

  test("replays a file and prints one alert per line after the training days", async () => {
    const r = await cli("detect", "--events", file, "--json");
    assert.equal(r.code, 0, r.stderr);
    const alerts = r.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.ok(alerts.length >= 2, r.stdout);
    for (const a of alerts) {
      assert.deepEqual(Object.keys(a), ["time", "actor", "rule", "severity", "reason", "events"]);
      assert.ok(Date.parse(a.time as string) >= T0 + 14 * DAY, "no alert during training");
    }
    const canary = alerts.find((a) => a.rule === "canary-touch")!;
    assert.deepEqual([canary.severity, canary.events, canary.actor], ["critical", ["evil-canary"], "jnovak"]);
    assert.equal(canary.time, events.find((e) => e.id === "evil-canary")!.time);
    // jnovak enrolled d-evil with a code and never approved it from his laptop: reported when the 8 h approval
    // window ends (here: at the end of the file), with the held reads (issue 16 part 2; before: on the first read).
    assert.ok(
      alerts.some((a) => a.rule === "baseline.device-unacknowledged" && (a.events as string[])[0] === "evil-read"),
    );
    assert.match(r.stderr, /\d+ events, \d+ alerts/);
  });

  test("a bad line is an error naming its line number, or skipped with --skip-bad", async () => {
    const lines = events.map((e) => JSON.stringify(e));
    lines.splice(4, 0, '{"id":"x","time":"soon","actor":"a","action":"login"}');
    const bad = write("bad.jsonl", lines);
    const r = await cli("detect", "--events", bad, "--json");
    assert.equal(r.code, 1);
    assert.match(r.stderr, /line 5: field time is not an ISO 8601 time/);
    const s = await cli("detect", "--events", bad, "--skip-bad", "--json");
    assert.equal(s.code, 0, s.stderr);
    assert.match(s.stderr, /skipping line 5/);
    assert.match(s.stdout, /canary-touch/);
  });

  test("unsorted input: small disorder is sorted, disorder beyond the tolerance is refused", async () => {
    const lines = events.map((e) => JSON.stringify(e));
    const swapped = [...lines];
    [swapped[10], swapped[11]] = [swapped[11]!, swapped[10]!];
    const ok = await cli("detect", "--events", write("swapped.jsonl", swapped), "--json");
    assert.equal(ok.code, 0, ok.stderr);
    const reversed = await cli("detect", "--events", write("reversed.jsonl", [...lines].reverse()), "--json");
    assert.equal(reversed.code, 1);
    assert.match(
      reversed.stderr,
      /line \d+: event .* is earlier than events already processed .*sort the input by time first/,
    );
  });

  test("extra rule files are loaded; a bad one is named", async () => {
    const rule = {
      id: "officer-jnovak-watch",
      title: "Watch",
      severity: "low",
      match: { actor: "pdvorak", action: "login" },
      suppressSeconds: 0,
      reason: "{actor} logged in from {source}",
    };
    const good = write("watch.json", [JSON.stringify(rule)]);
    const r = await cli("detect", "--events", file, "--rules", good, "--no-default-rules", "--json");
    assert.equal(r.code, 0, r.stderr);
    // Besides the rule's alerts only the built-in baselines, which no rule file turns off (here the device jnovak
    // enrolled and never approved: baseline.device-unacknowledged).
    const alerts = r.stdout
      .trim()
      .split("\n")
      .filter((l) => !l.includes('"rule":"baseline.'));
    assert.equal(alerts.length, 4); // days 14-17
    assert.ok(alerts.every((l) => l.includes("officer-jnovak-watch")));
    const badRule = write("bad-rule.json", [JSON.stringify({ ...rule, severity: "urgent" })]);
    const b = await cli("detect", "--events", file, "--rules", badRule);
    assert.equal(b.code, 1);
    assert.match(b.stderr, /bad-rule\.json: rule\[0\] "officer-jnovak-watch": severity/);
    const u = await cli("detect");
    assert.equal(u.code, 2);
    assert.match(u.stderr, /missing --events FILE/);
  });
});
