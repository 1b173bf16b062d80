// Loads the configuration: the schema's defaults, then config/default.json of the
// installation, then the --config file, then the environment. Any unknown key or bad value
// stops the start with a message naming the key, the value and what is allowed.
import convict from 'convict';
import fs from 'node:fs';
import path from 'node:path';
import { schema, RelayConfig } from './schema';

export class ConfigError extends Error {}

/** config/default.json beside the installed package (dist/config/load.js -> ../../config). */
export const DEFAULT_CONFIG_FILE = path.resolve(__dirname, '..', '..', 'config', 'default.json');

export interface LoadOptions {
  configFile?: string;
  env?: NodeJS.ProcessEnv;
  /** Settings applied last, above the environment (tests and embedding). */
  overrides?: Record<string, unknown>;
}

export function loadConfig(options: LoadOptions = {}): RelayConfig {
  const config = convict(schema, { env: options.env ?? process.env, args: [] });
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
  }
  if (options.overrides) config.load(options.overrides);
  try {
    config.validate({ allowed: 'strict' });
  } catch (err) {
    throw new ConfigError(explainValidation((err as Error).message));
  }
  return config.getProperties() as unknown as RelayConfig;
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
    if (unknown) return `unknown setting "${unknown[1]}": remove it from the config file (README lists every setting)`;
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
