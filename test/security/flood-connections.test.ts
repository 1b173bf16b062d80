// Issue 15, section 3: no client can starve the others of connections. Before, one untrusted
// address (127.0.0.9) opened 200 connections, kept them with a NOOP every 2 s, and every other
// client got "421 Too many connected clients". Now one address holds at most
// submission.maxConnectionsPerClient, and clients outside the trusted networks together hold
// at most submission.maxClients minus submission.reservedForTrustedNetworks
// (src/submission/connection-limits.ts).
import { addUser } from '../../src/users/store';
import { connectRaw, RawSession } from '../helpers/raw-smtp';
import { DOMAIN, Harness, startWithSink, submit, submitError } from '../helpers/relay-harness';
import { Sink } from '../helpers/sink';

const USER = { user: 'alice', pass: 'correct horse battery staple', method: 'PLAIN' as const };

async function startScene(env: Record<string, string>): Promise<{ h: Harness; sink: Sink }> {
  const scene = await startWithSink({
    RELAY_TRUSTED_NETWORKS: '127.0.0.1/32',
    // AUTH PLAIN without STARTTLS from the loopback "remote" addresses, to keep the test short
    RELAY_PLAIN_AUTH_NETWORKS: '127.0.0.0/8',
    ...env,
  });
  await addUser(scene.h.config.usersFile, { name: USER.user, domains: [DOMAIN], password: USER.pass });
  // the relay looks at the users file at most once a second
  await pause(1100);
  return scene;
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Closes the sessions; the relay counts them out once it has seen them close. */
async function closeAll(sessions: RawSession[]): Promise<void> {
  for (const s of sessions) s.end();
  await Promise.all(sessions.map((s) => s.closed));
  await pause(300);
}

/** Opens n connections from one address; returns the greeted ones and the first reply of each refused one. */
async function flood(h: Harness, address: string, n: number): Promise<{ open: RawSession[]; refused: string[] }> {
  const attempts = await Promise.all(Array.from({ length: n }, async () => {
    const s = await connectRaw(h.relay.ports.starttls, address);
    return { s, greeting: await s.reply() };
  }));
  const open = attempts.filter((a) => a.greeting.startsWith('220 ')).map((a) => a.s);
  const refused = attempts.filter((a) => !a.greeting.startsWith('220 '));
  await Promise.all(refused.map((a) => a.s.closed));
  return { open, refused: refused.map((a) => a.greeting) };
}

/** Keeps the sessions busy as the attack did: a NOOP on each every 2 s. */
function keepAlive(sessions: RawSession[]): () => void {
  const timer = setInterval(() => {
    for (const s of sessions) if (!s.isClosed()) s.command('NOOP').catch(() => undefined);
  }, 2000);
  return () => clearInterval(timer);
}

describe('one address floods (the defaults: maxClients 200, 20 per client)', () => {
  let h: Harness;
  let sink: Sink;
  beforeAll(async () => {
    ({ h, sink } = await startScene({}));
  });
  afterAll(async () => {
    await h?.stop();
    await sink?.close();
  });

  test('200 connections from 127.0.0.9: 20 are served, the rest get 421 4.7.0 naming the setting; trusted and authenticated clients still send', async () => {
    const { open, refused } = await flood(h, '127.0.0.9', 200);
    const stop = keepAlive(open);
    try {
      expect(open).toHaveLength(20);
      expect(refused).toHaveLength(180);
      for (const reply of refused) {
        expect(reply).toMatch(/^421 4\.7\.0 too many connections from 127\.0\.0\.9: 20 are open.*submission\.maxConnectionsPerClient, RELAY_MAX_CONNECTIONS_PER_CLIENT/);
      }
      // the flooder's sessions work (they are not punished, only bounded)
      expect(await open[0].command('EHLO flood.test')).toMatch(/^250/);

      // a client on a trusted network
      expect((await submit(h, { localAddress: '127.0.0.1' })).response).toMatch(/^250 2\.0\.0 queued as /);
      // an authenticated user from another untrusted address
      expect((await submit(h, { localAddress: '127.0.0.10', auth: USER, ignoreTLS: true })).response).toMatch(/^250 2\.0\.0 queued as /);
      // while the flooder still cannot open a 21st
      const more = await flood(h, '127.0.0.9', 3);
      expect(more.open).toHaveLength(0);
      expect(more.refused).toHaveLength(3);
      await sink.waitForMessages(2, 15000);
    } finally {
      stop();
      await closeAll(open);
    }
    // the count goes down as the connections close: the address may connect again
    const again = await flood(h, '127.0.0.9', 20);
    await closeAll(again.open);
    expect(again.open).toHaveLength(20);
  });

  test('an untrusted client refused for its connection count gets a reply it can act on, with nothing else', async () => {
    const { open } = await flood(h, '127.0.0.9', 20);
    try {
      expect(open).toHaveLength(20);
      const s = await connectRaw(h.relay.ports.starttls, '127.0.0.9');
      const reply = await s.reply();
      expect(reply).toMatch(/^421 4\.7\.0 .*close some or try again later$/);
      await s.closed;
      expect(s.lines).toEqual([reply]);
    } finally {
      await closeAll(open);
    }
  });
});

describe('many addresses flood (maxClients 30, 5 per client, 10 kept for trusted networks)', () => {
  let h: Harness;
  let sink: Sink;
  beforeAll(async () => {
    ({ h, sink } = await startScene({
      RELAY_MAX_CLIENTS: '30',
      RELAY_MAX_CONNECTIONS_PER_CLIENT: '5',
      RELAY_RESERVED_FOR_TRUSTED_NETWORKS: '10',
    }));
  });
  afterAll(async () => {
    await h?.stop();
    await sink?.close();
  });

  test('six addresses fill the 20 connections left to the outside; trusted clients keep their 10', async () => {
    const floods = [];
    for (let i = 11; i <= 16; i++) floods.push(await flood(h, `127.0.0.${i}`, 5));
    const open = floods.flatMap((f) => f.open);
    const refused = floods.flatMap((f) => f.refused);
    const stop = keepAlive(open);
    try {
      expect(open).toHaveLength(20);
      expect(refused).toHaveLength(10);
      for (const reply of refused) {
        expect(reply).toMatch(/^421 4\.7\.0 the relay is busy: clients outside its trusted networks hold all 20 connections they may \(submission\.maxClients minus submission\.reservedForTrustedNetworks\)/);
      }
      // trusted: nine connections held open and a tenth that sends mail
      const trusted = await flood(h, '127.0.0.1', 9);
      expect(trusted.open).toHaveLength(9);
      expect((await submit(h, { localAddress: '127.0.0.1' })).response).toMatch(/^250 2\.0\.0 queued as /);
      // maxClients still caps everything: a tenth trusted connection fills it, the next is refused
      const full = await flood(h, '127.0.0.1', 2);
      expect(full.open).toHaveLength(1);
      expect(full.refused[0]).toMatch(/^421 4\.7\.0 relay\.example\.net Too many connected clients: submission\.maxClients \(RELAY_MAX_CLIENTS\) are open; try again in a moment$/);
      await closeAll([...trusted.open, ...full.open]);
      await sink.waitForMessages(1, 15000);
      // documented: an authenticated user from outside competes with the flood for the rest
      // (a user is only known after AUTH, and the connection is counted before)
      const user = await submitError(h, { localAddress: '127.0.0.10', auth: USER, ignoreTLS: true });
      expect(user.code).toBe(421);
      expect(user.response).toMatch(/4\.7\.0 the relay is busy/);
    } finally {
      stop();
      await closeAll(open);
    }
  });
});
