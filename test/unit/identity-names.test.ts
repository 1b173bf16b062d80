// The pure parts of the identity and doctor checks: which names can be a HELO name, which
// PTR names look generic, reverse names, and the SPF record rewrite the doctor proposes.
import { genericPtrReason } from '../../src/doctor/identity-checks';
import { parseDmarcTags } from '../../src/doctor/dmarc-checks';
import { withMechanism } from '../../src/doctor/spf-checks';
import { txtRecordLine } from '../../src/doctor/check';
import { fqdnProblem } from '../../src/identity/helo-name';
import { addressOfPtrName, ptrOwnerName, reversedLabels, sameAddress } from '../../src/identity/reverse-name';
import { reverseName } from '../helpers/dns-server';

test.each([
  ['relay.example.net', null],
  ['Relay.Example.NET.', null],
  ['mx-1.mail.example.co.uk', null],
  ['localhost', /localhost/],
  ['localhost.localdomain', /localhost/],
  ['vm', /bare host name/],
  ['192.0.2.1', /IP address/],
  ['2001:db8::1', /IP address/],
  ['[192.0.2.1]', /IP address/],
  ['relay..example.net', /empty label/],
  ['relay_1.example.net', /letters, digits and inner hyphens/],
  ['-relay.example.net', /letters, digits and inner hyphens/],
  ['relay.home', /private name/],
  ['host.local', /private name/],
  ['1.2.3.4.5', /all digits/],
  ['', /empty/],
])('fqdnProblem(%j)', (name, expected) => {
  const problem = fqdnProblem(name);
  if (expected === null) expect(problem).toBeNull();
  else expect(problem).toMatch(expected);
});

test.each([
  ['relay.example.net', '203.0.113.5', null],
  ['mail.example.net', '2001:db8::25', null],
  ['203-0-113-5.static.isp.example', '203.0.113.5', /digits of the address/],
  ['5.113.0.203.in-addr.isp.example', '203.0.113.5', /digits of the address/],
  ['host203000113005.isp.example', '203.0.113.5', /digits of the address/],
  ['ip-cb007105.isp.example', '203.0.113.5', /hexadecimal/],
  ['p5b1c2d3e.dip0.t-ipconnect.de', '203.0.113.5', null],
  ['dslb-178-1-2-3.pools.arcor-ip.net', '203.0.113.5', /"dslb"|"pools"|dsl/],
  ['cpe.dyn.isp.example', '203.0.113.5', /"dyn"/],
  ['x.pool.isp.example', '203.0.113.5', /"pool"/],
  ['customer.cable.isp.example', '203.0.113.5', /"customer"/],
  ['2001-db8--25.v6.isp.example', '2001:db8::25', null],
  ['host-0000-0000-0000-0025.isp.example', '2001:db8::25', /digits of the address/],
])('genericPtrReason(%j, %j)', (name, ip, expected) => {
  const reason = genericPtrReason(name, ip);
  if (expected === null) expect(reason).toBeNull();
  else expect(reason).toMatch(expected);
});

test('reverse names agree with the test DNS server and go both ways', () => {
  for (const ip of ['127.0.0.2', '203.0.113.5', '2001:db8::25', '::ffff:192.0.2.1', 'fe80::1']) {
    expect(ptrOwnerName(ip)).toBe(reverseName(ip));
    expect(sameAddress(addressOfPtrName(`${ptrOwnerName(ip)}.`)!, ip)).toBe(true);
  }
  expect(reversedLabels('203.0.113.5')).toBe('5.113.0.203');
  expect(addressOfPtrName('example.org')).toBeNull();
  expect(addressOfPtrName('1.2.3.999.in-addr.arpa')).toBeNull();
  expect(sameAddress('2001:DB8:0::25', '2001:db8::25')).toBe(true);
  expect(sameAddress('127.0.0.2', '::ffff:127.0.0.2')).toBe(false);
});

test('withMechanism puts the relay first and does not repeat it', () => {
  expect(withMechanism('v=spf1 mx ~all', 'ip4:203.0.113.5')).toBe('v=spf1 ip4:203.0.113.5 mx ~all');
  expect(withMechanism('v=spf1  mx ip4:203.0.113.5 -all', 'ip4:203.0.113.5')).toBe('v=spf1 ip4:203.0.113.5 mx -all');
  expect(withMechanism('v=spf1 include:_spf.example.net redirect=x.example', 'ip6:2001:db8::25')).toBe('v=spf1 ip6:2001:db8::25 include:_spf.example.net redirect=x.example');
});

test('txtRecordLine quotes and splits long values at 255 characters', () => {
  expect(txtRecordLine('example.org', 'v=spf1 "a" -all')).toBe('example.org. 3600 IN TXT "v=spf1 \\"a\\" -all"');
  const long = `v=spf1 ${'ip4:192.0.2.1 '.repeat(30)}-all`;
  const line = txtRecordLine('example.org', long);
  const parts = [...line.matchAll(/"([^"]*)"/g)].map((m) => m[1]);
  expect(parts.length).toBe(2);
  expect(parts[0].length).toBe(255);
  expect(parts.join('')).toBe(long);
  expect(line).toMatch(/^example\.org\. 3600 IN TXT \( ".*" \)$/);
});

test('parseDmarcTags keeps the order and lower-cases tag names', () => {
  expect(parseDmarcTags('v=DMARC1; P=none ;rua=mailto:a@example.org;;')).toEqual([['v', 'DMARC1'], ['p', 'none'], ['rua', 'mailto:a@example.org']]);
});
