// Real provider replies (each with where its text comes from) and what the relay makes of them.
import fs from 'fs';
import os from 'os';
import path from 'path';
import { classifyReply, loadRulesFile, setUserRules, verdictOf } from '../../src/replies/verdict';
import { BUILT_IN_RULES } from '../../src/replies/rules';

const fixtures: Array<[string, string, string, boolean]> = [
  // [reply, expected class, source, throttle]
  ['550 5.7.1 Unfortunately, messages from [217.72.192.73] weren\'t sent. Please contact your Internet service provider since part of their network is on our block list (S3140). You can also refer your provider to http://mail.live.com/mail/troubleshooting.aspx#errors.',
    'reputation', 'https://pastebin.com/index/3Peq5x5F', false],
  ['550 5.7.1 Unfortunately, messages from [88.198.83.90] weren\'t sent. Please contact your Internet service provider since part of their network is on our block list (S3150).',
    'reputation', 'https://pastebin.com/ExQUnA6B', false],
  ['550 5.7.606 Access denied, banned sending IP [185.234.72.45]. To request removal from this list please visit https://sender.office.com/ and follow the directions.',
    'reputation', 'https://pastebin.com/EH1TUb0X', false],
  ['451 4.7.650 The mail server [192.0.2.1] has been temporarily rate limited due to IP reputation.', 'reputation', 'Microsoft NDR page (4.7.650)', true],
  ['550 5.7.515 Access denied, sending domain example.org does not meet the required authentication level.', 'authentication', 'Microsoft high-volume sender requirements', false],
  ['421 4.7.0 Our system has detected an unusual rate of unsolicited mail originating from your IP address.', 'reputation', 'https://support.google.com/a/answer/3726730', true],
  ['550 5.7.26 This mail has been blocked because the sender is unauthenticated. Gmail requires all senders to authenticate with either SPF or DKIM.', 'authentication', 'https://support.google.com/a/answer/3726730', false],
  ['550 5.7.25 The IP address sending this message does not have a PTR record setup.', 'authentication', 'https://support.google.com/a/answer/3726730', false],
  ['550 5.7.1 Our system has detected that this message is likely unsolicited mail.', 'policy', 'https://support.google.com/a/answer/3726730', false],
  ['421 4.7.28 Gmail has detected an unusual rate of mail originating from your DKIM domain.', 'rate-limit', 'https://support.google.com/a/answer/3726730', true],
  ['550 5.1.1 The email account that you tried to reach does not exist.', 'recipient-unknown', 'https://support.google.com/a/answer/3726730', false],
  ['452 4.2.2 The recipient\'s inbox is out of storage space.', 'mailbox-full', 'https://support.google.com/a/answer/3726730', false],
  ['421 4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred due to user complaints - 4.16.55.1; see https://help.yahoo.com/kb/postmaster/SLN3434.html', 'rate-limit', 'https://pastebin.com/yEw1BuRq', true],
  ['421 4.7.1 [TS03] All messages from 192.0.2.1 will be permanently deferred; Retrying will NOT succeed. See https://help.yahoo.com/kb/postmaster/SLN3436.html', 'reputation', 'https://pastebin.com/XUBwTvbV', true],
  ['421 4.7.0 [TS02] Messages from 192.0.2.1 temporarily deferred', 'reputation', 'http://www.smtp-error-codes.info/bounce/yahoo/bounce_421_4.7.0_TS02.php', true],
  ['421 gmx.net (mxgmx001) Nemesis ESMTP Service not available. Reject due to policy restrictions', 'rate-limit', 'former isThrottling rule', true],
  ['421 Rate limit reached. Please try again later', 'rate-limit', 'https://ionos.de/hilfe/e-mail/postmaster/smtp-fehlermeldungen-der-11-ionos-mailserver', true],
  ['450 Reject due to policy violations.', 'reputation', 'https://ionos.de/hilfe/e-mail/postmaster/smtp-fehlermeldungen-der-11-ionos-mailserver', true],
  ['554: Dialup/transient IP not allowed. Use a mailgateway or contact toda@rx.t-online.de if obsolete. (DIAL)', 'reputation', 'https://help.creoline.com/de/doc/t-online-554-dialuptransient-ip-not-allowed-zVwMz4z866', false],
  ['554 IP=192.0.2.1 - None/bad reputation. Ask your postmaster for help or to contact <postmaster@rx.t-online.de> for reset. (NOWL)', 'reputation', 'https://timmehosting.de/leitfaden-wenn-t-online-e-mails-blockiert-ursachen-und-loesungen', false],
  ['550 5.7.515 Access denied, sending domain example.org does not meet the required authentication level.', 'authentication', 'https://support.microsoft.com/en-au/topic/fix-ndr-error-550-5-7-515-in-outlook-com-34cfe8f8-6fbf-457e-9e8b-9e4dbaf4e0ef', false],
  ['250 2.0.0 OK', 'delivered', 'RFC 5321', false],
  ['451 4.3.0 greylisted, try again later', 'transient', 'RFC 3463', false],
  ['connect ECONNREFUSED 127.0.0.5:25', 'connect', 'local failure', false],
  ['domain x.example does not exist (NXDOMAIN)', 'dns', 'local failure', false],
  ['no TLS: certificate has expired', 'tls', 'local failure', false],
];

afterEach(() => setUserRules([]));

test.each(fixtures)('%s -> %s (source: %s)', (reply, expected, _source, throttle) => {
  const v = verdictOf(reply);
  expect(v.class).toBe(expected);
  expect(v.throttle).toBe(throttle);
  expect(v.permanent).toBe(reply.startsWith('5'));
  expect(v.explanation.length).toBeGreaterThan(10);
});

test('every provider rule says where its meaning comes from, and has a fix', () => {
  for (const r of BUILT_IN_RULES.filter((x) => x.provider)) {
    expect(r.source).toMatch(/https?:\/\/|observed/);
    expect(r.fix.length).toBeGreaterThan(10);
  }
});

test('classifyReply takes the parts; an enhanced code given wins over the text', () => {
  expect(classifyReply({ code: 550, enhanced: '5.7.26', text: 'blocked' }).class).toBe('authentication');
  expect(classifyReply({ code: 550, text: '5.1.1 no such user' }).class).toBe('recipient-unknown');
  expect(classifyReply({ text: 'connect ETIMEDOUT 192.0.2.1:25' })).toMatchObject({ class: 'connect', permanent: false, throttle: false });
});

function rulesFile(content: unknown): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rules-'));
  const file = path.join(dir, 'rules.json');
  fs.writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content));
  return file;
}

test('a user rule comes before the built-in ones', () => {
  const file = rulesFile([{ id: 'mine', match: { text: 'S3140' }, class: 'policy', explanation: 'Our own words.', fix: 'Call Bob.' }]);
  setUserRules(loadRulesFile(file));
  expect(verdictOf(fixtures[0][0])).toMatchObject({ class: 'policy', explanation: 'Our own words.', fix: 'Call Bob.', rule: 'mine' });
});

test.each([
  ['not json', /cannot be read as JSON/],
  [{ id: 'x' }, /must hold a JSON array/],
  [[{ id: 'bad', match: { text: '(' }, class: 'policy', explanation: 'x' }], /rule 1 \("bad"\): match.text is not a valid regular expression/],
  [[{ id: 'c', match: { text: 'x' }, class: 'spam', explanation: 'x' }], /rule 1 \("c"\): "class" must be one of/],
  [[{ id: 'e', match: {}, class: 'policy', explanation: 'x' }], /"match" is empty/],
  [[{ id: 'f', match: { text: 'x' }, class: 'policy' }], /"explanation" must be/],
])('a bad rules file is refused naming the file and the rule: %j', (content, message) => {
  const file = rulesFile(content);
  expect(() => loadRulesFile(file)).toThrow(message);
  expect(() => loadRulesFile(file)).toThrow(file);
});
