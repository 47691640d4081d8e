// Flag parsing shared by the thin CLIs in scripts/: number and list flags checked with errors that name the flag,
// and the shell quoting that records a command line (in a model card, a sweep row) so it can be re-run as is.

/** A bad command line: the CLIs print the message and the usage, and exit 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** True for a UsageError or node:util parseArgs's own errors (unknown flag, missing value). */
export function isUsageError(err: unknown): boolean {
  return err instanceof UsageError || String((err as { code?: unknown })?.code ?? '').startsWith('ERR_PARSE_ARGS');
}

export interface NumberRule {
  /** Whole numbers only. */
  integer?: boolean;
  /** Smallest value accepted. */
  min?: number;
}

/** The value of `--name`, or `fallback` when the flag is absent. */
export function num(name: string, v: string | undefined, fallback: number, rule: NumberRule = {}): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  const ok = v.trim() !== '' && Number.isFinite(n) && (!rule.integer || Number.isInteger(n)) && !(rule.min !== undefined && n < rule.min);
  if (!ok)
    throw new UsageError(`--${name} "${v}" is not a${rule.integer ? ' whole' : ''} number${rule.min !== undefined ? ` ≥ ${rule.min}` : ''}`);
  return n;
}

/** A comma-separated flag, each item parsed; `fallback` when absent. */
export function list<T>(name: string, v: string | undefined, fallback: readonly T[], parse: (s: string) => T): T[] {
  if (v === undefined) return [...fallback];
  const items = v.split(',').map((s) => s.trim()).filter(Boolean);
  if (items.length === 0) throw new UsageError(`--${name} is empty`);
  return items.map(parse);
}

/** Quotes one argument for a POSIX shell, only where needed. */
export function shellQuote(a: string): string {
  return /^[A-Za-z0-9_./:=,@%+-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`;
}
