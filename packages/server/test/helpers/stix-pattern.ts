/**
 * A small parser for STIX 2.1 patterns (§9): observation expressions `[…]` joined by AND / OR / FOLLOWEDBY, each a
 * comparison expression of `object-type:path OP literal` joined by AND / OR, with parentheses. Enough of the
 * grammar to prove an indicator's pattern is well formed and to read back what it compares; qualifiers are
 * not supported (Valise writes none).
 */
export interface Comparison {
  objectType: string;
  path: string;
  op: string;
  value: string | number | boolean;
}

const TOKEN =
  /\s*(?:(\[|\]|\(|\))|('(?:[^'\\]|\\.)*')|(NOT\s+)?(=|!=|<=|>=|<|>|(?:ISSUBSET|ISSUPERSET|LIKE|MATCHES|IN)\b)|(AND|OR|FOLLOWEDBY)\b|(-?\d+(?:\.\d+)?)|(true|false)\b|([a-z0-9][a-z0-9-]*:[A-Za-z0-9_.\[\]*'-]+))/y;

type Tok = { kind: "punct" | "str" | "op" | "bool-op" | "num" | "bool" | "path"; text: string };

function tokenize(s: string): Tok[] {
  const out: Tok[] = [];
  TOKEN.lastIndex = 0;
  while (TOKEN.lastIndex < s.length) {
    if (/^\s*$/.test(s.slice(TOKEN.lastIndex))) break;
    const at = TOKEN.lastIndex;
    const m = TOKEN.exec(s);
    if (!m) throw new Error(`bad token at ${at}: ${s.slice(at, at + 20)}`);
    if (m[1]) out.push({ kind: "punct", text: m[1] });
    else if (m[2]) out.push({ kind: "str", text: m[2].slice(1, -1).replace(/\\(.)/g, "$1") });
    else if (m[4]) out.push({ kind: "op", text: (m[3] ? "NOT " : "") + m[4] });
    else if (m[5]) out.push({ kind: "bool-op", text: m[5] });
    else if (m[6]) out.push({ kind: "num", text: m[6] });
    else if (m[7]) out.push({ kind: "bool", text: m[7] });
    else out.push({ kind: "path", text: m[8]! });
  }
  return out;
}

/** The comparisons of a pattern, in order; throws on anything outside the grammar. */
export function parseStixPattern(pattern: string): Comparison[] {
  const toks = tokenize(pattern);
  let i = 0;
  const out: Comparison[] = [];
  const peek = () => toks[i];
  const take = (text?: string) => {
    const t = toks[i++];
    if (!t || (text !== undefined && t.text !== text))
      throw new Error(`expected ${text ?? "a token"} at token ${i - 1}`);
    return t;
  };
  const comparison = () => {
    if (peek()?.text === "(") {
      take("(");
      comparisonOr();
      take(")");
      return;
    }
    const p = take();
    if (p.kind !== "path") throw new Error(`expected object path, got ${p.text}`);
    const op = take();
    if (op.kind !== "op") throw new Error(`expected operator, got ${op.text}`);
    const v = take();
    if (!["str", "num", "bool"].includes(v.kind)) throw new Error(`expected literal, got ${v.text}`);
    const colon = p.text.indexOf(":");
    out.push({
      objectType: p.text.slice(0, colon),
      path: p.text.slice(colon + 1),
      op: op.text,
      value: v.kind === "num" ? Number(v.text) : v.kind === "bool" ? v.text === "true" : v.text,
    });
  };
  const comparisonOr = () => {
    comparison();
    while (peek()?.text === "AND" || peek()?.text === "OR") {
      take();
      comparison();
    }
  };
  const observation = () => {
    if (peek()?.text === "(") {
      take("(");
      observationOr();
      take(")");
      return;
    }
    take("[");
    comparisonOr();
    take("]");
  };
  const observationOr = () => {
    observation();
    while (peek()?.kind === "bool-op") {
      take();
      observation();
    }
  };
  observationOr();
  if (i !== toks.length) throw new Error(`trailing tokens from ${i}`);
  return out;
}
