// The Docker image built from the Dockerfile and run with docker-compose.yml, as the README
// tells, on a real Docker daemon (test/peers/docker/dockerd.sh; .ci/run starts it). Docker Hub
// is out of reach here, so the image starts from a stand-in for node:24-slim made locally
// (test/peers/docker/make-base-image.sh: Debian minbase + the Node.js 24 of node_modules).
// Compose is Debian's docker-compose (v1); the commands are those of the README.
//
// The container uses the host's network, so it gets loopback addresses of its own: it listens
// for clients on 127.0.0.41 and delivers from 127.0.0.42 to a sink MX on 127.0.0.43; DNS is
// a test server on 127.0.0.1. Clients come from 127.0.0.9 (untrusted: STARTTLS + AUTH).
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import nodemailer from 'nodemailer';
import { verifyDkim } from '../helpers/dkim-verify';
import { startDnsServer, TestDnsServer, reverseName } from '../helpers/dns-server';
import { assertDockerUp, docker, inspect, run, runOk, waitFor } from '../helpers/docker';
import { Sink, freePort, startSink } from '../helpers/sink';

const ROOT = path.join(__dirname, '..', '..');
const IMAGE = 'dkim-relay:latest'; // the name docker-compose.yml gives the image
const SUBMIT_HOST = '127.0.0.41';
const RELAY_IP = '127.0.0.42';
const SINK_HOST = '127.0.0.43';
const CLIENT_IP = '127.0.0.9';
const HELO = 'relay.example.net';
const DOMAIN = 'example.org';
const PASSWORD = 'a long secret password';
const HTTP_TOKEN = 'docker-test-token-4f3e2d1c0b';

let dns: TestDnsServer;
let sink: Sink;
let project: string; // a folder as a user's checkout would have it: docker-compose.yml + dkim-relay.env
let submissionPort: number;
let httpPort: number; // the relay's HTTP listener: /metrics, /readyz (the health check asks it)
let container = '';
let secondContainer = '';
let refusing = false; // the sink answers 451 to every recipient while true
const records: Record<string, string> = {};

/** A README command: docker-compose (v1) run in the project folder. */
const compose = (args: string[], input?: string) => run('docker-compose', args, { cwd: project, input, timeoutMs: 180_000 });
// `exec -T`: the README's commands run on a terminal; jest has none, and without -T compose v1
// asks for one ("the input device is not a TTY").
const execInRelay = (args: string[], input?: string) => compose(['exec', '-T', 'dkim-relay', 'dkim-relay', ...args], input);

const health = () => inspect(container, '{{.State.Health.Status}}');

/** The relay's log (pino writes JSON lines to stdout), for failure messages. */
const relayLog = async () => {
  const r = await docker(['logs', '--tail', '40', container]);
  return r.stdout + r.stderr;
};

/** n messages at the sink, or a failure that shows the relay's log. */
async function messagesAtSink(n: number, timeoutMs: number) {
  try {
    return await sink.waitForMessages(n, timeoutMs);
  } catch (err) {
    throw new Error(`${(err as Error).message}\nthe relay's log:\n${await relayLog()}`);
  }
}

beforeAll(async () => {
  await assertDockerUp();
  const started = Date.now();
  const base = (await runOk('bash', [path.join(__dirname, 'docker', 'make-base-image.sh')], { timeoutMs: 600_000 })).stdout.trim();
  const baseDone = Date.now();
  // --network host: the daemon runs without a bridge; npm ci in the build reaches the registry through the host's network
  await runOk('docker', ['build', '--network', 'host', '--build-arg', `BASE_IMAGE=${base}`, '-t', IMAGE, ROOT], { timeoutMs: 600_000 });
  // (no `image prune`: the build stage's images are untagged, and they are the build cache)
  process.stdout.write(`docker-image: base image ${base} in ${((baseDone - started) / 1000).toFixed(1)} s, dkim-relay image in ${((Date.now() - baseDone) / 1000).toFixed(1)} s\n`);

  dns = await startDnsServer({ host: '127.0.0.1' });
  sink = await startSink({ host: SINK_HOST, onRcpt: () => (refusing ? { code: 451, message: '4.3.0 try again later' } : undefined) });
  dns.set('dest.test', 'MX', [{ exchange: 'mx.dest.test', priority: 10 }]);
  dns.set('mx.dest.test', 'A', [SINK_HOST]);
  dns.set(HELO, 'A', [RELAY_IP]);
  dns.set(reverseName(RELAY_IP), 'PTR', [HELO]);
  dns.set(DOMAIN, 'TXT', [`v=spf1 ip4:${RELAY_IP} -all`]);
  dns.set(`_dmarc.${DOMAIN}`, 'TXT', ['v=DMARC1; p=none']);
  dns.set(DOMAIN, 'MX', [{ exchange: `mx.${DOMAIN}`, priority: 10 }]);
  dns.set(`mx.${DOMAIN}`, 'A', [SINK_HOST]);
  submissionPort = await freePort(SUBMIT_HOST);
  httpPort = await freePort(SUBMIT_HOST);

  project = fs.mkdtempSync(path.join(os.tmpdir(), 'dkim-relay-compose-'));
  fs.copyFileSync(path.join(ROOT, 'docker-compose.yml'), path.join(project, 'docker-compose.yml'));
  // dkim-relay.env made as the README says: the example, edited
  const settings: Record<string, string> = {
    RELAY_LOCAL_ADDRESS: RELAY_IP,
    RELAY_HELO_NAME: HELO,
    RELAY_SUBMISSION_HOST: SUBMIT_HOST,
    RELAY_SUBMISSION_PORT: String(submissionPort),
    RELAY_TRUSTED_NETWORKS: '127.0.0.1/32',
    RELAY_PLAIN_AUTH_NETWORKS: '127.0.0.1/32',
    RELAY_DNS_SERVERS: dns.address,
    RELAY_DNS_TIMEOUT: '2',
    RELAY_MX_PORT: String(sink.port),
    RELAY_RETRY_SCHEDULE: '2s',
    RELAY_CONNECT_TIMEOUT: '3',
    RELAY_HTTP_LISTEN: `${SUBMIT_HOST}:${httpPort}`,
    RELAY_HTTP_TOKEN: HTTP_TOKEN,
  };
  let envText = fs.readFileSync(path.join(ROOT, 'dkim-relay.env.example'), 'utf8');
  for (const [k, v] of Object.entries(settings)) {
    const line = new RegExp(`^${k}=.*$`, 'm');
    envText = line.test(envText) ? envText.replace(line, `${k}=${v}`) : `${envText}${k}=${v}\n`;
  }
  fs.writeFileSync(path.join(project, 'dkim-relay.env'), envText);
  // The image checks health every 30 s; the test cannot wait that long after each start.
  fs.writeFileSync(path.join(project, 'docker-compose.override.yml'), 'services:\n  dkim-relay:\n    healthcheck:\n      interval: 2s\n');
}, 900_000);

afterAll(async () => {
  if (secondContainer) await docker(['rm', '-f', secondContainer]);
  if (project) {
    await compose(['down', '--volumes', '--timeout', '5']);
    fs.rmSync(project, { recursive: true, force: true });
  }
  await sink?.close();
  await dns?.close();
}, 120_000);

async function submit(subject: string): Promise<string> {
  const transport = nodemailer.createTransport({
    host: SUBMIT_HOST, port: submissionPort, localAddress: CLIENT_IP,
    requireTLS: true, tls: { rejectUnauthorized: false },
    auth: { user: 'app1', pass: PASSWORD }, connectionTimeout: 10_000,
  });
  try {
    const info = await transport.sendMail({ envelope: { from: `app@${DOMAIN}`, to: ['user@dest.test'] }, raw: rawMessage(subject) });
    return info.response;
  } finally {
    transport.close();
  }
}

// (not relay-harness's rawMessage: that module loads the relay's source, which this test runs in the image)
const rawMessage = (subject: string) => [
  `From: App <app@${DOMAIN}>`, 'To: user@dest.test', `Subject: ${subject}`, 'Date: Thu, 03 Dec 2026 10:00:00 +0000',
  `Message-ID: <${Date.now()}.${Math.random().toString(36).slice(2)}@${DOMAIN}>`, 'MIME-Version: 1.0', 'Content-Type: text/plain; charset=utf-8',
  '', 'Hello from the container.', '',
].join('\r\n');

const subjectOf = (data: Buffer) => /^Subject: (.*)$/m.exec(data.toString())?.[1];

test('the image: production dependencies only, runs as node, with a health check and `dkim-relay` on PATH', async () => {
  const r = await runOk('docker', ['run', '--rm', '--entrypoint', 'sh', IMAGE, '-c', 'id -un; test -e node_modules/typescript && echo typescript; command -v dkim-relay; node --version']);
  expect(r.stdout.trim().split('\n')).toEqual(['node', '/usr/local/bin/dkim-relay', expect.stringMatching(/^v24\./)]);
  expect(JSON.parse(await inspect(IMAGE, '{{json .Config.Healthcheck.Test}}'))).toEqual(['CMD', 'node', 'bin/healthcheck.js']);
});

test('docker compose up -d: the relay starts with the settings of dkim-relay.env and becomes healthy', async () => {
  const up = await compose(['up', '-d', '--no-build']);
  expect(up.code).toBe(0);
  container = (await runOk('docker-compose', ['ps', '-q', 'dkim-relay'], { cwd: project })).stdout.trim();
  expect(container).toMatch(/^[0-9a-f]{12,}$/);
  expect(await inspect(container, '{{.HostConfig.RestartPolicy.Name}}')).toBe('unless-stopped');
  await waitFor(async () => ((await health()) === 'healthy' ? true : undefined), 90_000, async () => `health is "${await health()}"; the relay's log:\n${await relayLog()}`);
  // it listens where dkim-relay.env says, not on the example's 0.0.0.0:2587
  const greeting = await new Promise<string>((resolve, reject) => {
    const s = net.connect(submissionPort, SUBMIT_HOST);
    s.once('data', (d) => { s.destroy(); resolve(d.toString()); });
    s.once('error', reject);
  });
  expect(greeting).toMatch(/^220 /);
  // healthy through /readyz, which needs the token dkim-relay.env gives it
  const ready = await fetch(`http://${SUBMIT_HOST}:${httpPort}/readyz`, { headers: { Authorization: `Bearer ${HTTP_TOKEN}` } });
  expect(ready.status).toBe(200);
  expect((await fetch(`http://${SUBMIT_HOST}:${httpPort}/readyz`)).status).toBe(401);
  const checks = JSON.parse(await inspect(container, '{{json .State.Health.Log}}')) as { ExitCode: number }[];
  expect(checks.at(-1)!.ExitCode).toBe(0);
}, 120_000);

test('keygen, users add, keys activate and doctor, run with exec as the README tells, see the settings of dkim-relay.env', async () => {
  const keygen = await execInRelay(['keygen', '--domain', DOMAIN]);
  expect(keygen.code).toBe(0);
  // publish the record keygen printed (a zone-file line), as a user would
  const line = /^(\S+)\.\s+\d+\s+IN\s+TXT\s+\((.*)\)\s*$/m.exec(keygen.stdout);
  expect(line).not.toBeNull();
  const [, name, quoted] = line!;
  const value = [...quoted.matchAll(/"([^"]*)"/g)].map((m) => m[1]).join('');
  expect(value).toMatch(/^v=DKIM1; k=rsa; p=/);
  records[name] = value;
  dns.set(name, 'TXT', [value]);
  const selector = name.split('._domainkey.')[0];

  const add = await execInRelay(['users', 'add', 'app1', '--domain', DOMAIN, '--password-stdin'], `${PASSWORD}\n`);
  expect(add.stderr + add.stdout).toMatch(/Added user app1/);
  expect(add.code).toBe(0);

  const activate = await execInRelay(['keys', 'activate', DOMAIN, selector]);
  expect(activate.code).toBe(0);

  // doctor gets the identity and DNS servers from dkim-relay.env, as the relay does
  const doctor = await execInRelay(['doctor']);
  expect(doctor.stdout).toContain(`Sending identity: ${RELAY_IP}, HELO ${HELO}`);
  expect(doctor.stdout).toMatch(new RegExp(`PASS\\s+dkim\\.keys\\b`));
  expect(doctor.stdout).not.toMatch(/^\s*(FAIL|ERROR)\s/m);
}, 120_000);

test('a client AUTHs over STARTTLS on the container\'s port; the message arrives signed, from the fixed IP and HELO', async () => {
  const before = sink.messages.length;
  expect(await submit('through the container')).toMatch(/^250 2\.0\.0 queued as /);
  const msg = (await messagesAtSink(before + 1, 30_000))[before];
  expect(msg.remoteAddress).toBe(RELAY_IP);
  expect(msg.helo).toBe(HELO);
  expect(msg.secure).toBe(true);
  expect(subjectOf(msg.data)).toBe('through the container');
  const verdict = await verifyDkim(msg.data, records);
  expect(verdict.signatures).toHaveLength(1);
  expect(verdict.ok).toBe(true);
  expect(verdict.signatures[0]).toMatchObject({ d: DOMAIN, a: 'rsa-sha256' });
  // and /metrics counts it
  const metrics = await (await fetch(`http://${SUBMIT_HOST}:${httpPort}/metrics`, { headers: { Authorization: `Bearer ${HTTP_TOKEN}` } })).text();
  expect(metrics).toMatch(/^dkim_relay_messages_accepted_total\{node="[^"]+"\} 1$/m);
  expect(metrics).toMatch(/^dkim_relay_deliveries_total\{provider="mx\.dest\.test",outcome="delivered",class="delivered",node="[^"]+"\} 1$/m);
}, 60_000);

test('queue list shows a deferred message; SIGKILL of the relay: the restart policy brings it back and the message is delivered', async () => {
  refusing = true;
  const before = sink.messages.length;
  const rejectedBefore = sink.rejections.length;
  const response = await submit('queued across a crash');
  expect(response).toMatch(/^250 2\.0\.0 queued as /);
  const id = response.split(' ').pop()!;
  await waitFor(async () => (sink.rejections.length > rejectedBefore ? true : undefined), 30_000, () => 'the relay never tried the sink');
  const queue = await execInRelay(['queue', 'list']);
  expect(queue.code).toBe(0);
  expect(queue.stdout).toContain(id);

  // A crash as the kernel (OOM killer) or a bug makes it: SIGKILL from outside Docker.
  // (`docker kill` counts as a stop by hand: Docker does not restart after it.)
  const pid = Number(await inspect(container, '{{.State.Pid}}'));
  const restarts = Number(await inspect(container, '{{.RestartCount}}'));
  expect(pid).toBeGreaterThan(1);
  process.kill(pid, 'SIGKILL');
  await waitFor(async () => {
    const [running, count, newPid] = (await inspect(container, '{{.State.Running}} {{.RestartCount}} {{.State.Pid}}')).split(' ');
    return running === 'true' && Number(count) > restarts && Number(newPid) !== pid ? true : undefined;
  }, 60_000, async () => `not restarted: ${await inspect(container, '{{json .State}}')}\n${await relayLog()}`);
  await waitFor(async () => ((await health()) === 'healthy' ? true : undefined), 60_000, async () => `health after the restart is "${await health()}"; the relay's log:\n${await relayLog()}`);
  expect(sink.messages.length).toBe(before);

  refusing = false;
  const msg = (await messagesAtSink(before + 1, 60_000))[before];
  expect(subjectOf(msg.data)).toBe('queued across a crash');
  expect((await verifyDkim(msg.data, records)).ok).toBe(true);
}, 180_000);

test('a second relay container on the same volumes is refused', async () => {
  const otherPort = await freePort(SUBMIT_HOST);
  const name = `${path.basename(project)}-second`;
  const r = await runOk('docker', [
    'run', '-d', '--name', name, '--network', 'host', '--volumes-from', container,
    '--env-file', path.join(project, 'dkim-relay.env'), '-e', `RELAY_SUBMISSION_PORT=${otherPort}`, '-e', 'RELAY_HTTP_LISTEN=', IMAGE,
  ]);
  secondContainer = r.stdout.trim();
  const listening = () => new Promise<boolean>((resolve) => {
    const s = net.connect(otherPort, SUBMIT_HOST, () => { s.destroy(); resolve(true); });
    s.on('error', () => resolve(false));
  });
  // It must end with an error naming the spool in use; serving on its port is the failure.
  const outcome = await waitFor(async () => {
    if ((await inspect(secondContainer, '{{.State.Running}}')) === 'false') return 'exited';
    if (await listening()) return 'serving';
    return undefined;
  }, 60_000, () => 'the second relay neither stopped nor served');
  const logs = await docker(['logs', secondContainer]);
  expect({ outcome, logs: logs.stdout + logs.stderr }).toMatchObject({ outcome: 'exited', logs: expect.stringMatching(/in use/i) });
  expect(Number(await inspect(secondContainer, '{{.State.ExitCode}}'))).not.toBe(0);
  // and the first relay still serves
  expect(await inspect(container, '{{.State.Running}}')).toBe('true');
}, 120_000);
