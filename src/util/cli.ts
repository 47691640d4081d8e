// Flag parsing shared by the thin CLIs in scripts/: strict parsing with --help, required, number, list and choice
// flags checked with errors that name the flag, one exit-code convention (0 done or --help, 1 failed, 2 usage), and
// the shell quoting that records a command line (in a model card, a sweep row) so it can be re-run as is.

import { parseArgs, type ParseArgsConfig } from 'node:util';

import { relative } from 'node:path';

/** A bad command line: the CLIs print the message and the usage, and exit 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** True for a UsageError or node:util parseArgs's own errors (unknown flag, missing value). */
export function isUsageError(err: unknown): boolean {
  return err instanceof UsageError || String((err as { code?: unknown })?.code ?? '').startsWith('ERR_PARSE_ARGS');
}

/** `--help` was given: runCli prints the usage on stdout and exits 0. */
class HelpRequested extends Error {}

type FlagOptions = NonNullable<ParseArgsConfig['options']>;
type FlagValues<O extends FlagOptions> = ReturnType<typeof parseArgs<{ options: O & { help: { type: 'boolean' } }; strict: true }>>['values'];

/** node:util parseArgs, strict (unknown flags and positionals are usage errors), with `--help`/`-h` added. */
export function parseFlags<O extends FlagOptions>(argv: readonly string[], options: O): FlagValues<O> {
  const { values } = parseArgs({ args: [...argv], options: { ...options, help: { type: 'boolean', short: 'h' } }, strict: true });
  if ((values as { help?: boolean }).help) throw new HelpRequested();
  return values as FlagValues<O>;
}

/** The values of flags that must be given, or a UsageError naming every missing one. */
export function required<K extends string>(values: { readonly [k in K]?: unknown }, ...names: K[]): { [k in K]: string } {
  const missing = names.filter((n) => typeof values[n] !== 'string' || values[n] === '');
  if (missing.length > 0) {
    const flags = missing.map((n) => `--${n}`);
    throw new UsageError(`${flags.length > 1 ? `${flags.slice(0, -1).join(', ')} and ${flags.at(-1)} are` : `${flags[0]} is`} required`);
  }
  return Object.fromEntries(names.map((n) => [n, values[n]])) as { [k in K]: string };
}

/** The value of `--name` among `choices`, or `fallback` when the flag is absent. */
export function choice<T extends string>(name: string, v: string | undefined, fallback: T, choices: readonly T[]): T {
  if (v === undefined) return fallback;
  if (!(choices as readonly string[]).includes(v)) throw new UsageError(`--${name} "${v}" is not one of ${choices.join(', ')}`);
  return v as T;
}

/** `parse(v)` for `--name`, its error (a bad architecture name, say) reported as a usage error naming the flag. */
export function parsed<T>(name: string, v: string, parse: (s: string) => T): T {
  try {
    return parse(v);
  } catch (err) {
    throw new UsageError(`--${name}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/**
 * Runs a CLI's main and owns its exit: --help → usage on stdout, 0; a usage error → the message and the usage on
 * stderr, 2; any other error → `name: message` on stderr, 1. A main that resolves leaves the exit to Node (0).
 */
export function runCli(name: string, usage: string, main: () => Promise<void>): void {
  const text = usage.endsWith('\n') ? usage : `${usage}\n`;
  main().catch((err: unknown) => {
    if (err instanceof HelpRequested) {
      process.stdout.write(text);
      process.exit(0);
    }
    const message = err instanceof Error ? err.message : String(err);
    if (isUsageError(err)) {
      process.stderr.write(`${name}: ${message}\n\n${text}`);
      process.exit(2);
    }
    process.stderr.write(`${name}: ${message}\n`);
    process.exit(1);
  });
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

/**
 * A command line as recorded in a card or a sweep row: absolute paths (also after a `scheme:` prefix, as in
 * `idx:/data/x`) rewritten relative to the working directory, so the record names no machine's directories.
 */
export function commandLine(prefix: string, argv: readonly string[], cwd = process.cwd()): string {
  const portable = (a: string) => {
    const m = /^([a-z0-9]+:)?(\/.*)$/.exec(a);
    return m ? (m[1] ?? '') + (relative(cwd, m[2]) || '.') : a;
  };
  return [prefix, ...argv.map((a) => shellQuote(portable(a)))].join(' ');
}
