import { Fragment, useEffect, useRef, useState } from "react";
import { describeStaleness, type AuditEvent } from "@valise/core";
import {
  describeAuditProof,
  type AuditCable,
  type AlertsLearning,
  type AuditQueryResult,
  type ServerAlert,
  type ServerUser,
} from "@valise/client";
import type { Ctx } from "./ctx.js";
import { ErrorNote, fmtTime, errorText } from "./ui.js";
import { ModalConfirm } from "./a11y.js";
import { directoryLabels } from "./labels.js";

const msg = errorText;

/** A datetime-local field's value as ISO 8601 (undefined when empty). */
function isoOf(v: string, name: string): string | undefined {
  if (!v) return undefined;
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw new Error(`${name}: not a date and time`);
  return new Date(t).toISOString();
}

/** Who read the cable (ok outcome) and who was refused, each once, oldest first. */
function readers(events: AuditEvent[]): { read: string[]; refused: string[] } {
  const read: string[] = [];
  const refused: string[] = [];
  for (const e of [...events].reverse()) {
    const list = e.outcome === "ok" ? read : refused;
    if (!list.includes(e.actor)) list.push(e.actor);
  }
  return { read, refused };
}

/**
 * The audit log as proven by the SDK (client.audit): the checkpoint verified with the log key and witnesses pinned
 * at enrollment, every row with a valid inclusion proof. Unproven rows are never shown; an alert says how many.
 */
function AuditSection({ ctx }: { ctx: Ctx }) {
  const [actor, setActor] = useState("");
  const [action, setAction] = useState("");
  const [object, setObject] = useState("");
  const [since, setSince] = useState("");
  const [until, setUntil] = useState("");
  const [reference, setReference] = useState("");
  const [cable, setCable] = useState<AuditCable | null>(null);
  const [result, setResult] = useState<AuditQueryResult | null>(null);
  const [failure, setFailure] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const run = async () => {
    setBusy(true);
    try {
      let found: AuditCable | null = null;
      if (reference.trim()) found = await ctx.client.audit.cableByReference(reference.trim());
      const r = await ctx.client.audit.query({
        actor: actor.trim() || undefined,
        action: action.trim() || (found ? "cable.read" : undefined),
        object: found ? found.id : object.trim() || undefined,
        since: isoOf(since, "Since"),
        until: isoOf(until, "Until"),
        limit: 200,
      });
      setCable(found);
      setResult(r);
      setFailure(null);
    } catch (e) {
      // Nothing the server said is shown when it could not be verified.
      setResult(null);
      setCable(null);
      setFailure(msg(e));
    } finally {
      setBusy(false);
    }
  };
  useEffect(() => {
    void run();
  }, [ctx.client, ctx.tick]);

  const who = cable && result ? readers(result.events) : null;
  return (
    <>
      <h3 id="audit-h">Audit log</h3>
      <form
        className="inline-form"
        aria-label="Audit filters"
        onSubmit={(e) => {
          e.preventDefault();
          void run();
        }}
      >
        <label>
          Cable reference
          <input
            value={reference}
            onChange={(e) => setReference(e.target.value)}
            placeholder="EMB/BEIJING 2026/000123"
            aria-describedby="audit-ref-help"
          />
        </label>
        <label>
          Actor
          <input value={actor} onChange={(e) => setActor(e.target.value)} />
        </label>
        <label>
          Action
          <input value={action} onChange={(e) => setAction(e.target.value)} placeholder="cable.read" />
        </label>
        <label>
          Object
          <input
            value={object}
            onChange={(e) => setObject(e.target.value)}
            disabled={reference.trim().length > 0}
            placeholder="k-…, c-…, a handle"
          />
        </label>
        <label>
          Since
          <input type="datetime-local" value={since} onChange={(e) => setSince(e.target.value)} />
        </label>
        <label>
          Until
          <input type="datetime-local" value={until} onChange={(e) => setUntil(e.target.value)} />
        </label>
        <button type="submit" disabled={busy}>
          Search the audit log
        </button>
      </form>
      <p id="audit-ref-help" className="hint">
        A cable reference finds who read that cable (action cable.read on its id, denied attempts included).
      </p>
      {failure && (
        <div className="kt-alert big" role="alert" data-testid="audit-alert">
          <strong>
            {/checkpoint refused: (rollback|fork) —/.test(failure)
              ? "The server is showing an older or different audit log than this device already verified:"
              : "The audit log could not be verified:"}
          </strong>{" "}
          {failure}. No events are shown.
        </div>
      )}
      {result?.freshness.stale && (
        <div className="kt-alert big" role="alert" data-testid="audit-stale">
          <strong>The audit log shown may be out of date.</strong> {describeStaleness("audit log", result.freshness)}.
          Newer events may be missing from this view.
        </div>
      )}
      {result && result.unproven.length > 0 && (
        <div className="kt-alert big" role="alert" data-testid="audit-alert">
          <strong>
            The server returned {result.unproven.length} event{result.unproven.length === 1 ? "" : "s"} that{" "}
            {result.unproven.length === 1 ? "is" : "are"} not in the signed audit log.
          </strong>{" "}
          {result.unproven.length === 1 ? "It is" : "They are"} not shown. This is evidence of tampering: keep this
          screen and tell the system owner. ({result.unproven[0]!.reason}
          {result.unproven.length > 1 ? `; ${result.unproven.length - 1} more` : ""})
        </div>
      )}
      {result && (
        <p role="status" className="audit-proof" data-testid="audit-proof">
          {describeAuditProof(result)}
          {result.checkpoint.size > 0 ? "." : ""}
          {result.more ? " Only the newest are shown: narrow the filters to see older ones." : ""}
        </p>
      )}
      <WholeLogCheck ctx={ctx} />
      {result?.warning && (
        <p className={result.keySource === "server" ? "error" : "hint"} data-testid="audit-warning">
          {result.warning}
        </p>
      )}
      {cable && who && (
        <p data-testid="cable-readers">
          Cable <strong>{cable.reference}</strong> ({cable.label}, released {fmtTime(cable.createdAt)}, id {cable.id}):{" "}
          {who.read.length > 0 ? `read by ${who.read.join(", ")}` : "no reads in the signed log"}
          {who.refused.length > 0 ? `; refused: ${who.refused.join(", ")}` : ""}.
        </p>
      )}
      {result && (
        // Wider than the screen: it scrolls inside this box (focusable, so the keyboard scrolls it too).
        <div className="table-wrap" role="region" aria-label="Audit events" tabIndex={0}>
          <table className="audit compact" aria-labelledby="audit-h">
            <thead>
              <tr>
                <th scope="col">Time (UTC)</th>
                <th scope="col">Actor</th>
                <th scope="col">Device</th>
                <th scope="col">Action</th>
                <th scope="col">Object</th>
                <th scope="col">Label</th>
                <th scope="col">Source network</th>
                <th scope="col">Outcome</th>
              </tr>
            </thead>
            <tbody>
              {groupEvents(result.events).map((g) => {
                const e = g.events[0]!;
                const last = g.events[g.events.length - 1]!;
                return (
                  <tr key={e.id} data-testid="audit-row" className={e.outcome === "denied" ? "denied" : undefined}>
                    <td className="when">
                      <time dateTime={e.time}>{fmtTime(e.time).replace("Z", "")}</time>
                      {g.events.length > 1 && last.time !== e.time && (
                        <>
                          {" – "}
                          <time dateTime={last.time}>{fmtTime(last.time).slice(11, 16)}</time>
                        </>
                      )}
                    </td>
                    <td>{e.actor}</td>
                    <td className="dev">
                      <span title={e.device ?? undefined}>{e.device ? e.device.slice(0, 10) : "—"}</span>
                    </td>
                    <td>
                      {e.action}
                      {g.events.length > 1 && (
                        <span className="repeat" data-testid="audit-repeat">
                          {" "}
                          ×{g.events.length}
                        </span>
                      )}
                    </td>
                    <td className="obj">{objectsOf(g.events)}</td>
                    <td>{e.label ?? "—"}</td>
                    <td>{e.source}</td>
                    <td>{e.outcome === "denied" ? <strong>DENIED</strong> : e.outcome}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
    </>
  );
}

function objectsOf(events: AuditEvent[]): string {
  const all = [...new Set(events.map((e) => e.object))];
  return all.slice(0, 3).join(", ") + (all.length > 3 ? ` and ${all.length - 3} more` : "");
}

/**
 * Repeated events in a row (one cable open is a read, its receipt, its blob ranges…; a poll repeats a read) are one
 * line with a count: same actor, device, source, action, label and outcome, newest first as listed; the objects
 * they touched are listed in the row (the first three, then how many more).
 */
export function groupEvents(events: AuditEvent[]): { events: AuditEvent[] }[] {
  const out: { events: AuditEvent[] }[] = [];
  const key = (e: AuditEvent) => JSON.stringify([e.actor, e.device, e.source, e.action, e.label, e.outcome]);
  for (const e of events) {
    const g = out[out.length - 1];
    if (g && key(g.events[0]!) === key(e)) g.events.push(e);
    else out.push({ events: [e] });
  }
  // Listed newest first: a group's range reads oldest – newest.
  for (const g of out) g.events.reverse();
  return out;
}

type WholeLog = { kind: "idle" | "busy" } | { kind: "ok" | "bad" | "stale"; text: string };

/**
 * Inclusion proofs show that each listed event is in the log, not that the server listed them all: this downloads
 * every entry of the verified checkpoint and recomputes its root (what `valise audit verify` does), so a removed,
 * reordered or altered entry is caught.
 */
function WholeLogCheck({ ctx }: { ctx: Ctx }) {
  const [state, setState] = useState<WholeLog>({ kind: "idle" });
  const check = async () => {
    setState({ kind: "busy" });
    try {
      const v = await ctx.client.audit.checkpoint();
      const size = v.checkpoint.size.toLocaleString("en");
      const d = await ctx.client.audit.download(v.checkpoint);
      const witnessed = v.witnesses.quorum > 0 ? `, cosigned by ${v.witnesses.cosigned} of ${v.witnesses.pinned}` : "";
      const all = `All ${size} entries of the audit log hash to its signed checkpoint${witnessed}`;
      setState(
        !d.ok
          ? { kind: "bad", text: d.reason }
          : v.freshness.stale
            ? { kind: "stale", text: `${all}, but ${describeStaleness("audit log", v.freshness)}.` }
            : { kind: "ok", text: `${all}: nothing was removed, reordered or altered.` },
      );
    } catch (e) {
      setState({ kind: "bad", text: msg(e) });
    }
  };
  return (
    <div className="whole-log">
      <button type="button" className="secondary" disabled={state.kind === "busy"} onClick={() => void check()}>
        {state.kind === "busy" ? "Verifying every entry…" : "Verify the whole log"}
      </button>
      {state.kind === "ok" && (
        <p role="status" className="audit-proof" data-testid="audit-full-ok">
          {state.text}
        </p>
      )}
      {state.kind === "stale" && (
        <div className="kt-alert big" role="alert" data-testid="audit-full-stale">
          <strong>The audit log verifies but is stale:</strong> {state.text}
        </div>
      )}
      {state.kind === "bad" && (
        <div className="kt-alert big" role="alert" data-testid="audit-full-alert">
          <strong>The whole audit log does not verify:</strong> {state.text}. This is evidence of tampering: keep this
          screen and tell the system owner.
        </div>
      )}
    </div>
  );
}

export function Officer({ ctx }: { ctx: Ctx }) {
  const [users, setUsers] = useState<ServerUser[]>([]);
  const [alerts, setAlerts] = useState<ServerAlert[]>([]);
  const [learning, setLearning] = useState<AlertsLearning | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [unitLabels, setUnitLabels] = useState<string[]>([]);
  useEffect(() => ctx.setLabels([]), [ctx]);
  const loadUsers = async () => {
    const t = ctx.client.transport;
    const { units } = await t.units();
    setUnitLabels(units.map((u) => u.maxLabel));
    const handles = new Set<string>();
    for (const u of units) (await t.unitMembers(u.name)).members.forEach((h) => handles.add(h));
    const list: ServerUser[] = [];
    for (const h of [...handles].sort()) list.push(await t.user(h));
    setUsers(list);
  };
  useEffect(() => {
    Promise.all([
      loadUsers(),
      ctx.client.alerts({ limit: 100 }).then(setAlerts),
      ctx.client.transport.alertsLearning().then(setLearning),
    ]).catch((e: unknown) => setError(msg(e)));
  }, [ctx.client, ctx.tick]);
  return (
    <section aria-labelledby="off-h">
      <h2 id="off-h">Security officer</h2>
      <ErrorNote error={error} />
      <h3>Alerts</h3>
      <p>
        <a href="#/incidents">Group alerts into an incident, export it (STIX 2.1) or share it (TAXII)</a>
      </p>
      {learning?.active && (
        <p className="learning" role="status">
          Detection is learning until{" "}
          {learning.until ? fmtTime(learning.until) : `${learning.trainDays} days after the first audited event`}: until
          then only critical rules (canaries) alert. Working hours are profiled per person in the time zone of their
          post (UTC for units without one).
        </p>
      )}
      {alerts.length === 0 ? (
        <p>{learning?.active ? "No alerts yet (still learning)." : "No alerts."}</p>
      ) : (
        <ul className="alerts">
          {alerts.map((a) => (
            <li key={a.id} className={`sev-${a.severity}`}>
              <strong>{a.severity.toUpperCase()}</strong> {a.reason} — {a.actor}, {fmtTime(a.time)}{" "}
              {a.acknowledgedBy ? (
                `acknowledged by ${a.acknowledgedBy}`
              ) : (
                <button
                  type="button"
                  onClick={() =>
                    void ctx.client
                      .ackAlert(a.id)
                      .then(() => ctx.refresh())
                      .catch((e: unknown) => setError(msg(e)))
                  }
                >
                  Acknowledge
                </button>
              )}
            </li>
          ))}
        </ul>
      )}
      <h3 id="users-h">Users and clearances</h3>
      {/* One card per user on a narrow screen (the roles keep it a table for assistive technology then). */}
      <div className="table-wrap">
        <table className="users" role="table" aria-labelledby="users-h">
          <thead role="rowgroup">
            <tr role="row">
              <th scope="col" role="columnheader">
                User
              </th>
              <th scope="col" role="columnheader">
                Units
              </th>
              <th scope="col" role="columnheader">
                Role
              </th>
              <th scope="col" role="columnheader">
                Clearance
              </th>
            </tr>
          </thead>
          <tbody role="rowgroup">
            {users.map((u) => (
              <tr key={u.handle} role="row">
                <td role="cell" className="handle">
                  <span className="cell-label" aria-hidden="true">
                    User
                  </span>
                  {u.handle}
                </td>
                <td role="cell" className="units">
                  <span className="cell-label" aria-hidden="true">
                    Units
                  </span>
                  {u.units.map((x, i) => (
                    <Fragment key={x}>
                      {i > 0 && ", "}
                      <span className="unit">{x}</span>
                    </Fragment>
                  ))}
                </td>
                <td role="cell" className="role">
                  <span className="cell-label" aria-hidden="true">
                    Role
                  </span>
                  {u.role}
                </td>
                <td role="cell" className="clearance">
                  <span className="cell-label" aria-hidden="true">
                    Clearance
                  </span>
                  <ClearanceEditor
                    ctx={ctx}
                    user={u}
                    options={directoryLabels(unitLabels, [u.clearance])}
                    onSaved={() => void loadUsers().catch((e: unknown) => setError(msg(e)))}
                  />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <AuditSection ctx={ctx} />
    </section>
  );
}

/**
 * One user's clearance: chosen from the labels the directory allows, confirmed in the app (not the browser's
 * confirm()), with the result beside the field. A refused change puts the field back to the saved clearance.
 */
function ClearanceEditor(props: { ctx: Ctx; user: ServerUser; options: string[]; onSaved: () => void }) {
  const { ctx, user } = props;
  const [value, setValue] = useState(user.clearance);
  const [confirming, setConfirming] = useState(false);
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState<{ ok: boolean; text: string } | null>(null);
  const setRef = useRef<HTMLButtonElement>(null);
  useEffect(() => setValue(user.clearance), [user.clearance]);
  const id = `clr-${user.handle}`;
  return (
    <form
      className="tiny-form"
      onSubmit={(e) => {
        e.preventDefault();
        setResult(null);
        if (value === user.clearance) return setResult({ ok: true, text: `Unchanged: ${user.clearance}` });
        setConfirming(true);
      }}
    >
      <select
        id={id}
        aria-label={`Clearance of ${user.handle}`}
        value={value}
        onChange={(e) => setValue(e.target.value)}
        data-testid="clearance-select"
      >
        {props.options.map((l) => (
          <option key={l}>{l}</option>
        ))}
      </select>
      <button type="submit" ref={setRef}>
        Set<span className="sr-only"> the clearance of {user.handle}</span>
      </button>
      {result && (
        <span
          role={result.ok ? "status" : "alert"}
          className={result.ok ? "inline-ok" : "error inline-error"}
          data-testid="clearance-result"
        >
          {result.text}
        </span>
      )}
      {confirming && (
        <ModalConfirm
          title={`Set ${user.handle}'s clearance to ${value}?`}
          onCancel={() => setConfirming(false)}
          busy={busy}
          returnTo={setRef}
          buttons={
            <Fragment>
              <button
                type="button"
                disabled={busy}
                onClick={() => {
                  setBusy(true);
                  ctx.client
                    .setClearance(user.handle, value)
                    .then(() => {
                      setResult({ ok: true, text: `Saved: ${user.handle} is cleared ${value}` });
                      props.onSaved();
                    })
                    .catch((err: unknown) => {
                      setValue(user.clearance);
                      setResult({ ok: false, text: `Not changed (still ${user.clearance}): ${msg(err)}` });
                    })
                    .finally(() => {
                      setBusy(false);
                      setConfirming(false);
                    });
                }}
              >
                {busy ? "Saving…" : "Set clearance"}
              </button>
              <button type="button" className="secondary" disabled={busy} onClick={() => setConfirming(false)}>
                Cancel
              </button>
            </Fragment>
          }
        >
          <p>
            {user.handle} is now cleared <strong>{user.clearance}</strong>. The change is written to the witnessed
            directory log and audited; a lower clearance takes effect for new keys at once.
          </p>
        </ModalConfirm>
      )}
    </form>
  );
}
