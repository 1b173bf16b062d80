// Password guessing over real SMTP: a correct login in between does not buy more guesses,
// and guesses against one user name spread over many addresses are limited too, while the
// user's own client (an address it logged in from before) keeps working.
import { addUser } from '../../src/users/store';
import { login, passwordChecks } from '../helpers/login';
import { DOMAIN, Harness, logLines, startHarness } from '../helpers/relay-harness';

let h: Harness;
const PASSWORDS: Record<string, string> = { alice: 'alice secret pw', bob: 'bob secret pw', carol: 'carol secret pw', dave: 'dave secret pw' };

beforeAll(async () => {
  h = await startHarness({
    RELAY_TRUSTED_NETWORKS: '127.0.0.1/32', // every other loopback address stands for a remote client
    RELAY_AUTH_MAX_FAILURES: '10',
    RELAY_AUTH_MAX_USER_FAILURES: '20',
    RELAY_AUTH_BLOCK_TIME: '1h', // failures leak away over this: negligibly during the test
    RELAY_AUTH_FAILURE_DELAY: '0',
  });
  for (const [name, password] of Object.entries(PASSWORDS)) await addUser(h.config.usersFile, { name, domains: [DOMAIN], password });
});

afterAll(async () => {
  await h?.stop();
});

test('9 wrong guesses for bob, then a correct login as alice, repeated: the address is blocked at the 10th failure', async () => {
  const port = h.relay.ports.starttls;
  const client = '127.0.0.20';
  const bobReplies: string[] = [];
  const aliceReplies: string[] = [];
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < 9; i++) bobReplies.push((await login(port, client, 'bob', `guess ${round}-${i}`)).reply);
    aliceReplies.push((await login(port, client, 'alice', PASSWORDS.alice)).reply);
  }
  expect(bobReplies.slice(0, 9).every((r) => /^535 5\.7\.8 /.test(r))).toBe(true);
  expect(aliceReplies[0]).toMatch(/^235 /); // the first round is under the limit
  // The 10th failure blocks the address: alice's success did not clear the nine before it.
  expect(bobReplies[9]).toMatch(/^421 4\.7\.0 too many failed logins from 127\.0\.0\.20/);
  expect(bobReplies.slice(10).every((r) => /^421 4\.7\.0 /.test(r))).toBe(true);
  expect(aliceReplies.slice(1).every((r) => /^421 4\.7\.0 /.test(r))).toBe(true);
  const failed = passwordChecks(h, client).filter((l) => l.msg === 'authentication failed');
  expect(failed).toHaveLength(10);
  expect(logLines(h).filter((l) => l.client === client && /too many failed logins from this address/.test(String(l.msg)))).toHaveLength(1);
});

test('guesses for one user spread over many addresses stop at auth.maxUserFailures; the user\'s own address and other users still log in', async () => {
  const port = h.relay.ports.starttls;
  // dave's own client logs in before the attack
  expect((await login(port, '127.0.3.1', 'dave', PASSWORDS.dave)).reply).toMatch(/^235 /);

  // 10 addresses, 4 guesses each: under the per-address limit, 40 guesses for dave in all
  const replies: string[] = [];
  for (let a = 1; a <= 10; a++) {
    for (let i = 0; i < 4; i++) replies.push((await login(port, `127.0.4.${a}`, 'dave', `guess ${a}-${i}`)).reply);
  }
  const checked = passwordChecks(h).filter((l) => l.user === 'dave' && l.msg === 'authentication failed');
  expect(checked.length).toBeLessThanOrEqual(20);
  expect(replies.slice(0, 19).every((r) => /^535 5\.7\.8 /.test(r))).toBe(true);
  expect(replies[19]).toMatch(/^421 4\.7\.0 too many failed logins for dave/);
  expect(replies.slice(20).every((r) => /^421 4\.7\.0 too many failed logins for dave/.test(r))).toBe(true);
  expect(logLines(h).filter((l) => l.user === 'dave' && /too many failed logins for this user/.test(String(l.msg)))).toHaveLength(1);

  // Not a lock-out: dave from the address it logged in from before gets in ...
  expect((await login(port, '127.0.3.1', 'dave', PASSWORDS.dave)).reply).toMatch(/^235 /);
  // ... a new address is refused, even with the right password, while the name is under attack ...
  expect((await login(port, '127.0.3.2', 'dave', PASSWORDS.dave)).reply).toMatch(/^421 4\.7\.0 too many failed logins for dave; .*from an address that logged in as dave before/);
  // ... and other users are not affected, from those same addresses.
  expect((await login(port, '127.0.4.1', 'carol', PASSWORDS.carol)).reply).toMatch(/^235 /);
});
