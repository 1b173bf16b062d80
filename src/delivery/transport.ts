// SMTP sessions to one host: nodemailer's SMTPConnection from the fixed source address with
// the fixed HELO name. TLS is opportunistic (RFC 7435): STARTTLS when offered, a certificate
// that does not verify is still used (an MX's certificate rarely names the MX host), and a
// failed handshake is retried once in clear, which nodemailer does not do by itself.
// A session carries several messages one after another (RSET after a refused one), which is
// what the big providers want instead of a connection per message.
// A TLS policy (MTA-STS, DANE) hands in a TlsRequirement decided before connecting: with
// requireTls the session is TLS 1.2+ or nothing (no clear-text retry, no STARTTLS offered =
// failure) and its verify() must accept the certificate. Every session reports what it
// reached as a TlsOutcome (tls-outcome.ts).
import net from 'node:net';
import { Readable } from 'node:stream';
import tls from 'node:tls';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import { outcomeOfError as classifyError, outcomeOfCode as classifyReply, describeError, Outcome } from '../replies/outcome';
import './dot-stuffing-fast-path';
import { Destination } from './route';
import { TlsOutcome, TlsPolicyRef, TlsResultType } from './tls-outcome';

export interface TransportOptions {
  heloName: string;
  localAddress?: string;
  /** Source address and HELO name per family (delivery.localAddress with both): used by the destination's family. */
  sources?: { family: 4 | 6; localAddress: string; heloName: string }[];
  connectTimeoutMs: number;
  /** Trusted CAs (system + delivery.caFile), TLS 1.2+: used for connections with a TLS policy. */
  verifyingContext?: () => tls.SecureContext;
}

export type TlsCheck = { ok: true } | { ok: false; result: TlsResultType; reason: string };

/**
 * What one connection must achieve in TLS, decided before connecting (tls-policy.ts). No
 * requirement: opportunistic, as RFC 7435 (STARTTLS when offered, any certificate).
 */
export interface TlsRequirement {
  level: 'opportunistic' | 'sts' | 'dane';
  /** TLS 1.2+ or no delivery: no clear-text fallback; a failed verify() ends the connection. */
  requireTls: boolean;
  /** Checks the peer once TLS is up (certificate, name). Without requireTls a failure is only recorded. */
  verify?: (socket: tls.TLSSocket) => TlsCheck;
  /** The policy, for the outcome (TLS reports); default no-policy-found. */
  policy?: TlsPolicyRef;
  /** A failure known before connecting (e.g. an MX host a testing policy does not list): recorded, not enforced. */
  noted?: { result: TlsResultType; reason: string };
  /** Start of the reply text when the requirement defers, e.g. "MTA-STS enforce". */
  label?: string;
}

/** A host not to be connected to now by its TLS policy (DANE: its DNSSEC fails). defer: the reply kept. */
export interface TlsDeferral { defer: string; result?: TlsResultType; policy?: TlsPolicyRef }

/** Where and for whom a session is opened; tls absent = opportunistic. */
export interface OpenContext {
  /** Recipient domain, for the TlsOutcome. */
  domain?: string;
  tls?: TlsRequirement;
}

export interface RecipientResult { address: string; outcome: Outcome; reply: string }

export interface SendResult {
  recipients: RecipientResult[];
  /** The session can carry the next message. */
  reusable: boolean;
}

export type OpenResult =
  | { session: SmtpSession }
  | { error: { outcome: Outcome; reply: string; tls?: TlsOutcome } };

export class SmtpSession {
  private closed = false;

  private constructor(readonly destination: Destination, private readonly connection: SMTPConnection, readonly tlsOutcome: TlsOutcome) {
    connection.on('error', () => undefined); // reported through the callbacks of send()
    connection.once('end', () => {
      this.closed = true;
    });
  }

  get tls(): boolean {
    return this.connection.secure;
  }

  /** The server offered STARTTLS: on a session in clear text, TLS was offered but failed (TLS reports). */
  get starttlsOffered(): boolean {
    return ((this.connection as unknown as { _ehloLines?: string[] })._ehloLines ?? []).some((line) => /^STARTTLS\b/i.test(line));
  }

  get usable(): boolean {
    return !this.closed;
  }

  /**
   * Connects and says EHLO: STARTTLS when offered, in clear when the handshake fails, unless
   * context.tls requires TLS (then that is a failure, and so is a certificate it refuses).
   */
  static async open(destination: Destination, options: TransportOptions, context: OpenContext = {}): Promise<OpenResult> {
    const first = await connect(destination, options, context);
    if ('error' in first && first.tlsFailed && !context.tls?.requireTls) return connect(destination, options, context, first.error.reply);
    return first;
  }

  /** Whether the server offered an SMTP extension in its (last) EHLO reply. */
  offers(extension: string): boolean {
    return (this.connection as unknown as { _supportedExtensions?: string[] })._supportedExtensions?.includes(extension) ?? false;
  }

  /**
   * Sends one message. declared: the MAIL FROM parameters the client gave, passed on when the
   * server offers them. A recipient whose envelope needs SMTPUTF8 (a UTF-8 address) is not
   * sent to a server that does not offer it: it fails with 5.6.7 (RFC 6531 3.2), since
   * changing an address is no option. An 8-bit body to a server without 8BITMIME goes as
   * it is (see README, "8-bit messages"): converting it to 7 bit would break the signature.
   */
  async send(envelope: { from: string; to: string[]; declared?: { body8bit?: boolean; smtputf8?: boolean } }, message: Buffer | Readable): Promise<SendResult> {
    if (!this.offers('SMTPUTF8')) {
      const refusal = `550 5.6.7 ${this.destination.host} does not support SMTPUTF8 (RFC 6531), which this internationalized address needs; the relay does not change addresses`;
      const senderNeeds = needsSmtpUtf8(envelope.from);
      const refused = envelope.to.filter((address) => senderNeeds || needsSmtpUtf8(address));
      if (refused.length) {
        const failed = refused.map((address) => ({ address, outcome: 'failed' as Outcome, reply: refusal }));
        const rest = envelope.to.filter((address) => !refused.includes(address));
        if (!rest.length) {
          if (!Buffer.isBuffer(message)) message.destroy();
          return { recipients: failed, reusable: !this.closed };
        }
        const sent = await this.send({ ...envelope, to: rest }, message);
        return { ...sent, recipients: [...failed, ...sent.recipients] };
      }
    }
    const { connection } = this;
    const smtputf8 = !!envelope.declared?.smtputf8 && this.offers('SMTPUTF8');
    const restore = smtputf8 ? this.addSmtpUtf8() : () => undefined;
    try {
      const info = await new Promise<SMTPConnection.SentMessageInfo>((resolve, reject) => {
        connection.send(
          { from: envelope.from, to: envelope.to, use8BitMime: !!envelope.declared?.body8bit } as SMTPConnection.Envelope,
          message,
          (err, result) => (err ? reject(err) : resolve(result!))
        );
      });
      const reply = describeError({ response: info.response });
      const rejected = new Map((info.rejectedErrors ?? []).map((e: unknown) => [(e as { recipient?: string }).recipient ?? '', e]));
      return {
        reusable: !this.closed,
        recipients: envelope.to.map((address) => {
          if (info.accepted.includes(address)) return { address, outcome: classifyReply(codeOf(info.response)), reply };
          const err = rejected.get(address);
          return { address, outcome: err ? classifyError(err) : 'deferred', reply: err ? describeError(err) : 'not accepted' };
        }),
      };
    } catch (err) {
      if (!Buffer.isBuffer(message)) message.destroy();
      const e = err as { code?: string; responseCode?: number; rejectedErrors?: unknown[] };
      const recipients = e.code === 'EENVELOPE' && Array.isArray(e.rejectedErrors) && e.rejectedErrors.length === envelope.to.length
        // every recipient refused at RCPT: nodemailer reports it as one error
        ? e.rejectedErrors.map((r, i) => ({
          address: (r as { recipient?: string }).recipient ?? envelope.to[i],
          outcome: classifyError(r),
          reply: describeError(r),
        }))
        : envelope.to.map((address) => ({ address, outcome: classifyError(err), reply: describeError(err) }));
      // A refused envelope or message leaves the session fine: RSET and go on. A 421 or a
      // broken connection ends it.
      let reusable = false;
      if ((e.code === 'EENVELOPE' || e.code === 'EMESSAGE') && e.responseCode !== 421 && !this.closed) {
        reusable = await new Promise<boolean>((resolve) => connection.reset((resetErr) => resolve(!resetErr)));
      }
      return { recipients, reusable };
    } finally {
      restore();
    }
  }

  /**
   * nodemailer adds SMTPUTF8 to MAIL FROM only when an envelope address is not ASCII; a
   * client may also declare it for UTF-8 header fields (RFC 6532) with ASCII addresses. This
   * connection's MAIL FROM gets the keyword too while one message is sent.
   */
  private addSmtpUtf8(): () => void {
    type SendCommand = (command: string, ...rest: unknown[]) => void;
    const connection = this.connection as unknown as { _sendCommand: SendCommand };
    const original = connection._sendCommand;
    connection._sendCommand = function sendCommand(this: unknown, command: string, ...rest: unknown[]) {
      const add = typeof command === 'string' && /^MAIL FROM:/i.test(command) && !/ SMTPUTF8\b/i.test(command);
      return original.call(this, add ? `${command} SMTPUTF8` : command, ...rest);
    };
    return () => {
      delete (connection as { _sendCommand?: SendCommand })._sendCommand; // the prototype's again
      if (connection._sendCommand !== original) connection._sendCommand = original;
    };
  }

  /**
   * Ends the session politely (QUIT). Resolves once the TCP connection is closed (at most a
   * second later: then it is dropped), so a per-destination connection limit counts it until
   * it is really gone. nodemailer reports 'end' when it starts closing, so the socket itself
   * (an internal of nodemailer's connection) is watched.
   */
  quit(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    const socket = (this.connection as unknown as { _socket?: import('node:net').Socket })._socket;
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.connection.close();
        socket?.destroy();
        resolve();
      }, 1000);
      timer.unref();
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      if (!socket || socket.destroyed) done();
      else socket.once('close', done);
      try {
        this.connection.quit();
      } catch {
        done(); // already gone
      }
    });
  }

  /** Drops the connection at once. */
  close(): void {
    this.closed = true;
    this.connection.close();
  }

  /** @internal */
  static wrap(destination: Destination, connection: SMTPConnection, tlsOutcome: TlsOutcome): SmtpSession {
    return new SmtpSession(destination, connection, tlsOutcome);
  }
}

/**
 * One connection attempt. afterTlsFailure: the reply of a first attempt whose TLS handshake
 * failed; this one then goes in clear (opportunistic only).
 */
async function connect(destination: Destination, options: TransportOptions, context: OpenContext, afterTlsFailure?: string): Promise<OpenResult & { tlsFailed?: boolean }> {
  const plain = afterTlsFailure !== undefined;
  const requirement = context.tls;
  const strict = !!requirement?.requireTls;
  const checked = !!requirement && (strict || !!requirement.verify);
  // Each family has its own source address and the HELO name its PTR gives.
  const source = options.sources?.find((s) => s.family === net.isIP(destination.ip));
  const tlsOptions: tls.ConnectionOptions = {
    // the certificate is judged after the handshake (requirement.verify), not by OpenSSL;
    // socket.authorized then says whether the chain validates, the name is verify's to check
    rejectUnauthorized: false,
    checkServerIdentity: () => undefined,
    // SNI takes a host name only (RFC 6066): none when the destination was given as an IP
    servername: net.isIP(destination.host) ? undefined : destination.host,
    minVersion: strict ? 'TLSv1.2' : undefined,
  };
  // with a policy: the trusted CAs, so socket.authorized says whether the chain validates
  if (checked && options.verifyingContext) tlsOptions.secureContext = options.verifyingContext();
  const connection = new SMTPConnection({
    host: destination.ip,
    port: destination.port,
    name: source?.heloName ?? options.heloName,
    localAddress: source?.localAddress ?? (options.localAddress || undefined),
    allowInternalNetworkInterfaces: true,
    connectionTimeout: options.connectTimeoutMs,
    greetingTimeout: options.connectTimeoutMs,
    socketTimeout: 10 * 60 * 1000,
    // required TLS: a refused STARTTLS is an error, not a reason to go on in clear
    opportunisticTLS: !plain && !strict,
    ignoreTLS: plain,
    tls: tlsOptions,
  });
  const outcome: TlsOutcome = {
    domain: context.domain ?? '',
    mxHost: destination.host,
    ip: destination.ip,
    policy: requirement?.policy ?? { type: 'no-policy-found', domain: context.domain ?? '' },
    level: 'none',
    verified: false,
    ...(requirement?.noted ? { failure: { ...requirement.noted } } : {}),
    at: Date.now(),
  };
  const refuse = (failure: { result: TlsResultType; reason: string }): OpenResult => {
    connection.close();
    outcome.failure ??= failure;
    return { error: { outcome: 'deferred', reply: `${requirement?.label ?? 'TLS policy'}: ${failure.reason}`, tls: outcome } };
  };
  try {
    await new Promise<void>((resolve, reject) => {
      connection.once('error', reject);
      connection.connect((err?: Error) => (err ? reject(err) : resolve()));
    });
    connection.removeAllListeners('error');
  } catch (err) {
    const e = err as { code?: string; responseCode?: number };
    const tlsFailed = e.code === 'ETLS' || (!connection.secure && /TLS|SSL|handshake/i.test(describeError(err)) && e.responseCode === undefined);
    connection.close();
    if (tlsFailed && checked) {
      const failure = { result: 'validation-failure' as const, reason: `no TLS with ${destination.host} [${destination.ip}]: ${describeError(err)}` };
      if (strict) return { tlsFailed, ...refuse(failure) };
    }
    return { tlsFailed, error: { outcome: classifyError(err), reply: describeError(err) } };
  }
  if (connection.secure) {
    const socket = (connection as unknown as { _socket: tls.TLSSocket })._socket;
    outcome.tlsVersion = socket.getProtocol() ?? undefined;
    outcome.level = 'opportunistic';
    const check = requirement?.verify?.(socket);
    if (check?.ok) {
      outcome.verified = true;
      if (!outcome.failure) outcome.level = requirement!.level;
    } else if (check && !check.ok) {
      if (strict) return refuse(check);
      outcome.failure ??= { result: check.result, reason: check.reason };
    }
  } else if (plain && checked) {
    outcome.failure ??= { result: 'validation-failure', reason: `the TLS handshake with ${destination.host} [${destination.ip}] failed (${afterTlsFailure}), so the message went in clear` };
  } else if (checked) {
    const failure = { result: 'starttls-not-supported' as const, reason: `${destination.host} [${destination.ip}] does not offer STARTTLS` };
    if (strict) return refuse(failure);
    outcome.failure ??= failure;
  }
  return { session: SmtpSession.wrap(destination, connection, outcome) };
}

/** An address with a non-ASCII character needs SMTPUTF8 on the way (RFC 6531). */
export function needsSmtpUtf8(address: string): boolean {
  return /[^\x00-\x7f]/.test(address);
}

function codeOf(response: string | undefined): number | undefined {
  const m = /^(\d{3})/.exec(response ?? '');
  return m ? Number(m[1]) : undefined;
}
