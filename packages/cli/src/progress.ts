import { writeStderrRaw } from "./output.js";

/** A progress bar on stderr when it is a terminal (nothing otherwise, so scripts and --json stay clean). */
export function progressBar(label: string): ((done: number, total: number) => void) & { end(): void } {
  const tty = process.stderr.isTTY === true;
  const start = Date.now();
  let last = 0;
  let shown = false;
  const fmt = (n: number) =>
    n >= 1e9 ? `${(n / 1e9).toFixed(2)} GB` : n >= 1e6 ? `${(n / 1e6).toFixed(1)} MB` : `${(n / 1e3).toFixed(0)} kB`;
  const draw = (done: number, total: number) => {
    const frac = total > 0 ? Math.min(1, done / total) : 1;
    const width = 30;
    const fill = Math.round(frac * width);
    const secs = Math.max(0.001, (Date.now() - start) / 1000);
    const rate = done / secs;
    const line = `${label} [${"#".repeat(fill)}${" ".repeat(width - fill)}] ${(frac * 100).toFixed(0).padStart(3)}% ${fmt(done)} / ${fmt(total)} ${fmt(rate)}/s`;
    writeStderrRaw(`\r${line}`);
    shown = true;
  };
  const f = (done: number, total: number) => {
    if (!tty) return;
    const now = Date.now();
    if (now - last < 100 && done < total) return;
    last = now;
    draw(done, total);
  };
  f.end = () => {
    if (tty && shown) process.stderr.write("\n");
  };
  return f;
}
