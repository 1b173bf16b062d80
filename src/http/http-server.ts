// The HTTP listener (http.listen): /metrics (Prometheus), /healthz, /readyz and the status
// page /. It only reads the relay's state. With http.token set, every path needs
// "Authorization: Bearer TOKEN", /healthz included: the Docker health check runs inside the
// container, where RELAY_HTTP_TOKEN is set anyway, so no path has to stay open (the rule for
// addresses beyond loopback is in listen-settings.ts).
import crypto from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { Logger } from '../log';
import { StartError } from '../start-errors';
import { HttpSettings } from './listen-settings';
import { readiness } from './readiness';
import { RelayState } from './relay-state';
import { PAGE_QUEUE_READ_LIMIT, renderStatusPage } from './status-page';
import { RelayMetrics } from './metrics';

export interface HttpListener {
  host: string;
  port: number;
  close(): Promise<void>;
}

export async function startHttp(settings: HttpSettings, state: RelayState, metrics: RelayMetrics, log: Logger): Promise<HttpListener> {
  // Compared as SHA-256 digests: equal lengths for timingSafeEqual, and no early exit on the first differing byte.
  const expected = settings.token ? crypto.createHash('sha256').update(settings.token).digest() : null;
  const authorized = (req: http.IncomingMessage): boolean => {
    if (!expected) return true;
    const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
    const given = crypto.createHash('sha256').update(m ? m[1] : '').digest();
    return crypto.timingSafeEqual(given, expected) && !!m;
  };

  const server = http.createServer((req, res) => {
    handle(req, res).catch((err: Error) => {
      log.error({ err: err.message, path: req.url }, 'HTTP request failed');
      if (!res.headersSent) send(res, 500, 'application/json', JSON.stringify({ error: 'internal error; see the relay log' }));
      else res.destroy();
    });
  });

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0];
    if (!authorized(req)) {
      res.setHeader('WWW-Authenticate', 'Bearer realm="dkim-relay"');
      return send(res, 401, 'application/json', JSON.stringify({ error: 'missing or wrong bearer token: send "Authorization: Bearer TOKEN" with the value of http.token (RELAY_HTTP_TOKEN)' }));
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      return send(res, 405, 'application/json', JSON.stringify({ error: 'only GET and HEAD' }));
    }
    switch (path) {
      case '/metrics':
        return send(res, 200, metrics.registry.contentType, await metrics.registry.metrics());
      case '/healthz':
        return send(res, 200, 'application/json', JSON.stringify({ status: 'alive', uptimeSeconds: Math.round((Date.now() - state.startedAt) / 1000) }));
      case '/readyz': {
        const r = await readiness(state);
        return send(res, r.ready ? 200 : 503, 'application/json', JSON.stringify({ status: r.ready ? 'ready' : 'not ready', checks: r.checks }));
      }
      case '/': {
        // the whole queue, read from disk, while it is small enough to read for a page view
        const queued = (await state.queue?.allEnvelopes(PAGE_QUEUE_READ_LIMIT).catch(() => null)) ?? null;
        const page = renderStatusPage(state, await readiness(state), Date.now(), queued);
        // Defence in depth behind the escaping: no script, no outside resource runs or loads.
        res.setHeader('Content-Security-Policy', "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'");
        res.setHeader('X-Content-Type-Options', 'nosniff');
        return send(res, 200, 'text/html; charset=utf-8', page);
      }
      default:
        return send(res, 404, 'application/json', JSON.stringify({ error: `no such path ${path}: use /, /metrics, /healthz or /readyz` }));
    }
  };

  // A scrape or a page is one small request: a client that dawdles is cut off, and a flood
  // of connections cannot use up the relay's file descriptors.
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  server.maxConnections = 100;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(settings.port, settings.host, () => {
      server.off('error', reject);
      resolve();
    });
  }).catch((err: NodeJS.ErrnoException) => {
    throw explainHttpListenError(err, settings);
  });
  server.on('error', (err) => log.warn({ err: err.message }, 'HTTP listener error'));
  const port = (server.address() as net.AddressInfo).port;
  log.info({ host: settings.host, port, token: settings.token ? 'required' : 'none (loopback)' }, 'HTTP listening: /metrics, /healthz, /readyz, /');
  return {
    host: settings.host,
    port,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}

function send(res: http.ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'Content-Type': type, 'Cache-Control': 'no-store', 'Content-Length': Buffer.byteLength(body) });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

function explainHttpListenError(err: NodeJS.ErrnoException, s: HttpSettings): unknown {
  const where = s.host.includes(':') ? `[${s.host}]:${s.port}` : `${s.host}:${s.port}`;
  switch (err.code) {
    case 'EADDRINUSE':
      return new StartError(`http.listen (env RELAY_HTTP_LISTEN) is ${where}, which is already in use: choose a free port, or leave RELAY_HTTP_LISTEN empty for no HTTP listener`);
    case 'EACCES':
      return new StartError(`http.listen (env RELAY_HTTP_LISTEN) is ${where}, and this user may not listen there: ports below 1024 need root or CAP_NET_BIND_SERVICE; use a port above 1023`);
    case 'EADDRNOTAVAIL':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new StartError(`http.listen (env RELAY_HTTP_LISTEN) is ${where}, but ${s.host} is not an address of this machine: use 127.0.0.1:PORT, or 0.0.0.0:PORT with http.token`);
    default:
      return err;
  }
}
