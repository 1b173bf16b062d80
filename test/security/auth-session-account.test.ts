// A session logged in before its user was removed, or given a new password, with the real
// `dkim-relay users` CLI, cannot go on sending: MAIL FROM (or RCPT TO) gets 421 4.7.0 saying
// the account changed, and the connection ends. Sessions of unchanged users go on.
import { login, runCli } from '../helpers/login';
import { RawSession } from '../helpers/raw-smtp';
import { DOMAIN, Harness, startHarness } from '../helpers/relay-harness';

let h: Harness;
const CLIENT = '127.0.0.9';

beforeAll(async () => {
  h = await startHarness({ RELAY_TRUSTED_NETWORKS: '127.0.0.1/32' });
  for (const name of ['gone', 'changed', 'kept', 'late']) {
    const added = await runCli(h, ['users', 'add', name, '--domain', DOMAIN, '--password-stdin'], `${name} password 1\n`);
    expect(added.code).toBe(0);
  }
});

afterAll(async () => {
  await h?.stop();
});

async function loggedIn(name: string): Promise<RawSession> {
  const { reply, session } = await login(h.relay.ports.starttls, CLIENT, name, `${name} password 1`, true);
  expect(reply).toMatch(/^235 /);
  return session!;
}

/** One whole message on the session; the reply to its final dot. */
async function send(s: RawSession): Promise<string> {
  expect(await s.command(`MAIL FROM:<app@${DOMAIN}>`)).toMatch(/^250 /);
  expect(await s.command('RCPT TO:<user@dest.test>')).toMatch(/^250 /);
  expect(await s.command('DATA')).toMatch(/^354 /);
  return s.command(`From: <app@${DOMAIN}>\r\nTo: <user@dest.test>\r\nSubject: x\r\n\r\nhello\r\n.`);
}

test('a removed user\'s open session is refused at MAIL FROM and closed', async () => {
  const s = await loggedIn('gone');
  expect(await send(s)).toMatch(/^250 2\.0\.0 queued as /);
  expect((await runCli(h, ['users', 'remove', 'gone'])).code).toBe(0);
  expect(await s.command(`MAIL FROM:<app@${DOMAIN}>`)).toMatch(/^421 4\.7\.0 the account gone changed since this session logged in \(it was removed\); connect and log in again/);
  await s.closed;
});

test('a user given a new password: its open session is refused at MAIL FROM; the new password logs in', async () => {
  const s = await loggedIn('changed');
  expect((await runCli(h, ['users', 'remove', 'changed'])).code).toBe(0);
  expect((await runCli(h, ['users', 'add', 'changed', '--domain', DOMAIN, '--password-stdin'], 'changed password 2\n')).code).toBe(0);
  expect(await s.command(`MAIL FROM:<app@${DOMAIN}>`)).toMatch(/^421 4\.7\.0 the account changed changed since this session logged in \(its password was changed\)/);
  await s.closed;
  expect((await login(h.relay.ports.starttls, CLIENT, 'changed', 'changed password 2')).reply).toMatch(/^235 /);
  expect((await login(h.relay.ports.starttls, CLIENT, 'changed', 'changed password 1')).reply).toMatch(/^535 /);
});

test('removed between MAIL FROM and RCPT TO: RCPT TO is refused', async () => {
  const s = await loggedIn('late');
  expect(await s.command(`MAIL FROM:<app@${DOMAIN}>`)).toMatch(/^250 /);
  expect((await runCli(h, ['users', 'remove', 'late'])).code).toBe(0);
  expect(await s.command('RCPT TO:<user@dest.test>')).toMatch(/^421 4\.7\.0 the account late changed/);
  await s.closed;
});

test('a session whose user did not change goes on sending while others change', async () => {
  const s = await loggedIn('kept');
  expect(await send(s)).toMatch(/^250 2\.0\.0 queued as /);
  expect((await runCli(h, ['users', 'add', 'another', '--domain', DOMAIN, '--password-stdin'], 'another password\n')).code).toBe(0);
  expect(await send(s)).toMatch(/^250 2\.0\.0 queued as /);
  s.end();
});
