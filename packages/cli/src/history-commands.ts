/** `valise history` and `valise search`: this device's message history and its encrypted search index. */
import type { HistoryStore, SearchKind, ValiseClient } from "@valise/client";
import { parse, str, UsageError } from "./args.js";
import { oneLine as q, printJson, safeText } from "./output.js";
import { openClient } from "./client-commands.js";

export const HISTORY_USAGE = `usage: valise history [CONVERSATION|HANDLE|UNIT] --profile DIR [--limit N] [--json]

Shows the messages this device received or sent (recorded by sync and send), and those another of your devices
sent it when you approved it (valise devices approve). Without an argument, lists the conversations in the history
(id, label, message count, last seq). With a conversation id, or the user or unit of a conversation, prints its
messages in order (the last N with --limit). The history is kept on this device only, sealed at rest (AES-256-GCM
in DIR/history.sealed, key derived from the device key in DIR/profile.json); the server never sees it.
If a history transfer from another device is not complete (batches missing, or refused because they were altered
or truncated), every output says so (stderr, and "complete": false in --json); run valise sync to fetch the rest.
With --json prints {"conversations":[{"conversation","label","count","cursor","lastTime"}]} or
{"conversation","messages":[{"conversation","seq","from","text","label","time","kind","receipt"?}]}, both with
"complete" and "transfers":[{"id","from","complete","batches","received","messages","refused"}].
Your own messages carry their delivered/read state as of the last sync, from the end-to-end receipts other
members' devices sent inside the conversation (the web app sends them; this CLI does not): "receipt":{"state":
"sent"|"delivered"|"read","deliveredTo":[users],"readBy":[users]}, and "sent", "delivered to …" or "read by …"
at the end of the line.`;

export const SEARCH_USAGE = `usage: valise search QUERY --profile DIR [--kind KIND[,KIND…]] [--limit N] [--json]

Searches this device's messages, cables (subject, body, reference, sender), document names and attachment names.
The index is built on this device from its sealed history (valise history) and updated as items arrive (sync,
send, cable send/list, cable show adds a cable's body and attachment names, doc list the names of documents); it is
never sent to the server. Every
word of QUERY must match the start of a word (case and accents ignored); "a phrase word" in double quotes must
match whole words. KIND is message, cable, document or attachment. Default limit 50.
With --json prints {"query","results":[{"kind","id","title","snippet","from","label","time","reference",
"conversation","ref","score"}],"complete"}.`;

function transfersNote(h: HistoryStore): { complete: boolean; transfers: ReturnType<HistoryStore["transfersIn"]> } {
  const transfers = h.transfersIn();
  for (const t of transfers.filter((x) => !x.complete))
    process.stderr.write(
      `valise: the history from ${t.from.user}'s device ${t.from.device} is INCOMPLETE: ${t.received} of ${t.batches} ` +
        `batches (${t.messages} messages in all)` +
        (t.refused.length ? `; refused: ${t.refused.map((r) => `batch ${r.index + 1} ${r.why}`).join("; ")}` : "") +
        "\n",
    );
  return { complete: transfers.every((t) => t.complete), transfers };
}

async function store(c: ValiseClient): Promise<HistoryStore> {
  const h = await c.history();
  if (!h) throw new UsageError("this client keeps no history");
  return h;
}

export async function history(argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    argv,
    { profile: { type: "string" }, limit: { type: "string" }, json: { type: "boolean" } },
    HISTORY_USAGE,
  );
  if (values.help) return (void console.log(HISTORY_USAGE), 0);
  const limit = values.limit !== undefined ? Number(values.limit) : undefined;
  if (limit !== undefined && (!Number.isSafeInteger(limit) || limit < 1))
    throw new UsageError(`--limit must be a positive integer\n\n${HISTORY_USAGE}`);
  const c = await openClient(str(values.profile, "--profile DIR", HISTORY_USAGE));
  const h = await store(c);
  const status = transfersNote(h);
  const arg = positionals[0];
  if (arg === undefined) {
    const list = h.conversations();
    if (values.json) printJson({ conversations: list, ...status });
    else if (list.length === 0) console.log("no history on this device");
    else
      for (const x of list)
        console.log(`${q(x.conversation)} [${q(x.label)}] ${x.count} messages, last #${x.cursor} ${q(x.lastTime)}`);
    return 0;
  }
  const held = new Set(h.conversations().map((x) => x.conversation));
  let ids = held.has(arg) ? [arg] : [];
  if (ids.length === 0)
    ids = c
      .conversationList()
      .filter((x) => x.peer === arg || x.unit === arg)
      .map((x) => x.id)
      .filter((id) => held.has(id));
  if (ids.length === 0 && !/^c-/.test(arg))
    throw new UsageError(`no conversation with ${arg} in this device's history`);
  if (ids.length === 0) ids = [arg];
  let msgs = ids.flatMap((id) => h.messages(id));
  if (limit !== undefined) msgs = msgs.slice(-limit);
  if (values.json)
    printJson({
      conversation: ids.length === 1 ? ids[0] : ids,
      messages: msgs.map((m) => ({
        conversation: m.conversation,
        seq: m.seq,
        from: m.from,
        text: m.text,
        label: m.label,
        time: m.time,
        kind: m.kind,
        ...receiptOf(c, m),
      })),
      ...status,
    });
  else if (msgs.length === 0) console.log("no messages");
  else
    for (const m of msgs)
      console.log(
        `${q(m.time)} #${m.seq} [${q(m.label)}] ${q(m.from)}: ${m.kind === "document" ? `DOCUMENT ${q(m.text)}` : safeText(m.text).replace(/\n/g, "\n    ")}` +
          receiptText(receiptOf(c, m).receipt),
      );
  return 0;
}

/** The delivered/read state of one of this user's own messages (receipts.ts), when this device tracks it. */
function receiptOf(
  c: ValiseClient,
  m: { conversation: string; seq: number; from: string; kind: string },
): { receipt?: { state: string; deliveredTo: string[]; readBy: string[] } } {
  if (m.kind !== "message" || m.from !== c.handle) return {};
  const st = c.receipts.state(m.conversation, m.seq);
  return st ? { receipt: { state: st.state, deliveredTo: st.deliveredTo, readBy: st.readBy } } : {};
}

function receiptText(r: { state: string; deliveredTo: string[]; readBy: string[] } | undefined): string {
  if (!r) return "";
  if (r.state === "read") return `  (read by ${r.readBy.map(q).join(", ")})`;
  if (r.state === "delivered") return `  (delivered to ${r.deliveredTo.map(q).join(", ")})`;
  return "  (sent)";
}

const KINDS = ["message", "cable", "document", "attachment"] as const;

export async function search(argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    argv,
    { profile: { type: "string" }, kind: { type: "string" }, limit: { type: "string" }, json: { type: "boolean" } },
    SEARCH_USAGE,
  );
  if (values.help) return (void console.log(SEARCH_USAGE), 0);
  const query = str(positionals.join(" "), "QUERY", SEARCH_USAGE);
  const limit = values.limit !== undefined ? Number(values.limit) : 50;
  if (!Number.isSafeInteger(limit) || limit < 1)
    throw new UsageError(`--limit must be a positive integer\n\n${SEARCH_USAGE}`);
  const kinds = values.kind?.split(",").map((k) => k.trim());
  for (const k of kinds ?? [])
    if (!(KINDS as readonly string[]).includes(k))
      throw new UsageError(`--kind ${k}: expected ${KINDS.join(", ")}\n\n${SEARCH_USAGE}`);
  const c = await openClient(str(values.profile, "--profile DIR", SEARCH_USAGE));
  const h = await store(c);
  const status = transfersNote(h);
  const hits = h.search(query, { limit, ...(kinds ? { kinds: kinds as SearchKind[] } : {}) });
  const results = hits.map((x) => ({
    kind: x.doc.kind,
    id: x.doc.id,
    title: x.doc.title,
    snippet: x.snippet,
    from: x.doc.from,
    label: x.doc.label,
    time: x.doc.time,
    reference: x.doc.reference ?? null,
    conversation: x.doc.conversation ?? null,
    ref: x.doc.ref ?? null,
    score: x.score,
  }));
  if (values.json) printJson({ query, results, complete: status.complete });
  else if (results.length === 0) console.log("no results");
  else
    for (const r of results)
      console.log(
        `${q(r.time)} [${q(r.label)}] ${r.kind.toUpperCase()}${r.reference ? ` ${q(r.reference)}` : ""} ${q(r.from)}: ` +
          `${r.title ? q(r.title) : ""}${r.title && r.snippet ? " — " : ""}${q(r.snippet)}`,
      );
  return 0;
}
