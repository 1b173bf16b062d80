// Issue 16 item 2: a user that `dkim-relay users add` reported as added logs in at once on
// the running relay (it used to look at the users file at most once a second, so an AUTH
// right after `users add` often got 535, and those failures counted toward the block).
import { login, passwordChecks, runCli } from '../helpers/login';
import { DOMAIN, Harness, startHarness } from '../helpers/relay-harness';

let h: Harness;

beforeAll(async () => {
  h = await startHarness({ RELAY_TRUSTED_NETWORKS: '127.0.0.1/32', RELAY_AUTH_MAX_FAILURES: '100' });
});

afterAll(async () => {
  await h?.stop();
});

test('20 rounds of `users add` (the real CLI) then an immediate AUTH: every login succeeds', async () => {
  const replies: string[] = [];
  for (let i = 0; i < 20; i++) {
    const added = await runCli(h, ['users', 'add', `new${i}`, '--domain', DOMAIN, '--password-stdin'], `password of new${i}\n`);
    expect(added.code).toBe(0);
    replies.push((await login(h.relay.ports.starttls, '127.0.0.9', `new${i}`, `password of new${i}`)).reply);
  }
  expect(replies.filter((r) => !r.startsWith('235 '))).toEqual([]);
  expect(passwordChecks(h).filter((l) => l.msg === 'authentication failed')).toEqual([]);
});

test('`users remove` then an immediate AUTH: refused at once', async () => {
  expect((await runCli(h, ['users', 'remove', 'new0'])).code).toBe(0);
  expect((await login(h.relay.ports.starttls, '127.0.0.9', 'new0', 'password of new0')).reply).toMatch(/^535 5\.7\.8 /);
});
