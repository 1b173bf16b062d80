// `dkim-relay config show [--json] [--changed]`: the effective configuration, each setting
// with its value and where the value came from (like Postfix's `postconf -n`), so an
// operator sees what the relay and every other command read from this --config and
// environment. Secrets are masked; paths are shown (and resolved when relative).
import path from 'node:path';
import { parseArgs } from 'node:util';
import { CliContext, Command, UsageError } from '../cli-context';
import { SettingOrigin, settings } from '../config/load';

const USAGE = 'usage: dkim-relay config show [--json] [--changed]';

/** Settings that name files or folders: shown resolved against the working folder too. */
const PATH_SETTINGS = new Set(['keysDir', 'dataDir', 'usersFile', 'tls.key', 'tls.cert']);

export const configCommand: Command = async (args, ctx) => {
  const [sub, ...rest] = args;
  if (sub !== 'show') {
    throw new UsageError(`${sub === undefined ? 'say what to do: show' : `unknown config command "${sub}": use show`}\n${USAGE}`);
  }
  let values: { json?: boolean; changed?: boolean };
  try {
    ({ values } = parseArgs({ args: rest, strict: true, allowPositionals: false, options: { json: { type: 'boolean' }, changed: { type: 'boolean' } } }));
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\n${USAGE}`);
  }
  const shown = effectiveSettings(ctx).filter((s) => !values.changed || s.source !== 'default');
  if (values.json) {
    const out: Record<string, { value: unknown; source: string; from?: string }> = {};
    for (const s of shown) out[s.name] = { value: s.value, source: s.source, ...(s.from ? { from: s.from } : {}) };
    ctx.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
    return 0;
  }
  const lines = shown.map((s) => {
    const text = `${s.name} = ${formatValue(s.value)}`;
    const resolved = PATH_SETTINGS.has(s.name) && typeof s.value === 'string' && s.value && !path.isAbsolute(s.value) ? ` (${path.resolve(s.value)})` : '';
    return { text: text + resolved, origin: s.source === 'default' ? 'default' : `${s.source}${s.from ? ` ${s.from}` : ''}` };
  });
  const width = Math.min(60, Math.max(0, ...lines.map((l) => l.text.length)));
  for (const l of lines) ctx.stdout.write(`${l.text.padEnd(width)}  # ${l.origin}\n`);
  return 0;
};

interface EffectiveSetting extends SettingOrigin { name: string; value: unknown }

/** Every setting with its (masked) value and origin, in schema order. */
export function effectiveSettings(ctx: CliContext): EffectiveSetting[] {
  return settings().map(({ name }) => {
    let value: unknown = ctx.config;
    for (const part of name.split('.')) value = (value as Record<string, unknown>)[part];
    return { name, value: masked(name, value), ...(ctx.origins?.[name] ?? { source: 'default' as const }) };
  });
}

/** Passwords and private key material never leave the process; file names are fine. */
export function masked(name: string, value: unknown): unknown {
  if (typeof value !== 'string' || !value) return value;
  if (/password|secret|token/i.test(name)) return '********';
  if (/PRIVATE KEY/.test(value)) return '(private key given inline: not shown)';
  return value.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/@]*):[^@/]*@/i, '$1:********@');
}

function formatValue(value: unknown): string {
  if (Array.isArray(value) && !value.length) return '(none)';
  if (Array.isArray(value)) return value.every((v) => typeof v === 'string') ? value.join(', ') : JSON.stringify(value);
  if (typeof value === 'string') return value === '' ? '""' : value;
  return typeof value === 'object' ? JSON.stringify(value) : String(value);
}
