// Postfix from Debian as the client of the relay, configured exactly as README.md tells
// users (relayhost, SASL, smtp_tls_security_level = encrypt), connecting from 127.0.0.9 so
// that it is not on a trusted network and must STARTTLS + AUTH. Mail injected with
// Postfix's sendmail arrives at the sink signed, and verifies with python3-dkim.
import { addUser } from '../../src/users/store';
import { verifyDkim } from '../helpers/dkim-verify';
import { PostfixClient, startPostfixClient } from '../helpers/postfix-client';
import { DOMAIN, Harness, rawMessage, startWithSink, waitForLog } from '../helpers/relay-harness';
import { Sink } from '../helpers/sink';

let h: Harness;
let sink: Sink;
let postfix: PostfixClient;

beforeAll(async () => {
  ({ h, sink } = await startWithSink({ RELAY_TRUSTED_NETWORKS: '127.0.0.1/32', RELAY_PLAIN_AUTH_NETWORKS: '127.0.0.1/32' }));
  await addUser(h.config.usersFile, { name: 'postfix-client', domains: [DOMAIN], password: 'sasl password for postfix' });
  postfix = await startPostfixClient({ relayPort: h.relay.ports.starttls, user: 'postfix-client', password: 'sasl password for postfix', bindAddress: '127.0.0.9' });
}, 60000);

afterAll(async () => {
  await postfix?.stop();
  await h?.stop();
  await sink?.close();
});

test('mail from Postfix (relayhost + SASL + TLS encrypt) arrives signed and verifies', async () => {
  await postfix.sendmail(`app@${DOMAIN}`, ['user@dest.test'], rawMessage(`app@${DOMAIN}`, 'user@dest.test', { subject: 'via postfix' }).replace(/\r\n/g, '\n'));
  let msgs;
  try {
    msgs = await sink.waitForMessages(1, 30000);
  } catch (err) {
    throw new Error(`${(err as Error).message}\npostfix log:\n${postfix.log()}`);
  }
  const msg = msgs[0];
  expect(msg.rcptTo).toEqual(['user@dest.test']);
  expect(msg.data.toString()).toContain('Subject: via postfix');
  const verdict = await verifyDkim(msg.data, h.records);
  expect(verdict.ok).toBe(true);
  expect(verdict.signatures[0]).toMatchObject({ d: DOMAIN, s: 's1' });
  // Postfix really used TLS and SASL to reach the relay
  expect(postfix.log()).toMatch(/status=sent \(250 2\.0\.0 queued as [0-9A-Z]+\)/);
  expect(postfix.log()).toMatch(/TLS connection established to 127\.0\.0\.1/);
  // ...and the relay saw it log in from the untrusted address
  const id = /queued as ([0-9A-Z]+)/.exec(postfix.log())![1];
  await waitForLog(h, (l) => l.msg === 'accepted' && l.id === id && l.user === 'postfix-client' && l.client === '127.0.0.9');
});
