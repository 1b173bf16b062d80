// An HTTPS server on loopback serving MTA-STS policies (RFC 8461 3.3) for test domains: one
// server, one ephemeral port, a certificate per policy host chosen by SNI and an answer per
// Host header. The relay reaches it through the test DNS (mta-sts.DOMAIN A 127.0.0.x) and the
// internal port override of startRelay (mtaStsPort): policy hosts are on 443 in real life.
import * as https from 'node:https';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { KeyAndCert } from './test-ca';

export interface PolicyAnswer {
  /** The policy text (default: made from mode/mx/maxAge). */
  body?: string;
  mode?: 'enforce' | 'testing' | 'none';
  mx?: string[];
  maxAge?: number;
  /** HTTP status (default 200); headers added to the answer (e.g. location, content-type). */
  status?: number;
  headers?: Record<string, string>;
  /** Sent in chunks without Content-Length (else with it). */
  chunked?: boolean;
  /** The certificate this host presents (default: the server's default certificate). */
  certificate?: KeyAndCert;
}

export interface PolicyServer {
  host: string;
  port: number;
  /** What mta-sts.DOMAIN answers; undefined: 404. */
  set(domain: string, answer: PolicyAnswer | undefined): void;
  /** Requests received, by Host header. */
  requests: string[];
  close(): Promise<void>;
}

export function policyText(a: { mode?: string; mx?: string[]; maxAge?: number }): string {
  return ['version: STSv1', `mode: ${a.mode ?? 'enforce'}`, ...(a.mx ?? []).map((m) => `mx: ${m}`), `max_age: ${a.maxAge ?? 86400}`, ''].join('\r\n');
}

export async function startPolicyServer(host: string, defaultCertificate: KeyAndCert): Promise<PolicyServer> {
  const answers = new Map<string, PolicyAnswer>();
  const requests: string[] = [];
  const contexts = new Map<string, tls.SecureContext>();
  const contextOf = (c: KeyAndCert) => {
    const key = c.cert;
    let ctx = contexts.get(key);
    if (!ctx) contexts.set(key, (ctx = tls.createSecureContext(c)));
    return ctx;
  };
  const server = https.createServer({
    ...defaultCertificate,
    SNICallback: (servername, cb) => {
      const domain = servername.toLowerCase().replace(/^mta-sts\./, '');
      const answer = answers.get(domain);
      cb(null, contextOf(answer?.certificate ?? defaultCertificate));
    },
  }, (req, res) => {
    const hostHeader = String(req.headers.host ?? '').toLowerCase();
    requests.push(hostHeader);
    const answer = answers.get(hostHeader.replace(/^mta-sts\./, ''));
    if (!answer || req.url !== '/.well-known/mta-sts.txt') {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found\n');
      return;
    }
    const body = answer.body ?? policyText(answer);
    const length = answer.chunked ? {} : { 'content-length': String(Buffer.byteLength(body)) };
    res.writeHead(answer.status ?? 200, { 'content-type': 'text/plain', ...length, ...answer.headers });
    if (answer.chunked) {
      for (let i = 0; i < body.length; i += 8192) res.write(body.slice(i, i + 8192));
      res.end();
    } else {
      res.end(body);
    }
  });
  server.on('tlsClientError', () => undefined); // a client refusing our certificate is a test case
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  const sockets = new Set<net.Socket>();
  server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  return {
    host,
    port: (server.address() as net.AddressInfo).port,
    set(domain, answer) {
      if (answer) answers.set(domain.toLowerCase(), answer);
      else answers.delete(domain.toLowerCase());
    },
    requests,
    close() {
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
