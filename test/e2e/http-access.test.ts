// Who may read the HTTP listener, and when it says "ready": with http.token every path needs
// the bearer token (401 without it or with a wrong one); a listener beyond loopback without a
// token is refused at start with the setting to add; the token is never logged or shown by
// `config show`. /readyz turns 503, with the reason, when the spool cannot be written (the
// data dir on a small tmpfs, filled up: mounting needs root, which the tests run as).
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { configCommand } from '../../src/cli/config-command';
import { loadConfigWithOrigins } from '../../src/config/load';
import { ensureBuilt, NODE, ROOT } from '../helpers/built-cli';
import { capturedContext } from '../helpers/cli-context';
import { get } from '../helpers/http-client';
import { Harness, startHarness } from '../helpers/relay-harness';
import { runCli, setupRelayFolders } from '../helpers/relay-process';

const TOKEN = 'tok-9f8e7d6c5b4a39281706f5e4d3c2b1a0';
const PATHS = ['/', '/metrics', '/healthz', '/readyz'];

/** bin/healthcheck.js, the image's HEALTHCHECK, with these variables: its exit code and line. */
function healthcheck(env: Record<string, string>): Promise<{ code: number; output: string }> {
  const clean: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('RELAY_')) clean[k] = v;
  return new Promise((resolve) => {
    execFile(NODE, [path.join(ROOT, 'bin', 'healthcheck.js')], { env: { ...clean, ...env }, timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, output: stdout + stderr });
    });
  });
}

let h: Harness;
let mountDir: string;
let port: number;

beforeAll(async () => {
  mountDir = fs.mkdtempSync(path.join(os.tmpdir(), 'dkim-relay-tmpfs-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', mountDir], { stdio: 'pipe' });
  } catch (err) {
    throw new Error(`this test mounts a small tmpfs and needs root: ${(err as { stderr?: Buffer }).stderr?.toString() ?? err}`);
  }
  h = await startHarness({ RELAY_DATA_DIR: path.join(mountDir, 'data'), RELAY_MX_PORT: '9', RELAY_HTTP_LISTEN: '127.0.0.1:0', RELAY_HTTP_TOKEN: TOKEN });
  port = h.relay.http!.port;
});

afterAll(async () => {
  await h?.stop();
  if (mountDir) {
    execFileSync('umount', [mountDir], { stdio: 'pipe' });
    fs.rmdirSync(mountDir);
  }
});

test('with http.token, every path answers 401 without the token or with a wrong one, 200 with it', async () => {
  for (const p of PATHS) {
    const none = await get(port, p);
    expect([p, none.status]).toEqual([p, 401]);
    expect(none.headers.get('www-authenticate')).toBe('Bearer realm="dkim-relay"');
    expect(none.body).toMatch(/RELAY_HTTP_TOKEN/);
    expect([p, (await get(port, p, 'wrong')).status]).toEqual([p, 401]);
    expect([p, (await get(port, p, TOKEN.slice(0, -1))).status]).toEqual([p, 401]);
    expect([p, (await get(port, p, `${TOKEN}x`)).status]).toEqual([p, 401]);
    expect([p, (await get(port, p, TOKEN)).status]).toEqual([p, 200]);
  }
  // Basic with the token as password is not a bearer token
  const basic = await fetch(`http://127.0.0.1:${port}/healthz`, { headers: { Authorization: `Basic ${Buffer.from(`x:${TOKEN}`).toString('base64')}` } });
  expect(basic.status).toBe(401);
  expect((await get(port, '/nothing-here', TOKEN)).status).toBe(404);
});

test('/healthz and /readyz answer JSON with their reasons', async () => {
  const health = await get(port, '/healthz', TOKEN);
  expect(health.headers.get('content-type')).toBe('application/json');
  expect(JSON.parse(health.body)).toMatchObject({ status: 'alive' });
  const ready = JSON.parse((await get(port, '/readyz', TOKEN)).body);
  expect(ready.status).toBe('ready');
  expect(ready.checks.map((c: { name: string; ok: boolean }) => [c.name, c.ok])).toEqual([['spool', true], ['submission', true], ['identity', true]]);
});

test('/readyz is 503 while the spool cannot be written (file system full), and 200 again once there is room', async () => {
  const filler = path.join(mountDir, 'filler');
  const fd = fs.openSync(filler, 'w');
  try {
    for (;;) fs.writeSync(fd, Buffer.alloc(64 * 1024, 1));
  } catch (err) {
    expect((err as NodeJS.ErrnoException).code).toBe('ENOSPC');
  } finally {
    fs.closeSync(fd);
  }
  // the last pages may take a few bytes more: fill them too
  try {
    for (;;) fs.appendFileSync(filler, 'x');
  } catch { /* full */ }
  try {
    const res = await get(port, '/readyz', TOKEN);
    expect(res.status).toBe(503);
    const body = JSON.parse(res.body);
    expect(body.status).toBe('not ready');
    const spool = body.checks.find((c: { name: string }) => c.name === 'spool');
    expect(spool.ok).toBe(false);
    expect(spool.detail).toMatch(/cannot be written \(ENOSPC: the file system is full\)/);
    // alive all the same
    expect((await get(port, '/healthz', TOKEN)).status).toBe(200);
    // the image's health check says unhealthy, and why
    const check = await healthcheck({ RELAY_HTTP_LISTEN: `127.0.0.1:${port}`, RELAY_HTTP_TOKEN: TOKEN });
    expect(check.code).toBe(1);
    expect(check.output).toMatch(/^not healthy: \/readyz answered 503 .*ENOSPC/);
  } finally {
    fs.rmSync(filler);
  }
  expect((await get(port, '/readyz', TOKEN)).status).toBe(200);
  expect(fs.readdirSync(path.join(mountDir, 'data', 'spool-tmp'))).toEqual([]);
});

test('the image\'s health check (bin/healthcheck.js): /readyz with the token when RELAY_HTTP_LISTEN is set, else the 220 greeting', async () => {
  expect(await healthcheck({ RELAY_HTTP_LISTEN: `127.0.0.1:${port}`, RELAY_HTTP_TOKEN: TOKEN })).toEqual({ code: 0, output: '' });
  const wrong = await healthcheck({ RELAY_HTTP_LISTEN: `127.0.0.1:${port}`, RELAY_HTTP_TOKEN: 'wrong' });
  expect(wrong.code).toBe(1);
  expect(wrong.output).toMatch(/^not healthy: \/readyz answered 401/);
  // a listener on all addresses is asked on loopback
  expect((await healthcheck({ RELAY_HTTP_LISTEN: `0.0.0.0:${port}`, RELAY_HTTP_TOKEN: TOKEN })).code).toBe(0);
  expect(await healthcheck({ RELAY_SUBMISSION_HOST: '127.0.0.1', RELAY_SUBMISSION_PORT: String(h.relay.ports.starttls) })).toEqual({ code: 0, output: '' });
  const closed = await healthcheck({ RELAY_SUBMISSION_HOST: '127.0.0.1', RELAY_SUBMISSION_PORT: '9' });
  expect(closed.code).toBe(1);
  expect(closed.output).toMatch(/^not healthy: submission port 127\.0\.0\.1:9: connect ECONNREFUSED/);
});

test('the token appears in no log line and not in config show', async () => {
  expect(fs.readFileSync(h.logFile, 'utf8')).not.toContain(TOKEN);
  expect(fs.readFileSync(h.logFile, 'utf8')).toMatch(/HTTP listening/);
  const { config, origins } = loadConfigWithOrigins({ env: { ...h.env, RELAY_HTTP_TOKEN: TOKEN } });
  const { ctx, out } = capturedContext(config);
  await configCommand(['show'], { ...ctx, origins });
  expect(out.stdout).toMatch(/^http\.token = \*{8}\s+# environment RELAY_HTTP_TOKEN$/m);
  expect(out.stdout).not.toContain(TOKEN);
});

test('serve refuses a listener beyond loopback without a token, naming the setting to add', async () => {
  ensureBuilt();
  const s = await setupRelayFolders({ RELAY_HTTP_LISTEN: '0.0.0.0:0' });
  try {
    const r = await runCli(s, ['serve']);
    expect(r.code).toBe(1);
    expect(r.output).toMatch(/http\.listen \(env RELAY_HTTP_LISTEN\) is 0\.0\.0\.0:0, beyond loopback, and http\.token \(env RELAY_HTTP_TOKEN\) is empty/);
    expect(r.output).toMatch(/Set RELAY_HTTP_TOKEN/);
    expect(r.output).not.toMatch(/\n\s+at /); // no stack trace
  } finally {
    await s.dns.close();
    fs.rmSync(s.dir, { recursive: true, force: true });
  }
}, 30_000);

/** Writes raw bytes to the HTTP listener and returns what comes back before it closes (or 5 s pass). */
function rawHttp(port: number, bytes: string | Buffer): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const done = () => resolve(Buffer.concat(chunks).toString('latin1'));
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('close', done);
    socket.on('error', () => undefined);
    socket.setTimeout(5000, () => socket.destroy());
    socket.end(bytes);
  });
}

test('hostile HTTP clients: junk, odd bytes in the path, other methods, a huge header, a token in the query: refused, and the listener goes on', async () => {
  const port = h.relay.http!.port;
  const auth = `Authorization: Bearer ${TOKEN}\r\n`;
  expect(await rawHttp(port, '\x16\x03\x01\x00\xa5junk that is no HTTP\r\n\r\n')).toMatch(/^HTTP\/1\.1 400 /);
  expect(await rawHttp(port, `GET /%00%ff/..%2f..%2fetc/passwd HTTP/1.1\r\nHost: x\r\n${auth}Connection: close\r\n\r\n`)).toMatch(/^HTTP\/1\.1 404 [\s\S]*no such path/);
  expect(await rawHttp(port, `POST /metrics HTTP/1.1\r\nHost: x\r\n${auth}Content-Length: 3\r\nConnection: close\r\n\r\nabc`)).toMatch(/^HTTP\/1\.1 405 [\s\S]*Allow: GET, HEAD/);
  expect(await rawHttp(port, `GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(64 * 1024)}\r\n${auth}Connection: close\r\n\r\n`)).toMatch(/^HTTP\/1\.1 431 /);
  // the token is only taken from the Authorization header
  expect(await rawHttp(port, `GET /metrics?token=${TOKEN} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`)).toMatch(/^HTTP\/1\.1 401 /);
  expect((await get(port, '/healthz', TOKEN)).status).toBe(200);
});
