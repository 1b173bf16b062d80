// The key lifecycle as users live it, over real SMTP and a real DNS server on loopback: the
// `dkim-relay` CLI (a separate process, as an operator runs it) makes keys, activates and
// retires them while the relay runs; what the sink receives is verified by python3-dkim with
// the records exactly as keygen printed them.
import { execFileSync, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import dgram from 'node:dgram';
import fs from 'node:fs';
import path from 'node:path';
import { writeMetadata } from '../../src/dkim/key-metadata';
import { verifyDkim } from '../helpers/dkim-verify';
import { DOMAIN, Harness, logLines, rawMessage, startWithSink, submit, submitError, waitForLog } from '../helpers/relay-harness';
import { Sink, SinkMessage } from '../helpers/sink';

const ROOT = path.resolve(__dirname, '..', '..');
const NODE = path.join(ROOT, 'node_modules', '.bin', 'node');
const BIN = path.join(ROOT, 'bin', 'dkim-relay.js');
const STACK_FRAME = /^\s+at .+(:\d+:\d+\)?|\(node:.+\))$/m;

let h: Harness;
let sink: Sink;
/** DKIM records published in the test DNS, by name, as verifyDkim takes them. */
const records: Record<string, string> = {};

function newestSource(dir: string): number {
  let newest = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestSource(full) : entry.name.endsWith('.ts') ? fs.statSync(full).mtimeMs : 0);
  }
  return newest;
}

beforeAll(async () => {
  const cli = path.join(ROOT, 'dist', 'cli.js');
  if (!fs.existsSync(cli) || fs.statSync(cli).mtimeMs < newestSource(path.join(ROOT, 'src'))) {
    execFileSync('npm', ['run', 'build', '--silent'], { cwd: ROOT, stdio: 'pipe' });
  }
  ({ h, sink } = await startWithSink({ RELAY_KEYS_CHECK_INTERVAL: '1s' }));
  Object.assign(records, h.records);
}, 120000);

afterAll(async () => {
  await h?.stop();
  await sink?.close();
});

interface RunResult { code: number | null; stdout: string; stderr: string }

/** `dkim-relay ARGS` in its own process, on the relay's key store and test DNS. */
function cli(args: string[], env: Record<string, string> = {}): Promise<RunResult> {
  const clean: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('RELAY_')) clean[k] = v;
  const child = spawn(NODE, [BIN, ...args], {
    cwd: h.dir,
    env: { ...clean, RELAY_KEYS_DIR: h.config.keysDir, RELAY_DNS_SERVERS: h.dns.address, RELAY_DNS_TIMEOUT: '2', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => { stdout += c.toString(); });
    child.stderr.on('data', (c: Buffer) => { stderr += c.toString(); });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** keygen through the CLI; its stdout parsed back into the record's name and strings, and published as those strings. */
async function keygen(domain: string, args: string[]): Promise<{ selector: string; name: string; strings: string[] }> {
  const r = await cli(['keygen', '--domain', domain, ...args]);
  expect(r).toMatchObject({ code: 0 });
  expect(r.stderr).toMatch(/The key is PENDING: it does not sign until its record is published and seen in DNS/);
  const lines = r.stdout.split('\n').filter(Boolean);
  expect(lines).toHaveLength(1);
  const m = /^(\S+)\._domainkey\.(\S+)\. 3600 IN TXT \( ((?:"[^"]*" ?)+)\)$/.exec(lines[0]);
  if (!m) throw new Error(`keygen printed no zone-file record: ${lines[0]}`);
  expect(m[2]).toBe(domain);
  const strings = [...m[3].matchAll(/"([^"]*)"/g)].map((x) => x[1]);
  strings.forEach((s) => expect(s.length).toBeLessThanOrEqual(255));
  return { selector: m[1], name: `${m[1]}._domainkey.${domain}`, strings };
}

function publish(record: { name: string; strings: string[] }): void {
  h.dns.set(record.name, 'TXT', [record.strings]);
  records[record.name] = record.strings.join('');
}

let counter = 0;
/** Submits a message from `domain` and returns what the sink received. */
async function send(domain: string): Promise<SinkMessage> {
  const subject = `lifecycle ${++counter}`;
  await submit(h, { from: `app@${domain}`, raw: rawMessage(`app@${domain}`, 'user@dest.test', { subject }) });
  const deadline = Date.now() + 15000;
  for (;;) {
    const msg = sink.messages.find((m) => m.data.toString().includes(`Subject: ${subject}\r\n`));
    if (msg) return msg;
    if (Date.now() > deadline) throw new Error(`the sink did not get "${subject}"`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** d=/s=/a= of each signature, verified by python3-dkim against the published records. */
async function signatures(msg: SinkMessage): Promise<string[]> {
  const verdict = await verifyDkim(msg.data, records);
  for (const s of verdict.signatures) if (!s.ok) throw new Error(`signature ${s.s}/${s.a} does not verify: ${s.error}`);
  return verdict.signatures.map((s) => `${s.d}/${s.s}/${s.a}`);
}

/** Sends until the signatures are `expected`, for at most 5 s (the promise of `keys activate|retire`). */
async function signedWithin5s(domain: string, expected: string[]): Promise<void> {
  const start = Date.now();
  let got: string[] | string = [];
  while (Date.now() - start < 5000) {
    try {
      got = await signatures(await send(domain));
    } catch (err) {
      got = (err as Error).message; // 550 while the relay does not have the key yet
    }
    if (JSON.stringify(got) === JSON.stringify(expected)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`within 5 s mail of ${domain} was still signed ${JSON.stringify(got)}, not ${JSON.stringify(expected)}`);
}

test.each([
  ['rsa2048.test', ['--algorithm', 'rsa'], 1],
  ['rsa4096.test', ['--bits', '4096'], 3],
])('keygen output published in DNS, activated with keys activate: %s signs and python3-dkim verifies', async (domain, args, minStrings) => {
  const record = await keygen(domain, args);
  expect(record.strings.length).toBeGreaterThanOrEqual(minStrings);
  // pending: not signed yet, and the relay refuses unsigned mail
  expect((await submitError(h, { from: `app@${domain}`, raw: rawMessage(`app@${domain}`, 'user@dest.test') })).code).toBe(550);

  publish(record);
  const activated = await cli(['keys', 'activate', domain, record.selector]);
  expect(activated).toMatchObject({ code: 0, stdout: '' });
  // the relay's own check (every second here) may have been first
  expect([
    `Activated the key ${record.selector} of ${domain}: the record at ${record.name} has this key's public key.`,
    `The key ${record.selector} of ${domain} is already active.`,
  ]).toContain(activated.stderr.split('\n')[0]);
  await signedWithin5s(domain, [`${domain}/${record.selector}/rsa-sha256`]);
});

test('RSA and Ed25519 keys of one domain: both signatures, each verified by python3-dkim', async () => {
  const domain = 'dual.test';
  const rsa = await keygen(domain, []);
  const ed = await keygen(domain, ['--algorithm', 'ed25519']);
  expect(rsa.selector).toMatch(/^\d{8}-rsa$/);
  expect(ed.selector).toMatch(/^\d{8}-ed$/);
  expect(ed.strings.join('')).toMatch(/^v=DKIM1; k=ed25519; p=[A-Za-z0-9+/]{43}=$/);
  publish(rsa);
  publish(ed);
  // the relay's periodic check (every second here) activates both, RSA first
  await waitForLog(h, (l) => l.domain === domain && l.selector === ed.selector && /is now active/.test(String(l.msg)), 10000);
  await signedWithin5s(domain, [`${domain}/${rsa.selector}/rsa-sha256`, `${domain}/${ed.selector}/ed25519-sha256`]);
});

test('rotation: a new key signs only once its record is in DNS; a retired key stops signing', async () => {
  // A is s1, active since the start
  expect(await signatures(await send(DOMAIN))).toEqual([`${DOMAIN}/s1/rsa-sha256`]);

  // B is made: pending, so mail is still signed with A
  const b = await keygen(DOMAIN, ['--selector', 'b']);
  await new Promise((r) => setTimeout(r, 2500)); // more than a re-scan and a DNS check of the relay
  expect(await signatures(await send(DOMAIN))).toEqual([`${DOMAIN}/s1/rsa-sha256`]);
  const pending = JSON.parse((await cli(['keys', 'list', DOMAIN, '--json'])).stdout) as { selector: string; state: string; dns: { status: string } }[];
  expect(pending.map((k) => [k.selector, k.state, k.dns.status])).toEqual([['b', 'pending', 'missing'], ['s1', 'active', 'match']]);

  // B's record is published: the running relay activates B, which signs
  publish(b);
  await waitForLog(h, (l) => l.selector === 'b' && /is now active/.test(String(l.msg)), 10000);
  await signedWithin5s(DOMAIN, [`${DOMAIN}/b/rsa-sha256`]);

  // A is retired by the CLI: no more A signatures
  const retired = await cli(['keys', 'retire', DOMAIN, 's1']);
  expect(retired.code).toBe(0);
  expect(retired.stderr).toMatch(/Retired the key s1 of example\.org: it no longer signs/);
  expect(retired.stderr).toMatch(/Keep its record s1\._domainkey\.example\.org published for a grace period \(at least a week\)/);
  for (let i = 0; i < 3; i++) expect(await signatures(await send(DOMAIN))).toEqual([`${DOMAIN}/b/rsa-sha256`]);

  // C activated and retired by the CLI while the relay runs: each takes effect within 5 s
  const c = await keygen(DOMAIN, ['--selector', 'c']);
  publish(c);
  expect((await cli(['keys', 'activate', DOMAIN, 'c'])).code).toBe(0);
  await signedWithin5s(DOMAIN, [`${DOMAIN}/c/rsa-sha256`]);
  expect((await cli(['keys', 'retire', DOMAIN, 'c'])).code).toBe(0);
  await signedWithin5s(DOMAIN, [`${DOMAIN}/b/rsa-sha256`]);

  const list = await cli(['keys', 'list', DOMAIN]);
  expect(list.code).toBe(0);
  const rows = list.stdout.split('\n').filter((l) => l.startsWith(DOMAIN)).map((l) => l.split(/\s+/));
  // DOMAIN SELECTOR ALGORITHM SIZE STATE CREATED(2) ACTIVATED(2) DNS SIGNS
  expect(rows.map((r) => [r[1], r[2], r[3], r[4], r[r.length - 2], r[r.length - 1]])).toEqual([
    ['b', 'rsa', '2048', 'active', 'match', 'yes'],
    ['c', 'rsa', '2048', 'retired', 'match', 'no'],
    ['s1', 'rsa', '2048', 'retired', 'match', 'no'],
  ]);
});

test('a key others can read and a damaged key: refused with the fix and their path; other domains still sign', async () => {
  const open = await keygen('open.test', ['--selector', 's1']);
  const broken = await keygen('broken.test', ['--selector', 's1']);
  publish(open);
  publish(broken);
  for (const d of ['open.test', 'broken.test']) expect((await cli(['keys', 'activate', d, 's1'])).code).toBe(0);
  const openFile = path.join(h.config.keysDir, 'open.test', 's1.key');
  const brokenFile = path.join(h.config.keysDir, 'broken.test', 's1.key');
  fs.chmodSync(openFile, 0o640);
  fs.writeFileSync(brokenFile, '-----BEGIN PRIVATE KEY-----\nZGFtYWdlZA==\n-----END PRIVATE KEY-----\n');
  await new Promise((r) => setTimeout(r, 2100)); // the relay's re-scan

  for (const d of ['open.test', 'broken.test']) {
    const r = await submitError(h, { from: `app@${d}`, raw: rawMessage(`app@${d}`, 'user@dest.test') });
    expect(r.code).toBe(550);
  }
  const errors = logLines(h).filter((l) => l.level === 50).map((l) => String(l.msg));
  expect(errors).toContain(`DKIM key ${openFile} is readable by others (mode 0640) and is not used: run \`chmod 600 ${openFile}\`. Until then mail from open.test cannot be signed`);
  expect(errors).toContain(`DKIM key ${brokenFile} is damaged or not a PEM private key: restore it from a backup, or make a new key with dkim-relay keygen. Until then mail from broken.test cannot be signed`);
  expect(await signatures(await send(DOMAIN))).toEqual([`${DOMAIN}/b/rsa-sha256`]);

  const list = await cli(['keys', 'list']);
  expect(list.code).toBe(0);
  expect(list.stdout).toMatch(/^open\.test\s+s1\s+rsa\s+2048\s+UNUSABLE/m);
  expect(list.stdout).toMatch(/^broken\.test\s+s1\s+rsa\s+2048\s+UNUSABLE/m);
  expect(list.stdout).toContain(`open.test s1: DKIM key ${openFile} is readable by others (mode 0640) and is not used: run \`chmod 600 ${openFile}\``);
  expect(list.stdout).toContain(`broken.test s1: DKIM key ${brokenFile} is damaged`);
  expect(list.stdout + list.stderr).not.toContain('PRIVATE KEY');

  // the fix the message gives works without a restart
  fs.chmodSync(openFile, 0o600);
  await signedWithin5s('open.test', ['open.test/s1/rsa-sha256']);
});

test('an Ed25519-only domain is refused at keygen and at activation, with the reason', async () => {
  const refused = await cli(['keygen', '--domain', 'edonly.test', '--algorithm', 'ed25519']);
  expect(refused.code).toBe(1);
  expect(refused.stdout).toBe('');
  expect(refused.stderr).toBe('dkim-relay: edonly.test has no RSA key, and an Ed25519 key never signs alone: Gmail, Outlook and Yahoo do not verify Ed25519 signatures, ' +
    'so an RSA key must always sign too. Make the RSA key first: dkim-relay keygen --domain edonly.test\n');
  expect(fs.existsSync(path.join(h.config.keysDir, 'edonly.test'))).toBe(false);

  // an Ed25519 key put there by hand, its record published: activation is refused too
  const dir = path.join(h.config.keysDir, 'edhand.test');
  fs.mkdirSync(dir, { mode: 0o700 });
  const { privateKey, publicKey } = crypto.generateKeyPairSync('ed25519');
  fs.writeFileSync(path.join(dir, 'ed.key'), privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  writeMetadata(path.join(dir, 'ed.json'), { algorithm: 'ed25519', bits: 256, state: 'pending', created: new Date().toISOString(), activated: null, retired: null });
  const raw = publicKey.export({ type: 'spki', format: 'der' }).subarray(-32).toString('base64');
  h.dns.set('ed._domainkey.edhand.test', 'TXT', [`v=DKIM1; k=ed25519; p=${raw}`]);
  const activation = await cli(['keys', 'activate', 'edhand.test', 'ed']);
  expect(activation.code).toBe(1);
  expect(activation.stderr).toMatch(/^dkim-relay: the key ed of edhand\.test stays pending: edhand\.test has no active RSA key, and an Ed25519 key never signs alone: Gmail, Outlook and Yahoo do not verify Ed25519/);
  expect(activation.stderr).not.toMatch(STACK_FRAME);
  expect((await submitError(h, { from: 'app@edhand.test', raw: rawMessage('app@edhand.test', 'user@dest.test') })).code).toBe(550);
});

test('keygen refuses 1024-bit keys, saying why', async () => {
  const r = await cli(['keygen', '--domain', 'weak.test', '--bits', '1024']);
  expect(r.code).toBe(1);
  expect(r.stderr).toBe('dkim-relay: 1024-bit keys are below what Gmail/Outlook/Yahoo expect (RFC 8301 sets 1024 bits as the minimum, providers want 2048): ' +
    'use --bits 2048 (the default), 3072 or 4096\n');
  expect(fs.existsSync(path.join(h.config.keysDir, 'weak.test'))).toBe(false);
});

test('keys activate says what DNS returned: nothing, or no answer at all', async () => {
  const record = await keygen('late.test', ['--selector', 's1']);
  const none = await cli(['keys', 'activate', 'late.test', 's1']);
  expect(none.code).toBe(1);
  expect(none.stderr).toContain('the key s1 of late.test stays pending: DNS has no record at s1._domainkey.late.test (NXDOMAIN: the name does not exist)');

  const silent = dgram.createSocket('udp4');
  await new Promise<void>((r) => silent.bind(0, '127.0.0.1', () => r()));
  try {
    const timeout = await cli(['keys', 'activate', 'late.test', 's1'], { RELAY_DNS_SERVERS: `127.0.0.1:${silent.address().port}`, RELAY_DNS_TIMEOUT: '1' });
    expect(timeout.code).toBe(1);
    expect(timeout.stderr).toContain('looking up TXT s1._domainkey.late.test failed: no answer in time (timeout); check dns.servers (RELAY_DNS_SERVERS)');
    expect(timeout.stderr).not.toMatch(STACK_FRAME);
  } finally {
    silent.close();
  }
  // keys record prints the same record again; once published, the relay activates it on its own
  publish(record);
  await waitForLog(h, (l) => l.domain === 'late.test' && /is now active/.test(String(l.msg)), 10000);
  const again = await cli(['keys', 'record', 'late.test', 's1', '--format', 'value']);
  expect(again.stdout).toBe(`${record.strings.join('')}\n`);
});
