/** Keyboard and focus helpers: focus after navigation, a modal confirm that traps and returns focus, role gates. */
import { useEffect, useRef, type ReactNode, type RefObject } from "react";
import type { Ctx } from "./ctx.js";

/** Focuses `ref` whenever `key` changes (not on the first render): after a route change, the new screen. */
export function useFocusOnChange(ref: RefObject<HTMLElement | null>, key: string): void {
  const last = useRef(key);
  useEffect(() => {
    if (last.current === key) return;
    last.current = key;
    // The new screen starts at the top of the page, navigation included: focusing <main> must not scroll the
    // navigation out of view (it did: "opening New cable scrolls the navigation away").
    ref.current?.focus({ preventScroll: true });
    window.scrollTo(0, 0);
  }, [ref, key]);
}

const FOCUSABLE =
  'a[href], button:not([disabled]), input:not([disabled]), select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex="-1"])';

/**
 * A modal confirmation (role=alertdialog, aria-modal): focus moves to its first button, Tab and Shift+Tab stay
 * inside it, Escape cancels, and on close focus returns to the element that had it when it opened (or `returnTo`).
 */
export function ModalConfirm(props: {
  title: string;
  children: ReactNode;
  onCancel: () => void;
  /** Escape is ignored while busy (e.g. the cable is being released). */
  busy?: boolean;
  returnTo?: RefObject<HTMLElement | null>;
  buttons: ReactNode;
}) {
  const box = useRef<HTMLDivElement>(null);
  const { returnTo } = props;
  useEffect(() => {
    const opener = document.activeElement instanceof HTMLElement ? document.activeElement : null;
    // The first button (the action the dialog asks about), not the first control: a checkbox in the text (sign out's
    // "also erase") must not take the focus, or Enter there does nothing.
    (
      box.current?.querySelector<HTMLElement>(".modal-buttons button:not([disabled])") ??
      box.current?.querySelector<HTMLElement>(FOCUSABLE)
    )?.focus();
    return () => {
      const back = returnTo?.current ?? opener;
      // After the dialog is gone (and the opener re-rendered, if it was replaced).
      setTimeout(() => {
        if (back?.isConnected && (document.activeElement === document.body || document.activeElement === null))
          back.focus();
      }, 0);
    };
  }, [returnTo]);
  return (
    <div className="modal-backdrop">
      <div
        ref={box}
        className="confirm modal"
        role="alertdialog"
        aria-modal="true"
        aria-labelledby="modal-h"
        aria-describedby="modal-d"
        onKeyDown={(e) => {
          if (e.key === "Escape") {
            e.preventDefault();
            e.stopPropagation();
            if (!props.busy) props.onCancel();
            return;
          }
          if (e.key !== "Tab") return;
          const items = [...(box.current?.querySelectorAll<HTMLElement>(FOCUSABLE) ?? [])];
          if (items.length === 0) return e.preventDefault();
          const i = items.indexOf(document.activeElement as HTMLElement);
          const next = e.shiftKey ? (i <= 0 ? items.length - 1 : i - 1) : i === items.length - 1 ? 0 : i + 1;
          e.preventDefault();
          items[next]!.focus();
        }}
      >
        <h3 id="modal-h">{props.title}</h3>
        <div id="modal-d">{props.children}</div>
        <div className="modal-buttons">{props.buttons}</div>
      </div>
    </div>
  );
}

/** What a non-officer sees at an officer-only address (the nav does not offer it). */
export function OfficersOnly({ ctx, what }: { ctx: Ctx; what: string }) {
  useEffect(() => ctx.setLabels([]), [ctx]);
  return (
    <section aria-labelledby="officers-only-h" className="card">
      <h2 id="officers-only-h">Officers only</h2>
      <p role="status">
        The {what} screen is for security officers. Your role is <strong>{ctx.me.role}</strong>, so nothing from it is
        shown or requested.
      </p>
      <p>
        <a href="#/cables">Back to the cable inbox</a>
      </p>
    </section>
  );
}
