// Recipients the relay cannot deliver by domain are refused at RCPT with a reason (issue 16,
// item 7): before, x@[192.0.2.1] got 250 and was then retried for five days with "MX lookup
// failed (EBADNAME)". Internationalized domains are still taken.
import { addUser } from '../../src/users/store';
import { connectRaw, RawSession } from '../helpers/raw-smtp';
import { DOMAIN, Harness, startWithSink } from '../helpers/relay-harness';
import { Sink } from '../helpers/sink';

let h: Harness;
let sink: Sink;
let s: RawSession;

beforeAll(async () => {
  ({ h, sink } = await startWithSink({ RELAY_TRUSTED_NETWORKS: '127.0.0.1/32' }));
  await addUser(h.config.usersFile, { name: 'app1', domains: [DOMAIN], password: 'app1 password' });
  s = await connectRaw(h.relay.ports.starttls, '127.0.0.1');
  expect(await s.reply()).toMatch(/^220 /);
  expect(await s.command('EHLO client.test')).toMatch(/^250/);
  expect(await s.command(`MAIL FROM:<app@${DOMAIN}> SMTPUTF8`)).toMatch(/^250/);
});

afterAll(async () => {
  s?.end();
  await h?.stop();
  await sink?.close();
});

test.each([
  ['x@[192.0.2.1]', /^550 5\.1\.2 .*address literal.*domain names/],
  ['x@[IPv6:2001:db8::1]', /^550 5\.1\.2 .*address literal/],
  ['x@bad..name', /^501 5\.1\.3 /], // smtp-server's own syntax check
  ['x@-bad.test', /^550 5\.1\.2 .*not a domain name/],
  ['x@under_score.test', /^501 5\.1\.3 /],
  ['x@nodot', /^550 5\.1\.2 .*not a domain name/],
  ['x@localhost', /^550 5\.1\.2 .*not a domain name/],
])('RCPT TO:<%s> is refused', async (address, reply) => {
  expect(await s.command(`RCPT TO:<${address}>`)).toMatch(reply);
});

test.each(['user@dest.test', 'user@Dest.Test', 'jürgen@bücher.test', 'user@xn--bcher-kva.test'])('RCPT TO:<%s> is taken', async (address) => {
  expect(await s.command(Buffer.from(`RCPT TO:<${address}>`, 'utf8'))).toMatch(/^250 /);
});
