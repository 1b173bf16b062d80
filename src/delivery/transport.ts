// One SMTP delivery attempt to one host: nodemailer's SMTPConnection from the fixed source
// address with the fixed HELO name. TLS is opportunistic (RFC 7435): STARTTLS when offered,
// a certificate that does not verify is still used (an MX's certificate rarely names the
// MX host), and a failed handshake is retried once in clear, which nodemailer does not do
// by itself.
import net from 'node:net';
import { Readable } from 'node:stream';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import { classifyError, classifyReply, describeError, Outcome } from './classify';
import { Destination } from './route';

export interface TransportOptions {
  heloName: string;
  localAddress?: string;
  connectTimeoutMs: number;
}

export interface RecipientResult { address: string; outcome: Outcome; reply: string }

export interface AttemptResult {
  /** Per recipient, when the session got as far as RCPT. */
  recipients?: RecipientResult[];
  /** Why nothing could be sent to this host (connection, TLS, greeting, MAIL FROM). */
  error?: { outcome: Outcome; reply: string };
  tls: boolean;
}

export async function deliverToHost(
  destination: Destination,
  envelope: { from: string; to: string[] },
  openMessage: () => Readable,
  options: TransportOptions
): Promise<AttemptResult> {
  const first = await attempt(destination, envelope, openMessage, options, false);
  if (first.error && first.tlsFailed) return attempt(destination, envelope, openMessage, options, true);
  return first;
}

async function attempt(
  destination: Destination,
  envelope: { from: string; to: string[] },
  openMessage: () => Readable,
  options: TransportOptions,
  plain: boolean
): Promise<AttemptResult & { tlsFailed?: boolean }> {
  const connection = new SMTPConnection({
    host: destination.ip,
    port: destination.port,
    name: options.heloName,
    localAddress: options.localAddress || undefined,
    allowInternalNetworkInterfaces: true,
    connectionTimeout: options.connectTimeoutMs,
    greetingTimeout: options.connectTimeoutMs,
    socketTimeout: 10 * 60 * 1000,
    opportunisticTLS: !plain,
    ignoreTLS: plain,
    // SNI takes a host name only (RFC 6066): none when the destination was given as an IP
    tls: { rejectUnauthorized: false, servername: net.isIP(destination.host) ? undefined : destination.host },
  });
  let tlsFailed = false;
  try {
    await new Promise<void>((resolve, reject) => {
      connection.once('error', reject);
      connection.connect((err?: Error) => (err ? reject(err) : resolve()));
    });
    const info = await new Promise<SMTPConnection.SentMessageInfo>((resolve, reject) => {
      connection.send({ from: envelope.from, to: envelope.to }, openMessage(), (err, result) => (err ? reject(err) : resolve(result!)));
    });
    const reply = describeError({ response: info.response });
    const rejected = new Map((info.rejectedErrors ?? []).map((e: unknown) => [(e as { recipient?: string }).recipient ?? '', e]));
    return {
      tls: connection.secure,
      recipients: envelope.to.map((address) => {
        if (info.accepted.includes(address)) return { address, outcome: classifyReply(codeOf(info.response)), reply };
        const err = rejected.get(address);
        return { address, outcome: err ? classifyError(err) : 'deferred', reply: err ? describeError(err) : 'not accepted' };
      }),
    };
  } catch (err) {
    const e = err as { code?: string; responseCode?: number; rejected?: string[]; rejectedErrors?: unknown[] };
    tlsFailed = e.code === 'ETLS' || (!connection.secure && /TLS|SSL|handshake/i.test(describeError(err)) && e.responseCode === undefined);
    // Every recipient refused at RCPT: nodemailer reports it as one error.
    if (e.code === 'EENVELOPE' && Array.isArray(e.rejectedErrors) && e.rejectedErrors.length === envelope.to.length) {
      return {
        tls: connection.secure,
        recipients: e.rejectedErrors.map((r, i) => ({
          address: (r as { recipient?: string }).recipient ?? envelope.to[i],
          outcome: classifyError(r),
          reply: describeError(r),
        })),
      };
    }
    return { tls: connection.secure, tlsFailed, error: { outcome: classifyError(err), reply: describeError(err) } };
  } finally {
    connection.quit();
    connection.close();
  }
}

function codeOf(response: string | undefined): number | undefined {
  const m = /^(\d{3})/.exec(response ?? '');
  return m ? Number(m[1]) : undefined;
}
