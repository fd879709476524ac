import { useEffect, useState } from "react";
import type { DocumentView } from "@valise/client";
import type { Ctx } from "./App.js";
import { usableLabels } from "./labels.js";
import { saveStream } from "./download.js";
import { noteDocuments } from "./search.js";
import { ErrorNote, LabelTag, Progress, fileSource, fmtSize, fmtTime, errorText } from "./ui.js";

const msg = errorText;

export function DocumentsScreen({ ctx, open = "" }: { ctx: Ctx; open?: string }) {
  const [docs, setDocs] = useState<DocumentView[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [up, setUp] = useState({ done: 0, total: 0 });
  const [down, setDown] = useState({ done: 0, total: 0 });
  const [to, setTo] = useState("");
  // No default label: the owner classifies each document deliberately (a silent UNCLASSIFIED would under-mark).
  const [label, setLabel] = useState("");
  const [file, setFile] = useState<File | null>(null);
  const [versionOf, setVersionOf] = useState("");
  const [busy, setBusy] = useState(false);
  const [reload, setReload] = useState(0);
  useEffect(() => {
    ctx.client.documents
      .list()
      .then((ds) => {
        noteDocuments(ctx.store, ds);
        setDocs(ds);
      })
      .catch((e: unknown) => setError(msg(e)));
  }, [ctx.client, ctx.tick, reload]);
  useEffect(() => ctx.setLabels((docs ?? []).map((d) => d.label)), [ctx, docs]);
  // Streams verified plaintext to a browser download (service worker); a chunk that fails verification errors the
  // download, so the browser never shows a truncated file as complete, and the error shows here.
  const download = (id: string, version: number) => {
    setError(null);
    setNotice(null);
    ctx.client.documents
      .get(id, { version, onProgress: (done, total) => setDown({ done, total }) })
      .then(async (d) => {
        await saveStream(d.name, d.size, d.bytes, { onNotice: setNotice });
        await ctx.client.save();
      })
      .catch((e: unknown) => setError(`Download failed: ${msg(e)}`));
  };
  return (
    <section aria-labelledby="docs-h">
      <h2 id="docs-h">Documents</h2>
      <form
        className="inline-form"
        aria-label="Upload"
        onSubmit={(e) => {
          e.preventDefault();
          if (!file) return;
          if (!versionOf && !label) return setError("choose the document's classification label");
          setBusy(true);
          setError(null);
          ctx.client.documents
            .put(
              versionOf
                ? { document: versionOf, name: file.name, source: fileSource(file) }
                : { to: to.trim(), label, name: file.name, source: fileSource(file) },
              (done, total) => setUp({ done, total }),
            )
            .then(async () => {
              await ctx.client.save();
              setReload((n) => n + 1);
            })
            .catch((err: unknown) => setError(msg(err)))
            .finally(() => setBusy(false));
        }}
      >
        <label>
          File
          <input type="file" onChange={(e) => setFile(e.target.files?.[0] ?? null)} required />
        </label>
        <label>
          As
          <select value={versionOf} onChange={(e) => setVersionOf(e.target.value)}>
            <option value="">a new document</option>
            {(docs ?? []).map((d) => (
              <option key={d.id} value={d.id}>
                new version of {d.versions.at(-1)?.name ?? d.id}
              </option>
            ))}
          </select>
        </label>
        {!versionOf && (
          <>
            <label>
              Share with (person or unit)
              <input value={to} onChange={(e) => setTo(e.target.value)} required placeholder="pdvorak or HQ/ASIA-1" />
            </label>
            <label>
              Label
              <select value={label} onChange={(e) => setLabel(e.target.value)} required>
                <option value="" disabled>
                  Choose a label…
                </option>
                {usableLabels(ctx.me.clearance).map((l) => (
                  <option key={l}>{l}</option>
                ))}
              </select>
            </label>
          </>
        )}
        <button type="submit" disabled={busy || !file}>
          {busy ? "Uploading…" : "Upload"}
        </button>
      </form>
      <Progress label="Upload" done={up.done} total={up.total} />
      <Progress label="Download" done={down.done} total={down.total} />
      {notice && (
        <p className="notice" role="status">
          {notice}
        </p>
      )}
      <ErrorNote error={error} />
      {docs === null ? (
        <p>Loading documents…</p>
      ) : docs.length === 0 ? (
        <p>No documents.</p>
      ) : (
        <table>
          <thead>
            <tr>
              <th scope="col">Document</th>
              <th scope="col">Label</th>
              <th scope="col">Shared with</th>
              <th scope="col">Versions</th>
            </tr>
          </thead>
          <tbody>
            {docs.map((d) => (
              <tr
                key={d.id}
                className={d.id === open ? "selected" : undefined}
                aria-current={d.id === open ? "true" : undefined}
                ref={d.id === open ? (el) => el?.scrollIntoView({ block: "nearest" }) : undefined}
              >
                <td>{d.versions.at(-1)?.name ?? <code>{d.id}</code>}</td>
                <td>
                  <LabelTag label={d.label} />
                </td>
                <td>
                  {d.to.name} (owner {d.owner})
                </td>
                <td>
                  <ul className="versions">
                    {d.versions.map((v) => (
                      <li key={v.version}>
                        <button
                          type="button"
                          className="linkish"
                          disabled={v.name === null}
                          onClick={() => download(d.id, v.version)}
                          aria-label={`Download v${v.version} of ${v.name ?? d.id}`}
                        >
                          Download v{v.version}
                        </button>{" "}
                        {fmtSize(v.plainSize ?? v.size)} · {v.createdBy} · {fmtTime(v.createdAt)}
                      </li>
                    ))}
                  </ul>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
