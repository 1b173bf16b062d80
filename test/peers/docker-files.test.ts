// No Docker engine runs here, so the container files are checked as far as that allows:
// docker-compose (Debian's, installed by .ci/run) validates docker-compose.yml; the
// Dockerfile's runtime stage is replayed outside Docker (production dependencies only,
// the built dist/, as a non-root user's relay would run) and its health check command is
// run against that relay.
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import YAML from 'yaml';
import { freePort } from '../helpers/sink';

const run = promisify(execFile);
const ROOT = path.join(__dirname, '..', '..');
const NODE = path.join(ROOT, 'node_modules', '.bin', 'node');
const dockerfile = fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');

test('docker-compose.yml is valid and runs the relay on the host network with volumes, health check and restart', async () => {
  const { stdout } = await run('docker-compose', ['-f', path.join(ROOT, 'docker-compose.yml'), 'config']);
  const service = YAML.parse(stdout).services['dkim-relay'];
  expect(service.network_mode).toBe('host');
  expect(service.restart).toBe('unless-stopped');
  expect(service.healthcheck.test[0]).toBe('CMD');
  const targets = service.volumes.map((v: { target: string } | string) => (typeof v === 'string' ? v.split(':')[1] : v.target));
  expect(targets.sort()).toEqual(['/etc/dkim-relay', '/var/lib/dkim-relay/data', '/var/lib/dkim-relay/keys']);
  expect(service.environment).toMatchObject({
    RELAY_KEYS_DIR: '/var/lib/dkim-relay/keys', RELAY_DATA_DIR: '/var/lib/dkim-relay/data', RELAY_USERS_FILE: '/etc/dkim-relay/users.json',
  });
});

test('Dockerfile: Node 24, production dependencies only, non-root, health check', () => {
  expect(dockerfile).toMatch(/^FROM node:24-slim$/m);
  expect(dockerfile).toMatch(/npm ci --omit=dev/);
  expect(dockerfile).toMatch(/^USER node$/m);
  expect(dockerfile).toMatch(/^HEALTHCHECK /m);
  for (const [, src] of dockerfile.matchAll(/^COPY (?!--from)(\S+)/gm)) {
    expect(fs.existsSync(path.join(ROOT, src))).toBe(true);
  }
});

test('the runtime stage, replayed: a production install serves, and the health check passes', async () => {
  const app = fs.mkdtempSync(path.join(os.tmpdir(), 'dkim-relay-image-'));
  try {
    for (const f of ['package.json', 'package-lock.json']) fs.copyFileSync(path.join(ROOT, f), path.join(app, f));
    await run('npm', ['ci', '--omit=dev', '--no-audit', '--no-fund', '--ignore-scripts', '--prefer-offline'], { cwd: app, env: { ...process.env, NODE_ENV: 'production' } });
    expect(fs.existsSync(path.join(app, 'node_modules', 'typescript'))).toBe(false);
    fs.cpSync(path.join(ROOT, 'dist'), path.join(app, 'dist'), { recursive: true });
    fs.cpSync(path.join(ROOT, 'bin'), path.join(app, 'bin'), { recursive: true });
    fs.mkdirSync(path.join(app, 'config'));
    fs.copyFileSync(path.join(ROOT, 'config', 'default.json'), path.join(app, 'config', 'default.json'));

    const port = await freePort('127.0.0.1');
    const relay = spawn(NODE, ['bin/dkim-relay.js', 'serve'], {
      cwd: app,
      env: { PATH: process.env.PATH, RELAY_SUBMISSION_PORT: String(port), RELAY_DATA_DIR: path.join(app, 'data'), RELAY_KEYS_DIR: path.join(app, 'keys'), RELAY_USERS_FILE: path.join(app, 'users.json') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    relay.stdout.on('data', (d) => (output += d));
    relay.stderr.on('data', (d) => (output += d));
    try {
      await waitForPort(port, 15000, () => output);
      const check = /CMD node -e "(.*)"$/m.exec(dockerfile)![1].replace(/\\"/g, '"');
      const health = await run(NODE, ['-e', check], { env: { ...process.env, RELAY_SUBMISSION_PORT: String(port) } }).then(() => 0, (e) => e.code);
      expect(health).toBe(0);
    } finally {
      relay.kill('SIGTERM');
      await new Promise((r) => relay.once('exit', r));
    }
    // and the health check fails when nothing listens
    const down = await run(NODE, ['-e', /CMD node -e "(.*)"$/m.exec(dockerfile)![1]], { env: { ...process.env, RELAY_SUBMISSION_PORT: String(port) } }).then(() => 0, (e) => e.code);
    expect(down).not.toBe(0);
  } finally {
    fs.rmSync(app, { recursive: true, force: true });
  }
}, 120000);

async function waitForPort(port: number, timeoutMs: number, output: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`relay did not listen on ${port}: ${output()}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
