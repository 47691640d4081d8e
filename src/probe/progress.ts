// A counting progress bar for the probe, scaling and fine-tuning CLIs (images embedded, runs done): redrawn in place
// on a terminal, a line every 10 s otherwise (logs stay readable).

import { formatDuration } from '../train/progress.js';

export interface CountBar {
  update(done: number, total: number): void;
  /** Clears the bar (a finished task prints its own line). */
  done(): void;
}

export function formatCount(label: string, done: number, total: number, elapsedSeconds: number, barWidth = 24): string {
  const frac = total > 0 ? Math.min(1, done / total) : 1;
  const filled = Math.round(frac * barWidth);
  const rate = elapsedSeconds > 0 ? done / elapsedSeconds : 0;
  const eta = rate > 0 ? (total - done) / rate : Infinity;
  return (
    `${label} ${'█'.repeat(filled)}${'░'.repeat(barWidth - filled)} ${done}/${total} ` +
    `${rate.toFixed(rate < 10 ? 1 : 0)}/s  ETA ${formatDuration(eta)}`
  );
}

export function countBar(label: string, stream: NodeJS.WriteStream = process.stderr): CountBar {
  const tty = stream.isTTY === true;
  const started = performance.now();
  let last = 0;
  let shown = false;
  return {
    update(done, total) {
      const now = performance.now();
      const final = done >= total;
      if (!final && now - last < (tty ? 200 : 10_000)) return;
      last = now;
      const text = formatCount(label, done, total, (now - started) / 1000);
      if (tty) {
        stream.write(`\r\x1b[K${text}`);
        shown = true;
      } else stream.write(text + '\n');
    },
    done() {
      if (tty && shown) stream.write('\r\x1b[K');
      shown = false;
    },
  };
}
