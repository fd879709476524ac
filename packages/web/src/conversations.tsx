import { useEffect, useState } from "react";
import type { Ctx } from "./ctx.js";
import { usableLabels } from "./labels.js";
import { saveSoon } from "./search.js";
import { ErrorNote, LabelTag, fmtTime, errorText } from "./ui.js";

const msg = errorText;

interface ConvRow {
  id: string;
  kind: string;
  peer: string | null;
  unit: string | null;
  fromUnit?: string | null;
  label: string;
}

function title(c: Omit<ConvRow, "id" | "label">): string {
  if (c.kind === "history") return `From your history: ${c.peer ?? "?"}`;
  if (c.kind === "direct") return `Direct: ${c.peer ?? "?"}`;
  if (c.kind === "link") return `Link ${c.fromUnit ?? "?"} → ${c.unit ?? "?"}`;
  return `Unit channel: ${c.unit ?? "?"}`;
}

/**
 * Conversations as a mail client shows them: the list (unread count, last message) and, with `selected`, the thread
 * beside it on a wide screen (alone on a narrow one). Own messages say they were sent (stored by the server for every
 * member device); received ones this browser has not shown yet carry an unread dot.
 */
/**
 * A conversation this device holds messages of but is not a member of (yet): its history came from another device
 * of this user (an approval). Shown read-only; it becomes a normal conversation when someone next writes in it.
 */
function historyOnly(ctx: Ctx, id: string): ConvRow | null {
  const msgs = ctx.history.thread(id);
  const last = msgs.at(-1);
  if (!last) return null;
  const people = [...new Set(msgs.map((m) => m.from))];
  const others = people.filter((p) => p !== ctx.me.handle);
  return {
    id,
    kind: "history",
    peer: (others.length > 0 ? others : people).join(", "),
    unit: null,
    label: last.label,
  };
}

export function Conversations({ ctx, selected = null }: { ctx: Ctx; selected?: string | null }) {
  const held = ctx.client.conversationList();
  const heldIds = new Set(held.map((c) => c.id));
  const convs: ConvRow[] = [
    ...held.filter((c) => c.kind !== "link" && !c.historyFor),
    ...ctx.history
      .conversations()
      .filter((id) => !heldIds.has(id))
      .map((id) => historyOnly(ctx, id))
      .filter((c): c is ConvRow => c !== null),
  ];
  useEffect(() => {
    if (!selected) ctx.setLabels(convs.map((c) => c.label));
  }, [ctx, convs.length, selected]);
  const list = (
    <section aria-labelledby="conv-h" className="mail-list">
      <div className="row">
        <h2 id="conv-h">Conversations</h2>
        {selected && (
          <a className="button" href="#/conversations">
            New message
          </a>
        )}
      </div>
      {!selected && <NewMessage ctx={ctx} />}
      {convs.length === 0 ? (
        <p>No conversations yet.</p>
      ) : (
        <ul className="convs">
          {convs.map((c) => {
            const n = c.id === selected ? 0 : ctx.history.unread(c.id);
            const last = ctx.history.thread(c.id).at(-1);
            return (
              <li key={c.id} className={`${n > 0 ? "unread" : "read"}${c.id === selected ? " selected" : ""}`}>
                <a
                  href={`#/conversations/${encodeURIComponent(c.id)}`}
                  aria-current={c.id === selected ? "true" : undefined}
                >
                  <span className="subject">{title(c)}</span>
                  {n > 0 && <span className="badge">{n} unread</span>}
                  <span className="meta">
                    {last ? `${last.from}: ${last.text.slice(0, 80)}` : ""}
                    {last ? ` · ${fmtTime(last.time)}` : ""}
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
  return (
    <div className={`mail${selected ? " has-selection" : ""}`}>
      {list}
      {selected && (
        <div className="mail-pane" data-testid="thread-pane">
          <Thread ctx={ctx} id={selected} key={selected} />
        </div>
      )}
    </div>
  );
}

function NewMessage({ ctx }: { ctx: Ctx }) {
  const [to, setTo] = useState("");
  const [label, setLabel] = useState("UNCLASSIFIED");
  const [text, setText] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  return (
    <form
      className="inline-form"
      aria-label="New conversation"
      onSubmit={(e) => {
        e.preventDefault();
        setBusy(true);
        setError(null);
        ctx.client
          .send(to.trim(), text, label)
          .then(async (r) => {
            await ctx.history.add([
              {
                conversation: r.conversation,
                seq: r.seq,
                from: ctx.me.handle,
                text,
                label: r.label,
                time: new Date().toISOString(),
                kind: "message",
              },
            ]);
            ctx.store.recordSent({
              conversation: r.conversation,
              seq: r.seq,
              from: ctx.me.handle,
              text,
              label: r.label,
              time: new Date().toISOString(),
            });
            saveSoon(ctx.store);
            await ctx.history.markRead(r.conversation);
            await ctx.client.save();
            location.hash = `#/conversations/${encodeURIComponent(r.conversation)}`;
          })
          .catch((err: unknown) => setError(msg(err)))
          .finally(() => setBusy(false));
      }}
    >
      <label>
        To (person or unit)
        <input value={to} onChange={(e) => setTo(e.target.value)} required placeholder="jnovak or HQ/ASIA-1" />
      </label>
      <label>
        Label
        <select value={label} onChange={(e) => setLabel(e.target.value)}>
          {usableLabels(ctx.me.clearance).map((l) => (
            <option key={l}>{l}</option>
          ))}
        </select>
      </label>
      <label>
        Message
        <input value={text} onChange={(e) => setText(e.target.value)} required />
      </label>
      <button type="submit" disabled={busy}>
        {busy ? "Sending…" : "Send"}
      </button>
      <ErrorNote error={error} />
    </form>
  );
}

export function Thread({ ctx, id }: { ctx: Ctx; id: string }) {
  const member = ctx.client.conversationList().find((c) => c.id === id);
  const conv: ConvRow | null | undefined = member ?? historyOnly(ctx, id);
  const msgs = ctx.history.thread(id);
  const [text, setText] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => ctx.setLabels(conv ? [conv.label, ...msgs.map((m) => m.label)] : []), [ctx, conv, msgs.length]);
  // What was unread when the thread opened stays marked "New" while it is open.
  const [readBefore] = useState(() => ctx.history.readUpTo(id));
  useEffect(() => void ctx.history.markRead(id), [ctx.history, id, msgs.length]);
  // Shown: one "read" receipt for what this browser decrypted here and has not acknowledged yet (receipts.ts).
  useEffect(() => void ctx.client.receipts.markRead(id).catch(() => undefined), [ctx.client, id, msgs.length]);
  if (!conv) return <ErrorNote error="no such conversation on this device" />;
  return (
    <section aria-labelledby="thread-h">
      <p>
        <a href="#/conversations">← Conversations</a>
      </p>
      <h2 id="thread-h">
        {title(conv)} <LabelTag label={conv.label} />
      </h2>
      {!member && (
        <p className="meta" data-testid="history-only">
          Sent to this browser by another of your devices when it approved this one. This browser is not a member of the
          conversation yet: it joins when someone next writes in it.
        </p>
      )}
      <ol className="thread" aria-live="polite" aria-label="Messages">
        {msgs.map((m) => (
          <li key={m.seq} className={m.from === ctx.me.handle ? "mine" : ""}>
            <span className="meta">
              {m.from} · {fmtTime(m.time)} <LabelTag label={m.label} />
            </span>
            <span className={m.kind === "joined" ? "meta" : "text"} data-testid="message-text">
              {m.text}
            </span>
            {m.kind === "message" && (
              <span className="msg-state" data-testid="message-state">
                {m.from === ctx.me.handle ? (
                  <OwnState ctx={ctx} conversation={id} seq={m.seq} direct={conv.kind === "direct"} />
                ) : m.seq > readBefore ? (
                  "New"
                ) : (
                  "Read"
                )}
              </span>
            )}
          </li>
        ))}
      </ol>
      {member && (
        <form
          className="inline-form"
          onSubmit={(e) => {
            e.preventDefault();
            setBusy(true);
            setError(null);
            ctx.client
              .sendText(id, text)
              .then(async (r) => {
                await ctx.history.add([
                  {
                    conversation: id,
                    seq: r.seq,
                    from: ctx.me.handle,
                    text,
                    label: conv.label,
                    time: new Date().toISOString(),
                    kind: "message",
                  },
                ]);
                ctx.store.recordSent({
                  conversation: id,
                  seq: r.seq,
                  from: ctx.me.handle,
                  text,
                  label: conv.label,
                  time: new Date().toISOString(),
                });
                saveSoon(ctx.store);
                await ctx.client.save();
                setText("");
                ctx.refresh();
              })
              .catch((err: unknown) => setError(msg(err)))
              .finally(() => setBusy(false));
          }}
        >
          <label>
            Reply ({conv.label})
            <input value={text} onChange={(e) => setText(e.target.value)} required />
          </label>
          <button type="submit" disabled={busy}>
            Send
          </button>
          <ErrorNote error={error} />
        </form>
      )}
    </section>
  );
}

/**
 * Where an own message stands, from the end-to-end receipts of the other members' devices (receipts.ts): ✓ sent
 * (stored by the server for every member device), ✓✓ delivered (decrypted by a device of another member), read (shown
 * there): "Read" in a direct conversation, "Read by N" in a group, with who in the tooltip.
 */
function OwnState({
  ctx,
  conversation,
  seq,
  direct,
}: {
  ctx: Ctx;
  conversation: string;
  seq: number;
  direct: boolean;
}) {
  const st = ctx.client.receipts.state(conversation, seq);
  const who = st
    ? `Delivered to ${st.deliveredTo.join(", ") || "nobody yet"}; read by ${st.readBy.join(", ") || "nobody yet"}`
    : undefined;
  if (!st || st.state === "sent")
    return (
      <span className="rcpt sent" title="Stored by the server for every member device">
        <span aria-hidden="true">✓ </span>Sent
      </span>
    );
  if (st.state === "delivered")
    return (
      <span className="rcpt delivered" title={who}>
        <span aria-hidden="true">✓✓ </span>
        {direct ? "Delivered" : `Delivered to ${st.deliveredTo.length}`}
      </span>
    );
  return (
    <span className="rcpt read" title={who}>
      <span aria-hidden="true">✓✓ </span>
      {direct ? "Read" : `Read by ${st.readBy.length}`}
      {!direct && st.deliveredTo.length > st.readBy.length ? ` · delivered to ${st.deliveredTo.length}` : ""}
    </span>
  );
}
