// The container files, checked without a Docker engine (test/peers/docker-image.test.ts builds
// and runs the image): Debian's docker-compose (installed by .ci/run) reads docker-compose.yml
// with dkim-relay.env made from the example, and the example's settings are the relay's own.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import YAML from 'yaml';
import { loadConfig } from '../../src/config/load';
import { schema } from '../../src/config/schema';

const run = promisify(execFile);
const ROOT = path.join(__dirname, '..', '..');
const dockerfile = fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
const exampleEnv = fs.readFileSync(path.join(ROOT, 'dkim-relay.env.example'), 'utf8');

/** KEY=value lines of an env file (the format docker and both Compose versions read alike: no quotes). */
function envLines(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    if (/^\s*(#|$)/.test(line)) continue;
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line);
    if (!m) throw new Error(`not a KEY=value line: ${line}`);
    out[m[1]] = m[2];
  }
  return out;
}

function envNames(node: unknown): string[] {
  if (!node || typeof node !== 'object') return [];
  const o = node as Record<string, unknown>;
  if (typeof o.env === 'string') return [o.env];
  return Object.values(o).flatMap(envNames);
}

test('docker-compose.yml: host network, volumes, restart policy, and the settings from dkim-relay.env', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dkim-relay-compose-files-'));
  try {
    fs.copyFileSync(path.join(ROOT, 'docker-compose.yml'), path.join(dir, 'docker-compose.yml'));
    fs.writeFileSync(path.join(dir, 'dkim-relay.env'), exampleEnv.replace(/^RELAY_HELO_NAME=.*$/m, 'RELAY_HELO_NAME=relay.example.net'));
    const { stdout } = await run('docker-compose', ['config'], { cwd: dir });
    const service = YAML.parse(stdout).services['dkim-relay'];
    expect(service.network_mode).toBe('host');
    expect(service.restart).toBe('unless-stopped');
    // no health check of its own: the image's follows RELAY_SUBMISSION_HOST/PORT
    expect(service.healthcheck).toBeUndefined();
    const targets = service.volumes.map((v: { target: string } | string) => (typeof v === 'string' ? v.split(':')[1] : v.target));
    expect(targets.sort()).toEqual(['/etc/dkim-relay', '/var/lib/dkim-relay/data', '/var/lib/dkim-relay/keys']);
    expect(service.environment).toMatchObject({
      RELAY_KEYS_DIR: '/var/lib/dkim-relay/keys', RELAY_DATA_DIR: '/var/lib/dkim-relay/data', RELAY_USERS_FILE: '/etc/dkim-relay/users.json',
      RELAY_HELO_NAME: 'relay.example.net', RELAY_SUBMISSION_HOST: '0.0.0.0', RELAY_SUBMISSION_PORT: '2587',
    });

    // without dkim-relay.env, compose says which file is missing
    fs.rmSync(path.join(dir, 'dkim-relay.env'));
    const missing = await run('docker-compose', ['config'], { cwd: dir }).then(() => '', (e: { stderr: string }) => e.stderr);
    expect(missing).toMatch(/dkim-relay\.env/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('docker-compose.cluster.yml: Redis and two nodes, each its own address, HELO name, port and spool, both on the same Redis; a missing value is named', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dkim-relay-compose-cluster-'));
  try {
    fs.copyFileSync(path.join(ROOT, 'docker-compose.cluster.yml'), path.join(dir, 'docker-compose.cluster.yml'));
    fs.writeFileSync(path.join(dir, 'dkim-relay.env'), exampleEnv);
    const dotEnv = 'REDIS_PASSWORD=pw-123\nNODE_A_ADDRESS=198.51.100.25\nNODE_A_HELO=relay-a.example.net\nNODE_B_ADDRESS=198.51.100.26\nNODE_B_HELO=relay-b.example.net\n';
    fs.writeFileSync(path.join(dir, '.env'), dotEnv);
    const { stdout } = await run('docker-compose', ['-f', 'docker-compose.cluster.yml', 'config'], { cwd: dir });
    const services = YAML.parse(stdout).services;
    expect(services.redis.command).toEqual(expect.arrayContaining(['--save', '', '--appendonly', 'no', '--requirepass', 'pw-123']));
    const a = services['node-a'].environment;
    const b = services['node-b'].environment;
    expect(a).toMatchObject({ RELAY_NODE_NAME: 'node-a', RELAY_LOCAL_ADDRESS: '198.51.100.25', RELAY_HELO_NAME: 'relay-a.example.net', RELAY_SUBMISSION_PORT: '2587' });
    expect(b).toMatchObject({ RELAY_NODE_NAME: 'node-b', RELAY_LOCAL_ADDRESS: '198.51.100.26', RELAY_HELO_NAME: 'relay-b.example.net', RELAY_SUBMISSION_PORT: '2589' });
    expect(a.RELAY_REDIS_URL).toBe('redis://:pw-123@127.0.0.1:6379/0');
    expect(b.RELAY_REDIS_URL).toBe(a.RELAY_REDIS_URL);
    const spool = (svc: { volumes: ({ source: string; target: string } | string)[] }) => svc.volumes.map((v) => (typeof v === 'string' ? v : `${v.source}:${v.target}`)).find((v) => v.includes('/var/lib/dkim-relay/data'));
    expect(spool(services['node-a'])).not.toEqual(spool(services['node-b']));
    // each node's settings are accepted by the relay
    for (const env of [a, b]) expect(() => loadConfig({ env })).not.toThrow();

    // both nodes on the host's network: no port of one is a port of the other, HTTP listeners included
    fs.writeFileSync(path.join(dir, '.env'), `${dotEnv}NODE_A_HTTP_LISTEN=127.0.0.1:2588\nNODE_B_HTTP_LISTEN=127.0.0.1:2590\n`);
    const withHttp = YAML.parse((await run('docker-compose', ['-f', 'docker-compose.cluster.yml', 'config'], { cwd: dir })).stdout).services;
    const ports = ['node-a', 'node-b'].flatMap((n) => {
      const e = withHttp[n].environment;
      return [e.RELAY_SUBMISSION_PORT, loadConfig({ env: e }).http.listen.split(':').pop()];
    });
    expect(ports).toEqual(['2587', '2588', '2589', '2590']);

    fs.writeFileSync(path.join(dir, '.env'), dotEnv.replace(/^NODE_B_HELO=.*\n/m, ''));
    const missing = await run('docker-compose', ['-f', 'docker-compose.cluster.yml', 'config'], { cwd: dir }).then(() => '', (e: { stderr: string }) => e.stderr);
    expect(missing).toMatch(/set NODE_B_HELO in \.env/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('dkim-relay.env.example: every line is a known RELAY_* setting with a value the relay accepts', () => {
  const env = envLines(exampleEnv);
  const known = new Set(envNames(schema));
  expect(Object.keys(env).length).toBeGreaterThan(0);
  for (const name of Object.keys(env)) expect(known).toContain(name);
  expect(() => loadConfig({ env })).not.toThrow();
});

test('Dockerfile: the base image a build argument (node:24-slim by default), production dependencies only, non-root, health check', () => {
  expect(dockerfile).toMatch(/^ARG BASE_IMAGE=node:24-slim$/m);
  expect(dockerfile.match(/^FROM .*$/gm)).toEqual(['FROM ${BASE_IMAGE} AS build', 'FROM ${BASE_IMAGE}']);
  expect(dockerfile).toMatch(/npm ci --omit=dev/);
  expect(dockerfile).toMatch(/^USER node$/m);
  expect(dockerfile).toMatch(/^HEALTHCHECK .*\n\s+CMD \["node", "bin\/healthcheck\.js"\]$/m);
  for (const [, src] of dockerfile.matchAll(/^COPY (?!--from)(\S+)/gm)) {
    expect(fs.existsSync(path.join(ROOT, src))).toBe(true);
  }
});
