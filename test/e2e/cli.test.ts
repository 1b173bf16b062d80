// The dkim-relay command as users run it: `node bin/dkim-relay.js ...` as a child process
// with RELAY_* variables, in a scratch folder. Covers serve (EHLO, SIGTERM), the config
// errors a user sees, keygen's output split (record on stdout, explanation on stderr),
// users add/list against a running relay, and an unknown command.
import { ChildProcess, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import nodemailer from 'nodemailer';
import { verifyDkim } from '../helpers/dkim-verify';
import { connectRaw } from '../helpers/raw-smtp';
import { rawMessage } from '../helpers/relay-harness';
import { BIN, ensureBuilt, NODE } from '../helpers/built-cli';
import { startDnsServer, TestDnsServer } from '../helpers/dns-server';
import { freePort, Sink, startSink } from '../helpers/sink';

/** The Node.js 24 of the `node` devDependency; the system one may be too old. */
const STACK_FRAME = /^\s+at .+(:\d+:\d+\)?|\(node:.+\))$/m;

interface RunResult { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }

/** The test process's environment without any RELAY_* setting, plus `env`. */
function cliEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  const clean: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('RELAY_')) clean[k] = v;
  return { ...clean, ...env };
}

function start(args: string[], opts: { env?: Record<string, string>; cwd: string }): ChildProcess {
  return spawn(NODE, [BIN, ...args], { cwd: opts.cwd, env: cliEnv(opts.env ?? {}), stdio: ['pipe', 'pipe', 'pipe'] });
}

function collect(child: ChildProcess, input?: string, timeoutMs = 20000): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on('data', (c: Buffer) => out.push(c));
    child.stderr!.on('data', (c: Buffer) => err.push(c));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`dkim-relay did not exit within ${timeoutMs} ms; stderr: ${Buffer.concat(err).toString()}`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() });
    });
    child.stdin!.on('error', () => undefined);
    child.stdin!.end(input ?? '');
  });
}

function run(args: string[], opts: { env?: Record<string, string>; cwd: string; input?: string }): Promise<RunResult> {
  return collect(start(args, opts), opts.input);
}

/** AUTH PLAIN over a fresh plain connection from loopback (a plain-AUTH network by default). */
async function authReply(port: number, user: string, pass: string): Promise<string> {
  const s = await connectRaw(port);
  try {
    await s.reply();
    await s.command('EHLO client.test');
    return await s.command(`AUTH PLAIN ${Buffer.from(`\0${user}\0${pass}`).toString('base64')}`);
  } finally {
    s.end();
  }
}

let dir: string;
let env: Record<string, string>;

beforeAll(() => {
  ensureBuilt();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dkim-relay-cli-'));
  env = {
    RELAY_DATA_DIR: path.join(dir, 'data'),
    RELAY_KEYS_DIR: path.join(dir, 'keys'),
    RELAY_USERS_FILE: path.join(dir, 'users.json'),
  };
}, 120000);

afterAll(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('configuration errors stop the start with a message, no stack trace', () => {
  const cases: [string, Record<string, string>, string[], RegExp[]][] = [
    ['a port out of range', { RELAY_SUBMISSION_PORT: '99999' }, [], [/submission\.port/, /99999/, /RELAY_SUBMISSION_PORT/]],
    ['a malformed network', { RELAY_TRUSTED_NETWORKS: '10.0.0/8' }, [], [/trustedNetworks/, /10\.0\.0\/8/, /RELAY_TRUSTED_NETWORKS/]],
  ];
  test.each(cases)('%s', async (_name, extra, args, expected) => {
    const r = await run([...args, 'serve'], { cwd: dir, env: { ...env, ...extra } });
    expect(r.code).not.toBe(0);
    expect(r.code).not.toBeNull();
    for (const re of expected) expect(r.stderr).toMatch(re);
    expect(r.stderr).not.toMatch(STACK_FRAME);
    expect(r.stdout).toBe('');
  });

  test('an unknown key in a --config file', async () => {
    const file = path.join(dir, 'typo.json');
    fs.writeFileSync(file, JSON.stringify({ submission: { prot: 2525 } }));
    const r = await run(['--config', file, 'serve'], { cwd: dir, env });
    expect(r.code).not.toBe(0);
    expect(r.code).not.toBeNull();
    expect(r.stderr).toMatch(/unknown setting "submission\.prot"/);
    expect(r.stderr).not.toMatch(STACK_FRAME);
  });

  test('a bad value in a --config file names the key and the value', async () => {
    const file = path.join(dir, 'bad.json');
    fs.writeFileSync(file, JSON.stringify({ signing: { unsignedPolicy: 'sometimes' } }));
    const r = await run(['--config', file, 'serve'], { cwd: dir, env });
    expect(r.code).not.toBe(0);
    expect(r.code).not.toBeNull();
    expect(r.stderr).toMatch(/signing\.unsignedPolicy/);
    expect(r.stderr).toMatch(/sometimes/);
    expect(r.stderr).toMatch(/refuse/); // what is allowed
    expect(r.stderr).not.toMatch(STACK_FRAME);
  });
});

test('an unknown command: exit 2 with the usage', async () => {
  const r = await run(['frobnicate'], { cwd: dir, env });
  expect(r.code).toBe(2);
  expect(r.stderr).toMatch(/unknown command "frobnicate"/);
  expect(r.stderr).toMatch(/usage: dkim-relay/);
  expect(r.stderr).toMatch(/\bserve\b/);
  expect(r.stderr).not.toMatch(STACK_FRAME);
  expect(r.stdout).toBe('');
});

/** Parses `name. TTL IN TXT ( "part" "part" )` into the name and the joined value. */
function parseZoneRecord(line: string): { name: string; value: string } {
  const m = /^(\S+)\s+(?:\d+\s+)?IN\s+TXT\s+\(?\s*((?:"[^"]*"\s*)+)\)?$/.exec(line);
  if (!m) throw new Error(`not a zone-file TXT record: ${line}`);
  const parts = [...m[2].matchAll(/"([^"]*)"/g)].map((x) => x[1]);
  for (const p of parts) expect(p.length).toBeLessThanOrEqual(255);
  return { name: m[1], value: parts.join('') };
}

describe('keygen, users and serve in one folder', () => {
  let record: { name: string; value: string };
  let sink: Sink;
  let relay: ChildProcess;
  let relayExit: Promise<RunResult>;
  let port: number;
  let dns: TestDnsServer;

  beforeAll(async () => {
    sink = await startSink({ host: '127.0.0.3' });
    dns = await startDnsServer();
  });

  afterAll(async () => {
    if (relay && relay.exitCode === null && relay.signalCode === null) {
      relay.kill('SIGKILL');
      await relayExit.catch(() => undefined);
    }
    await sink?.close();
    await dns?.close();
  });

  test('keygen prints only the zone-file record on stdout, the explanation on stderr; the key file is 0600', async () => {
    const r = await run(['keygen', '--domain', 'example.org', '--selector', 's1'], { cwd: dir, env });
    expect(r.code).toBe(0);
    const out = r.stdout.split('\n').filter(Boolean);
    expect(out).toHaveLength(1);
    record = parseZoneRecord(out[0]);
    expect(record.name).toBe('s1._domainkey.example.org.');
    const tags = Object.fromEntries(record.value.split(';').map((t) => t.trim()).filter(Boolean).map((t) => [t.split('=')[0], t.slice(t.indexOf('=') + 1)]));
    expect(tags.v).toBe('DKIM1');
    expect(tags.k).toBe('rsa');
    const publicKey = crypto.createPublicKey({ key: Buffer.from(tags.p, 'base64'), format: 'der', type: 'spki' });
    expect(publicKey.asymmetricKeyDetails?.modulusLength).toBe(2048);

    expect(r.stderr).toMatch(/s1\._domainkey\.example\.org/);
    expect(r.stderr).not.toContain(tags.p.slice(0, 40)); // the record itself is on stdout only

    const keyFile = /key file: (\S+)/.exec(r.stderr)?.[1];
    expect(keyFile).toBeDefined();
    expect(path.resolve(dir, keyFile!).startsWith(env.RELAY_KEYS_DIR)).toBe(true);
    expect(fs.statSync(path.resolve(dir, keyFile!)).mode & 0o777).toBe(0o600);
    // the private key in the file belongs to the published public key
    const privateKey = crypto.createPrivateKey(fs.readFileSync(path.resolve(dir, keyFile!)));
    expect(crypto.createPublicKey(privateKey).export({ format: 'der', type: 'spki' }).toString('base64')).toBe(tags.p);
  });

  test('the new key is pending; once its record is published, keys activate makes it active', async () => {
    const dnsEnv = { ...env, RELAY_DNS_SERVERS: dns.address };
    const refused = await run(['keys', 'activate', 'example.org', 's1'], { cwd: dir, env: dnsEnv });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/s1\._domainkey\.example\.org/);
    dns.set(record.name, 'TXT', [record.value]);
    const activated = await run(['keys', 'activate', 'example.org', 's1'], { cwd: dir, env: dnsEnv });
    expect(activated.code).toBe(0);
    expect(activated.stdout + activated.stderr).toMatch(/Activated the key s1 of example\.org/);
  });

  test('serve starts on the given port and offers the extensions in EHLO', async () => {
    port = await freePort();
    relay = start(['serve'], {
      cwd: dir,
      env: {
        ...env,
        RELAY_SUBMISSION_PORT: String(port),
        RELAY_SMARTHOST: `127.0.0.3:${sink.port}`,
        RELAY_LOCAL_ADDRESS: '127.0.0.2',
        RELAY_HELO_NAME: 'relay.example.net',
        RELAY_AUTH_MAX_FAILURES: '1000',
        RELAY_AUTH_FAILURE_DELAY: '0',
      },
    });
    relayExit = collect(relay, undefined, 60000);
    let stdout = '';
    relay.stdout!.on('data', (c: Buffer) => { stdout += c.toString(); });
    const deadline = Date.now() + 15000;
    while (!/submission listening/.test(stdout)) {
      if (relay.exitCode !== null) throw new Error(`serve exited early: ${JSON.stringify(await relayExit)}`);
      if (Date.now() > deadline) throw new Error(`serve did not report listening; stdout: ${stdout}`);
      await new Promise((r) => setTimeout(r, 50));
    }

    const s = await connectRaw(port);
    try {
      expect(await s.reply()).toMatch(/^220 /);
      const ehlo = (await s.command('EHLO client.test')).split('\n').map((l) => l.slice(4));
      expect(ehlo).toEqual(expect.arrayContaining([
        'STARTTLS', 'AUTH PLAIN LOGIN', 'PIPELINING', '8BITMIME', 'SMTPUTF8', 'ENHANCEDSTATUSCODES', `SIZE ${50 * 1024 * 1024}`,
      ]));
    } finally {
      s.end();
    }
  });

  test('users add on a running relay: AUTH works without a restart, and users list never shows the hash', async () => {
    expect(relay).toBeDefined();
    const password = 'tr0ub4dor & 3';
    expect(await authReply(port, 'app1', password)).toMatch(/^535 5\.7\.8 /);

    const added = await run(['users', 'add', 'app1', '--domain', 'example.org', '--password-stdin'], { cwd: dir, env, input: `${password}\n` });
    expect(added.code).toBe(0);
    expect(added.stdout).toBe(''); // nothing to store: the password came from stdin
    expect(added.stderr).toMatch(/app1/);
    const addedAt = Date.now();

    let reply = '';
    while (Date.now() - addedAt < 2000) {
      reply = await authReply(port, 'app1', password);
      if (reply.startsWith('235')) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(reply).toMatch(/^235 /);

    const stored = JSON.parse(fs.readFileSync(env.RELAY_USERS_FILE, 'utf8')) as { users: { name: string; password: string }[] };
    const hash = stored.users.find((u) => u.name === 'app1')!.password;
    expect(hash).toMatch(/^scrypt\$/);

    const list = await run(['users', 'list', '--json'], { cwd: dir, env });
    expect(list.code).toBe(0);
    const users = JSON.parse(list.stdout) as Record<string, unknown>[];
    expect(users).toEqual([expect.objectContaining({ name: 'app1', domains: ['example.org'] })]);
    expect(users[0]).not.toHaveProperty('password');
    for (const text of [list.stdout, list.stderr]) {
      expect(text).not.toContain(hash.split('$').pop()!);
      expect(text).not.toContain('scrypt');
      expect(text).not.toContain(password);
    }
  });

  test('the user sends through the running relay; the smarthost gets a message that verifies with the keygen record', async () => {
    expect(record).toBeDefined();
    const transport = nodemailer.createTransport({
      host: '127.0.0.1', port, secure: false, requireTLS: true, tls: { rejectUnauthorized: false },
      auth: { user: 'app1', pass: 'tr0ub4dor & 3' }, connectionTimeout: 5000,
    });
    const before = sink.messages.length;
    try {
      const info = await transport.sendMail({ envelope: { from: 'app@example.org', to: ['someone@elsewhere.test'] }, raw: rawMessage('app@example.org', 'someone@elsewhere.test') });
      expect(info.response).toMatch(/^250 2\.0\.0 queued as /);
    } finally {
      transport.close();
    }
    const msg = (await sink.waitForMessages(before + 1, 15000))[before];
    expect(msg.remoteAddress).toBe('127.0.0.2');
    expect(msg.helo).toBe('relay.example.net');
    const verdict = await verifyDkim(msg.data, { [record.name.replace(/\.$/, '')]: record.value });
    expect(verdict.ok).toBe(true);
  });

  test('SIGTERM stops serve with exit code 0 and frees the port', async () => {
    expect(relay).toBeDefined();
    relay.kill('SIGTERM');
    const r = await relayExit;
    expect(r.signal).toBeNull();
    expect(r.code).toBe(0);
    expect(r.stderr).not.toMatch(STACK_FRAME);
    await expect(connectRaw(port)).rejects.toThrow(/ECONNREFUSED/);
  });
});
