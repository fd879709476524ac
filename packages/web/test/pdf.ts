/**
 * A minimal text extractor for the PDFs Chromium prints (Skia/PDF): enough to say which text each printed page
 * carries and where on the page each line is, without a PDF library. It reads the page tree, inflates each page's
 * content streams (FlateDecode), maps the glyph codes of the hex strings shown with Tj/TJ through each font's
 * ToUnicode CMap, and places every text line with the current transformation and text matrices (q/Q, cm, Tm, Td).
 * Not a general PDF reader: no object streams, no cross-reference streams, no literal-string text, no text inside
 * form XObjects (a page that draws its text that way would come out empty, so the callers also check that text they
 * know is on the page is found).
 */
import { inflateSync } from "node:zlib";

export interface PdfLine {
  /** The line's text: the glyph runs of one text object on one baseline, joined in drawing order. */
  text: string;
  /** Baseline from the top of the page, in points, and as a fraction of the page height. */
  y: number;
  yFraction: number;
  /** Font size in points on the page (text size times the matrices' vertical scale). */
  size: number;
}

interface PdfObject {
  dict: string;
  stream: Buffer | null;
}

function objects(pdf: Buffer): Map<number, PdfObject> {
  const text = pdf.toString("latin1");
  const out = new Map<number, PdfObject>();
  const re = /(\d+) 0 obj\s*/g;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    const start = m.index + m[0].length;
    const end = text.indexOf("endobj", start);
    const body = text.slice(start, end);
    const s = body.search(/stream\r?\n/);
    let stream: Buffer | null = null;
    let dict = body;
    if (s >= 0) {
      dict = body.slice(0, s);
      const len = /\/Length (\d+)/.exec(dict);
      const dataStart = start + s + (body[s + 6] === "\r" ? 8 : 7);
      const raw = pdf.subarray(dataStart, len ? dataStart + Number(len[1]) : start + body.lastIndexOf("endstream"));
      stream = /\/FlateDecode/.test(dict) ? inflateSync(raw) : raw;
    }
    out.set(Number(m[1]), { dict, stream });
    re.lastIndex = end;
  }
  return out;
}

const refs = (s: string) => [...s.matchAll(/(\d+) 0 R/g)].map((m) => Number(m[1]));

/** code (hex) → Unicode text, from a ToUnicode CMap (bfchar and bfrange, both forms). */
function cmap(src: string): Map<string, string> {
  const map = new Map<string, string>();
  const utf16 = (hex: string) => {
    let s = "";
    for (let i = 0; i + 4 <= hex.length; i += 4) s += String.fromCharCode(parseInt(hex.slice(i, i + 4), 16));
    return s;
  };
  for (const block of src.matchAll(/beginbfchar([\s\S]*?)endbfchar/g))
    for (const m of block[1]!.matchAll(/<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>/g))
      map.set(m[1]!.toUpperCase(), utf16(m[2]!));
  for (const block of src.matchAll(/beginbfrange([\s\S]*?)endbfrange/g))
    for (const m of block[1]!.matchAll(/<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>\s*(<[0-9A-Fa-f]+>|\[[^\]]*\])/g)) {
      const lo = parseInt(m[1]!, 16);
      const hi = parseInt(m[2]!, 16);
      const width = m[1]!.length;
      const dst = m[3]!;
      const list = dst.startsWith("[") ? [...dst.matchAll(/<([0-9A-Fa-f]+)>/g)].map((x) => x[1]!) : null;
      for (let c = lo; c <= hi; c++) {
        const key = c.toString(16).toUpperCase().padStart(width, "0");
        if (list) map.set(key, utf16(list[c - lo] ?? ""));
        else {
          const base = dst.slice(1, -1);
          const last = parseInt(base.slice(-4), 16) + (c - lo);
          map.set(key, utf16(base.slice(0, -4) + last.toString(16).padStart(4, "0")));
        }
      }
    }
  return map;
}

type M = [number, number, number, number, number, number];
/** a then b (PDF row-vector convention: p' = p × a × b). */
const mul = (a: M, b: M): M => [
  a[0] * b[0] + a[1] * b[2],
  a[0] * b[1] + a[1] * b[3],
  a[2] * b[0] + a[3] * b[2],
  a[2] * b[1] + a[3] * b[3],
  a[4] * b[0] + a[5] * b[2] + b[4],
  a[4] * b[1] + a[5] * b[3] + b[5],
];
const ID: M = [1, 0, 0, 1, 0, 0];

/**
 * The text of each page, in page order, as lines: the runs of one text object (BT … ET) on one baseline, sorted from
 * the top of the page (two text objects on the same baseline, e.g. a banner drawn over a line of the body, stay two
 * lines).
 */
export function pdfPages(pdf: Buffer): PdfLine[][] {
  const objs = objects(pdf);
  const catalog = [...objs.values()].find((o) => /\/Type\s*\/Catalog/.test(o.dict));
  if (!catalog) throw new Error("pdf: no catalog");
  const rootRef = /\/Pages (\d+) 0 R/.exec(catalog.dict);
  const pages: number[] = [];
  const walk = (n: number) => {
    const o = objs.get(n);
    if (!o) return;
    if (/\/Type\s*\/Pages\b/.test(o.dict)) {
      const kids = /\/Kids\s*\[([^\]]*)\]/.exec(o.dict);
      for (const k of refs(kids?.[1] ?? "")) walk(k);
    } else if (/\/Type\s*\/Page\b/.test(o.dict)) pages.push(n);
  };
  walk(Number(rootRef?.[1]));
  const cmaps = new Map<number, Map<string, string>>();
  const fontMap = (ref: number) => {
    if (!cmaps.has(ref)) {
      const tu = /\/ToUnicode (\d+) 0 R/.exec(objs.get(ref)?.dict ?? "");
      const s = tu ? objs.get(Number(tu[1]))?.stream : null;
      cmaps.set(ref, s ? cmap(s.toString("latin1")) : new Map<string, string>());
    }
    return cmaps.get(ref)!;
  };
  return pages.map((n) => {
    const page = objs.get(n)!;
    let dict = page.dict;
    const resRef = /\/Resources (\d+) 0 R/.exec(dict);
    if (resRef) dict += objs.get(Number(resRef[1]))?.dict ?? "";
    const fontsDict = /\/Font\s*<<([^>]*)>>/.exec(dict)?.[1] ?? "";
    const fonts = new Map([...fontsDict.matchAll(/\/([^\s/]+)\s+(\d+) 0 R/g)].map((m) => [m[1]!, Number(m[2])]));
    const box = /\/MediaBox\s*\[\s*([\d.-]+)\s+([\d.-]+)\s+([\d.-]+)\s+([\d.-]+)\s*\]/.exec(dict);
    const height = box ? Number(box[4]) - Number(box[2]) : 842;
    const contents = /\/Contents\s*(\[[^\]]*\]|\d+ 0 R)/.exec(page.dict)?.[1] ?? "";
    const content = Buffer.concat(refs(contents).map((r) => objs.get(r)?.stream ?? Buffer.alloc(0))).toString("latin1");
    const lines = new Map<string, PdfLine>();
    const stack: M[] = [];
    let ctm: M = ID;
    let tm: M = ID;
    let tlm: M = ID;
    let font = "";
    let size = 0;
    let ops: string[] = [];
    let block = 0;
    const show = (hexes: string[]) => {
      const map = fontMap(fonts.get(font) ?? -1);
      let text = "";
      for (const hex of hexes) {
        const h = hex.replace(/[<>\s]/g, "").toUpperCase();
        for (let i = 0; i + 4 <= h.length; i += 4) text += map.get(h.slice(i, i + 4)) ?? "\uFFFD";
      }
      const m = mul(tm, ctm);
      const y = height - m[5];
      const key = `${block}:${y.toFixed(1)}`;
      const line = lines.get(key) ?? { text: "", y, yFraction: y / height, size: Math.abs(size * m[3]) };
      line.text += text;
      lines.set(key, line);
    };
    const tokens = content.match(
      /<[0-9A-Fa-f\s]*>|\((?:\\.|[^\\)])*\)|\/[^\s/[\]<>()]+|\[|\]|[-+]?[\d.]+|[A-Za-z'"*]+/g,
    );
    let array: string[] | null = null;
    for (const t of tokens ?? []) {
      if (t === "[") array = [];
      else if (t === "]") {
        ops.push(`[${(array ?? []).join(" ")}]`);
        array = null;
      } else if (array) array.push(t);
      else if (/^[A-Za-z'"*]+$/.test(t)) {
        const num = (i: number) => Number(ops[ops.length - 6 + i]);
        const six = (): M => [num(0), num(1), num(2), num(3), num(4), num(5)];
        if (t === "q") stack.push(ctm);
        else if (t === "Q") ctm = stack.pop() ?? ID;
        else if (t === "cm") ctm = mul(six(), ctm);
        else if (t === "BT") {
          tm = tlm = ID;
          block++;
        } else if (t === "Tm") tm = tlm = six();
        else if (t === "Td" || t === "TD") {
          const tx = Number(ops[ops.length - 2]);
          const ty = Number(ops[ops.length - 1]);
          tm = tlm = mul([1, 0, 0, 1, tx, ty], tlm);
        } else if (t === "Tf") {
          font = (ops[ops.length - 2] ?? "").slice(1);
          size = Number(ops[ops.length - 1]);
        } else if (t === "Tj" || t === "'" || t === '"')
          show([ops[ops.length - 1] ?? ""].filter((s) => s.startsWith("<")));
        else if (t === "TJ") {
          const arr = ops[ops.length - 1] ?? "";
          show([...arr.matchAll(/<([0-9A-Fa-f\s]*)>/g)].map((m) => `<${m[1]}>`));
        }
        ops = [];
      } else ops.push(t);
    }
    return [...lines.values()].sort((a, b) => a.y - b.y);
  });
}

/** How many pages the PDF's page objects count (`/Type /Page`, not `/Pages`). */
export function pdfPageObjects(pdf: Buffer): number {
  return (pdf.toString("latin1").match(/\/Type\s*\/Page(?![a-zA-Z])/g) ?? []).length;
}
