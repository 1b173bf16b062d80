// The SMTP server clients submit to (smtp-server): STARTTLS and an optional implicit-TLS
// port, AUTH PLAIN/LOGIN against the users file, trusted networks, limits, and the SMTP
// replies. What happens to an accepted message is the `accept` function handed in.
import { SMTPServer, SMTPServerDataStream, SMTPServerOptions, SMTPServerSession } from 'smtp-server';
import { Logger } from '../log';
import { NetworkList } from '../policy/client-access';
import { checkRecipientDomain } from '../policy/recipient-domain';
import { Rejection } from '../policy/rejection';
import { checkSenderDomain, domainOf } from '../policy/sender-domains';
import { UserDirectory } from '../users/store';
import { AuthFailures } from './auth-failures';
import { logRefusals, Refusal } from './refusal-log';
import { accountChangeRefusal, SessionUser, sessionUserFor } from './session-account';
import { ConnectionLimits } from './connection-limits';
import { JUNK_LIMIT_OPTION } from './junk-commands';
import './data-dot-search';
import './greeting-without-delay';
import './reply-codes';
import { SUBMISSION_TLS } from './tls-profile';

export type { SessionUser };

export interface AcceptRequest {
  sender: string;
  recipients: string[];
  client: { address: string; user?: string };
  user?: SessionUser;
  sizeExceeded: () => boolean;
  /** What the client declared in MAIL FROM, passed on at delivery. */
  declared: DeclaredParameters;
  /** The session as the Received field describes it. */
  session: { heloName: string; protocol: string; tls?: { version: string; cipher: string } };
}

/** MAIL FROM parameters the relay passes on: BODY=8BITMIME (RFC 6152), SMTPUTF8 (RFC 6531). */
export interface DeclaredParameters { body8bit: boolean; smtputf8: boolean }

export interface SubmissionOptions {
  host: string;
  port: number;
  tlsPort: number;
  hostname: string;
  tls: { key: string; cert: string };
  maxSize: number;
  maxRecipients: number;
  maxClients: number;
  maxCommandLength: number;
  /** Commands without mail work per session between accepted messages (junk-commands.ts). */
  maxJunkCommands: number;
  /** Connections per client address, and the share kept for trusted networks. */
  connectionLimits: ConnectionLimits;
  socketTimeoutSeconds: number;
  authFailures: AuthFailures;
  /** May relay without AUTH. */
  trusted: NetworkList;
  /** May AUTH without TLS. */
  plainAuth: NetworkList;
  users: UserDirectory;
  log: Logger;
  /** Told about every refusal sent to a client (metrics, status page). */
  onRefusal?: (refusal: Refusal) => void;
  /** Stores the message; resolves to its queue ID, or rejects with a Rejection. */
  accept: (data: SMTPServerDataStream, request: AcceptRequest) => Promise<string>;
}

export interface SubmissionServer {
  ports: { starttls: number; tls?: number };
  close(): Promise<void>;
}

export async function startSubmission(options: SubmissionOptions): Promise<SubmissionServer> {
  const { log } = options;

  const base: SMTPServerOptions = logRefusals({
    name: options.hostname,
    banner: 'dkim-relay ESMTP',
    key: options.tls.key,
    cert: options.tls.cert,
    ...SUBMISSION_TLS, // Mozilla's intermediate profile (tls-profile.ts)
    size: options.maxSize,
    maxRecipients: options.maxRecipients,
    maxClients: options.maxClients,
    maxCommandLength: options.maxCommandLength,
    socketTimeout: options.socketTimeoutSeconds * 1000,
    authMethods: ['PLAIN', 'LOGIN'],
    // Trusted networks relay without AUTH; everyone else is stopped at MAIL FROM (530).
    authOptional: true,
    // AUTH before TLS is refused per client (plainAuth networks may): see onConnect and onAuth.
    allowInsecureAuth: true,
    disableReverseLookup: true,
    // smtp-server hides ENHANCEDSTATUSCODES unless told; every reply carries one (RFC 2034)
    hideENHANCEDSTATUSCODES: false,
    logger: false,
    // read by the junk-commands shim from the server's options (unknown to smtp-server's type)
    ...{ [JUNK_LIMIT_OPTION]: options.maxJunkCommands },

    onConnect(session, callback) {
      const tooMany = options.connectionLimits.admit(session);
      if (tooMany) return callback(tooMany);
      // Not offered (and refused) before TLS to a remote client: a password never crosses
      // the network in clear. onSecure offers it again once the connection is encrypted.
      if (!session.secure && !options.plainAuth.contains(session.remoteAddress)) session.disabledCommands = ['AUTH'];
      // A blocked address's AUTH is refused in onAuth; trusted clients may still send without.
      if (options.trusted.contains(session.remoteAddress)) return callback();
      options.authFailures.connectionRefusal(session.remoteAddress).then((blocked) => callback(blocked ?? undefined), () => callback());
    },

    onClose(session) {
      options.connectionLimits.release(session);
    },

    onSecure(_socket, session, callback) {
      session.disabledCommands = [];
      callback();
    },

    onAuth(auth, session, callback) {
      if (!session.secure && !options.plainAuth.contains(session.remoteAddress)) {
        return callback(new Rejection(538, '5.7.11', 'encryption required: run STARTTLS before AUTH'));
      }
      const client = session.remoteAddress;
      // The attempt is counted before its password is checked (auth-failures.ts).
      void options.authFailures.begin(client, auth.username ?? '').then((attempt) => {
        if (attempt instanceof Rejection) return callback(attempt);
        return options.users.authenticate(auth.username ?? '', auth.password ?? '').then(async (user) => {
          if (!user) {
            const { reply, delayMs } = await attempt.failed();
            log.warn({ client, user: auth.username }, 'authentication failed');
            return void setTimeout(() => callback(reply), delayMs);
          }
          await attempt.succeeded();
          log.info({ client, user: user.name }, 'authenticated');
          callback(null, { user: sessionUserFor(user) });
        }, async (err: Error) => {
          await attempt.abandoned();
          log.error({ err: err.message }, 'users file unreadable');
          callback(new Rejection(454, '4.7.0', 'authentication is unavailable right now; try again later'));
        });
      }).catch((err: Error) => {
        log.error({ err: err.message }, 'login accounting failed');
        callback(new Rejection(454, '4.7.0', 'authentication is unavailable right now; try again later'));
      });
    },

    onMailFrom(address, session, callback) {
      try {
        const user = session.user as SessionUser | undefined;
        const changed = user && accountChangeRefusal(options.users, user);
        if (changed) throw changed;
        if (!user && !options.trusted.contains(session.remoteAddress)) {
          throw new Rejection(530, '5.7.0', `authentication required: ${session.remoteAddress} is not a trusted network; log in with AUTH${session.secure ? '' : ' after STARTTLS'}`);
        }
        // The null sender (bounces from the client's own server) has no domain to check.
        if (address.address) checkSenderDomain({ user }, domainOf(address.address), 'MAIL FROM');
        callback();
      } catch (err) {
        callback(err as Error);
      }
    },

    onRcptTo(address, session, callback) {
      const changed = session.user && accountChangeRefusal(options.users, session.user as SessionUser);
      if (changed) return callback(changed);
      try {
        checkRecipientDomain(address.address);
        callback();
      } catch (err) {
        callback(err as Error);
      }
    },

    onData(stream, session, callback) {
      const user = session.user as SessionUser | undefined;
      options.accept(stream, {
        sender: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
        recipients: session.envelope.rcptTo.map((r) => r.address),
        client: { address: session.remoteAddress, user: user?.name },
        user,
        sizeExceeded: () => stream.sizeExceeded,
        declared: { body8bit: session.envelope.bodyType === '8bitmime', smtputf8: session.envelope.smtpUtf8 === true },
        session: {
          heloName: session.hostNameAppearsAs || '',
          protocol: session.transmissionType,
          tls: session.tlsOptions ? { version: session.tlsOptions.version, cipher: session.tlsOptions.standardName || session.tlsOptions.name } : undefined,
        },
      }).then((id) => callback(null, `2.0.0 queued as ${id}`), (err: Error) => {
        if (err instanceof Rejection) return callback(err);
        log.error({ err: err.message, stack: err.stack }, 'accepting a message failed');
        callback(new Rejection(451, '4.3.0', 'local error while accepting the message; try again later'));
      });
    },
  }, log, options.onRefusal);

  const servers: SMTPServer[] = [];
  const listen = (server: SMTPServer, port: number) => new Promise<number>((resolve, reject) => {
    server.on('error', (err: Error) => log.warn({ err: err.message }, 'submission connection error'));
    const net = server.server;
    net.once('error', reject);
    server.listen(port, options.host, () => {
      net.off('error', reject);
      resolve((net.address() as { port: number }).port);
    });
  });

  const starttls = new SMTPServer({ ...base, secure: false });
  servers.push(starttls);
  const ports: SubmissionServer['ports'] = { starttls: await listen(starttls, options.port) };
  if (options.tlsPort) {
    const implicit = new SMTPServer({ ...base, secure: true });
    servers.push(implicit);
    // The STARTTLS listener is open already: close it again when this one cannot open.
    ports.tls = await listen(implicit, options.tlsPort).catch(async (err: unknown) => {
      await new Promise<void>((resolve) => starttls.close(() => resolve()));
      throw err;
    });
  }
  log.info({ host: options.host, ...ports }, 'submission listening');

  return {
    ports,
    close: () => Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve())))).then(() => undefined),
  };
}

export type { SMTPServerSession };
