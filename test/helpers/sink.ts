// A sink MX for end-to-end tests: a real SMTP server (smtp-server) on a loopback address that
// records every message it accepts, and can be told to reject recipients or messages.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import { promisify } from 'node:util';
import forge from 'node-forge';
import { SMTPServer, SMTPServerDataStream, SMTPServerSession } from 'smtp-server';

export interface SinkMessage {
  remoteAddress: string;
  /** the EHLO/HELO name the client gave (smtp-server lower-cases it) */
  helo: string;
  /** whether the message came over TLS (STARTTLS) */
  secure: boolean;
  /** '' for the null sender */
  mailFrom: string;
  /** MAIL FROM parameters as given, names upper-cased (e.g. {BODY: '8BITMIME', SMTPUTF8: true}) */
  mailParams: Record<string, string | boolean>;
  /** the accepted recipients only */
  rcptTo: string[];
  data: Buffer;
  /** smtp-server's id of the connection (session) the message came over */
  sessionId: string;
}

export interface SinkReply {
  code: number;
  message: string;
}

export interface SinkOptions {
  /** default 127.0.0.3 */
  host?: string;
  /** 0 (default) = random */
  port?: number;
  /** offer STARTTLS with a self-signed certificate (made with node-forge); default true */
  tls?: boolean;
  /** the PEM key and certificate (chain, server's first) offered with STARTTLS instead of testCertificate() */
  certificate?: { key: string; cert: string };
  /** name in the greeting and EHLO reply; default "mx.sink.test" */
  name?: string;
  /**
   * Decide per recipient: undefined accepts, {code, message} rejects, e.g.
   * {code: 550, message: '5.1.1 no such user'} or {code: 451, message: '4.3.0 try later'}.
   * attempt: 1-based count of RCPT TO seen by this sink for this address (case-insensitive).
   */
  onRcpt?: (rcpt: string, attempt: number) => SinkReply | undefined;
  /**
   * Decide per message after DATA, same convention. attempt: 1-based count of DATA seen by this
   * sink for the message's Message-ID (all messages without one share a counter).
   */
  onData?: (msg: SinkMessage, attempt: number) => SinkReply | undefined;
  /** wait this long before answering DATA (a slow receiver: connections stay open longer) */
  dataDelayMs?: number;
  /** leave 8BITMIME out of the EHLO reply (RFC 6152) */
  hide8BITMIME?: boolean;
  /** leave SMTPUTF8 out of the EHLO reply (RFC 6531) */
  hideSMTPUTF8?: boolean;
}

export interface SinkRejection {
  stage: 'rcpt' | 'data';
  /** the recipient (rcpt) or the recipients of the message (data) */
  rcptTo: string[];
  code: number;
  message: string;
}

export interface Sink {
  host: string;
  port: number;
  /** accepted messages, in order of arrival */
  messages: SinkMessage[];
  connections: { remoteAddress: string }[];
  /** connections open right now, and the most that were open at once (ESTABLISHED in the kernel at a new connection) */
  openConnections(): { now: number; max: number };
  /** every rejection the sink gave on behalf of onRcpt/onData */
  rejections: SinkRejection[];
  /** resolves with all messages once at least n were accepted; default timeout 10 s */
  waitForMessages(n: number, timeoutMs?: number): Promise<SinkMessage[]>;
  close(): Promise<void>;
}

let certificate: Promise<{ key: string; cert: string }> | undefined;

/**
 * A self-signed certificate, made once per process. smtp-server's built-in one has expired.
 * The RSA key comes from node:crypto (native, fast); node-forge builds and signs the X.509.
 */
export function testCertificate(): Promise<{ key: string; cert: string }> {
  certificate ??= (async () => {
    const { privateKey, publicKey } = await promisify(crypto.generateKeyPair)('rsa', {
      modulusLength: 2048,
      publicKeyEncoding: { type: 'spki', format: 'pem' },
      privateKeyEncoding: { type: 'pkcs1', format: 'pem' },
    });
    const cert = forge.pki.createCertificate();
    cert.publicKey = forge.pki.publicKeyFromPem(publicKey);
    cert.serialNumber = '01' + crypto.randomBytes(8).toString('hex'); // leading 01: positive
    cert.validity.notBefore = new Date(Date.now() - 24 * 3600 * 1000);
    cert.validity.notAfter = new Date(Date.now() + 365 * 24 * 3600 * 1000);
    const attrs = [{ name: 'commonName', value: 'mx.sink.test' }];
    cert.setSubject(attrs);
    cert.setIssuer(attrs);
    cert.setExtensions([
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        altNames: [
          { type: 2, value: 'mx.sink.test' },
          { type: 2, value: 'localhost' },
          { type: 7, ip: '127.0.0.1' },
          { type: 7, ip: '127.0.0.3' },
        ],
      },
    ]);
    cert.sign(forge.pki.privateKeyFromPem(privateKey), forge.md.sha256.create());
    return { key: privateKey, cert: forge.pki.certificateToPem(cert) };
  })();
  return certificate;
}

/** A port on host with nothing listening (bound then released), for "connection refused" tests. */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

function smtpError(reply: SinkReply): Error {
  return Object.assign(new Error(reply.message), { responseCode: reply.code });
}

function readAll(stream: SMTPServerDataStream): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => resolve(Buffer.concat(chunks)));
    stream.on('error', reject);
  });
}

function messageId(data: Buffer): string {
  const end = data.indexOf('\r\n\r\n');
  const head = data.subarray(0, end < 0 ? data.length : end).toString('latin1');
  const m = /^message-id:[ \t]*((?:.*)(?:\r\n[ \t].*)*)/im.exec(head);
  return m ? m[1].replace(/\s+/g, '') : '';
}

export async function startSink(opts: SinkOptions = {}): Promise<Sink> {
  const host = opts.host ?? '127.0.0.3';
  const useTls = opts.tls ?? true;
  const messages: SinkMessage[] = [];
  const connections: { remoteAddress: string }[] = [];
  const rejections: SinkRejection[] = [];
  const rcptAttempts = new Map<string, number>();
  const dataAttempts = new Map<string, number>();
  const waiters = new Set<() => void>();
  let open = 0;
  // Connections open at once, as the kernel sees them: at each new connection, the sink's
  // sockets in state ESTABLISHED (/proc/net/tcp). A connection whose client has closed it is
  // in CLOSE_WAIT there, even when this process (which runs the relay too, and can fall tens
  // of ms behind under load) has not yet processed that close.
  let maxEstablished = 0;
  const established = (): number => {
    if (!net.isIPv4(host)) return open;
    const local = `${host.split('.').reverse().map((b) => Number(b).toString(16).padStart(2, '0')).join('')}:${port.toString(16).padStart(4, '0')}`.toUpperCase();
    return fs.readFileSync('/proc/net/tcp', 'latin1').split('\n').filter((line) => {
      const f = line.trim().split(/\s+/);
      return f[1] === local && f[3] === '01';
    }).length;
  };

  const server = new SMTPServer({
    ...(useTls ? opts.certificate ?? await testCertificate() : {}),
    name: opts.name ?? 'mx.sink.test',
    authOptional: true,
    // a receiving MX: no AUTH; no STARTTLS when tls is off
    disabledCommands: useTls ? ['AUTH'] : ['AUTH', 'STARTTLS'],
    disableReverseLookup: true, // would use the system resolver, not the test DNS
    logger: false,
    closeTimeout: 500, // close() should not wait 30 s for a relay that keeps its connection
    hide8BITMIME: opts.hide8BITMIME ?? false,
    hideSMTPUTF8: opts.hideSMTPUTF8 ?? false,
    onConnect(session, callback) {
      connections.push({ remoteAddress: session.remoteAddress });
      open++;
      maxEstablished = Math.max(maxEstablished, established());
      callback();
    },
    onClose() {
      open--;
    },
    onRcptTo(address, _session, callback) {
      const key = address.address.toLowerCase();
      const attempt = (rcptAttempts.get(key) ?? 0) + 1;
      rcptAttempts.set(key, attempt);
      const reply = opts.onRcpt?.(address.address, attempt);
      if (reply) {
        rejections.push({ stage: 'rcpt', rcptTo: [address.address], ...reply });
        return callback(smtpError(reply));
      }
      callback();
    },
    onData(stream, session: SMTPServerSession, callback) {
      readAll(stream).then((data) => new Promise<Buffer>((resolve) => setTimeout(() => resolve(data), opts.dataDelayMs ?? 0))).then(
        (data) => {
          const env = session.envelope;
          const msg: SinkMessage = {
            remoteAddress: session.remoteAddress,
            // hostNameAppearsAs is what the client put after EHLO/HELO (after STARTTLS: the new EHLO)
            helo: session.hostNameAppearsAs,
            secure: session.secure,
            mailFrom: env.mailFrom ? env.mailFrom.address : '',
            mailParams: Object.fromEntries(Object.entries((env.mailFrom && env.mailFrom.args) || {}).map(([k, v]) => [k.toUpperCase(), v as string | boolean])),
            rcptTo: env.rcptTo.map((r) => r.address),
            data,
            sessionId: session.id,
          };
          const key = messageId(data);
          const attempt = (dataAttempts.get(key) ?? 0) + 1;
          dataAttempts.set(key, attempt);
          const reply = opts.onData?.(msg, attempt);
          if (reply) {
            rejections.push({ stage: 'data', rcptTo: msg.rcptTo, ...reply });
            return callback(smtpError(reply));
          }
          messages.push(msg);
          for (const w of waiters) w();
          callback();
        },
        (err: Error) => callback(err)
      );
    },
  });
  server.on('error', () => undefined); // client resets etc. must not crash the test run

  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      server.server.off('error', reject);
      resolve();
    });
  });
  const port = (server.server.address() as net.AddressInfo).port;

  return {
    host,
    port,
    messages,
    connections,
    openConnections: () => ({ now: open, max: maxEstablished }),
    rejections,
    waitForMessages(n, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (messages.length < n) return;
          cleanup();
          resolve(messages.slice());
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(
            new Error(
              `sink ${host}:${port}: waited ${timeoutMs} ms for ${n} message(s), ${messages.length} arrived ` +
                `(${connections.length} connection(s), ${rejections.length} rejection(s))`
            )
          );
        }, timeoutMs);
        const cleanup = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
    close() {
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
