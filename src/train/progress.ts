// What a training run tells the person watching: a progress bar on stderr (images/s, loss, lr, ETA) redrawn in
// place on a terminal and printed every 30 s otherwise, and whole lines (evaluations, notes) on stdout.

export interface ProgressInfo {
  epoch: number;
  epochs: number;
  /** Steps done in the epoch, and per epoch. */
  stepInEpoch: number;
  stepsPerEpoch: number;
  imagesPerSecond: number;
  loss: number;
  lr: number;
  /** Seconds left for the whole run. */
  etaSeconds: number;
}

export interface Reporter {
  progress(p: ProgressInfo): void;
  /** A line that stays (evaluation, note). */
  line(text: string): void;
  /** Ends the bar (before the run returns). */
  done(): void;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : m > 0 ? `${m}m${String(sec).padStart(2, '0')}s` : `${sec}s`;
}

export function formatProgress(p: ProgressInfo, barWidth = 24): string {
  const frac = p.stepsPerEpoch > 0 ? p.stepInEpoch / p.stepsPerEpoch : 1;
  const filled = Math.round(frac * barWidth);
  const bar = '█'.repeat(filled) + '░'.repeat(barWidth - filled);
  return (
    `epoch ${p.epoch + 1}/${p.epochs} ${bar} ${String(Math.floor(frac * 100)).padStart(3)}% ` +
    `${p.imagesPerSecond.toFixed(0)} img/s  loss ${p.loss.toFixed(4)}  lr ${p.lr.toExponential(2)}  ` +
    `ETA ${formatDuration(p.etaSeconds)}`
  );
}

/** The terminal reporter of the CLI. */
export function terminalReporter(stderr: NodeJS.WriteStream = process.stderr, stdout: NodeJS.WriteStream = process.stdout): Reporter {
  const tty = stderr.isTTY === true;
  let lastPrint = 0;
  let barShown = false;
  const clear = () => {
    if (tty && barShown) stderr.write('\r\x1b[K');
    barShown = false;
  };
  return {
    progress(p) {
      const now = Date.now();
      if (tty) {
        if (now - lastPrint < 200) return; // redraw at most 5×/s
        stderr.write(`\r\x1b[K${formatProgress(p)}`);
        barShown = true;
      } else {
        if (now - lastPrint < 30_000) return;
        stderr.write(formatProgress(p) + '\n');
      }
      lastPrint = now;
    },
    line(text) {
      clear();
      stdout.write(text + '\n');
    },
    done() {
      clear();
    },
  };
}

/** Discards everything (tests). */
export const silentReporter: Reporter = { progress() {}, line() {}, done() {} };
