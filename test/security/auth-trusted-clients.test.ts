// Failed logins from an address of a trusted network block AUTH from it, not the clients
// there that send without AUTH (local apps sharing 127.0.0.1 with whoever is guessing). An
// untrusted address is also refused at connect. Each block and each end of a block is
// logged once, with the address.
import { addUser } from '../../src/users/store';
import { login, openSession } from '../helpers/login';
import { DOMAIN, Harness, logLines, startWithSink, submit, waitForLog } from '../helpers/relay-harness';
import { Sink } from '../helpers/sink';

let h: Harness;
let sink: Sink;
const BLOCK_SECONDS = 4;

beforeAll(async () => {
  ({ h, sink } = await startWithSink({
    RELAY_TRUSTED_NETWORKS: '127.0.0.1/32',
    RELAY_AUTH_MAX_FAILURES: '10',
    RELAY_AUTH_BLOCK_TIME: `${BLOCK_SECONDS}s`,
    RELAY_AUTH_FAILURE_DELAY: '0',
  }));
  await addUser(h.config.usersFile, { name: 'app1', domains: [DOMAIN], password: 'correct horse battery' });
});

afterAll(async () => {
  await h?.stop();
  await sink?.close();
});

/** Wrong passwords from `client` until the relay refuses (failures leak away quickly with a short block time). */
async function guessUntilBlocked(client: string): Promise<string[]> {
  const replies: string[] = [];
  while (replies.length < 60) {
    const { reply } = await login(h.relay.ports.starttls, client, 'app1', `wrong ${replies.length}`);
    replies.push(reply);
    if (reply.startsWith('421')) break;
  }
  expect(replies[replies.length - 1]).toMatch(/^421 4\.7\.0 too many failed logins from /);
  return replies;
}

const blockLines = (client: string) => logLines(h).filter((l) => l.client === client && /too many failed logins from this address/.test(String(l.msg)));
const unblockLines = (client: string) => logLines(h).filter((l) => l.client === client && /login block ended/.test(String(l.msg)));

test('a trusted address blocked by failed logins: its clients still send without AUTH; AUTH is refused until the block ends', async () => {
  await guessUntilBlocked('127.0.0.1');
  expect(blockLines('127.0.0.1')).toHaveLength(1);
  expect(blockLines('127.0.0.1')[0]).toMatchObject({ level: 40, client: '127.0.0.1', seconds: BLOCK_SECONDS });

  // a local app that does not AUTH is not refused
  const { response } = await submit(h, { localAddress: '127.0.0.1' });
  expect(response).toMatch(/^250 2\.0\.0 queued as /);
  // AUTH from the address is, even with the right password
  expect((await login(h.relay.ports.starttls, '127.0.0.1', 'app1', 'correct horse battery')).reply).toMatch(/^421 4\.7\.0 too many failed logins from 127\.0\.0\.1/);

  await waitForLog(h, (l) => l.client === '127.0.0.1' && /login block ended/.test(String(l.msg)), (BLOCK_SECONDS + 5) * 1000);
  expect((await login(h.relay.ports.starttls, '127.0.0.1', 'app1', 'correct horse battery')).reply).toMatch(/^235 /);
  expect(blockLines('127.0.0.1')).toHaveLength(1);
  expect(unblockLines('127.0.0.1')).toHaveLength(1);
  expect(unblockLines('127.0.0.1')[0]).toMatchObject({ level: 30 });
});

test('an untrusted address blocked by failed logins is refused at connect, logged once, until the block ends', async () => {
  const client = '127.0.0.9';
  await guessUntilBlocked(client);
  for (let i = 0; i < 3; i++) {
    const { session, greeting } = await openSession(h.relay.ports.starttls, client);
    expect(session).toBeNull();
    expect(greeting).toMatch(/^421 4\.7\.0 too many failed logins from 127\.0\.0\.9; try again in 1 minute/);
  }
  expect(blockLines(client)).toHaveLength(1);
  await waitForLog(h, (l) => l.client === client && /login block ended/.test(String(l.msg)), (BLOCK_SECONDS + 5) * 1000);
  expect((await login(h.relay.ports.starttls, client, 'app1', 'correct horse battery')).reply).toMatch(/^235 /);
  expect(unblockLines(client)).toHaveLength(1);
  expect(blockLines(client)).toHaveLength(1);
});
