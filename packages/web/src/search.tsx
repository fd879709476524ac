/**
 * Encrypted search in the browser (issue 15 part 3): the device's history store (`HistoryStore` of the client:
 * messages, cables with subject, body once opened, reference, sender and attachment names, document names), sealed
 * in IndexedDB like the profile (record "device-history:HANDLE", AES-GCM under a non-extractable key). The search
 * index is built from it in memory on this device when first used and updated as items arrive; neither the index nor
 * a query ever leaves the browser (searching makes no request).
 *
 * The search box sits in the top bar (the "/" key focuses it from anywhere but a text field); the results screen is
 * "#/search?q=…" and each result opens its item (conversation, cable, document).
 */
import { useEffect, useRef, useState } from "react";
import { HistoryStore, type HistoryData, type OpenedCable, type SearchKind } from "@valise/client";
import { IndexedDbSealedRecord, openValiseDb } from "@valise/client/browser/idb-store";
import type { Ctx } from "./ctx.js";
import { LabelTag, fmtTime } from "./ui.js";

let opened: { handle: string; store: Promise<HistoryStore> } | null = null;

/**
 * This browser's history store for `handle` (one instance per page: every writer shares it, so no save overwrites
 * another's). Pass it as `ClientOptions.history` to have the SDK record into the same store.
 */
export function deviceHistory(handle: string): Promise<HistoryStore> {
  if (opened?.handle === handle) return opened.store;
  const store = openValiseDb().then((db) =>
    HistoryStore.open(new IndexedDbSealedRecord<HistoryData>(db, `device-history:${handle}`)),
  );
  opened = { handle, store };
  store.catch(() => {
    if (opened?.store === store) opened = null;
  });
  return store;
}

/** After the browser's store was erased (sign out and erase, forget): the next open starts empty. */
export function forgetDeviceHistory(): void {
  opened = null;
}

const pendingSaves = new WeakMap<HistoryStore, ReturnType<typeof setTimeout>>();
/** Seals and writes the store shortly (several arrivals in a row make one write). */
export function saveSoon(store: HistoryStore): void {
  clearTimeout(pendingSaves.get(store));
  pendingSaves.set(
    store,
    setTimeout(() => {
      pendingSaves.delete(store);
      void store.save().catch(() => undefined);
    }, 300),
  );
}

/** A cable of the inbox list (its subject decrypted where this device holds the key). */
export function noteListedCable(
  store: HistoryStore,
  c: { id: string; reference: string; sender: string; originator: string; label: string; precedence: string },
  subject: string | null,
  createdAt: number,
): void {
  if (subject === null) return;
  const held = store.data.cables.find((x) => x.id === c.id);
  if (held && held.subject === subject) return;
  store.noteCable({
    id: c.id,
    reference: c.reference,
    subject,
    from: c.sender || c.originator,
    originator: c.originator,
    label: c.label,
    time: new Date(createdAt).toISOString(),
    precedence: c.precedence,
  });
  saveSoon(store);
}

/** An opened cable: its body and attachment names become searchable. */
export function noteOpenedCable(store: HistoryStore, o: OpenedCable): void {
  const c = o.cable;
  const held = store.data.cables.find((x) => x.id === c.id);
  const names = o.attachments.map((a) => a.name);
  if (held && held.body === o.body && (held.attachments ?? []).join("\n") === names.join("\n")) return;
  store.noteCable({
    id: c.id,
    reference: c.reference,
    subject: o.subject,
    from: c.sender || c.originator,
    originator: c.originator,
    label: c.label,
    time: new Date(c.createdAt).toISOString(),
    precedence: c.precedence,
    body: o.body,
    attachments: names,
  });
  saveSoon(store);
}

/** Document versions whose names this device can read. */
export function noteDocuments(
  store: HistoryStore,
  docs: {
    id: string;
    label: string;
    versions: { version: number; name: string | null; createdAt: number; createdBy: string }[];
  }[],
): void {
  let changed = false;
  for (const d of docs)
    for (const v of d.versions) {
      if (v.name === null) continue;
      if (store.data.documents.some((x) => x.id === d.id && x.version === v.version && x.name === v.name)) continue;
      store.noteDocument({
        id: d.id,
        version: v.version,
        name: v.name,
        label: d.label,
        from: v.createdBy,
        time: new Date(v.createdAt).toISOString(),
      });
      changed = true;
    }
  if (changed) saveSoon(store);
}

function editable(t: EventTarget | null): boolean {
  if (!(t instanceof HTMLElement)) return false;
  return t.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(t.tagName);
}

/** The search box of the top bar: Enter shows the results; "/" anywhere (outside a text field) focuses it. */
export function SearchBox({ initial }: { initial: string }) {
  const [q, setQ] = useState(initial);
  const input = useRef<HTMLInputElement>(null);
  useEffect(() => setQ(initial), [initial]);
  useEffect(() => {
    const on = (e: KeyboardEvent) => {
      if (e.key !== "/" || e.ctrlKey || e.metaKey || e.altKey || editable(e.target)) return;
      e.preventDefault();
      input.current?.focus();
      input.current?.select();
    };
    document.addEventListener("keydown", on);
    return () => document.removeEventListener("keydown", on);
  }, []);
  return (
    <form
      role="search"
      className="search-box"
      onSubmit={(e) => {
        e.preventDefault();
        if (q.trim() !== "") location.hash = `#/search?q=${encodeURIComponent(q.trim())}`;
      }}
    >
      <label htmlFor="search-q" className="sr-only">
        Search (on this device)
      </label>
      <input
        id="search-q"
        ref={input}
        type="search"
        value={q}
        placeholder="Search  ( / )"
        aria-keyshortcuts="/"
        autoComplete="off"
        onChange={(e) => setQ(e.target.value)}
        onKeyDown={(e) => {
          if (e.key === "Escape") {
            setQ("");
            input.current?.blur();
          }
        }}
      />
      <button type="submit">Search</button>
    </form>
  );
}

const KINDS: { kind: SearchKind | ""; name: string }[] = [
  { kind: "", name: "Everything" },
  { kind: "message", name: "Messages" },
  { kind: "cable", name: "Cables" },
  { kind: "attachment", name: "Attachments" },
  { kind: "document", name: "Documents" },
];
const KIND_NAME: Record<SearchKind, string> = {
  message: "Message",
  cable: "Cable",
  attachment: "Attachment",
  document: "Document",
};

/** The results of `query` over this device's index, best first; each opens its item. */
export function SearchScreen({ ctx, query, kind }: { ctx: Ctx; query: string; kind: string }) {
  const k = KINDS.some((x) => x.kind === kind) ? (kind as SearchKind | "") : "";
  const t0 = performance.now();
  const hits = query.trim() ? ctx.store.search(query, { limit: 100, ...(k ? { kinds: [k] } : {}) }) : [];
  const ms = performance.now() - t0;
  const convs = new Map(ctx.client.conversationList().map((c) => [c.id, c]));
  const labels = hits.map((h) => h.doc.label).join("\n");
  useEffect(() => ctx.setLabels(labels ? labels.split("\n") : []), [ctx, labels]);
  const href = (d: (typeof hits)[number]["doc"]): string => {
    if (d.kind === "message") return `#/conversations/${encodeURIComponent(d.conversation ?? "")}`;
    if (d.kind === "document") return `#/documents?open=${encodeURIComponent((d.ref ?? "").split("/")[0] ?? "")}`;
    return `#/cables/${encodeURIComponent(d.ref ?? "")}`;
  };
  const where = (d: (typeof hits)[number]["doc"]): string => {
    if (d.kind !== "message") return d.title;
    const c = convs.get(d.conversation ?? "");
    if (!c) return "Conversation";
    return c.kind === "direct" ? `Direct: ${c.peer ?? "?"}` : `Unit channel: ${c.unit ?? "?"}`;
  };
  return (
    <section aria-labelledby="search-h" className="search-results">
      <h2 id="search-h">Search: “{query}”</h2>
      <p className="hint" data-testid="search-summary" role="status">
        {hits.length === 0
          ? "Nothing on this device matches."
          : `${hits.length === 100 ? "The first 100" : hits.length} result${hits.length === 1 ? "" : "s"}`}{" "}
        in {ms < 1 ? "under 1" : Math.round(ms)} ms, searched on this device over{" "}
        {ctx.store.index.size.toLocaleString("en")} items (the index never leaves it). Cable bodies and attachment names
        are searchable once the cable was opened here.
      </p>
      <nav className="filters" aria-label="Search in">
        {KINDS.map((x) => (
          <a
            key={x.kind}
            href={`#/search?q=${encodeURIComponent(query)}${x.kind ? `&kind=${x.kind}` : ""}`}
            aria-current={x.kind === k ? "page" : undefined}
            className="kind-filter"
          >
            {x.name}
          </a>
        ))}
      </nav>
      {hits.length > 0 && (
        <ul className="inbox dense search-hits" aria-label="Results">
          {hits.map((h) => (
            <li key={h.doc.id}>
              <a href={href(h.doc)} data-testid="search-hit">
                <span className={`kind kind-${h.doc.kind}`}>{KIND_NAME[h.doc.kind]}</span>
                <span className="subject">{where(h.doc)}</span>
                <span className="sender">
                  {h.doc.from}
                  {h.doc.reference ? ` · ${h.doc.reference}` : ""}
                </span>
                {h.snippet && <span className="snippet">{h.snippet}</span>}
                <span className="meta">{fmtTime(h.doc.time)}</span>
                <LabelTag label={h.doc.label} />
              </a>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
