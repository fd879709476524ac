/**
 * What reaches a diplomat who is looking at another tab: the tab title counts unread FLASH and IMMEDIATE cables, and a
 * FLASH cable raises a browser notification (only once the user allowed notifications; the app asks when the user
 * selects "Turn on notifications" under Account, never on its own). The notification names the precedence, the
 * reference and the originator, never the subject or the body: a lock screen is not cleared for the cable's label.
 */
import { useEffect } from "react";
import type { ReceivedItem, ValiseClient } from "@valise/client";
import type { History } from "./history.js";

const URGENT = new Set(["FLASH", "IMMEDIATE"]);

export function titleFor(urgentUnread: number): string {
  return urgentUnread > 0 ? `(${urgentUnread}) Valise: ${urgentUnread} unread FLASH/IMMEDIATE` : "Valise";
}

/** Keeps the tab title's count of unread FLASH/IMMEDIATE cables (read marks are this browser's, sealed). */
export function useUrgentTitle(client: ValiseClient, history: History | null, tick: number): void {
  useEffect(() => {
    if (!history) return;
    let stale = false;
    client.cables
      .list({ limit: 500 })
      .then((cables) => {
        if (stale) return;
        const n = cables.filter((c) => URGENT.has(c.precedence) && !history.cableRead(c.id)).length;
        document.title = titleFor(n);
      })
      .catch(() => undefined);
    return () => {
      stale = true;
    };
  }, [client, history, tick]);
}

export function notificationsState(): "unsupported" | NotificationPermission {
  return typeof Notification === "undefined" ? "unsupported" : Notification.permission;
}

/** A FLASH cable from someone else, pushed while the app is open: one notification each (permission permitting). */
export function notifyFlash(items: ReceivedItem[], me: string): void {
  if (notificationsState() !== "granted") return;
  for (const it of items) {
    if (it.type !== "cable" || it.precedence !== "FLASH" || it.from === me) continue;
    const n = new Notification(`FLASH cable ${it.reference}`, {
      body: `From ${it.originator} (${it.label}). Open Valise to read it.`,
      tag: `cable-${it.id}`,
      requireInteraction: true,
    });
    n.onclick = () => {
      window.focus();
      location.hash = `#/cables/${encodeURIComponent(it.id)}`;
      n.close();
    };
  }
}
