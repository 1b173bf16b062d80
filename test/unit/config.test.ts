// The configuration as users write it: defaults, files, environment, and the messages
// that explain a bad setting.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { closest, ConfigError, loadConfig, loadConfigWithOrigins } from '../../src/config/load';
import { parseBytes, schema } from '../../src/config/schema';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dkim-relay-config-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function writeConfig(text: string): string {
  const file = path.join(tmp, `c${Math.random().toString(36).slice(2)}.json`);
  fs.writeFileSync(file, text);
  return file;
}

test('embedded defaults', () => {
  const c = loadConfig({ env: {} });
  expect(c.submission).toMatchObject({ host: '127.0.0.1', port: 2587, maxSize: 50 * 1024 * 1024 });
  expect(c.trustedNetworks).toEqual(['127.0.0.0/8', '::1/128']);
  expect(c.delivery).toMatchObject({ localAddress: '', mxPort: 25, smarthost: '' });
});

test('environment wins over the file, the file over defaults', () => {
  const file = writeConfig('{"delivery": {"mxPort": 2626, "heloName": "a.example"}}');
  const c = loadConfig({ configFile: file, env: { RELAY_MX_PORT: '2727' } });
  expect(c.delivery.mxPort).toBe(2727);
  expect(c.delivery.heloName).toBe('a.example');
});

test('lists, sizes and durations from the environment', () => {
  const c = loadConfig({ env: { RELAY_TRUSTED_NETWORKS: '10.0.0.0/8, 2001:db8::/32', RELAY_MAX_SIZE: '10MB', RELAY_RETRY_SCHEDULE: '2m, 1h', RELAY_RETRY_EXPIRE: '2d', RELAY_DNS_SERVERS: '127.0.0.1:5353,[::1]:53' } });
  expect(c.trustedNetworks).toEqual(['10.0.0.0/8', '2001:db8::/32']);
  expect(c.submission.maxSize).toBe(10 * 1024 * 1024);
  expect(c.delivery.retrySchedule).toBe('2m, 1h');
  expect(c.delivery.retryExpire).toBe(2 * 86400);
  expect(c.dns.servers).toEqual(['127.0.0.1:5353', '[::1]:53']);
});

test.each([
  [{ RELAY_SUBMISSION_PORT: '99999' }, /setting "submission.port" \(env RELAY_SUBMISSION_PORT\).*99999/],
  [{ RELAY_TRUSTED_NETWORKS: '10.0.0/8' }, /setting "trustedNetworks" \(env RELAY_TRUSTED_NETWORKS\): "10.0.0\/8" is not an IP network/],
  [{ RELAY_LOCAL_ADDRESS: 'relay.example' }, /setting "delivery.localAddress" \(env RELAY_LOCAL_ADDRESS\): "relay.example" is not an IP address/],
  [{ RELAY_SMARTHOST: 'mail.example:port' }, /setting "delivery.smarthost" \(env RELAY_SMARTHOST\): "mail.example:port" is not host:port/],
  [{ RELAY_UNSIGNED_POLICY: 'maybe' }, /setting "signing.unsignedPolicy" \(env RELAY_UNSIGNED_POLICY\).*maybe/],
])('a bad value names the setting, the env var and the value: %j', (env, message) => {
  expect(() => loadConfig({ env })).toThrow(ConfigError);
  expect(() => loadConfig({ env })).toThrow(message);
});

test('an unknown key in a file is refused by name', () => {
  const file = writeConfig('{"delivery": {"mxport": 26}}');
  expect(() => loadConfig({ configFile: file, env: {} })).toThrow(/unknown setting "delivery.mxport"/);
});

test('a missing or broken config file says so', () => {
  expect(() => loadConfig({ configFile: path.join(tmp, 'nope.json'), env: {} })).toThrow(/config file .*nope.json does not exist/);
  const file = writeConfig('{"delivery": ');
  expect(() => loadConfig({ configFile: file, env: {} })).toThrow(/is not valid JSON/);
});

test('config/example.json is valid, comments and all', () => {
  const c = loadConfig({ configFile: path.join(__dirname, '..', '..', 'config', 'example.json'), env: {} });
  expect(c.delivery.heloName).toBe('relay.example.net');
  expect(c.submission.tlsPort).toBe(2465);
});

test('README documents every setting and its environment variable', () => {
  const readme = fs.readFileSync(path.join(__dirname, '..', '..', 'README.md'), 'utf8');
  const missing: string[] = [];
  const walk = (node: Record<string, unknown>, prefix: string) => {
    for (const [key, value] of Object.entries(node)) {
      const name = prefix ? `${prefix}.${key}` : key;
      const spec = value as { doc?: string; env?: string };
      if (spec && typeof spec === 'object' && 'doc' in spec) {
        if (!readme.includes(`\`${name}\``) || !readme.includes(`\`${spec.env}\``)) missing.push(`${name} (${spec.env})`);
      } else {
        walk(value as Record<string, unknown>, name);
      }
    }
  };
  walk(schema as unknown as Record<string, unknown>, '');
  expect(missing).toEqual([]);
});

test('sizes: bytes, or K, M, G (KB, MB, GB, KiB... too), all 1024-based', () => {
  expect(parseBytes('1048576')).toBe(1048576);
  expect(parseBytes('50M')).toBe(50 * 1024 ** 2);
  expect(parseBytes('50MB')).toBe(50 * 1024 ** 2);
  expect(parseBytes('512k')).toBe(512 * 1024);
  expect(parseBytes('2GiB')).toBe(2 * 1024 ** 3);
  expect(parseBytes('10B')).toBe(10);
  expect(parseBytes('50 megs')).toBeNaN();
  expect(() => loadConfig({ env: { RELAY_MAX_SIZE: '5T' } })).toThrow(/must be a size: a number of bytes, or with a unit K, M or G .*value was "5T"/);
});

test('an unknown RELAY_* variable is refused with the closest known one; RELAY_PASSWORD is let through', () => {
  expect(() => loadConfig({ env: { RELAY_SUBMISION_PORT: '2600' } })).toThrow(/unknown environment variable RELAY_SUBMISION_PORT: did you mean RELAY_SUBMISSION_PORT\?/);
  expect(() => loadConfig({ env: { RELAY_FROBNICATE: '1' } })).toThrow(/unknown environment variable RELAY_FROBNICATE \(unset it/);
  expect(() => loadConfig({ env: { RELAY_PASSWORD: 'x', OTHER_THING: '1' } })).not.toThrow();
  expect(closest('RELAY_DNS_SERVER', ['RELAY_DNS_SERVERS', 'RELAY_DNS_TIMEOUT'])).toBe('RELAY_DNS_SERVERS');
});

test('an unknown key in a file names the closest setting', () => {
  const file = writeConfig('{"submission": {"prot": 2525}}');
  expect(() => loadConfig({ configFile: file, env: {} })).toThrow(/unknown setting "submission.prot" \(did you mean "submission.port"\?\)/);
});

test('dns.servers takes IP addresses only', () => {
  expect(loadConfig({ env: { RELAY_DNS_SERVERS: '192.0.2.53, [2001:db8::53]:5353' } }).dns.servers).toEqual(['192.0.2.53', '[2001:db8::53]:5353']);
  expect(() => loadConfig({ env: { RELAY_DNS_SERVERS: 'localhost:53' } })).toThrow(/"localhost:53" names a host, but DNS servers must be IP addresses/);
});

test('origins: default, config file, environment', () => {
  const file = writeConfig('{"delivery": {"mxPort": 2626}}');
  const { origins } = loadConfigWithOrigins({ configFile: file, env: { RELAY_KEYS_DIR: '/k' } });
  expect(origins['delivery.mxPort']).toEqual({ source: 'config file', from: file });
  expect(origins.keysDir).toEqual({ source: 'environment', from: 'RELAY_KEYS_DIR' });
  expect(origins['dns.timeout']).toEqual({ source: 'default' });
});
