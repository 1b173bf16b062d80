// `dkim-relay keygen`: makes a DKIM key in the key store and prints its TXT record.
// stdout carries only the record, so it can be piped into a zone file or a DNS API;
// everything meant for the person running it goes to stderr.
import { parseArgs } from 'node:util';
import { CliError, Command, UsageError } from '../cli-context';
import { zoneFileRecord } from '../dkim/dns-record';
import { generateKey, KeyAlgorithm, KeygenError } from '../dkim/keygen';

export const KEYGEN_USAGE =
  'usage: dkim-relay keygen --domain DOMAIN [--selector SELECTOR] [--algorithm rsa|ed25519] [--bits 2048|3072|4096] [--format zone|value]';

export const keygenCommand: Command = async (args, ctx) => {
  let values: { domain?: string; selector?: string; algorithm?: string; bits?: string; format?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      args,
      allowPositionals: false,
      strict: true,
      options: {
        domain: { type: 'string' },
        selector: { type: 'string' },
        algorithm: { type: 'string' },
        bits: { type: 'string' },
        format: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\n${KEYGEN_USAGE}`);
  }
  if (values.help) {
    ctx.stdout.write(`${KEYGEN_USAGE}\n`);
    return 0;
  }
  if (!values.domain) throw new UsageError(`--domain is required: the domain whose mail the key signs\n${KEYGEN_USAGE}`);
  const algorithm = values.algorithm ?? 'rsa';
  if (algorithm !== 'rsa' && algorithm !== 'ed25519') {
    throw new UsageError(`--algorithm "${algorithm}" is not known: use rsa or ed25519\n${KEYGEN_USAGE}`);
  }
  const format = values.format ?? 'zone';
  if (format !== 'zone' && format !== 'value') {
    throw new UsageError(`--format "${format}" is not known: use zone (a BIND zone-file line) or value (the bare TXT value)\n${KEYGEN_USAGE}`);
  }
  let bits: number | undefined;
  if (values.bits !== undefined) {
    if (algorithm === 'ed25519') throw new UsageError(`--bits applies to RSA keys only: Ed25519 keys have one size\n${KEYGEN_USAGE}`);
    if (!/^\d+$/.test(values.bits)) throw new UsageError(`--bits "${values.bits}" is not a number: use 2048, 3072 or 4096\n${KEYGEN_USAGE}`);
    bits = Number(values.bits);
  }

  let key;
  try {
    key = await generateKey(ctx.config.keysDir, { domain: values.domain, selector: values.selector, algorithm: algorithm as KeyAlgorithm, bits });
  } catch (err) {
    if (err instanceof KeygenError) throw new CliError(err.message);
    const e = err as NodeJS.ErrnoException;
    if (e.code && e.path !== undefined) {
      throw new CliError(`cannot write the key store at ${e.path} (${e.code}): check keysDir (env RELAY_KEYS_DIR) and that this user may write there`);
    }
    throw err;
  }

  ctx.stdout.write(`${format === 'zone' ? zoneFileRecord(key.selector, key.domain, key.recordValue) : key.recordValue}\n`);

  const what = key.algorithm === 'rsa' ? `RSA-${key.bits}` : 'Ed25519';
  const lines = [
    `Made a ${what} DKIM key for ${key.domain} with selector ${key.selector}.`,
    `  key file: ${key.path} (keep it private; never commit it)`,
    `  publish the TXT record printed above at: ${key.recordName}`,
    format === 'zone'
      ? '  (a BIND zone-file line; for a DNS provider\'s web form use --format value, or paste the parts between the quotes joined together)'
      : '  (the bare TXT value; a value longer than 255 characters is split into several strings by most DNS providers, or use --format zone)',
    `  The key is PENDING: it does not sign until its record is published and seen in DNS.`,
    `  Once the record is visible, run: dkim-relay keys activate ${key.domain} ${key.selector}`,
    '  or let the running relay find it (it checks pending keys at start and every keys.checkInterval, RELAY_KEYS_CHECK_INTERVAL).',
    `  dkim-relay keys list shows the state of every key and whether its record matches.`,
  ];
  if (key.algorithm === 'ed25519') {
    lines.push(
      '  Ed25519 signs in addition to RSA, never instead: Gmail, Outlook and Yahoo do not verify Ed25519.',
      `  It signs only while ${key.domain} also has an active RSA key (make one with: dkim-relay keygen --domain ${key.domain}).`,
    );
  }
  ctx.stderr.write(`${lines.join('\n')}\n`);
  return 0;
};
