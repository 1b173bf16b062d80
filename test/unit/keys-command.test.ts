// `dkim-relay keys` in-process against a real DNS server on loopback: what it prints for
// list (table and --json), activate, retire and record, and its usage errors.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CliError, UsageError } from '../../src/cli-context';
import { capturedContext } from '../helpers/cli-context';
import { keysCommand } from '../../src/cli/keys-command';
import { loadConfig } from '../../src/config/load';
import { generateKey } from '../../src/dkim/keygen';
import { startDnsServer, TestDnsServer } from '../helpers/dns-server';

let dns: TestDnsServer;
let keysDir: string;

beforeAll(async () => {
  dns = await startDnsServer({ host: '127.0.0.1' });
});
afterAll(() => dns.close());
beforeEach(() => {
  keysDir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'keys-command-')), 'keys');
  dns.clear();
});
afterEach(() => fs.rmSync(path.dirname(keysDir), { recursive: true, force: true }));

async function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const config = loadConfig({ env: { RELAY_KEYS_DIR: keysDir, RELAY_DNS_SERVERS: dns.address, RELAY_DNS_TIMEOUT: '2' } });
  const { ctx, out } = capturedContext(config);
  const code = await keysCommand(args, ctx);
  return { code, ...out };
}

test('activate, list, retire and record, with what each says', async () => {
  const a = await generateKey(keysDir, { domain: 'example.org', selector: 'a' }, new Date('2026-01-01T10:00:00Z'));
  const b = await generateKey(keysDir, { domain: 'example.org', selector: 'b', bits: 3072 }, new Date('2026-01-02T10:00:00Z'));
  dns.set(a.recordName, 'TXT', [a.recordValue]);
  dns.set(b.recordName, 'TXT', [b.recordValue]);

  expect(await run(['activate', 'example.org', 'a'])).toEqual({
    code: 0, stdout: '',
    stderr: "Activated the key a of example.org: the record at a._domainkey.example.org has this key's public key.\nA running relay signs with it within 5 seconds.\n",
  });
  const second = await run(['activate', 'example.org', 'b']);
  expect(second.stderr).toContain('It replaces a, which no longer signs: retire it with `dkim-relay keys retire example.org a` and keep its record published at least a week.');
  expect((await run(['activate', 'example.org', 'b'])).stderr).toBe('The key b of example.org is already active.\n');

  const list = await run(['list']);
  expect(list.code).toBe(0);
  const lines = list.stdout.split('\n');
  expect(lines[0]).toMatch(/^DOMAIN\s+SELECTOR\s+ALGORITHM\s+SIZE\s+STATE\s+CREATED\s+ACTIVATED\s+DNS\s+SIGNS$/);
  expect(lines[1]).toMatch(/^example\.org\s+a\s+rsa\s+2048\s+active\s+2026-01-01 10:00Z\s+\d{4}-\d\d-\d\d \d\d:\d\dZ\s+match\s+no$/);
  expect(lines[2]).toMatch(/^example\.org\s+b\s+rsa\s+3072\s+active\s+2026-01-02 10:00Z\s+\d{4}-\d\d-\d\d \d\d:\d\dZ\s+match\s+yes$/);

  const retired = await run(['retire', 'example.org', 'b']);
  expect(retired.stderr).toBe([
    'Retired the key b of example.org: it no longer signs (a running relay stops using it within 5 seconds).',
    'Keep its record b._domainkey.example.org published for a grace period (at least a week): mail signed with it may still be',
    'queued or verified again later (forwarding, mailbox filters). Then remove the record; the key file may be deleted too.',
    '',
  ].join('\n'));
  dns.remove(b.recordName);
  const json = JSON.parse((await run(['list', 'example.org', '--json'])).stdout) as Record<string, unknown>[];
  expect(json.map((k) => [k.selector, k.state, k.signing, (k.dns as { status: string }).status])).toEqual([['a', 'active', true, 'match'], ['b', 'retired', false, 'missing']]);
  expect(json[1]).toMatchObject({ algorithm: 'rsa', bits: 3072, created: '2026-01-02T10:00:00.000Z', retired: expect.any(String), problem: null, legacy: false });

  await expect(run(['retire', 'example.org', 'a'])).rejects.toThrow(/a is the last active RSA key of example\.org: .*--force/);
  const lastRetire = await run(['retire', 'example.org', 'a', '--force']);
  expect(lastRetire.stderr).toContain('WARNING: example.org has no active key now: its mail is refused (or sent unsigned with signing.unsignedPolicy=relay) until another key is active');

  expect((await run(['record', 'example.org', 'a', '--format', 'value'])).stdout).toBe(`${a.recordValue}\n`);
  expect((await run(['record', 'example.org', 'a'])).stdout).toMatch(/^a\._domainkey\.example\.org\. 3600 IN TXT \( "v=DKIM1; k=rsa; p=/);
  for (const r of [list, second, retired, lastRetire]) expect(r.stdout + r.stderr).not.toContain('PRIVATE KEY');
});

test('list shows an active key whose record is gone as a warning, and --no-dns skips DNS', async () => {
  const a = await generateKey(keysDir, { domain: 'example.org', selector: 'a' });
  dns.set(a.recordName, 'TXT', [a.recordValue]);
  await run(['activate', 'example.org', 'a']);
  dns.remove(a.recordName);
  const list = await run(['list']);
  expect(list.stdout).toContain('example.org a: DNS has no record at a._domainkey.example.org (NXDOMAIN: the name does not exist)');
  expect(list.stdout).toContain('example.org a: WARNING: this key is active but DNS does not have its record: mail signed with it fails DKIM');
  expect((await run(['list', '--no-dns'])).stdout).toMatch(/^example\.org\s+a\s+rsa\s+2048\s+active\s+\S+ \S+\s+\S+ \S+\s+-\s+yes$/m);
  expect(await run(['list', 'other.test'])).toMatchObject({ code: 0, stdout: '', stderr: expect.stringContaining('No DKIM keys for other.test') });
});

test('usage errors and refusals', async () => {
  await expect(run([])).rejects.toThrow(UsageError);
  await expect(run(['frob'])).rejects.toThrow(/unknown keys command "frob"/);
  await expect(run(['activate', 'example.org'])).rejects.toThrow(/keys activate takes a DOMAIN and a SELECTOR/);
  await expect(run(['record', 'example.org', 'a', '--format', 'json'])).rejects.toThrow(UsageError);
  await expect(run(['retire', 'example.org', 'nope'])).rejects.toThrow(CliError);
  await expect(run(['record', 'example.org', 'nope'])).rejects.toThrow(/there is no key with selector nope for example\.org/);
  await expect(run(['activate', 'example.org', 'nope'])).rejects.toThrow(/`dkim-relay keys list` shows the keys/);
});
