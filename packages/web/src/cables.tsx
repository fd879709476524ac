import { useEffect, useMemo, useRef, useState } from "react";
import { PRECEDENCES } from "@valise/core";
import type { CableReceipt, OpenedCable, ServerCable } from "@valise/client";
import type { Ctx } from "./App.js";
import { getJson } from "./session.js";
import { ModalConfirm } from "./a11y.js";
import { usableLabels } from "./labels.js";
import { saveStream } from "./download.js";
import { ErrorNote, LabelTag, PrecedenceTag, Progress, fileSource, fmtSize, fmtTime, errorText } from "./ui.js";

type Listed = ServerCable & { subject: string | null; problem: string | null };
const RANK: Record<string, number> = { FLASH: 0, IMMEDIATE: 1, PRIORITY: 2, ROUTINE: 3 };
const msg = errorText;

export function CableInbox({ ctx }: { ctx: Ctx }) {
  const [cables, setCables] = useState<Listed[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [unit, setUnit] = useState("");
  const [prec, setPrec] = useState("");
  const [label, setLabel] = useState("");
  useEffect(() => {
    ctx.client.cables
      .list({ limit: 500 })
      .then(setCables)
      .catch((e: unknown) => setError(msg(e)));
  }, [ctx.client, ctx.tick]);
  const shown = useMemo(
    () =>
      (cables ?? [])
        .filter((c) => !unit || c.originator === unit || c.action.includes(unit) || c.info.includes(unit))
        .filter((c) => !prec || c.precedence === prec)
        .filter((c) => !label || c.label === label)
        .sort((a, b) => (RANK[a.precedence] ?? 9) - (RANK[b.precedence] ?? 9) || b.createdAt - a.createdAt),
    [cables, unit, prec, label],
  );
  useEffect(() => ctx.setLabels(shown.map((c) => c.label)), [ctx, shown]);
  const units = [...new Set((cables ?? []).flatMap((c) => [c.originator, ...c.action, ...c.info]))].sort();
  const labels = [...new Set((cables ?? []).map((c) => c.label))].sort();
  const unread = shown.filter((c) => !ctx.history.cableRead(c.id)).length;
  return (
    <section aria-labelledby="inbox-h">
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
      {cables === null ? (
        <p>Loading cables…</p>
      ) : shown.length === 0 ? (
        <p>No cables.</p>
      ) : (
        <ul className="inbox" aria-label="Cables, FLASH first">
          {shown.map((c) => {
            const read = ctx.history.cableRead(c.id);
            return (
              <li key={c.id} className={`cable-row prec-row-${c.precedence.toLowerCase()} ${read ? "read" : "unread"}`}>
                <a href={`#/cables/${encodeURIComponent(c.id)}`} data-testid="cable-link">
                  <PrecedenceTag p={c.precedence} />
                  <span className="subject">
                    {!read && <span className="dot">Unread: </span>}
                    {c.subject ?? (c.problem ? `⚠ ${c.problem}` : "(no key on this device yet)")}
                  </span>
                  <span className="ref">{c.reference}</span>
                  <span className="meta">
                    from {c.originator} · {fmtTime(c.createdAt)}
                  </span>
                  <LabelTag label={c.label} />
                </a>
              </li>
            );
          })}
        </ul>
      )}
    </section>
  );
}

/** How often an open cable's receipts are refreshed. */
const RECEIPT_POLL_MS = 4000;

export function CableView({ ctx, id }: { ctx: Ctx; id: string }) {
  const [opened, setOpened] = useState<OpenedCable | null>(null);
  const [error, setError] = useState<string | null>(null);
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
        await ctx.history.markCableRead(o.cable.id);
        await ctx.client.save();
      })
      .catch((e: unknown) => setError(msg(e)));
  }, [ctx.client, ctx.history, id]);
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
  if (error) return <ErrorNote error={error} />;
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
      <h2 id="cable-h">{opened.subject}</h2>
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

export function CableCompose({ ctx }: { ctx: Ctx }) {
  const [units, setUnits] = useState<Unit[]>([]);
  const [from, setFrom] = useState(ctx.me.units[0] ?? "");
  const [action, setAction] = useState<string[]>([]);
  const [info, setInfo] = useState<string[]>([]);
  const [precedence, setPrecedence] = useState("ROUTINE");
  // No default label: the originator classifies each cable deliberately (a silent UNCLASSIFIED would under-mark).
  const [label, setLabel] = useState("");
  const [subject, setSubject] = useState("");
  const [body, setBody] = useState("");
  const [files, setFiles] = useState<File[]>([]);
  const [confirming, setConfirming] = useState(false);
  const [busy, setBusy] = useState(false);
  const [progress, setProgress] = useState({ done: 0, total: 0 });
  const [error, setError] = useState<string | null>(null);
  const reviewRef = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    getJson<{ units: Unit[] }>("/v1/units", ctx.client.transport.token)
      .then((r) => setUnits(r.units))
      .catch((e: unknown) => setError(msg(e)));
  }, [ctx.client]);
  const fromMax = units.find((u) => u.name === from)?.maxLabel;
  const labels = usableLabels(ctx.me.clearance, fromMax);
  useEffect(() => ctx.setLabels(label ? [label] : []), [ctx, label]);
  const toggle = (list: string[], set: (x: string[]) => void, u: string) =>
    set(list.includes(u) ? list.filter((x) => x !== u) : [...list, u]);
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
        },
        (done, total) => setProgress({ done, total }),
      )
      .then(async (r) => {
        await ctx.history.markCableRead(r.id);
        await ctx.client.save();
        location.hash = `#/cables/${encodeURIComponent(r.id)}`;
      })
      .catch((e: unknown) => {
        setError(msg(e));
        setConfirming(false);
      })
      .finally(() => setBusy(false));
  };
  return (
    <form
      className="compose"
      aria-labelledby="compose-h"
      onSubmit={(e) => {
        e.preventDefault();
        if (action.length === 0) return setError("choose at least one ACTION unit");
        if (!label) return setError("choose the cable's classification label");
        if (subject.trim() === "") return setError("the subject is empty: write a subject");
        if (body.trim() === "") return setError("the body is empty: write the cable's text");
        setError(null);
        setConfirming(true);
      }}
    >
      <h2 id="compose-h">New cable</h2>
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
        </select>
      </label>
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
        <input type="file" multiple onChange={(e) => setFiles([...(e.target.files ?? [])])} />
      </label>
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
            {info.length > 0 ? ` · INFO ${info.join(", ")}` : ""}. A released cable cannot be edited.
          </p>
        </ModalConfirm>
      )}
      <Progress label="Encrypting and uploading" done={progress.done} total={progress.total} />
      <ErrorNote error={error} />
    </form>
  );
}
