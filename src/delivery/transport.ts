// SMTP sessions to one host: nodemailer's SMTPConnection from the fixed source address with
// the fixed HELO name. TLS is opportunistic (RFC 7435): STARTTLS when offered, a certificate
// that does not verify is still used (an MX's certificate rarely names the MX host), and a
// failed handshake is retried once in clear, which nodemailer does not do by itself.
// A session carries several messages one after another (RSET after a refused one), which is
// what the big providers want instead of a connection per message.
import net from 'node:net';
import { Readable } from 'node:stream';
import type tls from 'node:tls';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import { outcomeOfError as classifyError, outcomeOfCode as classifyReply, describeError, Outcome } from '../replies/outcome';
import './dot-stuffing-fast-path';
import { Destination } from './route';
import { TlsLevel, TlsPolicyRef, TlsResultType } from './tls-outcome';

/**
 * What one connection must achieve in TLS (DANE, MTA-STS); without one, TLS is opportunistic.
 * requireTls: no STARTTLS, a failed handshake or a failed verify ends the attempt (never
 * plain text). verify: judges the certificate once STARTTLS and the EHLO after it are done,
 * before any MAIL FROM; a failure closes the connection.
 */
export interface TlsRequirement {
  level: 'opportunistic' | 'sts' | 'dane';
  requireTls: boolean;
  verify?: (socket: tls.TLSSocket) => { ok: true } | { ok: false; result: TlsResultType; reason: string };
  /** The policy behind it (RFC 8460 policy), for logs and TLS reports. */
  policy?: TlsPolicyRef;
}

/** A host not to be connected to now by its TLS policy (DANE: its DNSSEC fails). defer: the reply kept. */
export interface TlsDeferral { defer: string; result?: TlsResultType; policy?: TlsPolicyRef }

/** The TLS a session reached, for the `delivery attempt` log line. */
export interface SessionTls { level: TlsLevel; version?: string; verified: boolean }

export interface TransportOptions {
  heloName: string;
  localAddress?: string;
  /** Source address and HELO name per family (delivery.localAddress with both): used by the destination's family. */
  sources?: { family: 4 | 6; localAddress: string; heloName: string }[];
  connectTimeoutMs: number;
}

export interface RecipientResult { address: string; outcome: Outcome; reply: string }

export interface SendResult {
  recipients: RecipientResult[];
  /** The session can carry the next message. */
  reusable: boolean;
}

export type OpenResult =
  | { session: SmtpSession }
  /** tlsFailure: the connection did not meet its TlsRequirement */
  | { error: { outcome: Outcome; reply: string; tlsFailure?: { result: TlsResultType; reason: string } } };

export class SmtpSession {
  private closed = false;

  private constructor(readonly destination: Destination, private readonly connection: SMTPConnection, private readonly requirement?: TlsRequirement) {
    connection.on('error', () => undefined); // reported through the callbacks of send()
    connection.once('end', () => {
      this.closed = true;
    });
  }

  get tls(): boolean {
    return this.connection.secure;
  }

  /** The TLS level reached: the requirement's when it was met (verified), else opportunistic or none. */
  get tlsInfo(): SessionTls {
    if (!this.connection.secure) return { level: 'none', verified: false };
    const socket = (this.connection as unknown as { _socket?: tls.TLSSocket })._socket;
    const version = socket?.getProtocol?.() ?? undefined;
    const verified = !!this.requirement?.verify; // a session with a verify exists only when it passed
    return { level: verified ? this.requirement!.level : 'opportunistic', version, verified };
  }

  /** The server offered STARTTLS: on a session in clear text, TLS was offered but failed (TLS reports). */
  get starttlsOffered(): boolean {
    return ((this.connection as unknown as { _ehloLines?: string[] })._ehloLines ?? []).some((line) => /^STARTTLS\b/i.test(line));
  }

  get usable(): boolean {
    return !this.closed;
  }

  /**
   * Connects and says EHLO (STARTTLS when offered, in clear when the handshake fails). With a
   * requirement that needs TLS: STARTTLS or nothing, and the certificate verified.
   */
  static async open(destination: Destination, options: TransportOptions, requirement?: TlsRequirement): Promise<OpenResult> {
    const first = await connect(destination, options, false, requirement);
    if ('error' in first && first.tlsFailed && !requirement?.requireTls) return connect(destination, options, true);
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
  static wrap(destination: Destination, connection: SMTPConnection, requirement?: TlsRequirement): SmtpSession {
    return new SmtpSession(destination, connection, requirement);
  }
}

async function connect(destination: Destination, options: TransportOptions, plain: boolean, requirement?: TlsRequirement): Promise<OpenResult & { tlsFailed?: boolean }> {
  const requireTls = !!requirement?.requireTls;
  // Each family has its own source address and the HELO name its PTR gives.
  const source = options.sources?.find((s) => s.family === net.isIP(destination.ip));
  const connection = new SMTPConnection({
    host: destination.ip,
    port: destination.port,
    name: source?.heloName ?? options.heloName,
    localAddress: source?.localAddress ?? (options.localAddress || undefined),
    allowInternalNetworkInterfaces: true,
    connectionTimeout: options.connectTimeoutMs,
    greetingTimeout: options.connectTimeoutMs,
    socketTimeout: 10 * 60 * 1000,
    opportunisticTLS: !plain && !requireTls,
    ignoreTLS: plain,
    requireTLS: requireTls,
    // SNI takes a host name only (RFC 6066): none when the destination was given as an IP
    tls: { rejectUnauthorized: false, servername: net.isIP(destination.host) ? undefined : destination.host },
  });
  try {
    await new Promise<void>((resolve, reject) => {
      connection.once('error', reject);
      connection.connect((err?: Error) => (err ? reject(err) : resolve()));
    });
    connection.removeAllListeners('error');
    const failure = requirement && checkRequirement(connection, requirement, destination.host);
    if (failure) {
      connection.close();
      return { error: { outcome: 'deferred', reply: failure.reason, tlsFailure: failure } };
    }
    return { session: SmtpSession.wrap(destination, connection, requirement) };
  } catch (err) {
    const e = err as { code?: string; responseCode?: number };
    const tlsFailed = e.code === 'ETLS' || (!connection.secure && /TLS|SSL|handshake/i.test(describeError(err)) && e.responseCode === undefined);
    connection.close();
    // a server without EHLO cannot do STARTTLS: nodemailer says so with the 5xx to EHLO
    const noEhlo = requireTls && /does not support required STARTTLS/.test(describeError(err));
    if (requireTls && (tlsFailed || noEhlo)) {
      // required TLS is never given up for plain text; a 5xx to STARTTLS is no reason to bounce
      const noStarttls = noEhlo || (e.code === 'ETLS' && e.responseCode !== undefined);
      const reason = noStarttls
        ? `${policyName(requirement!)} requires TLS, but ${destination.host} refused STARTTLS (${describeError(err)})`
        : `${policyName(requirement!)} requires TLS, but the TLS handshake with ${destination.host} failed (${describeError(err)})`;
      const tlsFailure = { result: (noStarttls ? 'starttls-not-supported' : 'validation-failure') as TlsResultType, reason };
      return { tlsFailed, error: { outcome: 'deferred', reply: reason, tlsFailure } };
    }
    return { tlsFailed, error: { outcome: classifyError(err), reply: describeError(err) } };
  }
}

/** Who requires TLS, for a reply text: "DANE", "MTA-STS". */
function policyName(requirement: TlsRequirement): string {
  if (requirement.level === 'dane' || requirement.policy?.type === 'tlsa') return 'DANE';
  if (requirement.level === 'sts' || requirement.policy?.type === 'sts') return 'MTA-STS';
  return 'the TLS policy';
}

/** Why a connection does not meet its requirement, or null when it does. */
function checkRequirement(connection: SMTPConnection, requirement: TlsRequirement, host: string): { result: TlsResultType; reason: string } | null {
  if (requirement.requireTls && !connection.secure) {
    return { result: 'starttls-not-supported', reason: `${policyName(requirement)} requires TLS, but the session with ${host} is not encrypted` };
  }
  if (!requirement.verify) return null;
  const socket = (connection as unknown as { _socket?: tls.TLSSocket })._socket;
  if (!socket || typeof socket.getPeerCertificate !== 'function') {
    return { result: 'validation-failure', reason: `${policyName(requirement)}: the certificate of ${host} could not be read` };
  }
  const verdict = requirement.verify(socket);
  return verdict.ok ? null : { result: verdict.result, reason: verdict.reason };
}

/** An address with a non-ASCII character needs SMTPUTF8 on the way (RFC 6531). */
export function needsSmtpUtf8(address: string): boolean {
  return /[^\x00-\x7f]/.test(address);
}

function codeOf(response: string | undefined): number | undefined {
  const m = /^(\d{3})/.exec(response ?? '');
  return m ? Number(m[1]) : undefined;
}
