/**
 * Incidents (security officers): detection alerts grouped under a title and a note, exported as a STIX 2.1 bundle
 * (pseudonymous, no content, names or item ids: built by the server) and shared with partners over TAXII 2.1.
 */
import { useEffect, useRef, useState } from "react";
import type { ServerAlert, ServerIncident } from "@valise/client";
import type { Ctx } from "./ctx.js";
import { ModalConfirm } from "./a11y.js";
import { ErrorNote, fmtTime, saveBlob, errorText } from "./ui.js";

const msg = errorText;

export function IncidentsScreen({ ctx, id }: { ctx: Ctx; id: string | null }) {
  useEffect(() => ctx.setLabels([]), [ctx]);
  return id ? <IncidentView ctx={ctx} id={id} /> : <IncidentList ctx={ctx} />;
}

function IncidentList({ ctx }: { ctx: Ctx }) {
  const [incidents, setIncidents] = useState<ServerIncident[] | null>(null);
  const [alerts, setAlerts] = useState<ServerAlert[]>([]);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    Promise.all([
      ctx.client.incidents.list(200).then(setIncidents),
      ctx.client.alerts({ limit: 500 }).then((a) => setAlerts([...a].reverse())),
    ]).catch((e: unknown) => setError(msg(e)));
  }, [ctx]);
  return (
    <section aria-labelledby="inc-h">
      <h2 id="inc-h">Incidents</h2>
      <p>
        Group detection alerts into an incident, export it as a STIX 2.1 bundle, or share it with partners over TAXII
        2.1. Exports hold no message or document content, names, labels or item ids; users and devices appear as
        pseudonyms.
      </p>
      <ErrorNote error={error} />
      {incidents === null ? (
        <p>Loading incidents…</p>
      ) : incidents.length === 0 ? (
        <p>No incidents yet.</p>
      ) : (
        <table data-testid="incident-list">
          <thead>
            <tr>
              <th scope="col">Incident</th>
              <th scope="col">Created</th>
              <th scope="col">Alerts</th>
              <th scope="col">Shared over TAXII</th>
            </tr>
          </thead>
          <tbody>
            {incidents.map((i) => (
              <tr key={i.id}>
                <td>
                  <a href={`#/incidents/${encodeURIComponent(i.id)}`}>{i.title}</a>
                </td>
                <td>
                  {fmtTime(i.createdAt)} by {i.createdBy}
                </td>
                <td>{i.alerts.length}</td>
                <td>{i.shared ? `yes, ${fmtTime(i.sharedAt)}` : "no"}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <NewIncident ctx={ctx} alerts={alerts} />
    </section>
  );
}

function NewIncident({ ctx, alerts }: { ctx: Ctx; alerts: ServerAlert[] }) {
  const [chosen, setChosen] = useState<number[]>([]);
  const [title, setTitle] = useState("");
  const [note, setNote] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  return (
    <form
      className="compose"
      aria-labelledby="new-inc-h"
      onSubmit={(e) => {
        e.preventDefault();
        if (chosen.length === 0) return setError("choose at least one alert");
        setBusy(true);
        setError(null);
        ctx.client.incidents
          .create({
            title: title.trim(),
            alerts: [...chosen].sort((a, b) => a - b),
            ...(note.trim() ? { note: note.trim() } : {}),
          })
          .then((inc) => {
            location.hash = `#/incidents/${encodeURIComponent(inc.id)}`;
          })
          .catch((err: unknown) => {
            setError(msg(err));
            setBusy(false);
          });
      }}
    >
      <h3 id="new-inc-h">New incident from alerts</h3>
      <fieldset>
        <legend>Alerts (newest first)</legend>
        {alerts.length === 0 && <p>No alerts to group.</p>}
        <ul className="alert-picks">
          {alerts.map((a) => (
            <li key={a.id}>
              <label className="check">
                <input
                  type="checkbox"
                  checked={chosen.includes(a.id)}
                  onChange={() =>
                    setChosen(chosen.includes(a.id) ? chosen.filter((x) => x !== a.id) : [...chosen, a.id])
                  }
                />
                <span>
                  <strong className={`sev-${a.severity}`}>{a.severity.toUpperCase()}</strong> #{a.id} {a.rule} —{" "}
                  {a.reason} ({fmtTime(a.time)})
                </span>
              </label>
            </li>
          ))}
        </ul>
      </fieldset>
      <label>
        Title
        <input value={title} onChange={(e) => setTitle(e.target.value)} required maxLength={200} />
      </label>
      <label>
        Note (optional, exported with the incident)
        <textarea rows={3} value={note} onChange={(e) => setNote(e.target.value)} maxLength={4000} />
      </label>
      <button type="submit" disabled={busy}>
        {busy ? "Creating…" : `Create incident (${chosen.length} alert${chosen.length === 1 ? "" : "s"})`}
      </button>
      <ErrorNote error={error} />
    </form>
  );
}

function IncidentView({ ctx, id }: { ctx: Ctx; id: string }) {
  const [inc, setInc] = useState<ServerIncident | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [status, setStatus] = useState<string | null>(null);
  const [confirming, setConfirming] = useState(false);
  const [busy, setBusy] = useState(false);
  const shareRef = useRef<HTMLButtonElement>(null);
  const load = () =>
    ctx.client.incidents
      .show(id)
      .then(setInc)
      .catch((e: unknown) => setError(msg(e)));
  useEffect(() => void load(), [ctx.client, id]);
  if (error && !inc) return <ErrorNote error={error} />;
  if (!inc) return <p>Loading incident…</p>;
  return (
    <article aria-labelledby="inc-view-h">
      <p>
        <a href="#/incidents">← Incidents</a>
      </p>
      <h2 id="inc-view-h">{inc.title}</h2>
      <dl className="fields">
        <dt>Id</dt>
        <dd>
          <code>{inc.id}</code>
        </dd>
        <dt>Created</dt>
        <dd>
          {fmtTime(inc.createdAt)} by {inc.createdBy}
        </dd>
        <dt>Shared over TAXII</dt>
        <dd data-testid="incident-shared">
          {inc.shared ? `Shared ${fmtTime(inc.sharedAt)} by ${inc.sharedBy ?? "?"}` : "Not shared"}
        </dd>
        {inc.note && (
          <>
            <dt>Note</dt>
            <dd>{inc.note}</dd>
          </>
        )}
      </dl>
      <div className="row actions">
        <button
          type="button"
          onClick={() => {
            setError(null);
            ctx.client.incidents
              .stix(inc.id)
              .then((bundle) => {
                saveBlob([JSON.stringify(bundle, null, 2)], `${inc.id}.stix.json`, "application/json");
                setStatus(`Exported the STIX 2.1 bundle (${bundle.objects.length} objects) as ${inc.id}.stix.json.`);
              })
              .catch((e: unknown) => setError(msg(e)));
          }}
        >
          Export STIX 2.1 bundle (JSON)
        </button>
        <button type="button" ref={shareRef} onClick={() => setConfirming(true)}>
          {inc.shared ? "Share again over TAXII…" : "Share with partners over TAXII…"}
        </button>
      </div>
      <p role="status" data-testid="incident-status">
        {status}
      </p>
      <ErrorNote error={error} />
      {confirming && (
        <ModalConfirm
          title="Share this incident with partners?"
          onCancel={() => setConfirming(false)}
          busy={busy}
          returnTo={shareRef}
          buttons={
            <>
              <button
                type="button"
                disabled={busy}
                onClick={() => {
                  setBusy(true);
                  setError(null);
                  ctx.client.incidents
                    .share(inc.id)
                    .then(async (r) => {
                      setStatus(`Shared: ${r.added} new object(s) in TAXII collection ${r.collection}.`);
                      await load();
                    })
                    .catch((e: unknown) => setError(msg(e)))
                    .finally(() => {
                      setBusy(false);
                      setConfirming(false);
                    });
                }}
              >
                {busy ? "Sharing…" : "Share over TAXII"}
              </button>{" "}
              <button type="button" className="secondary" disabled={busy} onClick={() => setConfirming(false)}>
                Cancel
              </button>
            </>
          }
        >
          <p>
            Its STIX 2.1 bundle (TLP:AMBER, pseudonymous, no content) is added to the TAXII collection: every partner
            holding a token can read it.
          </p>
        </ModalConfirm>
      )}
      <h3>Alerts in this incident</h3>
      <table>
        <thead>
          <tr>
            <th scope="col">Alert</th>
            <th scope="col">Severity</th>
            <th scope="col">Rule</th>
            <th scope="col">Actor</th>
            <th scope="col">Time</th>
            <th scope="col">Reason</th>
          </tr>
        </thead>
        <tbody>
          {(inc.alertDetails ?? []).map((a) => (
            <tr key={a.id} data-testid="incident-alert">
              <td>#{a.id}</td>
              <td className={`sev-${a.severity}`}>{a.severity.toUpperCase()}</td>
              <td>{a.rule}</td>
              <td>{a.actor}</td>
              <td>{fmtTime(a.time)}</td>
              <td>{a.reason}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </article>
  );
}
