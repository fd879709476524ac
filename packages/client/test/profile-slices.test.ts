/**
 * The client's modules work on the profile slices they own (ProfileRepository's typed accessors), never on the whole
 * mutable ProfileState. This reads the sources of the converted modules and fails if one names `ProfileState` again
 * or reaches into a `.state` of the profile or of a host.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";

/** Modules that receive only their slices (the others still take the whole state; see the report in git log). */
const CONVERTED = [
  "audit.ts",
  "cables.ts",
  "conversations.ts",
  "devices.ts",
  "documents.ts",
  "forward.ts",
  "held-keys.ts",
  "host.ts",
  "receipts.ts",
  "session.ts",
  "sync.ts",
];

/** Source without comments (a comment may talk about the profile). */
const code = (src: string): string => src.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:"'`])\/\/.*$/gm, "$1");

/** What a module must not do: name the whole profile type, or read a `.state` of the profile or a host. */
export function wholeStateUses(src: string): string[] {
  const out: string[] = [];
  for (const [i, line] of code(src).split("\n").entries()) {
    if (/\bProfileState\b/.test(line)) out.push(`${i + 1}: names ProfileState: ${line.trim()}`);
    if (/\b(host|profile|content|self)\s*(\(\))?\s*\.\s*state\b/.test(line)) out.push(`${i + 1}: ${line.trim()}`);
    // `this.state(...)` is Receipts' own method; `this.state` as a property would be the profile.
    if (/\bthis\s*\.\s*state\b(?!\s*\()/.test(line)) out.push(`${i + 1}: ${line.trim()}`);
  }
  return out;
}

test("the check itself: catches the whole-state uses it is there for", () => {
  assert.equal(wholeStateUses("const u = this.host.state.uploads;").length, 1);
  assert.equal(wholeStateUses("heldCable(host.state, id)").length, 1);
  assert.equal(wholeStateUses("const s = this.host.state().receipts;").length, 1);
  assert.equal(wholeStateUses("import type { ProfileState } from './profile.js';").length, 1);
  assert.equal(wholeStateUses("private get data() { return this.state.receipts; }").length, 1);
  assert.deepEqual(wholeStateUses("/** the ProfileState */\nreturn this.state(conversation, s); // host.state"), []);
  assert.deepEqual(wholeStateUses("rec[d] = { user: sender.user, state: p.state };"), []);
});

for (const file of CONVERTED)
  test(`${file} works on its own profile slices, not the whole ProfileState`, () => {
    const src = readFileSync(new URL(`../../src/${file}`, import.meta.url), "utf8");
    assert.deepEqual(wholeStateUses(src), []);
  });
