// Issue 16, items 3, 4 and 5, through the real `dkim-relay` command: typos in RELAY_*
// variables are refused with the closest name; a port in use, a DNS server given by name and
// a size with a unit get a message naming the setting (no stack trace); `help`, `help
// COMMAND`, `COMMAND --help` and `config show [--json]` work; when a check fails the CLI
// says which key store and DNS servers it used.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { BIN, ensureBuilt, NODE } from '../helpers/built-cli';
import { generateKey } from '../../src/dkim/keygen';
import { startDnsServer, TestDnsServer } from '../helpers/dns-server';

const STACK_FRAME = /^\s+at .+(:\d+:\d+\)?|\(node:.+\))$/m;
const COMMANDS = ['serve', 'keygen', 'keys', 'users', 'doctor', 'queue', 'config'];

interface RunResult { code: number; stdout: string; stderr: string }

let dir: string;
let env: Record<string, string>;

/** `dkim-relay ARGS` in `dir` with only `extra` RELAY_* variables besides the folders. */
function run(args: string[], extra: Record<string, string> = {}, timeoutMs = 20000): Promise<RunResult> {
  const clean: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('RELAY_')) clean[k] = v;
  return new Promise((resolve) => {
    execFile(NODE, [BIN, ...args], { cwd: dir, env: { ...clean, ...env, ...extra }, timeout: timeoutMs }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
    });
  });
}

beforeAll(() => {
  ensureBuilt();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dkim-relay-first-run-'));
  env = {
    RELAY_DATA_DIR: path.join(dir, 'data'),
    RELAY_KEYS_DIR: path.join(dir, 'keys'),
    RELAY_USERS_FILE: path.join(dir, 'users.json'),
  };
}, 120000);

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('unknown RELAY_* variables are refused, naming the closest setting', () => {
  test.each([
    ['RELAY_SUBMISION_PORT', '2600', 'RELAY_SUBMISSION_PORT'],
    ['RELAY_DNS_SERVER', '127.0.0.1', 'RELAY_DNS_SERVERS'],
  ])('%s', async (name, value, meant) => {
    for (const args of [['serve'], ['keys', 'list', '--no-dns']]) {
      const r = await run(args, { [name]: value });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`unknown environment variable ${name}: did you mean ${meant}?`);
      expect(r.stderr).not.toMatch(STACK_FRAME);
      expect(r.stdout).toBe('');
    }
  });

  test('RELAY_PASSWORD (the app password of the README example) is not a setting but is let through', async () => {
    const r = await run(['keys', 'list', '--no-dns'], { RELAY_PASSWORD: 'x' });
    expect(r.code).toBe(0);
  });
});

describe('user errors name the setting and the fix, without a stack trace', () => {
  test('a submission port in use', async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as net.AddressInfo).port;
    try {
      const r = await run(['serve'], { RELAY_SUBMISSION_PORT: String(port), RELAY_LOG_LEVEL: 'error' });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`submission.port (env RELAY_SUBMISSION_PORT) is ${port}, but 127.0.0.1:${port} is already in use`);
      expect(r.stderr).toMatch(/choose a free port with RELAY_SUBMISSION_PORT/);
      expect(r.stderr).not.toMatch(/unexpected error/);
      expect(r.stderr).not.toMatch(STACK_FRAME);

      const tls = await run(['serve'], { RELAY_SUBMISSION_PORT: '0', RELAY_SUBMISSION_TLS_PORT: String(port), RELAY_LOG_LEVEL: 'error' });
      expect(tls.code).toBe(1);
      expect(tls.stderr).toContain(`submission.tlsPort (env RELAY_SUBMISSION_TLS_PORT) is ${port}, but 127.0.0.1:${port} is already in use`);
      expect(tls.stderr).not.toMatch(STACK_FRAME);
    } finally {
      blocker.close();
    }
  });

  test('a data dir that is a file', async () => {
    const file = path.join(dir, 'not-a-folder');
    fs.writeFileSync(file, '');
    const r = await run(['serve'], { RELAY_DATA_DIR: file, RELAY_SUBMISSION_PORT: '0', RELAY_LOG_LEVEL: 'error' });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`dataDir (env RELAY_DATA_DIR) ${file} is a file, not a folder (EEXIST)`);
    expect(r.stderr).not.toMatch(STACK_FRAME);
  });

  test('a DNS server given by name', async () => {
    const r = await run(['keys', 'list'], { RELAY_DNS_SERVERS: 'localhost:53' });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/setting "dns\.servers" \(env RELAY_DNS_SERVERS\): "localhost:53" names a host, but DNS servers must be IP addresses/);
    expect(r.stderr).not.toMatch(STACK_FRAME);
  });

  test('sizes take K, M and G; a bad one says which units there are', async () => {
    const ok = await run(['config', 'show', '--json'], { RELAY_MAX_SIZE: '50M', RELAY_MAX_HEADER_SIZE: '512K' });
    expect(ok.code).toBe(0);
    const shown = JSON.parse(ok.stdout) as Record<string, { value: unknown }>;
    expect(shown['submission.maxSize'].value).toBe(50 * 1024 * 1024);
    expect(shown['submission.maxHeaderSize'].value).toBe(512 * 1024);
    const bad = await run(['serve'], { RELAY_MAX_SIZE: '50 megs' });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/setting "submission\.maxSize" \(env RELAY_MAX_SIZE\): must be a size: .*K, M or G.*value was "50 megs"/);
  });
});

describe('help', () => {
  test('dkim-relay help lists every command, on stdout, exit 0', async () => {
    const r = await run(['help']);
    expect(r.code).toBe(0);
    for (const c of [...COMMANDS, 'help']) expect(r.stdout).toMatch(new RegExp(`^  ${c}\\s`, 'm'));
  });

  test.each(COMMANDS)('help %s and COMMAND --help print its usage and options', async (command) => {
    const viaHelp = await run(['help', command]);
    const viaFlag = await run([command, '--help']);
    expect(viaHelp.code).toBe(0);
    expect(viaFlag).toEqual(viaHelp);
    expect(viaHelp.stdout).toMatch(new RegExp(`^usage: dkim-relay (\\[--config FILE\\] )?${command}\\b`));
    expect(viaHelp.stdout).not.toMatch(/^commands:/m); // not the global list
  });

  test('help works while a setting is wrong, and a typo of a command is a usage error', async () => {
    expect((await run(['keys', '--help'], { RELAY_SUBMISSION_PORT: '99999' })).code).toBe(0);
    const r = await run(['help', 'kes']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/no help for "kes"/);
  });

  test('keygen --help lists its options', async () => {
    const r = await run(['keygen', '-h']);
    for (const option of ['--domain', '--selector', '--algorithm', '--bits', '--format']) expect(r.stdout).toContain(option);
  });
});

describe('config show', () => {
  test('each setting with its value and where it came from; secrets masked', async () => {
    const file = path.join(dir, 'relay.json');
    fs.writeFileSync(file, JSON.stringify({ delivery: { heloName: 'relay.example.net' }, dns: { timeout: '3s' } }));
    const r = await run(['--config', file, 'config', 'show', '--json'], { RELAY_SUBMISSION_PORT: '2600' });
    expect(r.code).toBe(0);
    const shown = JSON.parse(r.stdout) as Record<string, { value: unknown; source: string; from?: string }>;
    expect(shown['submission.port']).toEqual({ value: 2600, source: 'environment', from: 'RELAY_SUBMISSION_PORT' });
    expect(shown['delivery.heloName']).toEqual({ value: 'relay.example.net', source: 'config file', from: file });
    expect(shown['dns.timeout']).toEqual({ value: 3, source: 'config file', from: file });
    expect(shown['delivery.mxPort']).toEqual({ value: 25, source: 'default' });
    expect(shown.keysDir).toEqual({ value: env.RELAY_KEYS_DIR, source: 'environment', from: 'RELAY_KEYS_DIR' });
    expect(Object.keys(shown)).toContain('log.level');

    const text = await run(['--config', file, 'config', 'show'], { RELAY_SUBMISSION_PORT: '2600' });
    expect(text.stdout).toMatch(/^submission\.port = 2600\s+# environment RELAY_SUBMISSION_PORT$/m);
    expect(text.stdout).toMatch(/^delivery\.mxPort = 25\s+# default$/m);
    const changed = await run(['--config', file, 'config', 'show', '--changed'], { RELAY_SUBMISSION_PORT: '2600' });
    expect(changed.stdout).not.toMatch(/delivery\.mxPort/);
    expect(changed.stdout).toMatch(/^delivery\.heloName = relay\.example\.net\s+# config file /m);
  });

  test('the password in redis.url is masked; the rest of the URL is shown', async () => {
    const r = await run(['config', 'show'], { RELAY_REDIS_URL: 'redis://:s3cret-pw@10.0.0.5:6379/2', RELAY_NODE_NAME: 'relay-a' });
    expect(r.code).toBe(0);
    expect(r.stdout).not.toContain('s3cret-pw');
    expect(r.stdout).toMatch(/^redis\.url = redis:\/\/:\*{8}@10\.0\.0\.5:6379\/2\s+# environment RELAY_REDIS_URL$/m);
    expect(r.stdout).toMatch(/^node\.name = relay-a\s+# environment RELAY_NODE_NAME$/m);
    const bad = await run(['config', 'show'], { RELAY_REDIS_URL: 'localhost:6379' });
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('must be a Redis URL such as redis://127.0.0.1:6379');
  });

  test('a private key given inline is masked', async () => {
    const pem = '-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n';
    const r = await run(['config', 'show', '--json'], { RELAY_TLS_KEY: pem });
    expect(r.code).toBe(0);
    expect(r.stdout).not.toContain('MIIEvQ');
    expect((JSON.parse(r.stdout) as Record<string, { value: unknown }>)['tls.key'].value).toBe('(private key given inline: not shown)');
  });
});

describe('a failed check says which key store and DNS servers the CLI used', () => {
  let dns: TestDnsServer;
  beforeAll(async () => {
    dns = await startDnsServer({ host: '127.0.0.1' });
  });
  afterAll(() => dns.close());

  test('keys list with a record missing, and keys activate refused', async () => {
    await generateKey(env.RELAY_KEYS_DIR, { domain: 'example.org', selector: 's1' });
    const dnsEnv = { RELAY_DNS_SERVERS: dns.address, RELAY_DNS_TIMEOUT: '2' };
    const list = await run(['keys', 'list'], dnsEnv);
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/^example\.org\s+s1\s+rsa\s+2048\s+pending\s.*\smissing\s+no$/m);
    const used = `This used keys dir ${env.RELAY_KEYS_DIR} (keysDir, from RELAY_KEYS_DIR) and DNS servers ${dns.address} (dns.servers, from RELAY_DNS_SERVERS).`;
    expect(list.stderr).toContain(used);
    expect(list.stderr).toContain('`dkim-relay config show`');
    const activate = await run(['keys', 'activate', 'example.org', 's1'], dnsEnv);
    expect(activate.code).toBe(1);
    expect(activate.stderr).toContain(used);
  });
});
