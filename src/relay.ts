// The running relay: builds every part from the configuration and wires them in the order
// of the flow (DESIGN.md): submission -> policy -> sign -> spool -> queue runner -> delivery.
import net from 'node:net';
import { acceptMessage } from './accept-message';
import { parseDestinationLimits, RelayConfig } from './config/schema';
import { MtaStsPolicies } from './delivery/mta-sts';
import { QueueRunner } from './delivery/queue-runner';
import { RetrySchedule } from './delivery/retry-schedule';
import { startDane } from './delivery/tls-policy/dane-at-start';
import { createTrustStore } from './delivery/trust-store';
import { activatePublishedKeys } from './dkim/key-lifecycle';
import { KeyStore } from './dkim/key-store';
import { createResolver } from './dns/resolver';
import { establishIdentity } from './identity/check-at-start';
import type { HttpListener } from './http/http-server';
import { httpSettings } from './http/listen-settings';
import type { RelayMonitor } from './http/relay-monitor';
import { createLogger, Logger } from './log';
import { NetworkList } from './policy/client-access';
import { JournalWriter } from './spool/journal';
import { Spool } from './spool/spool';
import type { SharedRedis } from './shared-state/shared-redis';
import type { RedisAuthCounters } from './shared-state/redis-auth-counters';
import type { RedisDestinationState } from './shared-state/redis-destination-state';
import { StartError, explainDataDirError, explainListenError } from './start-errors';
import { AuthFailures } from './submission/auth-failures';
import { loadRulesFile, setUserRules } from './replies/verdict';
import { ConnectionLimits } from './submission/connection-limits';
import { startSubmission } from './submission/server';
import { loadTlsCertificate } from './submission/tls-certificate';
import { UserDirectory } from './users/store';
import { TlsReportCollector } from './tlsrpt/collector';
import { TlsReportSender } from './tlsrpt/sender';

export interface Relay {
  ports: { starttls: number; tls?: number };
  /** The HTTP listener (http.listen), when there is one. */
  http?: { host: string; port: number };
  queue: QueueRunner;
  /** This node's name (node.name, else the HELO name): the `node` field of its log lines. */
  nodeName: string;
  /** The Redis connection shared with other nodes, when redis.url is set. */
  shared: SharedRedis | null;
  /** Stops accepting, lets deliveries in flight finish (up to `timeoutMs`), keeps the rest queued. */
  close(timeoutMs?: number): Promise<void>;
}

export interface StartOptions {
  log?: Logger;
  /** Tests only, not a setting: the HTTPS port of MTA-STS policy hosts (443), so a test server on an ephemeral port can serve them. */
  mtaStsPort?: number;
  /** Tests only: how long a domain's _mta-sts TXT answer is reused (a minute). */
  mtaStsRecheckMs?: number;
}

export async function startRelay(config: RelayConfig, options: StartOptions = {}): Promise<Relay> {
  const log = options.log ?? createLogger(config.log.level);
  // The node's name on every line; when it is the HELO name found at start, from then on.
  if (config.node.name || config.delivery.heloName) log.setBindings({ node: config.node.name || config.delivery.heloName });
  // The HTTP listener comes first, so /healthz answers and /readyz says what is still starting
  // while the identity's DNS checks run; a listener open to the network without a token stops here.
  // Loaded only then: a relay without it carries neither prom-client nor the page.
  const settings = httpSettings(config);
  let monitor: RelayMonitor | undefined;
  let http: HttpListener | undefined;
  if (settings) {
    const [{ RelayMonitor }, { startHttp }] = await Promise.all([import('./http/relay-monitor'), import('./http/http-server')]);
    monitor = new RelayMonitor({ startedAt: Date.now(), dataDir: config.dataDir, keysDir: config.keysDir });
    http = await startHttp(settings, monitor.state, monitor.metrics, log);
  }
  const relay = await startParts(config, options, log, monitor).catch(async (err: unknown) => {
    await http?.close();
    throw err;
  });
  if (!http || !monitor) return relay;
  const listener = http;
  const state = monitor.state;
  return {
    ...relay,
    http: { host: listener.host, port: listener.port },
    async close(timeoutMs) {
      state.submissionListening = false;
      await relay.close(timeoutMs);
      await listener.close();
    },
  };
}

async function startParts(config: RelayConfig, options: StartOptions, log: Logger, monitor: RelayMonitor | undefined): Promise<Relay> {
  // The user's reply rules are checked before anything is opened: a bad file stops the start.
  if (config.delivery.classifierRules) {
    try {
      setUserRules(loadRulesFile(config.delivery.classifierRules));
    } catch (err) {
      throw new StartError((err as Error).message);
    }
  } else {
    setUserRules([]);
  }
  let trust: ReturnType<typeof createTrustStore>;
  try {
    trust = createTrustStore(config.delivery.caFile);
  } catch (err) {
    throw new StartError((err as Error).message);
  }
  // TLS report settings are checked before anything is opened, like the reply rules.
  if (config.tlsrpt.enabled && !(config.tlsrpt.interval >= 1)) {
    throw new StartError(`tlsrpt.interval (env RELAY_TLSRPT_INTERVAL) is ${config.tlsrpt.interval} s: give a reporting period of at least 1s (1d is what RFC 8460 asks for), or turn TLS reports off with tlsrpt.enabled = off`);
  }
  const resolver = createResolver({ servers: config.dns.servers, timeoutSeconds: config.dns.timeout });
  // Before anything is opened: a fatal identity problem (identity/check-at-start.ts) stops here.
  const identity = await establishIdentity(config, resolver, log);
  if (monitor) monitor.state.identity = identity;
  const hostname = identity.heloName;
  const nodeName = config.node.name || hostname;
  log.setBindings({ node: nodeName });
  // and on every metric, so series from several nodes stay apart in one Prometheus
  monitor?.metrics.registry.setDefaultLabels({ node: nodeName });
  const spool = new Spool(config.dataDir);
  await spool.lock().catch((err: unknown) => {
    throw explainDataDirError(err, config.dataDir);
  });
  // A start that fails from here on gives the spool back, so the same process (a test, a
  // supervisor calling startRelay again) can start on this data dir without waiting.
  // Opening reads no message (spool/due-index.ts): submission starts at once however large the queue.
  let opened: Awaited<ReturnType<Spool['open']>>;
  let tls: ReturnType<typeof loadTlsCertificate>;
  try {
    opened = await spool.open();
    tls = loadTlsCertificate(config, hostname);
  } catch (err) {
    await spool.unlock();
    throw err;
  }
  spool.onDamaged = (file) => {
    log.error({ file }, 'a queued message does not match its checksum (written out of order before a crash, or damaged on disk): moved to spool-damaged/ and not sent; if the message in it is whole (the file is the message, then its envelope as JSON), submit it again');
  };
  const journal = new JournalWriter(config.dataDir, {
    days: config.queue.journalDays,
    maxDayBytes: config.queue.journalMaxDaySize,
    warn: (fields, message) => log.warn(fields, message),
  });
  // informational: a journal that cannot be opened is a warning, not a reason to stop
  await journal.open().catch((err: Error) => log.warn({ err: err.message, dir: `${config.dataDir}/journal` }, 'the journal of final outcomes cannot be opened; queue show will not know about messages that left the queue'));
  if (tls.generated) log.info({ cert: tls.path }, 'made a self-signed TLS certificate for submission');
  const users = new UserDirectory(config.usersFile, {
    onReloadError: (err) => log.error({ err: err.message }, 'users file changed but cannot be read; the previous users stay in force'),
  });
  const keys = new KeyStore(config.keysDir, log);
  // every unusable key is logged now, and again whenever the store changes, not at the first message
  const keyWatch = keys.watch();
  const keyCheck = startKeyActivation(config, resolver, log);
  // DANE (delivery.dane): the resolver is checked and the verdict logged before delivery starts
  const dane = await startDane(config, log);
  // TLS reports (RFC 8460): connections are counted from here on, reports sent once the queue runs.
  const tlsReports = config.tlsrpt.enabled
    ? new TlsReportCollector({
      dataDir: config.dataDir,
      intervalMs: config.tlsrpt.interval * 1000,
      log,
      sendingIp: (ip) => identity.sources.find((s) => s.family === net.isIP(ip))?.localAddress ?? identity.localAddress ?? undefined,
    })
    : null;

  const mtaSts = config.delivery.mtaSts && !config.delivery.smarthost
    ? new MtaStsPolicies({ resolver, trust, dataDir: config.dataDir, log, port: options.mtaStsPort, recheckMs: options.mtaStsRecheckMs })
    : undefined;
  // Several nodes: limits, rates, pauses and login counters shared through Redis (its client
  // is loaded only then: a relay on its own does not carry it).
  let shared: SharedRedis | null = null;
  let sharedState: { destinations: RedisDestinationState; auth: RedisAuthCounters } | null = null;
  if (config.redis.url) {
    const [{ SharedRedis }, { RedisDestinationState }, { RedisAuthCounters }] = await Promise.all([
      import('./shared-state/shared-redis'), import('./shared-state/redis-destination-state'), import('./shared-state/redis-auth-counters'),
    ]);
    shared = new SharedRedis({ url: config.redis.url, nodeName, log });
    sharedState = { destinations: new RedisDestinationState(shared, log), auth: new RedisAuthCounters(shared) };
    await shared.start();
  }

  const queue = new QueueRunner({
    spool,
    log,
    route: {
      resolver,
      mxPort: config.delivery.mxPort,
      smarthost: config.delivery.smarthost,
      families: identity.sources.length ? identity.sources.map((s) => s.family) : undefined,
      preference: config.delivery.addressPreference,
    },
    transport: {
      heloName: hostname, localAddress: identity.localAddress ?? undefined, sources: identity.sources,
      connectTimeoutMs: config.delivery.connectTimeout * 1000,
      verifyingContext: trust.context,
    },
    tlsPolicy: mtaSts,
    schedule: new RetrySchedule(config.delivery.retrySchedule, config.delivery.retryExpire * 1000),
    concurrency: config.delivery.concurrency,
    limits: {
      rules: parseDestinationLimits(config.delivery.destinationLimits),
      connections: config.delivery.connectionsPerDestination,
      messagesPerConnection: config.delivery.messagesPerConnection,
      throttlePause: config.delivery.throttlePause,
    },
    destinations: sharedState?.destinations,
    bounce: { keys, heloName: hostname },
    delayWarningMs: config.delivery.delayWarning * 1000,
    journal,
    dane,
    tlsReports: tlsReports ?? undefined,
    events: monitor,
    activeLimit: config.delivery.activeQueueLimit,
  });
  if (!opened.indexTrusted) {
    log.warn({ index: spool.index.dir }, opened.indexExisted
      ? 'the relay did not stop cleanly on this boot: the spool index is checked against the spool in the background'
      : 'no spool index yet: it is built from the spool in the background');
  }
  queue.start({ repairIndex: opened.indexTrusted ? false : opened.indexExisted ? true : 'rebuild' });
  if (monitor) monitor.state.queue = queue;
  const tlsReportSender = tlsReports
    ? new TlsReportSender({
      collector: tlsReports,
      resolver,
      log,
      identity: { org: config.tlsrpt.org || hostname, contact: config.tlsrpt.contact || `postmaster@${hostname}`, submitter: hostname },
      intervalMs: config.tlsrpt.interval * 1000,
      spool,
      keys,
      onQueued: (envelope) => queue.add(envelope),
      ca: trust.ca,
    })
    : null;
  tlsReports?.start();
  tlsReportSender?.start();

  const authFailures = new AuthFailures({
    maxFailures: config.auth.maxFailures,
    maxUserFailures: config.auth.maxUserFailures,
    blockMs: config.auth.blockTime * 1000,
    delayMs: config.auth.failureDelay * 1000,
    counters: sharedState?.auth,
    log,
  });
  const submission = await startSubmission({
    host: config.submission.host,
    port: config.submission.port,
    tlsPort: config.submission.tlsPort,
    hostname,
    tls,
    maxSize: config.submission.maxSize,
    maxRecipients: config.submission.maxRecipients,
    maxClients: config.submission.maxClients,
    maxCommandLength: config.submission.maxCommandLength,
    authFailures,
    maxJunkCommands: config.submission.maxJunkCommands,
    connectionLimits: new ConnectionLimits({
      maxPerClient: config.submission.maxConnectionsPerClient,
      maxClients: config.submission.maxClients,
      reservedForTrusted: config.submission.reservedForTrustedNetworks,
      trusted: new NetworkList(config.trustedNetworks),
      log,
    }),
    socketTimeoutSeconds: config.submission.socketTimeout,
    trusted: new NetworkList(config.trustedNetworks),
    plainAuth: new NetworkList(config.plainAuthNetworks),
    users,
    log,
    onRefusal: monitor && ((refusal) => monitor.refused(refusal)),
    accept: async (stream, request) => {
      const envelope = await acceptMessage(stream, {
        sender: request.sender,
        recipients: request.recipients,
        client: request.client,
        identity: { user: request.user },
        sizeExceeded: request.sizeExceeded,
        declared: request.declared,
        received: { ...request.session, clientAddress: request.client.address, hideClient: config.submission.hideClient },
      }, {
        spool,
        keys,
        log,
        limits: {
          maxLineLength: config.submission.maxLineLength,
          maxHeaderSize: config.submission.maxHeaderSize,
          maxSize: config.submission.maxSize,
        },
        unsignedPolicy: config.signing.unsignedPolicy,
        displayNameAddresses: config.signing.displayNameAddresses,
        hostname,
        onSigningFailure: monitor && (() => monitor.signingFailed()),
      });
      log.info({
        id: envelope.id, client: request.client.address, user: request.client.user, sender: envelope.sender,
        recipients: envelope.recipients.length, size: envelope.size,
        domain: envelope.signing?.domain, selectors: envelope.signing?.selectors,
      }, 'accepted');
      queue.add(envelope);
      monitor?.accepted();
      return envelope.id;
    },
  }).catch(async (err: unknown) => {
    // Nothing was accepted yet: undo the start, then say which setting is wrong.
    keyWatch.stop();
    await keyCheck.stop();
    await tlsReportSender?.stop();
    await queue.stop(0);
    await tlsReports?.stop();
    await journal.close();
    await shared?.close();
    await spool.close();
    await spool.unlock();
    throw explainListenError(err, config.submission);
  });
  if (monitor) monitor.state.submissionListening = true;

  return {
    ports: submission.ports,
    queue,
    nodeName,
    shared,
    async close(timeoutMs = 10_000) {
      if (monitor) monitor.state.submissionListening = false;
      keyWatch.stop();
      await keyCheck.stop();
      await submission.close();
      authFailures.close();
      await tlsReportSender?.stop();
      await queue.stop(timeoutMs);
      await tlsReports?.stop(); // after the queue: deliveries still running count too
      await journal.close();
      await mtaSts?.idle();
      await shared?.close();
      await spool.close();
      await spool.unlock();
      log.info({ queued: queue.size }, 'stopped');
      log.flush?.();
    },
  };
}

/**
 * Pending DKIM keys become active once their record is in DNS: checked at start (without
 * holding the start up) and every keys.checkInterval (0: at start only).
 */
function startKeyActivation(config: RelayConfig, resolver: ReturnType<typeof createResolver>, log: Logger): { stop(): Promise<void> } {
  let running: Promise<void> | null = null;
  const check = () => {
    running ??= activatePublishedKeys(config.keysDir, resolver).then((outcomes) => {
      for (const o of outcomes) {
        const fields = { domain: o.domain, selector: o.selector, dns: o.check?.status };
        if (o.activated) log.info(fields, `DKIM key ${o.selector} of ${o.domain} is now active: its record is in DNS; it signs from now on`);
        else if (o.check?.status === 'missing') log.debug(fields, `DKIM key ${o.selector} of ${o.domain} stays pending: ${o.reason}`);
        else log.warn(fields, `DKIM key ${o.selector} of ${o.domain} stays pending: ${o.reason}`);
      }
    }, (err: Error) => {
      log.error({ err: err.message }, 'checking the DNS records of pending DKIM keys failed');
    }).finally(() => {
      running = null;
    });
  };
  check();
  const timer = config.keys.checkInterval > 0 ? setInterval(check, config.keys.checkInterval * 1000) : null;
  timer?.unref();
  return {
    async stop() {
      if (timer) clearInterval(timer);
      await running;
    },
  };
}
