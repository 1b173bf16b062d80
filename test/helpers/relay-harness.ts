// Runs the relay as users run it (its serve function, configured through RELAY_* variables)
// next to a real DNS server on loopback, with a DKIM key for example.org published there.
// The relay delivers from 127.0.0.2; sinks listen on 127.0.0.3 and up.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import nodemailer from 'nodemailer';
import pino from 'pino';
import { loadConfig } from '../../src/config/load';
import { RelayConfig } from '../../src/config/schema';
import { activateKey } from '../../src/dkim/key-lifecycle';
import { generateKey } from '../../src/dkim/keygen';
import { createResolver } from '../../src/dns/resolver';
import { startRelay, Relay, StartOptions } from '../../src/relay';
import { startDnsServer, TestDnsServer } from './dns-server';
import { Sink, SinkOptions, startSink } from './sink';

export const DOMAIN = 'example.org';
export const RELAY_IP = '127.0.0.2';
export const HELO = 'relay.example.net';

export interface Harness {
  dir: string;
  dns: TestDnsServer;
  relay: Relay;
  config: RelayConfig;
  env: Record<string, string>;
  /** DKIM TXT records published, by DNS name. */
  records: Record<string, string>;
  logFile: string;
  /** Restarts the relay on the same folders (and the same port). */
  restart(env?: Record<string, string>): Promise<void>;
  stop(): Promise<void>;
}

/** relayOptions: startRelay's internal (test-only) options, e.g. mtaStsPort. */
export async function startHarness(env: Record<string, string> = {}, relayOptions: Omit<StartOptions, 'log'> = {}): Promise<Harness> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dkim-relay-e2e-'));
  const dns = await startDnsServer({ host: '127.0.0.1' });
  const keysDir = path.join(dir, 'keys');
  const key = await generateKey(keysDir, { domain: DOMAIN, selector: 's1', algorithm: 'rsa', bits: 2048 });
  const records: Record<string, string> = { [key.recordName]: key.recordValue };
  dns.set(key.recordName, 'TXT', [key.recordValue]);
  // A new key is pending until its record is seen in DNS: activate it as `keys activate` would.
  await activateKey(keysDir, DOMAIN, key.selector, createResolver({ servers: [dns.address], timeoutSeconds: 2 }));

  const baseEnv: Record<string, string> = {
    RELAY_SUBMISSION_HOST: '127.0.0.1',
    RELAY_SUBMISSION_PORT: '0',
    RELAY_KEYS_DIR: keysDir,
    RELAY_DATA_DIR: path.join(dir, 'data'),
    RELAY_USERS_FILE: path.join(dir, 'users.json'),
    RELAY_LOCAL_ADDRESS: RELAY_IP,
    RELAY_HELO_NAME: HELO,
    RELAY_DNS_SERVERS: dns.address,
    RELAY_DNS_TIMEOUT: '2',
    RELAY_RETRY_SCHEDULE: '1s',
    RELAY_CONNECT_TIMEOUT: '3',
    ...env,
  };
  const logFile = path.join(dir, 'relay.log');
  const start = async (extra: Record<string, string>) => {
    const config = loadConfig({ env: { ...baseEnv, ...extra } });
    const log = pino({ level: 'debug' }, pino.destination({ dest: logFile, sync: true, append: true }));
    return { config, relay: await startRelay(config, { ...relayOptions, log }) };
  };
  let { config, relay } = await start({});
  const harness: Harness = {
    dir, dns, relay, config, records, logFile, env: baseEnv,
    async restart(extra = {}) {
      await harness.relay.close(2000);
      ({ config, relay } = await start({ RELAY_SUBMISSION_PORT: String(harness.relay.ports.starttls), ...extra }));
      harness.relay = relay;
      harness.config = config;
    },
    async stop() {
      await harness.relay.close(2000);
      await dns.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  return harness;
}

export interface SubmitOptions {
  from?: string;
  to?: string[];
  raw?: string | Buffer;
  auth?: { user: string; pass: string; method?: 'PLAIN' | 'LOGIN' };
  /** Client source address: 127.0.0.1 is trusted by default, 127.0.0.9 stands for a remote client. */
  localAddress?: string;
  ignoreTLS?: boolean;
  secure?: boolean;
  port?: number;
}

/** A plain message from `from`, with Date and Message-ID unless left out. */
export function rawMessage(from: string, to: string, opts: { subject?: string; body?: string; extraHeaders?: string; noDate?: boolean; noMessageId?: boolean } = {}): string {
  return [
    `From: Sender <${from}>`,
    `To: ${to}`,
    `Subject: ${opts.subject ?? 'hello'}`,
    ...(opts.noDate ? [] : ['Date: Sat, 28 Nov 2026 02:00:00 +0000']),
    ...(opts.noMessageId ? [] : [`Message-ID: <${Math.random().toString(36).slice(2)}@example.org>`]),
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    ...(opts.extraHeaders ? [opts.extraHeaders] : []),
    '',
    opts.body ?? 'Hello there,\r\nthis is a test.\r\n',
  ].join('\r\n');
}

export async function submit(harness: Harness, opts: SubmitOptions = {}): Promise<{ response: string }> {
  const from = opts.from ?? `app@${DOMAIN}`;
  const to = opts.to ?? ['user@dest.test'];
  const transport = nodemailer.createTransport({
    host: '127.0.0.1',
    port: opts.port ?? harness.relay.ports.starttls,
    secure: opts.secure ?? false,
    ignoreTLS: opts.ignoreTLS ?? false,
    requireTLS: !opts.ignoreTLS && !opts.secure && !!opts.auth,
    localAddress: opts.localAddress ?? '127.0.0.1',
    auth: opts.auth ? { user: opts.auth.user, pass: opts.auth.pass } : undefined,
    authMethod: opts.auth?.method,
    tls: { rejectUnauthorized: false },
    connectionTimeout: 5000,
  });
  try {
    const info = await transport.sendMail({ envelope: { from, to }, raw: opts.raw ?? rawMessage(from, to[0]) });
    return { response: info.response };
  } finally {
    transport.close();
  }
}

/** What a failed submit reported: the SMTP code and the reply line. */
export async function submitError(harness: Harness, opts: SubmitOptions = {}): Promise<{ code?: number; response: string }> {
  try {
    const ok = await submit(harness, opts);
    throw new Error(`expected a refusal, got: ${ok.response}`);
  } catch (err) {
    const e = err as { responseCode?: number; response?: string; message: string };
    if (e.message.startsWith('expected a refusal')) throw err;
    return { code: e.responseCode, response: e.response ?? e.message };
  }
}

export function logLines(harness: Harness): Record<string, unknown>[] {
  if (!fs.existsSync(harness.logFile)) return [];
  return fs.readFileSync(harness.logFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** Waits until a log line matches (the relay logs an attempt after the sink has the message). */
export async function waitForLog(harness: Harness, match: (line: Record<string, unknown>) => boolean, timeoutMs = 10000): Promise<Record<string, unknown>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const line = logLines(harness).find(match);
    if (line) return line;
    if (Date.now() > deadline) throw new Error(`no log line matched within ${timeoutMs} ms; log: ${harness.logFile}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The usual scene: a sink MX on 127.0.0.3 serving dest.test, and the relay delivering to it. */
export async function startWithSink(env: Record<string, string> = {}, sinkOptions: SinkOptions = {}): Promise<{ h: Harness; sink: Sink }> {
  const sink = await startSink({ host: '127.0.0.3', ...sinkOptions });
  const h = await startHarness({ RELAY_MX_PORT: String(sink.port), ...env });
  h.dns.set('dest.test', 'MX', [{ exchange: 'mx.dest.test', priority: 10 }]);
  h.dns.set('mx.dest.test', 'A', ['127.0.0.3']);
  return { h, sink };
}
