// The running relay: builds every part from the configuration and wires them in the order
// of the flow (DESIGN.md): submission -> policy -> sign -> spool -> queue runner -> delivery.
import { acceptMessage } from './accept-message';
import { parseDestinationLimits, RelayConfig } from './config/schema';
import { QueueRunner } from './delivery/queue-runner';
import { RetrySchedule } from './delivery/retry-schedule';
import { activatePublishedKeys } from './dkim/key-lifecycle';
import { KeyStore } from './dkim/key-store';
import { createResolver } from './dns/resolver';
import { establishIdentity } from './identity/check-at-start';
import { createLogger, Logger } from './log';
import { NetworkList } from './policy/client-access';
import { Spool } from './spool/spool';
import { StartError, explainDataDirError, explainListenError } from './start-errors';
import { AuthFailures } from './submission/auth-failures';
import { loadRulesFile, setUserRules } from './replies/verdict';
import { ConnectionLimits } from './submission/connection-limits';
import { startSubmission } from './submission/server';
import { loadTlsCertificate } from './submission/tls-certificate';
import { UserDirectory } from './users/store';

export interface Relay {
  ports: { starttls: number; tls?: number };
  queue: QueueRunner;
  /** Stops accepting, lets deliveries in flight finish (up to `timeoutMs`), keeps the rest queued. */
  close(timeoutMs?: number): Promise<void>;
}

export async function startRelay(config: RelayConfig, options: { log?: Logger } = {}): Promise<Relay> {
  const log = options.log ?? createLogger(config.log.level);
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
  const resolver = createResolver({ servers: config.dns.servers, timeoutSeconds: config.dns.timeout });
  // Before anything is opened: a fatal identity problem (identity/check-at-start.ts) stops here.
  const identity = await establishIdentity(config, resolver, log);
  const hostname = identity.heloName;
  const spool = new Spool(config.dataDir);
  await spool.lock().catch((err: unknown) => {
    throw explainDataDirError(err, config.dataDir);
  });
  // Opening reads no message (spool/due-index.ts): submission starts at once however large the queue.
  const opened = await spool.open();
  spool.onDamaged = (file) => {
    log.error({ file }, 'a queued message does not match its checksum (written out of order before a crash, or damaged on disk): moved to spool-damaged/ and not sent; if the message in it is whole (the file is the message, then its envelope as JSON), submit it again');
  };
  const tls = loadTlsCertificate(config, hostname);
  if (tls.generated) log.info({ cert: tls.path }, 'made a self-signed TLS certificate for submission');
  const users = new UserDirectory(config.usersFile, {
    onReloadError: (err) => log.error({ err: err.message }, 'users file changed but cannot be read; the previous users stay in force'),
  });
  const keys = new KeyStore(config.keysDir, log);
  // every unusable key is logged now, and again whenever the store changes, not at the first message
  const keyWatch = keys.watch();
  const keyCheck = startKeyActivation(config, resolver, log);

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
    },
    schedule: new RetrySchedule(config.delivery.retrySchedule, config.delivery.retryExpire * 1000),
    concurrency: config.delivery.concurrency,
    limits: {
      rules: parseDestinationLimits(config.delivery.destinationLimits),
      connections: config.delivery.connectionsPerDestination,
      messagesPerConnection: config.delivery.messagesPerConnection,
      throttlePause: config.delivery.throttlePause,
    },
    bounce: { keys, heloName: hostname },
    delayWarningMs: config.delivery.delayWarning * 1000,
    activeLimit: config.delivery.activeQueueLimit,
  });
  if (!opened.indexTrusted) {
    log.warn({ index: spool.index.dir }, opened.indexExisted
      ? 'the relay did not stop cleanly on this boot: the spool index is checked against the spool in the background'
      : 'no spool index yet: it is built from the spool in the background');
  }
  queue.start({ repairIndex: opened.indexTrusted ? false : opened.indexExisted ? true : 'rebuild' });

  const authFailures = new AuthFailures({
    maxFailures: config.auth.maxFailures,
    maxUserFailures: config.auth.maxUserFailures,
    blockMs: config.auth.blockTime * 1000,
    delayMs: config.auth.failureDelay * 1000,
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
      });
      log.info({
        id: envelope.id, client: request.client.address, user: request.client.user, sender: envelope.sender,
        recipients: envelope.recipients.length, size: envelope.size,
        domain: envelope.signing?.domain, selectors: envelope.signing?.selectors,
      }, 'accepted');
      queue.add(envelope);
      return envelope.id;
    },
  }).catch(async (err: unknown) => {
    // Nothing was accepted yet: undo the start, then say which setting is wrong.
    keyWatch.stop();
    await keyCheck.stop();
    await queue.stop(0);
    await spool.close();
    await spool.unlock();
    throw explainListenError(err, config.submission);
  });

  return {
    ports: submission.ports,
    queue,
    async close(timeoutMs = 10_000) {
      keyWatch.stop();
      await keyCheck.stop();
      await submission.close();
      authFailures.close();
      await queue.stop(timeoutMs);
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
