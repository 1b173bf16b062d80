// Issue 16, items 1 and 6: a domain whose key is pending, or whose key file others can read,
// gets a 550 that says exactly that and what to do (not "make one with keygen"); every
// SMTP-time refusal is logged at info; and a key that cannot be used is logged at start and
// whenever the key store changes, before any message needs it, with what signs meanwhile.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { activateKey } from '../../src/dkim/key-lifecycle';
import { generateKey } from '../../src/dkim/keygen';
import { createResolver } from '../../src/dns/resolver';
import { addUser } from '../../src/users/store';
import { DOMAIN, Harness, logLines, rawMessage, startWithSink, submitError, waitForLog } from '../helpers/relay-harness';
import { Sink } from '../helpers/sink';
import { BIN, ensureBuilt, NODE } from '../helpers/built-cli';

/** The real CLI on the relay's key store. */
function runCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('RELAY_')) env[k] = v;
  env.RELAY_KEYS_DIR = h.config.keysDir;
  return new Promise((resolve) => {
    execFile(NODE, [BIN, ...args], { cwd: h.dir, env, timeout: 20000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
    });
  });
}

let h: Harness;
let sink: Sink;

beforeAll(async () => {
  ensureBuilt();
  ({ h, sink } = await startWithSink());
  await addUser(h.config.usersFile, { name: 'app1', domains: ['pending.test', 'open.test'], password: 'a long secret password' });
  // the relay re-reads the users file at most once a second (issue 16 item 2 is another's work)
  await new Promise((r) => setTimeout(r, 1500));
}, 60000);

afterAll(async () => {
  await h?.stop();
  await sink?.close();
});

const auth = { user: 'app1', pass: 'a long secret password' };

test('a pending key: the 550 gives the record to publish and the activate command; the refusal is logged at info', async () => {
  const key = await generateKey(h.config.keysDir, { domain: 'pending.test', selector: 'p1' });
  const r = await submitError(h, { from: 'app@pending.test', raw: rawMessage('app@pending.test', 'user@dest.test'), auth, localAddress: '127.0.0.1' });
  expect(r.code).toBe(550);
  expect(r.response).toBe(`550 5.7.1 the DKIM key p1 of pending.test is pending, so it does not sign yet: publish the TXT record ` +
    `p1._domainkey.pending.test "${key.recordValue}", then run \`dkim-relay keys activate pending.test p1\``);
  expect(r.response).not.toMatch(/make one with/);

  const line = await waitForLog(h, (l) => l.msg === 'refused' && l.sender === 'app@pending.test');
  expect(line).toMatchObject({ level: 30, client: '127.0.0.1', user: 'app1', stage: 'DATA', code: 550 });
  expect(String(line.reason)).toMatch(/^5\.7\.1 the DKIM key p1 of pending\.test is pending/);
});

test('refusals at MAIL FROM are logged at info too, with client, user, sender and code', async () => {
  const r = await submitError(h, { from: 'app@not-granted.test', raw: rawMessage('app@not-granted.test', 'user@dest.test'), auth });
  expect(r.code).toBe(550);
  const line = await waitForLog(h, (l) => l.msg === 'refused' && l.sender === 'app@not-granted.test');
  expect(line).toMatchObject({ level: 30, client: '127.0.0.1', user: 'app1', stage: 'MAIL FROM', code: 550 });
  expect(String(line.reason)).toMatch(/^5\.7\.1 /);
});

test('a key file others can read is logged when the store changes, before any mail; the 550 says chmod', async () => {
  const resolver = createResolver({ servers: [h.dns.address], timeoutSeconds: 2 });
  const key = await generateKey(h.config.keysDir, { domain: 'open.test', selector: 'o1' });
  h.dns.set(key.recordName, 'TXT', [key.recordValue]);
  await activateKey(h.config.keysDir, 'open.test', 'o1', resolver);
  fs.chmodSync(key.path, 0o640);

  // no message sent: the relay's check of the store finds it by itself (every 2 s)
  const logged = await waitForLog(h, (l) => l.level === 50 && l.file === key.path, 10000);
  expect(logged.msg).toBe(`DKIM key ${key.path} is readable by others (mode 0640) and is not used: run \`chmod 600 ${key.path}\`. ` +
    'Until then mail from open.test cannot be signed');

  const r = await submitError(h, { from: 'app@open.test', raw: rawMessage('app@open.test', 'user@dest.test'), auth });
  expect(r.response).toBe(`550 5.7.1 no usable DKIM key for open.test: DKIM key ${key.path} is readable by others (mode 0640) and is not used: run \`chmod 600 ${key.path}\``);
  // logged once, not again on the message
  expect(logLines(h).filter((l) => l.level === 50 && l.file === key.path)).toHaveLength(1);
});

test('at start: a newer key that cannot be used is logged with the older key that signs instead', async () => {
  const resolver = createResolver({ servers: [h.dns.address], timeoutSeconds: 2 });
  const newer = await generateKey(h.config.keysDir, { domain: DOMAIN, selector: 's2' }, new Date(Date.now() + 1000));
  h.dns.set(newer.recordName, 'TXT', [newer.recordValue]);
  await activateKey(h.config.keysDir, DOMAIN, 's2', resolver, new Date(Date.now() + 1000));
  fs.chmodSync(newer.path, 0o644);
  const before = logLines(h).length;
  await h.restart();
  // logged during the start itself, with no message sent
  const line = logLines(h).slice(before).find((l) => l.level === 50 && l.file === newer.path);
  expect(line?.msg).toBe(`DKIM key ${newer.path} is readable by others (mode 0644) and is not used: run \`chmod 600 ${newer.path}\`. ` +
    `Meanwhile ${DOMAIN} is signed with its older key s1`);
  expect(path.basename(newer.path)).toBe('s2.key');
});

test('keys list shows the unusable key, its fix, and what signs meanwhile', async () => {
  const list = await runCli(['keys', 'list', DOMAIN, '--no-dns']);
  expect(list.code).toBe(0);
  expect(list.stdout).toMatch(/^example\.org\s+s2\s+rsa\s+2048\s+UNUSABLE\s/m);
  const file = path.join(h.config.keysDir, DOMAIN, 's2.key');
  expect(list.stdout).toContain(`example.org s2: DKIM key ${file} is readable by others (mode 0644) and is not used: run \`chmod 600 ${file}\``);
  expect(list.stdout).toContain('example.org s2: cannot be used, so example.org is signed with s1 meanwhile');
});
