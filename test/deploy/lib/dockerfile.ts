// A Dockerfile as data for the tests: stages with their base image, WORKDIR, COPY sources and destinations, ENV,
// USER, ENTRYPOINT, CMD and HEALTHCHECK, parsed by dockerfile-ast (the parser behind the dockerfile-utils linter)
// with ARG defaults substituted into FROM.

import { posix } from 'node:path';
import { DockerfileParser, type Flag, type Instruction, type JSONInstruction } from 'dockerfile-ast';

export interface CopyStep {
  /** Stage name or index given by --from, or undefined for the build context. */
  from: string | undefined;
  sources: string[];
  /** Absolute destination (WORKDIR applied). */
  dest: string;
  /** The destination is a directory the sources go into (trailing slash, or several sources). */
  destIsDir: boolean;
}

export interface Stage {
  name: string | undefined;
  image: string;
  workdir: string;
  copies: CopyStep[];
  env: Record<string, string>;
  runs: string[];
  user: string | undefined;
  entrypoint: string[] | undefined;
  cmd: string[] | undefined;
  healthcheck: { flags: Record<string, string>; cmd: string[] } | undefined;
  expose: number[];
}

/** --name=value flags of COPY, HEALTHCHECK (dockerfile-ast keeps them apart from the arguments). */
function flagsOf(i: Instruction): Record<string, string> {
  const flags = (i as unknown as { getFlags?(): Flag[] }).getFlags?.() ?? [];
  return Object.fromEntries(flags.map((f) => [f.getName(), f.getValue() ?? '']));
}

function jsonArgs(i: Instruction): string[] | undefined {
  const strings = (i as JSONInstruction).getJSONStrings?.();
  return strings && strings.length > 0 ? strings.map((s) => s.getJSONValue()) : undefined;
}

export function parseDockerfile(content: string): Stage[] {
  const df = DockerfileParser.parse(content);
  const args: Record<string, string> = {};
  for (const a of df.getInitialARGs()) {
    const p = a.getProperty();
    if (p?.getValue()) args[p.getName()] = p.getValue()!;
  }
  const subst = (s: string) => s.replace(/\$\{(\w+)\}|\$(\w+)/g, (_m, a: string, b: string) => args[a ?? b] ?? '');

  const stages: Stage[] = [];
  let cur: Stage | undefined;
  for (const ins of df.getInstructions()) {
    const kw = ins.getKeyword();
    const argv = ins.getArguments().map((a) => a.getValue());
    if (kw === 'FROM') {
      const image = subst(argv[0]!);
      const asIdx = argv.findIndex((a) => a.toUpperCase() === 'AS');
      const base = stages.find((s) => s.name === image);
      cur = {
        name: asIdx >= 0 ? argv[asIdx + 1] : undefined,
        image: base ? base.image : image,
        workdir: base ? base.workdir : '/',
        copies: [],
        env: base ? { ...base.env } : {},
        runs: [],
        user: base?.user,
        entrypoint: base?.entrypoint,
        cmd: base?.cmd,
        healthcheck: base?.healthcheck,
        expose: [],
      };
      stages.push(cur);
      continue;
    }
    if (!cur) continue; // ARGs before the first FROM
    switch (kw) {
      case 'WORKDIR':
        cur.workdir = posix.resolve(cur.workdir, argv[0]!);
        break;
      case 'COPY': {
        const rest = argv.filter((a) => !a.startsWith('--'));
        const from = flagsOf(ins).from;
        const dest = rest[rest.length - 1]!;
        const sources = rest.slice(0, -1);
        cur.copies.push({ from, sources, dest: posix.resolve(cur.workdir, dest), destIsDir: dest.endsWith('/') || sources.length > 1 });
        break;
      }
      case 'ENV':
        for (const p of (ins as unknown as { getProperties(): { getName(): string; getValue(): string | null }[] }).getProperties())
          cur.env[p.getName()] = p.getValue() ?? '';
        break;
      case 'RUN':
        cur.runs.push(ins.getRawArgumentsContent() ?? '');
        break;
      case 'USER':
        cur.user = argv[0];
        break;
      case 'ENTRYPOINT':
        cur.entrypoint = jsonArgs(ins);
        break;
      case 'CMD':
        cur.cmd = jsonArgs(ins);
        break;
      case 'EXPOSE':
        cur.expose.push(...argv.map((a) => Number(a.split('/')[0])));
        break;
      case 'HEALTHCHECK': {
        const flags = flagsOf(ins);
        const cmdAt = argv.indexOf('CMD');
        const json = /CMD\s+(\[.*\])\s*$/s.exec(ins.getArgumentsContent() ?? '');
        cur.healthcheck = { flags, cmd: json ? (JSON.parse(json[1]!) as string[]) : argv.slice(cmdAt + 1) };
        break;
      }
      default:
        break;
    }
  }
  return stages;
}

/** The stage a `--from` names (by name or index). */
export function stageNamed(stages: Stage[], ref: string): Stage | undefined {
  return /^\d+$/.test(ref) ? stages[Number(ref)] : stages.find((s) => s.name === ref);
}

export interface Resolver {
  /** Is this build-context path a directory? */
  contextIsDir(rel: string): boolean;
  /** Did a RUN in this stage make the path (e.g. node_modules by npm ci)? */
  produced(stage: Stage, absPath: string): boolean;
}

/**
 * Where `absPath` in stage `s` comes from, following COPY --from across stages with Docker's rules (a directory
 * source copies its contents onto the destination; a file into a directory destination keeps its name): the
 * build-context path, 'produced' when a RUN made it, or undefined when nothing puts it there.
 */
export function provenance(stages: Stage[], s: Stage, absPath: string, r: Resolver): string | 'produced' | undefined {
  for (const c of [...s.copies].reverse()) {
    for (const src of c.sources) {
      const from = c.from === undefined ? undefined : stageNamed(stages, c.from);
      if (c.from !== undefined && !from) return undefined;
      const srcIsDir =
        from === undefined
          ? r.contextIsDir(src)
          : (() => {
              const p = provenance(stages, from, src, r);
              return p === 'produced' || (p !== undefined && r.contextIsDir(p));
            })();
      const target = srcIsDir || !c.destIsDir ? c.dest : posix.join(c.dest, posix.basename(src));
      if (absPath !== target && !(srcIsDir && absPath.startsWith(`${target}/`))) continue;
      const rest = absPath.slice(target.length);
      if (from === undefined) return posix.normalize(posix.join(src, rest)).replace(/^\.\//, '').replace(/\/$/, '');
      return provenance(stages, from, posix.join(src, rest), r);
    }
  }
  return r.produced(s, absPath) ? 'produced' : undefined;
}
