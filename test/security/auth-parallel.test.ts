// Attempts in flight count: 40 AUTH PLAIN guesses sent at the same instant from one address,
// on 40 connections, get at most auth.maxFailures password checks, and the right password
// among them logs in only if it was one of those checked.
import { addUser } from '../../src/users/store';
import { RawSession } from '../helpers/raw-smtp';
import { openSession, passwordChecks, plainAuth } from '../helpers/login';
import { DOMAIN, Harness, logLines, startHarness } from '../helpers/relay-harness';

let h: Harness;
const MAX_FAILURES = 10;

beforeAll(async () => {
  h = await startHarness({
    RELAY_TRUSTED_NETWORKS: '127.0.0.1/32',
    RELAY_AUTH_MAX_FAILURES: String(MAX_FAILURES),
    RELAY_AUTH_MAX_USER_FAILURES: '1000', // the per-address limit is under test here
    RELAY_AUTH_BLOCK_TIME: '1h',
    RELAY_AUTH_FAILURE_DELAY: '0.05',
  });
});

afterAll(async () => {
  await h?.stop();
});

// The right guess at a random position, and at the first and the last one.
const positions = [Math.floor(Math.random() * 40), 0, 39];

test.each(positions.map((p, i) => [p, `127.0.5.${i + 1}`]))('40 parallel guesses, the right one at position %i, from %s: at most maxFailures checks', async (position, client) => {
  const user = `target${client.split('.').pop()}`;
  const password = 'the right password';
  await addUser(h.config.usersFile, { name: user, domains: [DOMAIN], password });

  const opened = await Promise.all(Array.from({ length: 40 }, () => openSession(h.relay.ports.starttls, client as string)));
  const replies = await Promise.all(opened.map(({ session, greeting }, i) => {
    if (!session) return greeting; // refused at connect: no password checked either
    return (session as RawSession).command(plainAuth(user, i === position ? password : `wrong guess ${i}`))
      .catch((err: Error) => `(no reply: ${err.message})`)
      .finally(() => session.end());
  }));

  const checks = passwordChecks(h, client as string);
  expect(checks.length).toBeLessThanOrEqual(MAX_FAILURES);
  // Every attempt beyond the checked ones was refused before its password was looked at
  // (the failure that starts the block is answered 421 instead of 535).
  const blocks = logLines(h).filter((l) => l.client === client && /too many failed logins from this address/.test(String(l.msg)));
  expect(blocks.length).toBeLessThanOrEqual(1);
  expect(replies.filter((r) => /^(535|235) /.test(r)).length).toBe(checks.length - blocks.length);
  expect(replies.filter((r) => !/^(535 5\.7\.8|235|421 4\.7\.0) /.test(r))).toEqual([]);
  const rightChecked = checks.some((l) => l.msg === 'authenticated');
  if (rightChecked) {
    expect(replies[position as number]).toMatch(/^235 /);
  } else {
    // The block (or the attempts in flight) came first: the right password is refused too.
    expect(replies[position as number]).toMatch(/^421 4\.7\.0 /);
  }
  expect(replies.filter((r) => r.startsWith('235'))).toHaveLength(rightChecked ? 1 : 0);
});
