import { useEffect, useRef } from "react";
import { isValiseError } from "@valise/core";
import { levelClass } from "./labels.js";

/** What the user is told when the server cannot be reached: a network fact, never a security verdict. */
export const UNREACHABLE =
  "The server cannot be reached (no network, or the server is down). Nothing was sent or changed; try again when the connection is back.";

/**
 * An error as a sentence for the user. Transport failures (the server unreachable after the retries, a fetch that
 * never got an answer, 502/504 from a proxy) say so plainly: they must never read like a security finding.
 */
export function errorText(e: unknown): string {
  if (isValiseError(e)) {
    if (e.code === "transport_error") return UNREACHABLE;
    if (e.code === "store_error")
      return "The server cannot store or read right now. Nothing was lost; try again in a moment.";
    // The server's refusal without the request line ("PUT /v1/users/x/clearance: 403 …"): the reason is the sentence.
    return e.message.replace(/^(GET|POST|PUT|PATCH|DELETE) \/\S*: \d{3} /, "");
  }
  if (e instanceof TypeError && /fetch|network|load failed/i.test(e.message)) return UNREACHABLE;
  if (typeof navigator !== "undefined" && navigator.onLine === false) return UNREACHABLE;
  return e instanceof Error ? e.message : String(e);
}

/**
 * An enrollment failure as a plain sentence: the server's refusal, schema messages and a cut-off bundle's JSON error
 * mean nothing to a new user; what to do next does.
 */
export function enrollErrorText(e: unknown): string {
  const text = e instanceof Error ? e.message : String(e);
  if (isValiseError(e) && (e.code === "transport_error" || e.code === "store_error")) return errorText(e);
  // Only the server's answer to the enrollment request and a bundle that is not JSON are rewritten: any other error
  // (a pinned log key that does not match, a refused proof) is a security fact and is shown as it is.
  const enroll = /^POST \/v1\/enroll: (\d{3}) ?(.*)$/s.exec(text);
  if (enroll) {
    const status = Number(enroll[1]);
    if (status === 429) return "Too many enrollment attempts from this network. Wait a minute, then try again.";
    if (status === 400 || /body\/code|must NOT have|must match/.test(enroll[2] ?? ""))
      return "That is not an enrollment code: paste the code (or the whole enrollment bundle) exactly as you received it.";
    if ([401, 403, 404, 410].includes(status))
      return "This enrollment code was not accepted: it is mistyped, already used or expired. Check it, or ask your administrator for a new one.";
  }
  if (e instanceof SyntaxError)
    return "The enrollment bundle is incomplete (it looks cut off). Paste the whole bundle, from the first { to the last }.";
  return errorText(e);
}

export function Banner(props: { label: string; position: "top" | "bottom" }) {
  const ref = useRef<HTMLDivElement>(null);
  usePrintMarking(props.position === "top" ? ref : null, props.label);
  return (
    <div
      ref={ref}
      className={`banner ${levelClass(props.label)} banner-${props.position}`}
      role={props.position === "top" ? "banner" : "contentinfo"}
      aria-label={`Classification ${props.position === "top" ? "banner" : "footer"}: ${props.label}`}
      data-testid={`banner-${props.position}`}
    >
      {props.label}
    </div>
  );
}

/** A CSS string literal of `s` (anything but letters, digits and a few safe signs escaped). */
const cssString = (s: string) => `"${s.replace(/[^A-Za-z0-9 /,._-]/g, (c) => `\\${c.codePointAt(0)!.toString(16)} `)}"`;

let printSheet: CSSStyleSheet | null = null;

/**
 * Printing: the classification marking goes in the page's top and bottom margin boxes (@page @top-center and
 * @bottom-center), which the browser prints on every page, outside the content, so a long cable's lines never run
 * under it. The screen banners are then not printed (class print-marked-pages). The label changes with the screen, so
 * the rule is a constructed stylesheet (the CSP allows no inline style), in the banner's colours. A browser without
 * margin boxes (no CSSMarginRule) keeps the print stylesheet's fixed banners.
 */
function usePrintMarking(ref: { current: HTMLElement | null } | null, label: string): void {
  useEffect(() => {
    const el = ref?.current;
    if (!el || !("CSSMarginRule" in window) || !("adoptedStyleSheets" in document)) return;
    const cs = getComputedStyle(el);
    if (!printSheet) {
      printSheet = new CSSStyleSheet();
      document.adoptedStyleSheets = [...document.adoptedStyleSheets, printSheet];
    }
    const box =
      `content: ${cssString(label)}; background: ${cs.backgroundColor}; color: ${cs.color}; ` +
      "font: 700 11pt system-ui, sans-serif; letter-spacing: 0.08em; text-align: center; vertical-align: middle; " +
      "print-color-adjust: exact; -webkit-print-color-adjust: exact;";
    printSheet.replaceSync(`@page { @top-center { ${box} } @bottom-center { ${box} } }`);
    document.documentElement.classList.add("print-marked-pages");
  }, [ref, label]);
}

export function LabelTag({ label }: { label: string }) {
  return <span className={`tag ${levelClass(label)}`}>{label}</span>;
}

export function PrecedenceTag({ p }: { p: string }) {
  return <span className={`prec prec-${p.toLowerCase()}`}>{p}</span>;
}

export function ErrorNote({ error }: { error: string | null }) {
  return error ? (
    <p className="error" role="alert">
      {error}
    </p>
  ) : null;
}

export function Progress(props: { label: string; done: number; total: number }) {
  if (props.total <= 0) return null;
  const pct = Math.round((100 * props.done) / props.total);
  return (
    <div className="progress">
      <label>
        {props.label}: {pct}%
        <progress max={props.total} value={props.done} aria-label={props.label} />
      </label>
    </div>
  );
}

export function fmtTime(t: number | string | null): string {
  if (t === null) return "—";
  const d = new Date(t);
  return d.toISOString().replace("T", " ").slice(0, 16) + "Z";
}

export function fmtSize(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

/** A browser File as a resumable plaintext source (read again from any offset after a dropped upload). */
export function fileSource(f: Blob) {
  return {
    size: f.size,
    async *open(offset: number): AsyncIterable<Uint8Array> {
      const reader = f.slice(offset).stream().getReader();
      for (;;) {
        const r = await reader.read();
        if (r.done) return;
        yield r.value;
      }
    },
  };
}

/** Offers bytes to the user as a download. */
export function saveBlob(parts: BlobPart[], name: string, type = ""): void {
  const url = URL.createObjectURL(new Blob(parts, { type }));
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}
