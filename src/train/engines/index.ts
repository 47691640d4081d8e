// The engine registry: names → factories, and `auto` (the fused onnxruntime engine when it is present and loads,
// else TensorFlow.js). Every engine module exports `createEngine(): Promise<Engine>`.

import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Engine } from './engine.js';

export type EngineName = 'tfjs' | 'ort';
export type EngineChoice = EngineName | 'auto';

export const ENGINE_CHOICES: readonly EngineChoice[] = ['tfjs', 'ort', 'auto'];

/** Where each engine lives, relative to this file; loaded lazily so an engine's dependencies load only when used. */
const MODULES: Record<EngineName, string> = { tfjs: './tfjs.js', ort: './ort.js' };

function moduleExists(spec: string): boolean {
  // Under tsx/vitest the sources are .ts; compiled they are .js.
  const js = fileURLToPath(new URL(spec, import.meta.url));
  return existsSync(js) || existsSync(js.replace(/\.js$/, '.ts'));
}

async function load(name: EngineName): Promise<Engine> {
  const spec = MODULES[name];
  if (!moduleExists(spec)) throw new Error(`engine "${name}" is not available: ${spec} does not exist`);
  // A variable specifier: the ort engine may be absent from a checkout, so it cannot be a static import.
  const mod: unknown = await import(spec);
  const factory = (mod as { createEngine?: unknown }).createEngine;
  if (typeof factory !== 'function') throw new Error(`engine module ${spec} does not export createEngine()`);
  return (await (factory as () => Promise<Engine>)()) satisfies Engine;
}

/** `choice` as an EngineChoice, or a RangeError naming it and the choices (CLIs check theirs with cli.ts's `choice`). */
export function checkEngineChoice(choice: unknown): EngineChoice {
  if (!(ENGINE_CHOICES as readonly unknown[]).includes(choice))
    throw new RangeError(`engine "${String(choice)}" is not one of ${ENGINE_CHOICES.join(', ')}`);
  return choice as EngineChoice;
}

/** Creates the named engine; `auto` tries ort then falls back to tfjs, reporting why in `note`. */
export async function createEngine(choice: EngineChoice): Promise<{ engine: Engine; note?: string }> {
  checkEngineChoice(choice);
  if (choice !== 'auto') return { engine: await load(choice) };
  try {
    return { engine: await load('ort') };
  } catch (err) {
    return { engine: await load('tfjs'), note: `ort engine unavailable (${(err as Error).message}); using tfjs` };
  }
}

/** Names of engines whose module exists in this checkout (the bench runs each). */
export function availableEngines(): EngineName[] {
  return (Object.keys(MODULES) as EngineName[]).filter((n) => moduleExists(MODULES[n]));
}
