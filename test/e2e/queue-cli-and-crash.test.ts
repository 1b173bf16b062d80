// The relay as a child process (`node bin/dkim-relay.js serve`), as users run it:
// - the queue CLI (list, show, retry, delete --bounce) against the running relay, and
//   delete on a stopped one;
// - the crash test: a client sends N messages while the relay is killed with SIGKILL at
//   random moments and started again; every message that got 250 must reach the sink
//   (counted by Message-ID); duplicates are allowed and reported.
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import nodemailer from 'nodemailer';
import { BIN, ensureBuilt, NODE } from '../helpers/built-cli';
import { rawMessage } from '../helpers/relay-harness';
import { childEnv, Setup, setupRelayFolders } from '../helpers/relay-process';
import { Sink, SinkMessage, startSink } from '../helpers/sink';

const FROM = 'app@example.org';

beforeAll(ensureBuilt);

// The relay's folders and RELAY_* environment, as test/helpers/relay-process.ts makes them
// (unsignedPolicy=relay: signing is tested elsewhere; here the spool and the queue are).
const setup = setupRelayFolders;

interface Running { child: ChildProcess; exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }> }

/** Starts `serve` and resolves once the submission port answers. */
async function serve(s: Setup): Promise<Running> {
  const log = fs.openSync(path.join(s.dir, 'relay.log'), 'a');
  const child = spawn(NODE, [BIN, 'serve'], { cwd: s.dir, env: childEnv(s.env), stdio: ['ignore', log, log] });
  fs.closeSync(log);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const deadline = Date.now() + 15000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`serve exited early; log: ${path.join(s.dir, 'relay.log')}`);
    const up = await new Promise<boolean>((resolve) => {
      const socket = net.connect({ host: '127.0.0.1', port: s.port }, () => {
        socket.destroy();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (up) return { child, exited };
    if (Date.now() > deadline) throw new Error('serve did not listen within 15 s');
    await new Promise((r) => setTimeout(r, 25));
  }
}

function queueCli(s: Setup, args: string[]): { code: number; stdout: string; stderr: string } {
  try {
    const stdout = execFileSync(NODE, [BIN, 'queue', ...args], { cwd: s.dir, env: childEnv(s.env), stdio: 'pipe' }).toString();
    return { code: 0, stdout, stderr: '' };
  } catch (err) {
    const e = err as { status: number; stdout: Buffer; stderr: Buffer };
    return { code: e.status, stdout: e.stdout.toString(), stderr: e.stderr.toString() };
  }
}

interface ListedMessage {
  id: string; sender: string; attempts: number; nextAttemptAt: string | null;
  recipients: { address: string; status: string; attempts: number; lastReply: string | null }[];
}

async function send(port: number, to: string, raw: string): Promise<string> {
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true, connectionTimeout: 3000, greetingTimeout: 3000, socketTimeout: 10000 });
  try {
    const info = await transport.sendMail({ envelope: { from: FROM, to: [to] }, raw });
    return info.response;
  } finally {
    transport.close();
  }
}

async function until<T>(what: string, check: () => T | undefined | null | false, timeoutMs = 15000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('queue CLI', () => {
  let s: Setup;
  let relay: Running;
  let senderMx: Sink;
  let port25: number;

  beforeAll(async () => {
    senderMx = await startSink({ host: '127.0.0.4' });
    port25 = senderMx.port;
    s = await setup({ RELAY_MX_PORT: String(port25), RELAY_RETRY_SCHEDULE: '30s' });
    s.dns.set('example.org', 'MX', [{ exchange: 'mx.example.org', priority: 10 }]);
    s.dns.set('mx.example.org', 'A', ['127.0.0.4']);
    s.dns.set('hold.test', 'MX', [{ exchange: 'mx.hold.test', priority: 10 }]);
    s.dns.set('mx.hold.test', 'A', ['127.0.0.6']); // nothing listens there yet
    relay = await serve(s);
  });

  afterAll(async () => {
    if (relay?.child.exitCode === null) {
      relay.child.kill('SIGKILL');
      await relay.exited;
    }
    await senderMx?.close();
    await s?.dns.close();
    fs.rmSync(s.dir, { recursive: true, force: true });
  });

  test('serve replaces itself once with its memory settings: same pid, young generation capped, two malloc arenas', () => {
    const pid = relay.child.pid!;
    const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
    expect(cmdline).toContain('--max-semi-space-size=4');
    expect(cmdline.slice(-2)).toEqual([BIN, 'serve']);
    expect(fs.readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0')).toContain('MALLOC_ARENA_MAX=2');
  });

  test('list, show, retry, delete --bounce against a running relay; delete on a stopped one', async () => {
    const ids: string[] = [];
    for (const who of ['one', 'two', 'three']) {
      const response = await send(s.port, `${who}@hold.test`, rawMessage(FROM, `${who}@hold.test`, { subject: `held ${who}` }));
      ids.push(/queued as ([0-9A-Z]+)$/.exec(response)![1]);
    }
    // the first attempt fails (connection refused); the next one is 30 s away
    const listed = await until('three deferred messages in queue list', () => {
      const r = queueCli(s, ['list', '--json']);
      const all = JSON.parse(r.stdout) as ListedMessage[];
      return all.length === 3 && all.every((m) => m.attempts >= 1) ? all : null;
    });
    expect(listed.map((m) => m.id).sort()).toEqual([...ids].sort());
    expect(listed[0]).toMatchObject({ sender: FROM, recipients: [{ status: 'queued', attempts: 1 }] });
    expect(listed[0].recipients[0].lastReply).toMatch(/ECONNREFUSED|connect/i);
    expect(Date.parse(listed[0].nextAttemptAt!)).toBeGreaterThan(Date.now() + 20_000);

    const text = queueCli(s, ['list']);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain(ids[0]);
    expect(text.stdout).toMatch(/one@hold\.test {2}queued {2}attempts 1/);

    const shown = queueCli(s, ['show', ids[0]]);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toContain(`sender:      ${FROM}`);
    expect(shown.stdout).toMatch(/history:\n {2}\S+ {2}deferred {2}one@hold\.test {2}mx\.hold\.test \[127\.0\.0\.6\]/);
    expect(shown.stdout).toContain('  Subject: held one');
    const shownJson = JSON.parse(queueCli(s, ['show', ids[0], '--json']).stdout) as { history: unknown[]; headers: string };
    expect(shownJson.history).toHaveLength(1);

    // the MX comes up; retry makes one message due now, the others keep waiting
    const mx = await startSink({ host: '127.0.0.6', port: port25 });
    try {
      const retried = queueCli(s, ['retry', ids[0]]);
      expect(retried).toMatchObject({ code: 0 });
      expect(retried.stdout).toMatch(/1 message\(s\) will be tried now/);
      const [msg] = await mx.waitForMessages(1, 5000);
      expect(msg.rcptTo).toEqual(['one@hold.test']);
      await until('the delivered message to leave the queue', () => !queueCli(s, ['list']).stdout.includes(ids[0]));

      // delete with a bounce: gone from the queue, the sender hears about it
      const deleted = queueCli(s, ['delete', ids[1], '--bounce']);
      expect(deleted).toMatchObject({ code: 0 });
      const bounce = await senderMx.waitForMessages(1, 10000);
      expect(bounce[0].mailFrom).toBe('');
      expect(bounce[0].data.toString()).toMatch(/Final-Recipient: rfc822; two@hold\.test\r\nAction: failed/);
      expect(bounce[0].data.toString()).toContain('deleted from the queue by the administrator');
      const left = JSON.parse(queueCli(s, ['list', '--json']).stdout) as ListedMessage[];
      expect(left.map((m) => m.id)).toEqual([ids[2]]);
      expect(mx.messages).toHaveLength(1); // the third still waits for its schedule

      expect(queueCli(s, ['show', 'NOSUCHID'])).toMatchObject({ code: 1 });
      expect(queueCli(s, ['retry'])).toMatchObject({ code: 2 });

      // SIGTERM: the relay stops and releases the spool; the CLI then edits the spool itself
      relay.child.kill('SIGTERM');
      expect(await relay.exited).toEqual({ code: 0, signal: null });
      expect(fs.existsSync(path.join(s.env.RELAY_DATA_DIR, 'spool.lock'))).toBe(false);
      const offline = queueCli(s, ['delete', ids[2]]);
      expect(offline).toMatchObject({ code: 0 });
      expect(JSON.parse(queueCli(s, ['list', '--json']).stdout)).toEqual([]);
      expect(fs.readdirSync(path.join(s.env.RELAY_DATA_DIR, 'spool'))).toEqual([]);
    } finally {
      await mx.close();
    }
  });
});

describe('crash test', () => {
  const N = Number(process.env.CRASH_TEST_MESSAGES ?? 200);
  let s: Setup;
  let sink: Sink;

  beforeAll(async () => {
    sink = await startSink({ host: '127.0.0.3' });
    s = await setup({ RELAY_MX_PORT: String(sink.port), RELAY_RETRY_SCHEDULE: '1s' });
    s.dns.set('crash.test', 'MX', [{ exchange: 'mx.crash.test', priority: 10 }]);
    s.dns.set('mx.crash.test', 'A', ['127.0.0.3']);
  });

  afterAll(async () => {
    await sink?.close();
    await s?.dns.close();
    fs.rmSync(s.dir, { recursive: true, force: true });
  });

  const messageIdOf = (m: SinkMessage) => /\r\nMessage-ID: (<[^>]+>)/i.exec(m.data.toString('latin1'))?.[1] ?? '';

  test(`${N} messages, SIGKILL at random moments: every acknowledged message arrives`, async () => {
    let relay = await serve(s);
    const acknowledged = new Set<string>();
    let attempts = 0;
    let refused = 0;
    let kills = 0;
    let sending = true;

    // the killer: SIGKILL after a random 150-900 ms of running, start again at once
    const killer = (async () => {
      while (sending) {
        await new Promise((r) => setTimeout(r, 150 + Math.random() * 750));
        if (!sending) break;
        relay.child.kill('SIGKILL');
        await relay.exited;
        kills++;
        relay = await serve(s);
      }
    })();

    // four clients; a message without a 250 is sent again (a resend of a message whose 250
    // was lost in a crash is a duplicate, allowed)
    let next = 0;
    const client = async () => {
      while (next < N) {
        const i = next++;
        const messageId = `<crash-${i}@example.org>`;
        const raw = rawMessage(FROM, 'sink@crash.test', { subject: `crash ${i}` }).replace(/^Message-ID: .*$/m, `Message-ID: ${messageId}`);
        for (;;) {
          attempts++;
          try {
            const response = await send(s.port, 'sink@crash.test', raw);
            if (/^250 /.test(response)) {
              acknowledged.add(messageId);
              // paced, so that the run spans several kills however fast the relay accepts
              await new Promise((r) => setTimeout(r, 100));
              break;
            }
          } catch {
            refused++;
            await new Promise((r) => setTimeout(r, 50));
          }
        }
      }
    };
    await Promise.all([client(), client(), client(), client()]);
    sending = false;
    await killer;

    // the relay runs undisturbed now; everything acknowledged must come out
    const deadline = Date.now() + 45_000;
    let missing: string[] = [];
    for (;;) {
      const arrived = new Set(sink.messages.map(messageIdOf));
      missing = [...acknowledged].filter((id) => !arrived.has(id));
      if (!missing.length || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    const ids = sink.messages.map(messageIdOf);
    const unique = new Set(ids);
    const figures = {
      sent: N, acknowledged: acknowledged.size, arrivedUnique: [...acknowledged].filter((id) => unique.has(id)).length,
      deliveries: ids.length, duplicates: ids.length - unique.size, kills, submissionAttempts: attempts, failedSubmissions: refused,
    };
    console.log(`crash test: ${JSON.stringify(figures)}`);
    expect(missing).toEqual([]);
    expect(acknowledged.size).toBe(N);
    expect(kills).toBeGreaterThan(3);

    relay.child.kill('SIGTERM');
    expect((await relay.exited).code).toBe(0);
    expect(fs.readdirSync(path.join(s.env.RELAY_DATA_DIR, 'spool'))).toEqual([]);
  }, 120_000);
});
