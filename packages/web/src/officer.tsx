import { useEffect, useState } from "react";
import type { ServerAlert, ServerUser } from "@valise/client";
import type { Ctx } from "./App.js";
import { getJson } from "./session.js";
import { ErrorNote, fmtTime } from "./ui.js";

const msg = (e: unknown) => (e instanceof Error ? e.message : String(e));

interface AuditEvent {
  id: string;
  time: string;
  actor: string | null;
  device: string | null;
  source: string | null;
  action: string;
  object: string | null;
  label: string | null;
  unit: string | null;
  outcome: string;
}

export function Officer({ ctx }: { ctx: Ctx }) {
  const [users, setUsers] = useState<ServerUser[]>([]);
  const [alerts, setAlerts] = useState<ServerAlert[]>([]);
  const [events, setEvents] = useState<AuditEvent[]>([]);
  const [actor, setActor] = useState("");
  const [action, setAction] = useState("");
  const [object, setObject] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [edit, setEdit] = useState<Record<string, string>>({});
  const token = () => ctx.client.transport.token;
  useEffect(() => ctx.setLabels([]), [ctx]);
  const loadUsers = async () => {
    const { units } = await getJson<{ units: { name: string }[] }>("/v1/units", token());
    const handles = new Set<string>();
    for (const u of units) {
      const m = await getJson<{ members: string[] }>(`/v1/unit-members?unit=${encodeURIComponent(u.name)}`, token());
      m.members.forEach((h) => handles.add(h));
    }
    const list: ServerUser[] = [];
    for (const h of [...handles].sort()) list.push(await getJson<ServerUser>(`/v1/users/${h}`, token()));
    setUsers(list);
  };
  const loadAudit = async () => {
    const rows = await ctx.client.transport.auditEvents({
      actor: actor || undefined,
      action: action || undefined,
      object: object || undefined,
      limit: 100,
    });
    setEvents(rows.map((r) => JSON.parse(new TextDecoder().decode(r.entry)) as AuditEvent));
  };
  useEffect(() => {
    Promise.all([loadUsers(), loadAudit(), ctx.client.alerts({ limit: 100 }).then(setAlerts)]).catch((e: unknown) =>
      setError(msg(e)),
    );
  }, [ctx.client, ctx.tick]);
  return (
    <section aria-labelledby="off-h">
      <h2 id="off-h">Security officer</h2>
      <ErrorNote error={error} />
      <h3>Alerts</h3>
      <p>
        <a href="#/incidents">Group alerts into an incident, export it (STIX 2.1) or share it (TAXII)</a>
      </p>
      {alerts.length === 0 ? (
        <p>No alerts.</p>
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
      <h3>Users and clearances</h3>
      <table>
        <thead>
          <tr>
            <th scope="col">User</th>
            <th scope="col">Units</th>
            <th scope="col">Role</th>
            <th scope="col">Clearance</th>
          </tr>
        </thead>
        <tbody>
          {users.map((u) => (
            <tr key={u.handle}>
              <td>{u.handle}</td>
              <td>{u.units.join(", ")}</td>
              <td>{u.role}</td>
              <td>
                <form
                  className="tiny-form"
                  onSubmit={(e) => {
                    e.preventDefault();
                    const v = edit[u.handle];
                    if (!v || !confirm(`Set ${u.handle}'s clearance to ${v}?`)) return;
                    ctx.client
                      .setClearance(u.handle, v)
                      .then(loadUsers)
                      .catch((err: unknown) => setError(msg(err)));
                  }}
                >
                  <label>
                    <span className="sr-only">Clearance of {u.handle}</span>
                    <input
                      value={edit[u.handle] ?? u.clearance}
                      onChange={(e) => setEdit({ ...edit, [u.handle]: e.target.value })}
                    />
                  </label>
                  <button type="submit">Set</button>
                </form>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <h3>Audit log</h3>
      <form
        className="inline-form"
        aria-label="Audit filters"
        onSubmit={(e) => {
          e.preventDefault();
          loadAudit().catch((err: unknown) => setError(msg(err)));
        }}
      >
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
          <input value={object} onChange={(e) => setObject(e.target.value)} />
        </label>
        <button type="submit">Filter</button>
      </form>
      <table className="audit">
        <thead>
          <tr>
            <th scope="col">Time</th>
            <th scope="col">Actor</th>
            <th scope="col">Action</th>
            <th scope="col">Object</th>
            <th scope="col">Label</th>
            <th scope="col">Source</th>
            <th scope="col">Outcome</th>
          </tr>
        </thead>
        <tbody>
          {events.map((e) => (
            <tr key={e.id}>
              <td>{fmtTime(e.time)}</td>
              <td>{e.actor}</td>
              <td>{e.action}</td>
              <td>{e.object}</td>
              <td>{e.label ?? "—"}</td>
              <td>{e.source}</td>
              <td>{e.outcome}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
