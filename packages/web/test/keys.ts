/**
 * Keyboard-only driving for the browser tests: Tab / Shift+Tab to a control named like a pattern (checking at every
 * stop that the focused control shows a focus indicator), arrow keys in a <select>, what has focus now.
 */
import assert from "node:assert/strict";
import type { Page } from "playwright-core";

export interface Focused {
  tag: string;
  id: string;
  /** Accessible-ish name: the fieldset legend, then aria-label, the wrapping/associated label, or the text. */
  name: string;
  outline: string;
  shadow: string;
  inMain: boolean;
  inDialog: boolean;
  visible: boolean;
  value: string | null;
  checked: boolean | null;
}

export async function focused(page: Page): Promise<Focused | null> {
  return page.evaluate(() => {
    const el = document.activeElement as HTMLElement | null;
    if (!el || el === document.body) return null;
    const input = el as HTMLInputElement;
    const label = input.labels?.[0]?.innerText ?? "";
    const legend = el.closest("fieldset")?.querySelector("legend")?.innerText ?? "";
    const text = el.getAttribute("aria-label") ?? (label || el.innerText || "");
    const cs = getComputedStyle(el);
    const r = el.getBoundingClientRect();
    return {
      tag: el.tagName.toLowerCase(),
      id: el.id,
      name: `${legend ? `${legend} ` : ""}${text}`.replace(/\s+/g, " ").trim(),
      outline:
        cs.outlineStyle === "none" || cs.outlineWidth === "0px" ? "none" : `${cs.outlineStyle} ${cs.outlineColor}`,
      shadow: cs.boxShadow,
      inMain: el.closest("main") !== null,
      inDialog: el.closest('[role="alertdialog"]') !== null,
      visible: r.width > 0 && r.height > 0 && r.bottom > 0 && r.right > 0 && r.left < innerWidth && r.top < innerHeight,
      value: "value" in el ? String((el as HTMLInputElement).value) : null,
      checked: input.type === "checkbox" ? input.checked : null,
    };
  });
}

const INTERACTIVE = new Set(["a", "button", "input", "select", "textarea", "summary"]);

/** Asserts that a focused control draws a visible focus indicator (an outline or a box shadow). */
export function assertIndicator(f: Focused): void {
  if (!INTERACTIVE.has(f.tag)) return;
  assert.ok(
    f.outline !== "none" || (f.shadow !== "none" && f.shadow !== ""),
    `no visible focus indicator on ${f.tag} "${f.name}" (outline ${f.outline}, box-shadow ${f.shadow})`,
  );
  assert.ok(f.visible, `focused ${f.tag} "${f.name}" is not on screen`);
}

/** Presses Tab (or Shift+Tab) until the focused control's name matches; every stop is checked for an indicator. */
export async function tabTo(page: Page, name: RegExp, opts: { back?: boolean; max?: number } = {}): Promise<Focused> {
  const trail: string[] = [];
  for (let i = 0; i < (opts.max ?? 80); i++) {
    await page.keyboard.press(opts.back ? "Shift+Tab" : "Tab");
    const f = await focused(page);
    if (!f) {
      trail.push("(body)");
      continue;
    }
    assertIndicator(f);
    trail.push(`${f.tag}:${f.name.slice(0, 40)}`);
    if (name.test(f.name)) return f;
  }
  throw new Error(`keyboard: never reached ${String(name)}; stops: ${trail.join(" | ")}`);
}

/** In a focused <select>, arrow keys until its value is `want` (down first, then up). */
export async function arrowSelect(page: Page, want: string): Promise<void> {
  for (const key of ["ArrowDown", "ArrowUp"])
    for (let i = 0; i < 15; i++) {
      if ((await focused(page))?.value === want) return;
      await page.keyboard.press(key);
    }
  const f = await focused(page);
  assert.equal(f?.value, want, `select "${f?.name}" did not reach ${want} with the arrow keys`);
}

/** Replaces the text in the focused field by typing (select all, then type). */
export async function typeInto(page: Page, text: string): Promise<void> {
  await page.keyboard.press("Control+A");
  await page.keyboard.press("Delete");
  await page.keyboard.type(text);
}
