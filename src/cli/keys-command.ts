// `dkim-relay keys list|activate|retire|record`: the key lifecycle by hand (DESIGN.md "Key
// lifecycle", src/dkim/key-lifecycle.ts). State changes go to the key's metadata file, which a
// running relay reads again within seconds: no restart. Private keys are never printed.
import { parseArgs } from 'node:util';
import { CliContext, CliError, Command, UsageError } from '../cli-context';
import { createResolver } from '../dns/resolver';
import { dkimRecordValue, recordName, zoneFileRecord } from '../dkim/dns-record';
import { activateKey, KeyLifecycleError, keyName, KeyReport, listKeys, retireKey } from '../dkim/key-lifecycle';
import { readStoredKey } from '../dkim/stored-keys';
import { configUsedNote } from './config-used';

export const KEYS_USAGE = [
  'usage: dkim-relay keys list [DOMAIN] [--json] [--no-dns]',
  '       dkim-relay keys activate DOMAIN SELECTOR',
  '       dkim-relay keys retire DOMAIN SELECTOR [--force]',
  '       dkim-relay keys record DOMAIN SELECTOR [--format zone|value]',
].join('\n');

/** How long a retired key's record should stay in DNS. */
export const RETIRED_RECORD_GRACE = 'at least a week';

export const keysCommand: Command = async (args, ctx) => {
  const [sub, ...rest] = args;
  try {
    switch (sub) {
      case 'list':
        return await list(rest, ctx);
      case 'activate':
        return await activate(rest, ctx);
      case 'retire':
        return retire(rest, ctx);
      case 'record':
        return record(rest, ctx);
      case '-h':
      case '--help':
        ctx.stdout.write(`${KEYS_USAGE}\n`);
        return 0;
      case undefined:
        throw new UsageError(`say what to do with the keys: list, activate, retire or record\n${KEYS_USAGE}`);
      default:
        throw new UsageError(`unknown keys command "${sub}": use list, activate, retire or record\n${KEYS_USAGE}`);
    }
  } catch (err) {
    // activate failed on what DNS said: say where this command looked
    if (err instanceof KeyLifecycleError) throw new CliError(sub === 'activate' ? `${err.message}\n${configUsedNote(ctx)}` : err.message);
    throw err;
  }
};

function parse<T>(run: () => T): T {
  try {
    return run();
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\n${KEYS_USAGE}`);
  }
}

/** DOMAIN SELECTOR of activate, retire and record. */
function domainAndSelector(command: string, positionals: string[]): { domain: string; selector: string } {
  if (positionals.length !== 2) {
    throw new UsageError(`keys ${command} takes a DOMAIN and a SELECTOR (\`dkim-relay keys list\` shows them)\n${KEYS_USAGE}`);
  }
  return keyName(positionals[0], positionals[1]);
}

function resolverOf(ctx: CliContext) {
  return createResolver({ servers: ctx.config.dns.servers, timeoutSeconds: ctx.config.dns.timeout });
}

const DNS_WORDS: Record<string, string> = {
  match: 'match', missing: 'missing', mismatch: 'other key', revoked: 'revoked', malformed: 'malformed', 'dns-error': 'dns error',
};

/** "2025-03-07 23:30Z" */
function when(iso: string | null): string {
  return iso ? `${iso.slice(0, 10)} ${iso.slice(11, 16)}Z` : '-';
}

async function list(args: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parse(() => parseArgs({
    args, allowPositionals: true, options: { json: { type: 'boolean' }, 'no-dns': { type: 'boolean' } },
  }));
  if (positionals.length > 1) throw new UsageError(`keys list takes at most one DOMAIN\n${KEYS_USAGE}`);
  const domain = positionals.length ? keyName(positionals[0], 'x').domain : undefined;
  const reports = await listKeys(ctx.config.keysDir, { domain, resolver: values['no-dns'] ? undefined : resolverOf(ctx) });
  if (values.json) {
    ctx.stdout.write(`${JSON.stringify(reports, null, 2)}\n`);
    return 0;
  }
  if (!reports.length) {
    ctx.stderr.write(`No DKIM keys${domain ? ` for ${domain}` : ''} in ${ctx.config.keysDir}: make one with dkim-relay keygen --domain DOMAIN\n${configUsedNote(ctx)}\n`);
    return 0;
  }
  const rows = [['DOMAIN', 'SELECTOR', 'ALGORITHM', 'SIZE', 'STATE', 'CREATED', 'ACTIVATED', 'DNS', 'SIGNS']];
  for (const r of reports) {
    rows.push([
      r.domain, r.selector, r.algorithm ?? '?', r.bits ? String(r.bits) : '?',
      r.problem ? (r.state === 'retired' ? 'retired' : 'UNUSABLE') : r.state,
      when(r.created), when(r.activated),
      r.dns ? DNS_WORDS[r.dns.status] : '-', r.signing ? 'yes' : 'no',
    ]);
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  for (const row of rows) ctx.stdout.write(`${row.map((cell, i) => cell.padEnd(widths[i])).join('  ').trimEnd()}\n`);
  const notes = notesOf(reports);
  if (notes.length) ctx.stdout.write(`\n${notes.join('\n')}\n`);
  if (reports.some((r) => r.dns && r.dns.status !== 'match' && r.state !== 'retired')) ctx.stderr.write(`${configUsedNote(ctx)}\n`);
  return 0;
}

function notesOf(reports: KeyReport[]): string[] {
  const notes: string[] = [];
  for (const r of reports) {
    const name = `${r.domain} ${r.selector}`;
    if (r.problem && r.state !== 'retired') notes.push(`${name}: ${r.problem}`);
    if (r.legacy) notes.push(`${name}: no state file (a key from before key states): treated as active`);
    if (r.dns && r.dns.status !== 'match' && r.state !== 'retired') notes.push(`${name}: ${r.dns.detail}`);
    if (r.dns && r.dns.status !== 'match' && r.state === 'active') {
      notes.push(`${name}: WARNING: this key is active but DNS does not have its record: mail signed with it fails DKIM`);
    }
  }
  const domains = new Set(reports.map((r) => r.domain));
  for (const d of domains) {
    const own = reports.filter((r) => r.domain === d);
    // an active key that cannot be used while another signs: the fall-back is said, not silent
    const signer = own.find((r) => r.signing && r.algorithm === 'rsa');
    for (const r of own.filter((k) => k.state === 'active' && k.problem && k.algorithm !== 'ed25519')) {
      notes.push(`${d} ${r.selector}: cannot be used, so ${d} is ${signer ? `signed with ${signer.selector} meanwhile` : 'not signed (its mail is refused, or sent unsigned with signing.unsignedPolicy=relay)'}`);
    }
    if (!own.some((r) => r.signing) && own.some((r) => r.state === 'active' && r.algorithm === 'ed25519')) {
      notes.push(`${d}: not signed: it has an active Ed25519 key but no active RSA key (Gmail, Outlook and Yahoo do not verify Ed25519)`);
    }
  }
  return notes;
}

async function activate(args: string[], ctx: CliContext): Promise<number> {
  const { positionals } = parse(() => parseArgs({ args, allowPositionals: true, options: {} }));
  const { domain, selector } = domainAndSelector('activate', positionals);
  const result = await activateKey(ctx.config.keysDir, domain, selector, resolverOf(ctx));
  if (result.alreadyActive) {
    ctx.stderr.write(`The key ${selector} of ${domain} is already active.\n`);
    return 0;
  }
  const lines = [
    `Activated the key ${selector} of ${domain}: ${result.check.detail}.`,
    `A running relay signs with it within 5 seconds.`,
  ];
  const reports = await listKeys(ctx.config.keysDir, { domain });
  const replaced = reports.filter((r) => r.state === 'active' && !r.signing && r.algorithm === result.key.algorithm && r.selector !== selector);
  for (const old of replaced) {
    lines.push(`It replaces ${old.selector}, which no longer signs: retire it with \`dkim-relay keys retire ${domain} ${old.selector}\` and keep its record published ${RETIRED_RECORD_GRACE}.`);
  }
  if (!reports.some((r) => r.signing && r.selector === selector)) {
    lines.push(`It does not sign yet: ${domain} has another ${result.key.algorithm} key activated later, which signs (see dkim-relay keys list).`);
  }
  ctx.stderr.write(`${lines.join('\n')}\n`);
  return 0;
}

function retire(args: string[], ctx: CliContext): number {
  const { values, positionals } = parse(() => parseArgs({ args, allowPositionals: true, options: { force: { type: 'boolean' } } }));
  const { domain, selector } = domainAndSelector('retire', positionals);
  const result = retireKey(ctx.config.keysDir, domain, selector, new Date(), { force: values.force });
  const name = recordName(selector, domain);
  if (result.alreadyRetired) {
    ctx.stderr.write(`The key ${selector} of ${domain} is already retired (since ${when(result.key.retired)}).\n`);
    return 0;
  }
  ctx.stderr.write([
    `Retired the key ${selector} of ${domain}: it no longer signs (a running relay stops using it within 5 seconds).`,
    `Keep its record ${name} published for a grace period (${RETIRED_RECORD_GRACE}): mail signed with it may still be`,
    'queued or verified again later (forwarding, mailbox filters). Then remove the record; the key file may be deleted too.',
    ...result.warnings.map((w) => `WARNING: ${w}`),
  ].join('\n') + '\n');
  return 0;
}

function record(args: string[], ctx: CliContext): number {
  const { values, positionals } = parse(() => parseArgs({ args, allowPositionals: true, options: { format: { type: 'string' } } }));
  const { domain, selector } = domainAndSelector('record', positionals);
  const format = values.format ?? 'zone';
  if (format !== 'zone' && format !== 'value') {
    throw new UsageError(`--format "${format}" is not known: use zone (a BIND zone-file line) or value (the bare TXT value)\n${KEYS_USAGE}`);
  }
  const key = readStoredKey(ctx.config.keysDir, domain, selector);
  if (key.problem?.startsWith('there is no key')) {
    throw new CliError(`there is no key with selector ${selector} for ${domain} in ${ctx.config.keysDir}: \`dkim-relay keys list\` shows the keys there`);
  }
  if (!key.privateKey) throw new CliError(key.problem ?? `the key ${key.path} cannot be read`);
  const value = dkimRecordValue(key.privateKey);
  ctx.stdout.write(`${format === 'zone' ? zoneFileRecord(selector, domain, value) : value}\n`);
  return 0;
}
