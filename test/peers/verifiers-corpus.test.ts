// Messages shaped like real mail, relayed and then verified by two independent verifiers,
// Debian's python3-dkim (with python3-nacl for Ed25519) and mailauth's verifier: every
// message, and both of its signatures (RSA and Ed25519), pass.
import crypto from 'node:crypto';
import { verifyDkim } from '../helpers/dkim-verify';
import { activateKey } from '../../src/dkim/key-lifecycle';
import { generateKey } from '../../src/dkim/keygen';
import { createResolver } from '../../src/dns/resolver';
import { verifyWithMailauth } from '../helpers/mailauth-verify';
import { DOMAIN, Harness, startWithSink, submit } from '../helpers/relay-harness';
import { Sink } from '../helpers/sink';

let h: Harness;
let sink: Sink;

beforeAll(async () => {
  ({ h, sink } = await startWithSink());
  // An Ed25519 key next to the RSA one: every message carries both signatures (RFC 8463).
  const ed = await generateKey(h.config.keysDir, { domain: DOMAIN, selector: 'ed1', algorithm: 'ed25519' });
  h.dns.set(ed.recordName, 'TXT', [ed.recordValue]);
  h.records[ed.recordName] = ed.recordValue;
  await activateKey(h.config.keysDir, DOMAIN, 'ed1', createResolver({ servers: [h.dns.address], timeoutSeconds: 2 }));
  await h.restart();
});

afterAll(async () => {
  await h?.stop();
  await sink?.close();
});

const FROM = `app@${DOMAIN}`;
const base = (subject: string, extra: string[] = []) => [
  `From: "App Sender" <${FROM}>`,
  'To: user@dest.test',
  `Subject: ${subject}`,
  'Date: Sat, 28 Nov 2026 02:00:00 +0000',
  `Message-ID: <${crypto.randomUUID()}@example.org>`,
  ...extra,
];
const attachment = crypto.randomBytes(30000).toString('base64').replace(/.{76}/g, '$&\r\n');

const CORPUS: Record<string, string> = {
  'folded and long headers': [
    ...base('a subject that is long enough to be folded over\r\n several lines, as mail clients\r\n\tdo with long subjects'),
    'References: ' + Array.from({ length: 30 }, (_, i) => `<ref${i}.${'x'.repeat(20)}@example.org>`).join('\r\n '),
    'X-Mixed-Case-Header:no space after the colon',
    'mime-version: 1.0',
    '',
    'Body.',
    '',
  ].join('\r\n'),
  '8-bit and UTF-8 headers': [
    `From: "Jürgen Müller" <${FROM}>`,
    'To: "Zoë" <user@dest.test>',
    'Subject: Grüße aus Köln – ½ € ✓',
    'Date: Sat, 28 Nov 2026 02:00:00 +0000',
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: 8bit',
    '',
    'Schöne Grüße, naïve café, 日本語.',
    '',
  ].join('\r\n'),
  'RFC 2047 encoded headers': [
    ...base('=?UTF-8?Q?Gr=C3=BC=C3=9Fe?= =?UTF-8?B?w7bDpMO8?='),
    '',
    'Encoded words.',
    '',
  ].join('\r\n'),
  'multipart with an attachment': [
    ...base('report attached', ['MIME-Version: 1.0', 'Content-Type: multipart/mixed; boundary="b1_xyz"']),
    '',
    'This is a multi-part message in MIME format.',
    '--b1_xyz',
    'Content-Type: multipart/alternative; boundary="b2_abc"',
    '',
    '--b2_abc',
    'Content-Type: text/plain; charset=us-ascii',
    '',
    'Plain part.',
    '--b2_abc',
    'Content-Type: text/html; charset=us-ascii',
    '',
    '<p>HTML part.</p>',
    '--b2_abc--',
    '--b1_xyz',
    'Content-Type: application/octet-stream; name="data.bin"',
    'Content-Transfer-Encoding: base64',
    'Content-Disposition: attachment; filename="data.bin"',
    '',
    attachment,
    '--b1_xyz--',
    '',
  ].join('\r\n'),
  'trailing whitespace and tabs': [
    ...base('spaces   ', ['X-Tabbed:\tvalue\t with \t tabs  ']),
    '',
    'line with trailing spaces   ',
    'line with trailing tab\t',
    '  leading spaces',
    '',
    '',
    '',
  ].join('\r\n'),
  'empty body': [...base('empty body'), '', ''].join('\r\n'),
  'no body at all': base('no body').join('\r\n') + '\r\n',
  'lines of 998 octets': [...base('long lines'), '', 'a'.repeat(998), 'b'.repeat(997) + ' ', 'end', ''].join('\r\n'),
  'lines starting with dots': [...base('dots'), '', '.', '..', '.leading dot', 'end', ''].join('\r\n'),
  'LF line endings': [...base('lf'), '', 'unix', 'line endings', ''].join('\n'),
};

test.each(Object.keys(CORPUS))('%s: both verifiers pass every signature', async (name) => {
  const before = sink.messages.length;
  const { response } = await submit(h, { raw: CORPUS[name] });
  expect(response).toMatch(/^250 2\.0\.0 queued as/);
  const msg = (await sink.waitForMessages(before + 1, 15000))[before];
  const python = await verifyDkim(msg.data, h.records);
  const mailauth = await verifyWithMailauth(msg.data, h.records);
  expect({ python: python.ok, mailauth: mailauth.ok, detail: [python.signatures, mailauth.signatures] })
    .toMatchObject({ python: true, mailauth: true });
  expect(python.signatures.map((x) => x.a).sort()).toEqual(['ed25519-sha256', 'rsa-sha256']);
  expect(mailauth.signatures.map((x) => x.a).sort()).toEqual(['ed25519-sha256', 'rsa-sha256']);
});

test('negative control: a tampered copy fails in both verifiers', async () => {
  const before = sink.messages.length;
  await submit(h, { raw: CORPUS['multipart with an attachment'] });
  const msg = (await sink.waitForMessages(before + 1, 15000))[before];
  const tampered = Buffer.from(msg.data.toString('latin1').replace('HTML part.', 'HTML parts'), 'latin1');
  expect((await verifyDkim(tampered, h.records)).ok).toBe(false);
  expect((await verifyWithMailauth(tampered, h.records)).ok).toBe(false);
});
