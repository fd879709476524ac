import { useEffect, useMemo, useRef, useState, type KeyboardEvent } from "react";
import { PRECEDENCES, dominates, isValiseError, parseLabel } from "@valise/core";
import type { CableReceipt, OpenedCable, ServerCable } from "@valise/client";
import type { Ctx } from "./ctx.js";
import { ModalConfirm } from "./a11y.js";
import { usableLabels } from "./labels.js";
import { draftRecord } from "./drafts.js";
import { noteListedCable, noteOpenedCable } from "./search.js";
import { saveStream } from "./download.js";
import { ErrorNote, LabelTag, PrecedenceTag, Progress, fileSource, fmtSize, fmtTime, errorText } from "./ui.js";

type Listed = ServerCable & { subject: string | null; problem: string | null };
const RANK: Record<string, number> = { FLASH: 0, IMMEDIATE: 1, PRIORITY: 2, ROUTINE: 3 };
const msg = errorText;

/** Which of this user's units a cable is for: ACTION before INFO; SENT if one of them released it. */
function roleFor(c: ServerCable, mine: string[]): string {
  if (c.action.some((u) => mine.includes(u))) return "ACTION";
  if (c.info.some((u) => mine.includes(u))) return "INFO";
  if (mine.includes(c.originator)) return "SENT";
  return "";
}

/**
 * The cable inbox: dense rows (precedence, unread dot, subject, sender, ACTION/INFO, reference, time, label), FLASH
 * first. With `selected`, the cable opens in a reading pane beside the list on a wide screen (the list is hidden on a
 * narrow one, where the cable has the whole width).
 */
export function CableInbox({ ctx, selected = null }: { ctx: Ctx; selected?: string | null }) {
  const [cables, setCables] = useState<Listed[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [unit, setUnit] = useState("");
  const [prec, setPrec] = useState("");
  const [label, setLabel] = useState("");
  useEffect(() => {
    ctx.client.cables
      .list({ limit: 500 })
      .then((cs) => {
        for (const c of cs) noteListedCable(ctx.store, c, c.subject, c.createdAt);
        setCables(cs);
      })
      .catch((e: unknown) => setError(msg(e)));
  }, [ctx.client, ctx.tick, selected]);
  const shown = useMemo(
    () =>
      (cables ?? [])
        .filter((c) => !unit || c.originator === unit || c.action.includes(unit) || c.info.includes(unit))
        .filter((c) => !prec || c.precedence === prec)
        .filter((c) => !label || c.label === label)
        .sort((a, b) => (RANK[a.precedence] ?? 9) - (RANK[b.precedence] ?? 9) || b.createdAt - a.createdAt),
    [cables, unit, prec, label],
  );
  useEffect(() => {
    if (!selected) ctx.setLabels(shown.map((c) => c.label));
  }, [ctx, shown, selected]);
  const units = [...new Set((cables ?? []).flatMap((c) => [c.originator, ...c.action, ...c.info]))].sort();
  const labels = [...new Set((cables ?? []).map((c) => c.label))].sort();
  const unread = shown.filter((c) => !ctx.history.cableRead(c.id)).length;
  // The list is one Tab stop (a listbox with a roving tabindex): the row last focused, else the open cable, else the
  // first. Arrows, Home and End move the focus; Enter follows the row's link (opens the cable).
  const [active, setActive] = useState<string | null>(null);
  useEffect(() => setActive(null), [selected]);
  const paneRef = useRef<HTMLDivElement>(null);
  const indexOf = (id: string | null) => (id === null ? -1 : shown.findIndex((c) => c.id === id));
  const activeIndex = Math.max(0, indexOf(active) >= 0 ? indexOf(active) : indexOf(selected));
  const onListKey = (e: KeyboardEvent<HTMLUListElement>) => {
    if (e.altKey || e.ctrlKey || e.metaKey || shown.length === 0) return;
    const last = shown.length - 1;
    const to =
      e.key === "ArrowDown"
        ? Math.min(activeIndex + 1, last)
        : e.key === "ArrowUp"
          ? Math.max(activeIndex - 1, 0)
          : e.key === "Home"
            ? 0
            : e.key === "End"
              ? last
              : null;
    if (to === null) return;
    e.preventDefault();
    setActive(shown[to]!.id);
    e.currentTarget.querySelectorAll<HTMLElement>('[role="option"]')[to]?.focus();
  };
  const list = (
    <section aria-labelledby="inbox-h" className="mail-list">
      {selected && (
        <a
          className="skip jump"
          href={`#/cables/${encodeURIComponent(selected)}`}
          onClick={(e) => {
            // The route is the open cable already: move focus to it instead.
            e.preventDefault();
            const pane = paneRef.current;
            (pane?.querySelector<HTMLElement>("#cable-h") ?? pane)?.focus();
          }}
        >
          Go to the reading pane
        </a>
      )}
      <div className="row">
        <h2 id="inbox-h">
          Cable inbox <span className="count">({unread} unread)</span>
        </h2>
        <a className="button" href="#/cables/new">
          New cable
        </a>
      </div>
      <div className="filters" role="group" aria-label="Filters">
        <label>
          Unit
          <select value={unit} onChange={(e) => setUnit(e.target.value)}>
            <option value="">All units</option>
            {units.map((u) => (
              <option key={u}>{u}</option>
            ))}
          </select>
        </label>
        <label>
          Precedence
          <select value={prec} onChange={(e) => setPrec(e.target.value)}>
            <option value="">All precedences</option>
            {[...PRECEDENCES].reverse().map((p) => (
              <option key={p}>{p}</option>
            ))}
          </select>
        </label>
        <label>
          Label
          <select value={label} onChange={(e) => setLabel(e.target.value)}>
            <option value="">All labels</option>
            {labels.map((l) => (
              <option key={l}>{l}</option>
            ))}
          </select>
        </label>
      </div>
      <ErrorNote error={error} />
      <p id="inbox-keys" className="sr-only">
        One Tab stop: arrow keys, Home and End move through the cables, Enter opens one.
      </p>
      {cables === null ? (
        <p>Loading cables…</p>
      ) : shown.length === 0 ? (
        <p>No cables.</p>
      ) : (
        <ul
          className="inbox dense"
          role="listbox"
          aria-label="Cables, FLASH first"
          aria-describedby="inbox-keys"
          onKeyDown={onListKey}
        >
          {shown.map((c, i) => {
            const read = ctx.history.cableRead(c.id) || c.id === selected;
            const role = roleFor(c, ctx.me.units);
            return (
              <li
                key={c.id}
                role="none"
                className={`cable-row prec-row-${c.precedence.toLowerCase()} ${read ? "read" : "unread"}${c.id === selected ? " selected" : ""}`}
              >
                <a
                  href={`#/cables/${encodeURIComponent(c.id)}`}
                  data-testid="cable-link"
                  role="option"
                  aria-selected={i === activeIndex}
                  tabIndex={i === activeIndex ? 0 : -1}
                  aria-current={c.id === selected ? "true" : undefined}
                  onFocus={() => setActive(c.id)}
                >
                  <span className={read ? "dot-space" : "dot"} aria-hidden="true" />
                  {!read && <span className="sr-only">Unread: </span>}
                  <PrecedenceTag p={c.precedence} />
                  <span className="subject">
                    {c.subject ?? (c.problem ? `⚠ ${c.problem}` : "(subject unreadable here: no key on this device)")}
                  </span>
                  <span className="sender">
                    <span data-testid="cable-sender">
                      {c.originator} · {c.sender}
                    </span>
                    {role && (
                      <span className={`role role-${role.toLowerCase()}`} data-testid="cable-role">
                        {role}
                      </span>
                    )}
                  </span>
                  <span className="ref">{c.reference}</span>
                  <span className="meta">{fmtTime(c.createdAt)}</span>
                  <LabelTag label={c.label} />
                </a>
              </li>
            );
          })}
        </ul>
      )}
    </section>
  );
  return (
    <div className={`mail${selected ? " has-selection" : ""}`}>
      {list}
      {selected && (
        <div className="mail-pane" data-testid="reading-pane" ref={paneRef} tabIndex={-1}>
          <CableView ctx={ctx} id={selected} key={selected} />
        </div>
      )}
    </div>
  );
}

/** How often an open cable's receipts are refreshed. */
const RECEIPT_POLL_MS = 4000;

export function CableView({ ctx, id }: { ctx: Ctx; id: string }) {
  const [opened, setOpened] = useState<OpenedCable | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [missing, setMissing] = useState<{ text: string; holders: string[] } | null>(null);
  const [progress, setProgress] = useState({ done: 0, total: 0 });
  const [saving, setSaving] = useState({ done: 0, total: 0 });
  const [saveError, setSaveError] = useState<string | null>(null);
  const [saveNotice, setSaveNotice] = useState<string | null>(null);
  useEffect(() => {
    // Opening reads the whole cable (attachments are authenticated, not kept); saving one streams it again.
    ctx.client.cables
      .open(id, { onProgress: (done, total) => setProgress({ done, total }) })
      .then(async (o) => {
        setOpened(o);
        noteOpenedCable(ctx.store, o);
        const was = ctx.history.cableRead(o.cable.id);
        await ctx.history.markCableRead(o.cable.id);
        await ctx.client.save();
        if (!was) ctx.refresh(); // unread counts (inbox, tab title) change
      })
      .catch((e: unknown) => {
        const d = isValiseError(e) ? e.details : undefined;
        if (d && typeof d.missingKey === "string")
          setMissing({
            text: d.missingKey,
            holders: Array.isArray(d.holders) ? d.holders.map(String) : [],
          });
        else setError(msg(e));
      });
    // (ctx.refresh is stable; a new tick must not open the cable again)
  }, [ctx.client, ctx.history, ctx.store, id]);
  useEffect(() => ctx.setLabels(opened ? [opened.cable.label] : []), [ctx, opened]);
  // Receipts change while the cable is open (an addressee reads it): refreshed on each push tick and every few
  // seconds, so the sender sees "read" without reloading. A failed poll keeps the last receipts shown.
  const [receipts, setReceipts] = useState<CableReceipt[] | null>(null);
  const loaded = opened !== null;
  useEffect(() => {
    if (!loaded) return;
    let stopped = false;
    const poll = () =>
      ctx.client.transport
        .cable(id)
        .then((sc) => {
          if (!stopped && Array.isArray(sc.receipts)) setReceipts(sc.receipts);
        })
        .catch(() => undefined);
    void poll();
    const timer = setInterval(() => void poll(), RECEIPT_POLL_MS);
    return () => {
      stopped = true;
      clearInterval(timer);
    };
  }, [ctx.client, ctx.tick, id, loaded]);
  if (missing) return <MissingKey ctx={ctx} id={id} missing={missing} />;
  if (error)
    return (
      <>
        <p>
          <a href="#/cables">← Inbox</a>
        </p>
        <ErrorNote error={error} />
      </>
    );
  if (!opened) return <Progress label="Decrypting" done={progress.done} total={progress.total} />;
  const c = opened.cable;
  const save = (index: number) => {
    setSaveError(null);
    setSaveNotice(null);
    saveAttachment(ctx, c.id, index, {
      onProgress: (done, total) => setSaving({ done, total }),
      onNotice: setSaveNotice,
    }).catch((e: unknown) => setSaveError(`Saving the attachment failed: ${msg(e)}`));
  };
  return (
    <article aria-labelledby="cable-h" className={`cable prec-row-${c.precedence.toLowerCase()}`}>
      <p>
        <a href="#/cables">← Inbox</a>
      </p>
      <div className="row">
        <PrecedenceTag p={c.precedence} />
        <LabelTag label={c.label} />
      </div>
      <h2 id="cable-h" tabIndex={-1}>
        {opened.subject}
      </h2>
      <div className="cable-actions" role="group" aria-label="Cable actions">
        <a className="button secondary" href={`#/cables/new?reply=${encodeURIComponent(c.id)}`}>
          Reply
        </a>
        {ctx.me.units.includes(c.originator) && (
          <a className="button secondary" href={`#/cables/new?correct=${encodeURIComponent(c.id)}`}>
            Correct
          </a>
        )}
        <a className="button secondary" href={`#/cables/new?forward=${encodeURIComponent(c.id)}`}>
          Forward to a unit
        </a>
        <button type="button" className="secondary" onClick={() => window.print()}>
          Print
        </button>
      </div>
      <dl className="fields">
        <dt>Reference</dt>
        <dd data-testid="cable-reference">{c.reference}</dd>
        <dt>Originator</dt>
        <dd>
          {c.originator} ({c.sender}), {fmtTime(c.createdAt)}
        </dd>
        <dt>ACTION</dt>
        <dd>{c.action.join(", ")}</dd>
        <dt>INFO</dt>
        <dd>{c.info.join(", ") || "—"}</dd>
        {c.corrects && (
          <>
            <dt>Corrects</dt>
            <dd>{c.corrects}</dd>
          </>
        )}
      </dl>
      <pre className="body">{opened.body}</pre>
      {opened.attachments.length > 0 && (
        <>
          <h3>Attachments</h3>
          <ul>
            {opened.attachments.map((f, i) => (
              <li key={i}>
                <button type="button" className="linkish" onClick={() => save(i)}>
                  {f.name}
                </button>{" "}
                ({fmtSize(f.size)})
              </li>
            ))}
          </ul>
          <Progress label="Saving attachment" done={saving.done} total={saving.total} />
          {saveNotice && (
            <p className="notice" role="status">
              {saveNotice}
            </p>
          )}
          <ErrorNote error={saveError} />
        </>
      )}
      <h3>Receipts</h3>
      <Receipts receipts={receipts ?? c.receipts} />
    </article>
  );
}

/**
 * Streams attachment `index` of a cable to a browser download: the cable is read again (not marked read twice), the
 * attachment's verified bytes go to the download as they are decrypted, and the download completes only once the
 * whole cable verified to its end (else it fails, and this rejects).
 */
async function saveAttachment(
  ctx: Ctx,
  cableId: string,
  index: number,
  opts: { onProgress: (done: number, total: number) => void; onNotice: (text: string) => void },
): Promise<void> {
  let verified!: { resolve: () => void; reject: (e: unknown) => void };
  const whole = new Promise<void>((resolve, reject) => (verified = { resolve, reject }));
  whole.catch(() => undefined); // observed through the download's source below
  let saving: Promise<unknown> | undefined;
  const opening = ctx.client.cables.open(cableId, {
    markRead: false,
    onProgress: opts.onProgress,
    onAttachment: async (a, bytes) => {
      const it = bytes[Symbol.asyncIterator]();
      const drain = async () => {
        while (!(await it.next()).done);
      };
      if (a.index !== index) return drain();
      let release!: () => void;
      const released = new Promise<void>((r) => (release = r));
      async function* source(): AsyncIterable<Uint8Array> {
        try {
          for (let r = await it.next(); !r.done; r = await it.next()) yield r.value;
        } finally {
          release();
        }
        await whole; // the download ends only when the whole cable verified
      }
      saving = saveStream(a.name, a.size, source(), { onNotice: opts.onNotice });
      await Promise.race([released, saving.catch(() => undefined)]);
      await drain(); // a download stopped early: read the rest, so the cable is still checked to its end
    },
  });
  const opened = await opening.then(
    (o) => {
      verified.resolve();
      return o;
    },
    (e: unknown) => {
      verified.reject(e);
      return null;
    },
  );
  if (saving) await saving;
  if (!opened) await opening; // rethrows why the cable did not verify
}

/**
 * A cable this device holds no key for (issue 14): what the server lists about it (not its subject: that travels
 * only with the key), why there is no key, who can forward it, and the way back. "yet" only while someone can.
 */
function MissingKey(props: { ctx: Ctx; id: string; missing: { text: string; holders: string[] } }) {
  const [cable, setCable] = useState<ServerCable | null>(null);
  useEffect(() => {
    props.ctx.client.transport
      .cable(props.id)
      .then(setCable)
      .catch(() => undefined);
  }, [props.ctx.client, props.id]);
  useEffect(() => props.ctx.setLabels(cable ? [cable.label] : []), [props.ctx, cable]);
  // A new device of a user who has older ones: those can send it everything once this one is approved.
  const [older, setOlder] = useState<string[]>([]);
  useEffect(() => {
    props.ctx.client
      .ownDevices()
      .then((o) => {
        const self = o.devices.find((d) => d.self);
        setOlder(
          o.devices
            .filter((d) => !d.self && d.revokedLogIndex === null && (!self || d.logIndex < self.logIndex))
            .map((d) => d.name),
        );
      })
      .catch(() => undefined);
  }, [props.ctx.client]);
  const canStill = / yet: /.test(props.missing.text);
  const text = props.missing.text.replace(/^this device holds no key for cable .*?\]( \([^)]*\))?( yet)?: /, "");
  return (
    <article aria-labelledby="missing-h" className="cable missing-key" data-testid="missing-key">
      <p>
        <a href="#/cables">← Inbox</a>
      </p>
      {cable && (
        <div className="row">
          <PrecedenceTag p={cable.precedence} />
          <LabelTag label={cable.label} />
        </div>
      )}
      <h2 id="missing-h">
        {canStill ? "This cable's key has not reached this device yet" : "This cable cannot be opened on this device"}
      </h2>
      <p role="status" data-testid="missing-why">
        {text.charAt(0).toUpperCase() + text.slice(1)}.
      </p>
      {cable && (
        <dl className="fields">
          <dt>Reference</dt>
          <dd data-testid="cable-reference">{cable.reference}</dd>
          <dt>Originator</dt>
          <dd>
            {cable.originator} ({cable.sender}), {fmtTime(cable.createdAt)}
          </dd>
          <dt>ACTION</dt>
          <dd>{cable.action.join(", ")}</dd>
          <dt>INFO</dt>
          <dd>{cable.info.join(", ") || "—"}</dd>
          <dt>Size</dt>
          <dd>{fmtSize(cable.size)}</dd>
        </dl>
      )}
      {older.length > 0 && (
        <p className="notice" data-testid="approve-hint">
          This is a new device of yours: approve it from {older.join(" or ")} (Account, then Approve). That device then
          sends this one the keys of the cables and documents it holds.
        </p>
      )}
      {canStill && props.missing.holders.length > 0 && (
        <>
          <h3>Who can share the key</h3>
          <ul data-testid="key-holders">
            {props.missing.holders.map((h) => (
              <li key={h}>{h}</li>
            ))}
          </ul>
          <p className="hint">
            Their devices forward it on their own the next time one of them is online; the cable opens here then. You
            can also ask one of them in a <a href="#/conversations">conversation</a>.
          </p>
        </>
      )}
    </article>
  );
}

function Receipts({ receipts }: { receipts: CableReceipt[] }) {
  return (
    <table>
      <thead>
        <tr>
          <th scope="col">Unit</th>
          <th scope="col">Role</th>
          <th scope="col">Delivered</th>
          <th scope="col">Read</th>
        </tr>
      </thead>
      <tbody>
        {receipts.map((r) => (
          <tr key={`${r.unit}/${r.role}`}>
            <td>{r.unit}</td>
            <td>{r.role.toUpperCase()}</td>
            <td>{r.deliveredAt ? `${fmtTime(r.deliveredAt)} (${r.deliveredBy ?? "?"})` : "not yet"}</td>
            <td>{r.readAt ? `${fmtTime(r.readAt)} (${r.readBy ?? "?"})` : "not yet"}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

interface Unit {
  name: string;
  maxLabel: string;
}

const labelWithin = (label: string, max: string) => {
  try {
    return dominates(parseLabel(max), parseLabel(label));
  } catch {
    return false;
  }
};

type Prefill = { kind: "reply" | "correct" | "forward"; id: string };

function prefillOf(query: string): Prefill | null {
  const q = new URLSearchParams(query);
  for (const kind of ["reply", "correct", "forward"] as const) {
    const id = q.get(kind);
    if (id) return { kind, id };
  }
  return null;
}

const quote = (body: string) =>
  body
    .split("\n")
    .map((l) => `> ${l}`)
    .join("\n");

export function CableCompose({ ctx, query = "" }: { ctx: Ctx; query?: string }) {
  const [units, setUnits] = useState<Unit[]>([]);
  const [from, setFrom] = useState(ctx.me.units[0] ?? "");
  const [action, setAction] = useState<string[]>([]);
  const [info, setInfo] = useState<string[]>([]);
  const [precedence, setPrecedence] = useState("ROUTINE");
  // No default label: the originator classifies each cable deliberately (a silent UNCLASSIFIED would under-mark).
  const [label, setLabel] = useState("");
  const [subject, setSubject] = useState("");
  const [body, setBody] = useState("");
  const [corrects, setCorrects] = useState("");
  const [files, setFiles] = useState<File[]>([]);
  const [confirming, setConfirming] = useState(false);
  const [busy, setBusy] = useState(false);
  const [progress, setProgress] = useState({ done: 0, total: 0 });
  const [error, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  /** The draft is loaded (or a prefill applied) before anything is saved over it. */
  const [ready, setReady] = useState(false);
  /** Released (or being left): no draft is saved any more. */
  const released = useRef(false);
  const reviewRef = useRef<HTMLButtonElement>(null);
  const errorRef = useRef<HTMLDivElement>(null);
  const fileInput = useRef<HTMLInputElement>(null);
  const prefill = useMemo(() => prefillOf(query), [query]);
  useEffect(() => {
    ctx.client.transport
      .units()
      .then((r) => setUnits(r.units))
      .catch((e: unknown) => setError(msg(e)));
  }, [ctx.client]);
  // A reply, correction or forward starts from the cable; otherwise a draft kept from before a reload, if any.
  useEffect(() => {
    let stop = false;
    (async () => {
      if (prefill) {
        const o = await ctx.client.cables.open(prefill.id, { markRead: false });
        if (stop) return;
        const c = o.cable;
        const mine = ctx.me.units;
        if (prefill.kind === "reply") {
          setFrom(mine.find((u) => c.action.includes(u) || c.info.includes(u)) ?? mine[0] ?? "");
          setAction([c.originator]);
          setSubject(/^RE: /.test(o.subject) ? o.subject : `RE: ${o.subject}`.slice(0, 500));
          setBody(`Your ${c.reference}.\n\n`);
        } else if (prefill.kind === "correct") {
          setFrom(c.originator);
          setAction(c.action);
          setInfo(c.info);
          setPrecedence(c.precedence);
          setSubject(o.subject);
          setBody(o.body);
          setCorrects(c.reference);
        } else {
          setFrom(mine[0] ?? "");
          setPrecedence(c.precedence);
          setSubject(`FWD: ${o.subject}`.slice(0, 500));
          setBody(
            `Forwarding ${c.reference} (${c.precedence}, from ${c.originator}, ${fmtTime(c.createdAt)}):\n\n${quote(o.body)}`,
          );
          if (o.attachments.length > 0)
            setNotice(
              `The attachments of ${c.reference} are not forwarded: attach them again if the addressees need them.`,
            );
        }
        setLabel(c.label);
        return;
      }
      const d = await (await draftRecord(ctx.me.handle)).load();
      if (stop || !d) return;
      setFrom(d.from);
      setAction(d.action);
      setInfo(d.info);
      setPrecedence(d.precedence);
      setLabel(d.label);
      setSubject(d.subject);
      setBody(d.body);
      setCorrects(d.corrects);
      setNotice(
        `Draft restored from ${fmtTime(d.savedAt)} (kept encrypted in this browser).` +
          (d.attachmentNames.length > 0
            ? ` Attachments are not kept in a draft: attach ${d.attachmentNames.join(", ")} again.`
            : ""),
      );
    })()
      .catch((e: unknown) => setError(msg(e)))
      .finally(() => {
        if (!stop) setReady(true);
      });
    return () => {
      stop = true;
    };
  }, [ctx.client, ctx.me, prefill]);
  // Every change is saved, sealed, half a second after typing stops.
  const dirty = subject !== "" || body !== "" || action.length > 0 || info.length > 0 || label !== "";
  useEffect(() => {
    if (!ready || !dirty) return;
    const t = setTimeout(() => {
      if (released.current) return;
      void draftRecord(ctx.me.handle).then((r) =>
        r.save({
          from,
          action,
          info,
          precedence,
          label,
          subject,
          body,
          corrects,
          attachmentNames: files.map((f) => f.name),
          savedAt: Date.now(),
        }),
      );
    }, 500);
    return () => clearTimeout(t);
  }, [ready, dirty, ctx.me.handle, from, action, info, precedence, label, subject, body, corrects, files]);
  // Attachments are not in the draft: leaving the page with some asks first.
  useEffect(() => {
    if (files.length === 0) return;
    const warn = (e: BeforeUnloadEvent) => e.preventDefault();
    window.addEventListener("beforeunload", warn);
    return () => window.removeEventListener("beforeunload", warn);
  }, [files.length]);
  // An error is shown beside the button that caused it, scrolled into view (never below the fold or behind a dialog).
  useEffect(() => {
    if (error) errorRef.current?.scrollIntoView({ block: "center" });
  }, [error]);
  const fromMax = units.find((u) => u.name === from)?.maxLabel;
  const labels = usableLabels(ctx.me.clearance, fromMax);
  useEffect(() => ctx.setLabels(label ? [label] : []), [ctx, label]);
  const toggle = (list: string[], set: (x: string[]) => void, u: string) =>
    set(list.includes(u) ? list.filter((x) => x !== u) : [...list, u]);
  const discard = async () => {
    await (await draftRecord(ctx.me.handle)).clear();
  };
  const release = () => {
    setBusy(true);
    setError(null);
    ctx.client.cables
      .send(
        {
          from,
          action,
          info,
          precedence,
          label,
          subject,
          body,
          attachments: files.map((f) => ({ name: f.name, source: fileSource(f) })),
          ...(corrects ? { corrects } : {}),
        },
        (done, total) => setProgress({ done, total }),
      )
      .then(async (r) => {
        released.current = true;
        await ctx.history.markCableRead(r.id);
        await ctx.client.save();
        setFiles([]);
        await discard();
        location.hash = `#/cables/${encodeURIComponent(r.id)}`;
      })
      .catch((e: unknown) => {
        setProgress({ done: 0, total: 0 });
        setError(`The cable was not released: ${msg(e)}`);
        setConfirming(false);
      })
      .finally(() => setBusy(false));
  };
  /** What is refused before anything is encrypted or uploaded; null if the cable can go to the confirm. */
  const check = (): string | null => {
    if (action.length === 0) return "choose at least one ACTION unit";
    if (!label) return "choose the cable's classification label";
    if (subject.trim() === "") return "the subject is empty: write a subject";
    if (body.trim() === "") return "the body is empty: write the cable's text";
    const both = action.filter((u) => info.includes(u));
    if (both.length > 0) return `${both.join(", ")} cannot be both ACTION and INFO: untick one`;
    const over = [from, ...action, ...info].filter((u) => {
      const max = units.find((x) => x.name === u)?.maxLabel;
      return max !== undefined && !labelWithin(label, max);
    });
    if (over.length > 0)
      return `${over
        .map((u) => `${u} may carry at most ${units.find((x) => x.name === u)!.maxLabel}`)
        .join("; ")}: choose a lower label than ${label}, or remove ${over.length === 1 ? "that unit" : "those units"}`;
    return null;
  };
  const totalSize = files.reduce((n, f) => n + f.size, 0);
  return (
    <form
      className="compose"
      aria-labelledby="compose-h"
      onSubmit={(e) => {
        e.preventDefault();
        const why = check();
        if (why) return setError(why);
        setError(null);
        setConfirming(true);
      }}
    >
      <h2 id="compose-h">
        {prefill?.kind === "reply"
          ? "Reply by cable"
          : prefill?.kind === "correct"
            ? "Correct a cable"
            : prefill?.kind === "forward"
              ? "Forward a cable"
              : "New cable"}
      </h2>
      {notice && (
        <div className="notice draft-notice" role="status" data-testid="draft-notice">
          {notice}{" "}
          {!prefill && (
            <button
              type="button"
              className="secondary"
              onClick={() =>
                void discard().then(() => {
                  setNotice(null);
                  setAction([]);
                  setInfo([]);
                  setLabel("");
                  setSubject("");
                  setBody("");
                  setCorrects("");
                  setPrecedence("ROUTINE");
                })
              }
            >
              Discard draft
            </button>
          )}
        </div>
      )}
      <label>
        Originator
        <select value={from} onChange={(e) => setFrom(e.target.value)}>
          {ctx.me.units.map((u) => (
            <option key={u}>{u}</option>
          ))}
        </select>
      </label>
      <fieldset>
        <legend>ACTION</legend>
        {units.map((u) => (
          <label key={u.name} className="check">
            <input
              type="checkbox"
              checked={action.includes(u.name)}
              onChange={() => toggle(action, setAction, u.name)}
            />
            {u.name}
          </label>
        ))}
      </fieldset>
      <fieldset>
        <legend>INFO</legend>
        {units.map((u) => (
          <label key={u.name} className="check">
            <input type="checkbox" checked={info.includes(u.name)} onChange={() => toggle(info, setInfo, u.name)} />
            {u.name}
          </label>
        ))}
      </fieldset>
      <label>
        Precedence
        <select value={precedence} onChange={(e) => setPrecedence(e.target.value)}>
          {PRECEDENCES.map((p) => (
            <option key={p}>{p}</option>
          ))}
        </select>
      </label>
      <label>
        Label
        <select value={label} onChange={(e) => setLabel(e.target.value)} required>
          <option value="" disabled>
            Choose a label…
          </option>
          {labels.map((l) => (
            <option key={l}>{l}</option>
          ))}
          {label && !labels.includes(label) && <option>{label}</option>}
        </select>
      </label>
      {corrects && (
        <p className="hint" data-testid="corrects">
          Corrects <strong>{corrects}</strong> (the correction is a new cable; the original stays as released).{" "}
          <button type="button" className="secondary" onClick={() => setCorrects("")}>
            Not a correction
          </button>
        </p>
      )}
      <label>
        Subject
        <input value={subject} onChange={(e) => setSubject(e.target.value)} required maxLength={500} />
      </label>
      <label>
        Body
        <textarea rows={8} value={body} onChange={(e) => setBody(e.target.value)} required />
      </label>
      <label>
        Attachments
        <input
          type="file"
          multiple
          ref={fileInput}
          onChange={(e) => {
            const add = [...(e.target.files ?? [])];
            setFiles((cur) => [...cur, ...add.filter((f) => !cur.some((c) => c.name === f.name && c.size === f.size))]);
            e.target.value = "";
          }}
        />
      </label>
      {files.length > 0 && (
        <ul className="attachments" aria-label="Attachments to send" data-testid="attachment-list">
          {files.map((f, i) => (
            <li key={`${f.name}/${f.size}/${i}`}>
              <span className="file-name">{f.name}</span> ({fmtSize(f.size)}){" "}
              <button
                type="button"
                className="secondary"
                onClick={() => setFiles((cur) => cur.filter((_, j) => j !== i))}
              >
                Remove<span className="sr-only"> {f.name}</span>
              </button>
            </li>
          ))}
        </ul>
      )}
      <div ref={errorRef} className="compose-status">
        <ErrorNote error={error} />
        <Progress label="Encrypting and uploading" done={progress.done} total={progress.total} />
      </div>
      <button type="submit" ref={reviewRef}>
        Review and release…
      </button>
      {confirming && (
        <ModalConfirm
          title="Release this cable?"
          onCancel={() => setConfirming(false)}
          busy={busy}
          returnTo={reviewRef}
          buttons={
            <>
              <button type="button" onClick={release} disabled={busy}>
                {busy ? "Releasing…" : "Release cable"}
              </button>{" "}
              <button type="button" className="secondary" onClick={() => setConfirming(false)} disabled={busy}>
                Back to editing
              </button>
            </>
          }
        >
          <p>
            <strong>{precedence}</strong> · <strong>{label}</strong> · from {from} · ACTION {action.join(", ")}
            {info.length > 0 ? ` · INFO ${info.join(", ")}` : ""}
            {corrects ? ` · corrects ${corrects}` : ""}. A released cable cannot be edited.
          </p>
          <dl className="fields confirm-fields">
            <dt>Subject</dt>
            <dd data-testid="confirm-subject">{subject}</dd>
            <dt>Body</dt>
            <dd>
              <pre className="confirm-body" data-testid="confirm-body">
                {body}
              </pre>
            </dd>
            <dt>Attachments</dt>
            <dd data-testid="confirm-attachments">
              {files.length === 0 ? (
                "none"
              ) : (
                <ul>
                  {files.map((f, i) => (
                    <li key={i}>
                      {f.name} ({fmtSize(f.size)})
                    </li>
                  ))}
                </ul>
              )}
              {files.length > 1 ? ` ${fmtSize(totalSize)} in all.` : ""}
            </dd>
          </dl>
          <Progress label="Encrypting and uploading" done={progress.done} total={progress.total} />
        </ModalConfirm>
      )}
    </form>
  );
}
