// File modes do not depend on the umask (issue 15, section 5): the real CLI (keygen, users add,
// serve with one message deferred and one queue command, a stop) under umask 000 creates every
// folder and file with the mode it chose (under 000 keygen used to make keys/ 0777); under
// umask 077 they come out stricter, and the relay still reads all it needs (the key signs).
import fs from 'node:fs';
import nodemailer from 'nodemailer';
import path from 'node:path';
import { ensureBuilt } from '../helpers/built-cli';
import { freePort } from '../helpers/sink';
import { answers, kill, runCli, serve, Setup, setupRelayFolders } from '../helpers/relay-process';

beforeAll(ensureBuilt);

/** Every folder and file under `root`, relative, with its permission bits. */
function modes(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (dir: string) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      const stat = fs.statSync(full, { throwIfNoEntry: false }); // the relay may have removed it meanwhile
      if (!stat) continue;
      out[path.relative(root, full) + (entry.isDirectory() ? '/' : '')] = (stat.mode & 0o777).toString(8).padStart(4, '0');
      if (entry.isDirectory()) walk(full);
    }
  };
  walk(root);
  return out;
}

/**
 * What the relay means each to be, by path pattern: before the umask, or `exact` where it sets
 * the mode with fchmod after creating the file (durable-file.ts, tls-certificate.ts).
 */
const INTENDED: [RegExp, number, 'exact'?][] = [
  [/^keys\/$/, 0o700],
  [/^keys\/example\.org\/$/, 0o700],
  [/^keys\/example\.org\/s1\.key$/, 0o600],
  [/^keys\/example\.org\/s1\.json$/, 0o600],
  [/^etc\/$/, 0o700],
  [/^etc\/users\.json$/, 0o600],
  [/^data\/$/, 0o700],
  [/^data\/(spool|spool-tmp|control|tls|journal)\/$/, 0o700],
  [/^data\/journal\/\d{4}-\d{2}-\d{2}\.jsonl$/, 0o600],
  [/^data\/spool\/[0-9A-Z]+\.(eml|json)(\.\d+\.tmp|\.tmp)?$/, 0o600], // a state file being rewritten too
  [/^data\/spool-index\/(\d+\/)?$/, 0o700],
  [/^data\/spool-index\/\d+\/[0-9A-Z]+$/, 0o600],
  [/^data\/spool-index\/state\.json(\.tmp)?$/, 0o600],
  [/^data\/control\/[\w-]+\.(request|reply)\.json(\.\d+\.tmp)?$/, 0o600],
  [/^data\/spool\.lock$/, 0o600],
  [/^data\/tls\/selfsigned\.key$/, 0o600],
  [/^data\/tls\/selfsigned\.crt$/, 0o644, 'exact'],
];

describe.each(['000', '077'])('under umask %s', (umask) => {
  let s: Setup;
  const how = { umask };

  beforeAll(async () => {
    s = await setupRelayFolders({
      RELAY_USERS_FILE: '', // set below, in a folder the CLI must make
      RELAY_MX_PORT: String(await freePort('127.0.0.6')), // nothing listens: the message is deferred
      RELAY_RETRY_SCHEDULE: '30s',
      RELAY_UNSIGNED_POLICY: 'refuse', // the message must be signed: the key must be readable
    });
    s.env.RELAY_USERS_FILE = path.join(s.dir, 'etc', 'users.json');
    s.dns.set('hold.test', 'MX', [{ exchange: 'mx.hold.test', priority: 10 }]);
    s.dns.set('mx.hold.test', 'A', ['127.0.0.6']);
  });

  afterAll(async () => {
    await s?.dns.close();
    if (s) fs.rmSync(s.dir, { recursive: true, force: true });
  });

  test('every folder and file the CLI and the relay make has its intended mode', async () => {
    const keygen = await runCli(s, ['keygen', '--domain', 'example.org', '--selector', 's1', '--format', 'value'], how);
    expect(keygen).toMatchObject({ code: 0, output: expect.stringContaining('v=DKIM1') });
    s.dns.set('s1._domainkey.example.org', 'TXT', [keygen.output.split('\n').find((l) => l.startsWith('v=DKIM1'))!]);
    expect(await runCli(s, ['users', 'add', 'alice', '--domain', 'example.org'], how)).toMatchObject({ code: 0 });

    const relay = await serve(s, how);
    try {
      // the relay activates the key it finds in DNS (rewriting its state file), then signs with it
      const deadline = Date.now() + 15000;
      while (!relay.log().includes('is now active')) {
        if (Date.now() > deadline) throw new Error(`the key was not activated:\n${relay.log()}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      const transport = nodemailer.createTransport({ host: '127.0.0.1', port: s.port, secure: false, ignoreTLS: true });
      let id = '';
      try {
        const info = await transport.sendMail({ envelope: { from: 'app@example.org', to: ['one@hold.test'] },
          raw: 'From: app@example.org\r\nTo: one@hold.test\r\nSubject: modes\r\nDate: Sat, 28 Nov 2026 02:00:00 +0000\r\nMessage-ID: <modes@example.org>\r\n\r\nhi\r\n' });
        expect(info.response).toMatch(/^250 /);
        id = /queued as ([0-9A-Z]+)$/.exec(info.response)![1];
      } finally {
        transport.close();
      }
      // deferred after its first attempt: the spool now has a state file too
      while (!fs.readdirSync(path.join(s.env.RELAY_DATA_DIR, 'spool')).some((f) => f.endsWith('.json'))) {
        if (Date.now() > deadline + 15000) throw new Error(`no state file:\n${relay.log()}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(await runCli(s, ['queue', 'retry', '--all'], how)).toMatchObject({ code: 0 }); // makes control/

      const seen = modes(s.dir);
      const mask = parseInt(umask, 8);
      const checked: Record<string, string> = {};
      const expected: Record<string, string> = {};
      for (const [file, mode] of Object.entries(seen)) {
        const rule = INTENDED.find(([pattern]) => pattern.test(file));
        if (!rule) continue;
        checked[file] = mode;
        expected[file] = (rule[2] === 'exact' ? rule[1] : rule[1] & ~mask).toString(8).padStart(4, '0');
      }
      expect(checked).toEqual(expected);
      // all that the relay makes is there and checked (the test's own log files aside)
      expect(Object.keys(seen).filter((f) => !f.endsWith('.log') && !(f in checked))).toEqual([]);
      for (const needed of ['keys/', 'keys/example.org/s1.key', 'etc/', 'etc/users.json', 'data/spool/', 'data/control/', 'data/tls/selfsigned.key', 'data/spool.lock']) {
        expect(Object.keys(checked)).toContain(needed);
      }
      expect(relay.log()).toMatch(/"domain":"example\.org","selectors":\["s1"\],"msg":"accepted"/);

      // a message that leaves the queue goes to the journal of final outcomes: its day file too
      expect(await runCli(s, ['queue', 'delete', id], how)).toMatchObject({ code: 0 });
      const journal = path.join(s.env.RELAY_DATA_DIR, 'journal');
      while (!fs.readdirSync(journal).length) {
        if (Date.now() > deadline + 30000) throw new Error(`no journal file:\n${relay.log()}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      const [day] = fs.readdirSync(journal);
      expect(`data/journal/${day}`).toMatch(INTENDED.find(([p]) => p.test(`data/journal/${day}`))![0]);
      expect((fs.statSync(path.join(journal, day)).mode & 0o777).toString(8)).toBe((0o600 & ~mask).toString(8));
    } finally {
      await kill(relay, 'SIGTERM');
    }
    expect(await answers(s.port)).toBe(false);
  });
});
