// Loads the configuration: the schema's defaults, then config/default.json of the
// installation, then the --config file, then the environment. Any unknown key, unknown
// RELAY_* variable or bad value stops the start with a message naming it, the value and what
// is allowed. Every command reads the same sources, so `keys`, `doctor` and the rest see what
// `serve` sees only when they run with the same --config and RELAY_* variables.
import convict from 'convict';
import fs from 'node:fs';
import path from 'node:path';
import { schema, RelayConfig } from './schema';

export class ConfigError extends Error {}

/** config/default.json beside the installed package (dist/config/load.js -> ../../config). */
export const DEFAULT_CONFIG_FILE = path.resolve(__dirname, '..', '..', 'config', 'default.json');

/**
 * RELAY_* variables that are not settings but are known to be around the relay, so they are
 * not refused: RELAY_PASSWORD is the app's password in the README's client example (it was
 * named so in earlier READMEs, and an app and the relay may share a shell).
 */
export const NON_SETTING_RELAY_VARIABLES: readonly string[] = ['RELAY_PASSWORD'];

export interface LoadOptions {
  configFile?: string;
  env?: NodeJS.ProcessEnv;
  /** Settings applied last, above the environment (tests and embedding). */
  overrides?: Record<string, unknown>;
}

/** Where a setting's value came from, as `config show` prints it. */
export type SettingSource = 'default' | 'default.json' | 'config file' | 'environment' | 'override';
export interface SettingOrigin {
  source: SettingSource;
  /** The file or the environment variable; absent for a default. */
  from?: string;
}

export interface LoadedConfig {
  config: RelayConfig;
  /** By setting name (dotted), for every setting of the schema. */
  origins: Record<string, SettingOrigin>;
}

export function loadConfig(options: LoadOptions = {}): RelayConfig {
  return loadConfigWithOrigins(options).config;
}

export function loadConfigWithOrigins(options: LoadOptions = {}): LoadedConfig {
  const env = options.env ?? process.env;
  checkEnvironmentNames(env);
  const config = convict(schema, { env, args: [] });
  const files: { file: string; source: SettingSource; data: unknown }[] = [];
  for (const file of [DEFAULT_CONFIG_FILE, options.configFile]) {
    if (!file) continue;
    if (!fs.existsSync(file)) {
      if (file === DEFAULT_CONFIG_FILE) continue;
      throw new ConfigError(`config file ${file} does not exist: check the path given to --config`);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(stripCommentLines(fs.readFileSync(file, 'utf8')));
    } catch (err) {
      throw new ConfigError(`config file ${file} is not valid JSON: ${(err as Error).message}`);
    }
    config.load(parsed as object);
    files.push({ file, source: file === DEFAULT_CONFIG_FILE ? 'default.json' : 'config file', data: parsed });
  }
  if (options.overrides) config.load(options.overrides);
  try {
    config.validate({ allowed: 'strict' });
  } catch (err) {
    throw new ConfigError(explainValidation((err as Error).message));
  }

  const origins: Record<string, SettingOrigin> = {};
  for (const { name, env: envName } of settings()) {
    if (options.overrides && has(options.overrides, name)) origins[name] = { source: 'override' };
    else if (env[envName] !== undefined) origins[name] = { source: 'environment', from: envName };
    else {
      const file = [...files].reverse().find((f) => has(f.data, name));
      origins[name] = file ? { source: file.source, from: file.file } : { source: 'default' };
    }
  }
  return { config: config.getProperties() as unknown as RelayConfig, origins };
}

/** Every setting of the schema: its dotted name and its environment variable, in schema order. */
export function settings(): { name: string; env: string; doc: string }[] {
  const out: { name: string; env: string; doc: string }[] = [];
  const walk = (node: Record<string, unknown>, prefix: string) => {
    for (const [key, value] of Object.entries(node)) {
      const spec = value as { doc?: string; env?: string };
      const name = prefix ? `${prefix}.${key}` : key;
      if (spec && typeof spec === 'object' && 'doc' in spec) out.push({ name, env: spec.env!, doc: spec.doc! });
      else walk(value as Record<string, unknown>, name);
    }
  };
  walk(schema as unknown as Record<string, unknown>, '');
  return out;
}

function has(data: unknown, dotted: string): boolean {
  let node = data;
  for (const part of dotted.split('.')) {
    if (!node || typeof node !== 'object' || !(part in node)) return false;
    node = (node as Record<string, unknown>)[part];
  }
  return true;
}

/** A RELAY_* variable that is no setting is a typo: refused like an unknown key in a file. */
function checkEnvironmentNames(env: NodeJS.ProcessEnv): void {
  const known = settings().map((s) => s.env);
  const unknown = Object.keys(env)
    .filter((name) => name.startsWith('RELAY_') && !known.includes(name) && !NON_SETTING_RELAY_VARIABLES.includes(name))
    .sort();
  if (!unknown.length) return;
  const lines = unknown.map((name) => {
    const close = closest(name, known);
    return `unknown environment variable ${name}${close ? `: did you mean ${close}?` : ''} (unset it, or name a setting: README lists every RELAY_* variable)`;
  });
  throw new ConfigError(`invalid configuration:\n  ${lines.join('\n  ')}`);
}

/** The candidate nearest to `name` by edit distance, when it is near enough to be a typo. */
export function closest(name: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = editDistance(name.toLowerCase(), c.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [c, d];
  }
  return bestDistance <= Math.max(2, Math.floor(name.length / 4)) ? best : undefined;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = row;
  }
  return previous[b.length];
}

/** Config files are JSON where whole lines starting with // are comments (config/example.json). */
export function stripCommentLines(text: string): string {
  return text.split('\n').map((line) => (/^\s*\/\//.test(line) ? '' : line)).join('\n');
}

// convict says "submission.port: ports must be within range 0 - 65535: value was 99999";
// add where the value can come from, so the user knows what to edit.
function explainValidation(message: string): string {
  const lines = message.split('\n').filter(Boolean).map((line) => {
    const unknown = /param '([^']+)' not declared in the schema/.exec(line);
    if (unknown) {
      const close = closest(unknown[1], settings().map((s) => s.name));
      return `unknown setting "${unknown[1]}"${close ? ` (did you mean "${close}"?)` : ''}: remove it from the config file (README lists every setting)`;
    }
    const m = /^([\w.]+): (.*)$/.exec(line);
    if (!m) return line;
    const envName = envOf(m[1]);
    return `setting "${m[1]}"${envName ? ` (env ${envName})` : ''}: ${m[2]}`;
  });
  return `invalid configuration:\n  ${lines.join('\n  ')}`;
}

function envOf(key: string): string | undefined {
  let node: unknown = schema;
  for (const part of key.split('.')) node = (node as Record<string, unknown> | undefined)?.[part];
  return (node as { env?: string } | undefined)?.env;
}
