// The configuration as users write it: defaults, files, environment, and the messages
// that explain a bad setting.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, loadConfig } from '../../src/config/load';
import { schema } from '../../src/config/schema';

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
  [{ RELAY_LOCAL_ADDRESS: 'relay.example' }, /setting "delivery.localAddress" \(env RELAY_LOCAL_ADDRESS\): must be an IPv4 or IPv6 address/],
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
