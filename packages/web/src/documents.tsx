import { useEffect, useState } from "react";
import { isValiseError } from "@valise/core";
import type { DocumentView } from "@valise/client";
import type { Ctx } from "./ctx.js";
import { usableLabels } from "./labels.js";
import { saveStream } from "./download.js";
import { noteDocuments } from "./search.js";
import { UploadLog, sameFile, type PendingUpload } from "./uploads.js";
import { ErrorNote, LabelTag, Progress, fileSource, fmtSize, fmtTime, errorText } from "./ui.js";

const msg = errorText;
/** Uploads running in this page (a screen left and opened again must not list them as interrupted). */
const running = new Set<string>();

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
  // Uploads a reload interrupted (uploads.ts), and the log this page's uploads are kept in while they run.
  const [uploads, setUploads] = useState<UploadLog | null>(null);
  const [interrupted, setInterrupted] = useState<PendingUpload[]>([]);
  useEffect(() => {
    let gone = false;
    void UploadLog.open(ctx.me.handle).then((log) => {
      if (gone) return;
      setUploads(log);
      setInterrupted(log.all().filter((u) => !running.has(u.id)));
    });
    return () => {
      gone = true;
    };
  }, [ctx.me.handle]);
  /** Uploads `f` (a new document or a version), kept in the upload log until it ends. */
  const upload = (f: File, spec: { to: string; label: string; versionOf: string }, resumed?: PendingUpload) => {
    setBusy(true);
    setError(null);
    setNotice(null);
    const entry: PendingUpload = {
      id: resumed?.id ?? `u-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`,
      name: f.name,
      size: f.size,
      lastModified: f.lastModified,
      ...spec,
      done: 0,
      total: f.size,
      startedAt: Date.now(),
    };
    if (resumed) setInterrupted((l) => l.filter((x) => x.id !== resumed.id));
    running.add(entry.id);
    void uploads?.put(entry);
    let saved = 0;
    let from: number | null = null;
    const onProgress = (done: number, total: number) => {
      from ??= total > 0 ? done / total : 0;
      setUp({ done, total });
      // The progress kept for a reload: every 5 % (a sealed write each time).
      if (total > 0 && done - saved >= total / 20) {
        saved = done;
        void uploads?.put({ ...entry, done, total });
      }
    };
    // The client keeps (sealed with the profile, under this entry's id) the key, the stream header and a checkpoint
    // of the plaintext sent: Resume continues the same blob from the server's offset (documents.resumeUpload).
    const kept = resumed ? ctx.client.documents.pendingUploads().find((p) => p.source === resumed.id) : undefined;
    const run = kept
      ? ctx.client.documents.resumeUpload(kept, fileSource(f), onProgress)
      : ctx.client.documents.put(
          spec.versionOf
            ? { document: spec.versionOf, name: f.name, source: fileSource(f), sourceId: entry.id }
            : { to: spec.to.trim(), label: spec.label, name: f.name, source: fileSource(f), sourceId: entry.id },
          onProgress,
        );
    const forget = async () => {
      for (const p of ctx.client.documents.pendingUploads().filter((x) => x.source === entry.id))
        await ctx.client.documents.forgetUpload(p.blob);
    };
    run
      .then(async () => {
        await uploads?.remove(entry.id);
        await ctx.client.save();
        if (resumed)
          setNotice(
            kept
              ? `Uploaded ${f.name} (resumed after the interruption, from ${Math.floor(100 * (from ?? 0))} %).`
              : `Uploaded ${f.name} (after the interruption; nothing had reached the server, so from the start).`,
          );
        setReload((n) => n + 1);
      })
      .catch(async (err: unknown) => {
        if (kept && isValiseError(err) && err.code === "conflict" && err.details?.resume === "different_file") {
          // Nothing was sent: the interrupted upload stays, for the right file or a Discard.
          await uploads?.put({ ...entry, done: resumed?.done ?? 0, total: resumed?.total ?? 0 });
          setInterrupted((l) => [...l.filter((x) => x.id !== entry.id), resumed!]);
          setError(
            `That is not the file that was being uploaded: its content differs from the part already sent, so the ` +
              `upload was not resumed. Choose the original file, or discard the interrupted upload and upload this one anew.`,
          );
          return;
        }
        await uploads?.remove(entry.id);
        await forget();
        setError(msg(err));
      })
      .finally(() => {
        running.delete(entry.id);
        setBusy(false);
      });
  };
  useEffect(() => {
    ctx.client.documents
      .list()
      .then((ds) => {
        noteDocuments(ctx.store, ds);
        setDocs(ds);
      })
      .catch((e: unknown) => setError(msg(e)));
  }, [ctx.client, ctx.tick, reload]);
  // The banner marks what the screen shows: the documents and the interrupted uploads (their labels are on screen).
  useEffect(
    () => ctx.setLabels([...(docs ?? []).map((d) => d.label), ...interrupted.map((u) => u.label).filter(Boolean)]),
    [ctx, docs, interrupted],
  );
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
          upload(file, { to, label, versionOf });
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
      {interrupted.length > 0 && (
        <section className="card interrupted" aria-labelledby="interrupted-h" data-testid="interrupted-uploads">
          <h3 id="interrupted-h">Interrupted uploads</h3>
          <ul>
            {interrupted.map((u) => (
              <Interrupted
                key={u.id}
                u={u}
                busy={busy}
                onResume={(f) => upload(f, { to: u.to, label: u.label, versionOf: u.versionOf }, u)}
                onDiscard={() => {
                  void uploads?.remove(u.id);
                  for (const p of ctx.client.documents.pendingUploads().filter((x) => x.source === u.id))
                    void ctx.client.documents.forgetUpload(p.blob);
                  setInterrupted((l) => l.filter((x) => x.id !== u.id));
                  setNotice(`Discarded the interrupted upload of ${u.name}.`);
                }}
              />
            ))}
          </ul>
        </section>
      )}
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

/** One upload a reload interrupted: what it was, how far it got, Resume (the same file again) or Discard. */
function Interrupted(props: { u: PendingUpload; busy: boolean; onResume: (f: File) => void; onDiscard: () => void }) {
  const { u } = props;
  const [error, setError] = useState<string | null>(null);
  const pct = u.total > 0 ? Math.round((100 * u.done) / u.total) : 0;
  const inputId = `resume-${u.id}`;
  return (
    <li data-testid="interrupted-upload">
      <p>
        <strong className="file-name">{u.name}</strong> ({fmtSize(u.size)}
        {u.versionOf ? `, new version of ${u.versionOf}` : `, ${u.label}, to ${u.to}`}): interrupted at {pct} % by a
        reload or a closed tab, {fmtTime(u.startedAt)}. This browser keeps no copy of the file: choose it again to
        resume (the upload continues where it stopped, once the part already sent is checked to be the same file).
      </p>
      <label htmlFor={inputId}>Choose {u.name.length > 60 ? "the same file" : u.name} again to resume</label>
      <input
        id={inputId}
        type="file"
        disabled={props.busy}
        onChange={(e) => {
          const f = e.target.files?.[0];
          e.target.value = "";
          if (!f) return;
          if (!sameFile(u, f))
            return setError(
              `That is not the file that was being uploaded (${u.name}, ${fmtSize(u.size)}): choose that file, or discard.`,
            );
          setError(null);
          props.onResume(f);
        }}
      />
      <button type="button" className="secondary" onClick={props.onDiscard} disabled={props.busy}>
        Discard
      </button>
      <ErrorNote error={error} />
    </li>
  );
}
