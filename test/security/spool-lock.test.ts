// One owner per spool, in every deployment (issue 15, section 4). The relay runs as users run
// it (`node bin/dkim-relay.js serve`), each in a PID namespace of its own where it is pid 1, as
// in a container, on one shared data dir:
// - a second relay on the same data dir is refused, with a message naming the data dir;
// - after a SIGKILL the relay starts again at once, also while the killed one is an unreaped
//   zombie;
// - a lock file naming a live unrelated pid blocks nothing;
// - `queue list` / `queue retry` from another PID namespace find the running relay by the lock,
//   hand it the change, and leave its lock alone.
// The pid lock these replace (kill(pid, 0) on the pid in the file) failed every one of them.
import fs from 'node:fs';
import nodemailer from 'nodemailer';
import path from 'node:path';
import os from 'node:os';
import pino from 'pino';
import { loadConfig } from '../../src/config/load';
import { startRelay } from '../../src/relay';
import { Spool } from '../../src/spool/spool';
import { ensureBuilt } from '../helpers/built-cli';
import { HowToRun, kill, runCli, Running, serve, Setup, setupRelayFolders, startProcess } from '../helpers/relay-process';
import { freePort, startSink } from '../helpers/sink';

const IN_NAMESPACE: HowToRun = { pidNamespace: true };

let s: Setup;
const running: Running[] = [];

beforeAll(async () => {
  ensureBuilt();
  s = await setupRelayFolders({ RELAY_RETRY_SCHEDULE: '30s' });
});

afterEach(async () => {
  for (const r of running.splice(0)) {
    r.child.kill('SIGCONT');
    await kill(r);
  }
});

afterAll(async () => {
  await s?.dns.close();
  if (s) fs.rmSync(s.dir, { recursive: true, force: true });
});

function lockFile(): string {
  return path.join(s.env.RELAY_DATA_DIR, 'spool.lock');
}

async function serveHere(how: HowToRun = IN_NAMESPACE): Promise<Running> {
  const r = await serve(s, how);
  running.push(r);
  return r;
}

test('a second relay in another PID namespace on the same data dir is refused, naming the data dir', async () => {
  const first = await serveHere();
  // another port: only the spool is shared (as two containers on one volume)
  const second = startProcess(s, ['serve'], { ...IN_NAMESPACE, env: { RELAY_SUBMISSION_PORT: String(await freePort()) } });
  running.push(second);
  const exited = await Promise.race([second.exited, new Promise((r) => setTimeout(r, 20000, 'still running after 20 s'))]);
  expect(second.log()).toContain(`the spool in ${s.env.RELAY_DATA_DIR} is in use by another dkim-relay (dkim-relay serve, pid 1 on host `);
  expect(second.log()).toMatch(/stop the other one first, or give this one its own dataDir/);
  expect(exited).toEqual({ code: 1, signal: null });
  // both are pid 1 in their namespaces: the pid in the file is there for people only
  expect(fs.readFileSync(lockFile(), 'utf8')).toMatch(/^1\ndkim-relay serve, pid 1 on host /);
  // the first one still owns it and still works
  expect(first.child.exitCode).toBeNull();
  expect(fs.readFileSync(lockFile(), 'utf8')).toMatch(/^1\n/);

  // a normal stop lets go of the lock and removes its file
  await kill(first, 'SIGTERM');
  expect(await first.exited).toEqual({ code: 0, signal: null });
  expect(fs.existsSync(lockFile())).toBe(false);
});

test('after a SIGKILL the relay starts again at once on the same data dir', async () => {
  const first = await serveHere();
  process.kill(first.relayPid(), 'SIGKILL');
  await first.exited;
  // the dead relay's lock file is still there, naming pid 1 (alive here: init)
  expect(fs.readFileSync(lockFile(), 'utf8')).toMatch(/^1\n/);
  await serveHere();
});

test('a relay killed but not yet reaped (a zombie) does not hold the spool', async () => {
  // in this PID namespace, where the pid in the file is the zombie's
  fs.rmSync(lockFile(), { force: true }); // the previous test's names pid 1: not the point here
  const first = await serveHere({ shellParent: true });
  const pid = first.relayPid();
  // the shell is the relay's parent: stopped, it cannot reap its killed child
  first.child.kill('SIGSTOP');
  process.kill(pid, 'SIGKILL');
  const deadline = Date.now() + 10000;
  while (!/^\d+ \(.*\) Z /.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'))) {
    if (Date.now() > deadline) throw new Error('the killed relay did not become a zombie');
    await new Promise((r) => setTimeout(r, 20));
  }
  expect(fs.readFileSync(lockFile(), 'utf8')).toMatch(new RegExp(`^${pid}\\n`));
  const second = await serveHere({ shellParent: true });
  expect(fs.readFileSync(`/proc/${pid}/stat`, 'utf8')).toMatch(/^\d+ \(.*\) Z /); // still a zombie meanwhile
  expect(second.child.exitCode).toBeNull();
  first.child.kill('SIGCONT');
});

test('a lock file naming a live, unrelated pid does not block a start', async () => {
  fs.mkdirSync(s.env.RELAY_DATA_DIR, { recursive: true });
  for (const pid of [process.pid, 1]) {
    fs.writeFileSync(lockFile(), `${pid}\n`);
    const relay = await serveHere({ pidNamespace: false });
    expect(fs.readFileSync(lockFile(), 'utf8')).toMatch(new RegExp(`^${relay.child.pid}\\n`));
    await kill(relay, 'SIGTERM');
  }
});

test('queue list and retry from another PID namespace see the running relay and leave its lock alone', async () => {
  const relay = await serveHere();
  // a message for a destination whose MX is down yet: deferred, next attempt in 30 s
  const mx = await startSink({ host: '127.0.0.6' });
  await mx.close(); // its port is known, nothing listens there now
  s.dns.set('hold.test', 'MX', [{ exchange: 'mx.hold.test', priority: 10 }]);
  s.dns.set('mx.hold.test', 'A', ['127.0.0.6']);
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port: s.port, secure: false, ignoreTLS: true });
  try {
    await transport.sendMail({ envelope: { from: 'app@example.org', to: ['one@hold.test'] }, raw: 'From: app@example.org\r\nTo: one@hold.test\r\nSubject: held\r\nDate: Sat, 28 Nov 2026 02:00:00 +0000\r\nMessage-ID: <held@example.org>\r\n\r\nhi\r\n' });
  } finally {
    transport.close();
  }
  const held = fs.readFileSync(lockFile(), 'utf8');

  let listed: { id: string; attempts: number }[] = [];
  const deadline = Date.now() + 15000;
  while (!(listed.length === 1 && listed[0].attempts >= 1)) {
    if (Date.now() > deadline) throw new Error(`the message was not deferred: ${JSON.stringify(listed)}\n${relay.log()}`);
    const list = await runCli(s, ['queue', 'list', '--json'], IN_NAMESPACE);
    expect(list.code).toBe(0);
    listed = JSON.parse(list.output) as typeof listed;
    await new Promise((r) => setTimeout(r, 200));
  }

  // retry is handed to the relay (not done offline: that one would say "as soon as the relay runs")
  const retried = await runCli(s, ['queue', 'retry', listed[0].id], IN_NAMESPACE);
  expect(retried).toMatchObject({ code: 0 });
  expect(retried.output).toContain('1 message(s) will be tried now');
  expect(fs.readFileSync(lockFile(), 'utf8')).toBe(held);
  expect(relay.child.exitCode).toBeNull();
  expect(relay.log()).toMatch(/"by":"queue retry".*queued recipients made due now/);

  // and a second relay is still refused: the CLI took nothing from the first
  const second = startProcess(s, ['serve'], IN_NAMESPACE);
  running.push(second);
  expect((await second.exited).code).toBe(1);
});

describe('the lock in one process', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dkim-relay-lock-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('it belongs to one open file: a second Spool object on the same data dir is refused, even in the same process', async () => {
    const first = new Spool(dir);
    const second = new Spool(dir);
    expect(Spool.lockHolder(dir)).toBeNull();
    await first.lock();
    expect(Spool.lockHolder(dir)).toMatch(new RegExp(`^dkim-relay serve, pid ${process.pid} on host `));
    expect(await second.tryLock('dkim-relay queue retry')).toBe(false);
    await expect(second.lock('dkim-relay serve', 300)).rejects.toThrow(`the spool in ${dir} is in use by another dkim-relay (dkim-relay serve, pid ${process.pid}`);
    await first.unlock();
    expect(fs.existsSync(path.join(dir, 'spool.lock'))).toBe(false);
    expect(Spool.lockHolder(dir)).toBeNull();
    expect(await second.tryLock('dkim-relay queue retry')).toBe(true);
    expect(Spool.lockHolder(dir)).toMatch(/^dkim-relay queue retry, /);
    await second.unlock();
  });

  test('a probe (lockHolder) takes nothing from the holder and leaves its name in the file', async () => {
    const holder = new Spool(dir);
    await holder.lock();
    const before = fs.readFileSync(path.join(dir, 'spool.lock'), 'utf8');
    for (let i = 0; i < 3; i++) expect(Spool.lockHolder(dir)).not.toBeNull();
    expect(fs.readFileSync(path.join(dir, 'spool.lock'), 'utf8')).toBe(before);
    expect(await new Spool(dir).tryLock('x')).toBe(false);
    await holder.unlock();
  });

  test('a start that fails after taking the lock (a bad TLS certificate) gives it back: the next start in the same process succeeds', async () => {
    const s2 = await setupRelayFolders({});
    try {
      const bad = path.join(s2.dir, 'bad.pem');
      fs.writeFileSync(bad, 'not a certificate\n');
      const env = { ...s2.env, RELAY_SUBMISSION_PORT: '0' };
      await expect(startRelay(loadConfig({ env: { ...env, RELAY_TLS_CERT: bad, RELAY_TLS_KEY: bad } }), { log: pino({ level: 'silent' }) })).rejects.toThrow(/certificate|key/i);
      const relay = await startRelay(loadConfig({ env }), { log: pino({ level: 'silent' }) });
      await relay.close(1000);
    } finally {
      await s2.dns.close();
      fs.rmSync(s2.dir, { recursive: true, force: true });
    }
  });

  test("a holder's release removes only its own lock file, not a newer one", async () => {
    const holder = new Spool(dir);
    await holder.lock();
    // the file is removed by hand (never do this: the lock is on the file) and a newcomer makes
    // and locks a new one; the old holder's release must not remove the newcomer's
    fs.rmSync(path.join(dir, 'spool.lock'));
    const newcomer = new Spool(dir);
    expect(await newcomer.tryLock('dkim-relay serve')).toBe(true);
    await holder.unlock();
    expect(fs.existsSync(path.join(dir, 'spool.lock'))).toBe(true);
    expect(await new Spool(dir).tryLock('x')).toBe(false);
    await newcomer.unlock();
  });
});
