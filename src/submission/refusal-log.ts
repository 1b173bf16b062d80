// Every refusal the relay sends a client at SMTP time (at connect, AUTH, MAIL FROM, RCPT TO
// or after DATA) is logged at info with who was refused and why: client, user, sender,
// recipient, code and reason. Without it an operator whose app "cannot send" has nothing in
// the log at the default level. Wraps the handlers of the smtp-server options: each reply
// they hand back with an error is logged on its way out, and handed to `onRefusal` when given
// (metrics and the status page's list of recent refusals).
import { SMTPServerOptions, SMTPServerSession } from 'smtp-server';
import { Logger } from '../log';

type Handler = (...args: unknown[]) => unknown;
type Callback = (err?: Error | null, ...rest: unknown[]) => void;

/** One refusal at submission, as logged. */
export interface Refusal {
  stage: 'connect' | 'AUTH' | 'MAIL FROM' | 'RCPT TO' | 'DATA';
  code: number;
  /** The enhanced status code the reply carries (e.g. "5.7.1"), if any. */
  enhanced?: string;
  reason: string;
  client: string;
  user?: string;
  sender?: string;
  recipient?: string;
}

const STAGES = { onConnect: 'connect', onAuth: 'AUTH', onMailFrom: 'MAIL FROM', onRcptTo: 'RCPT TO', onData: 'DATA' } as const;

export function logRefusals(options: SMTPServerOptions, log: Logger, onRefusal?: (refusal: Refusal) => void): SMTPServerOptions {
  const wrapped: Record<string, unknown> = { ...options };
  for (const [name, stage] of Object.entries(STAGES)) {
    const handler = (options as Record<string, unknown>)[name] as Handler | undefined;
    if (!handler) continue;
    wrapped[name] = function (this: unknown, ...args: unknown[]) {
      const callback = args[args.length - 1] as Callback;
      args[args.length - 1] = (err?: Error | null, ...rest: unknown[]) => {
        if (err) logRefusal(log, stage, err, args, onRefusal);
        callback(err, ...rest);
      };
      return handler.apply(this, args);
    };
  }
  return wrapped as SMTPServerOptions;
}

function logRefusal(log: Logger, stage: Refusal['stage'], err: Error, args: unknown[], onRefusal?: (refusal: Refusal) => void): void {
  const code = (err as { responseCode?: number }).responseCode;
  // A wrong password is logged already ("authentication failed", at warn, with the user name)
  if (code === 535) return;
  const session = args[args.length - 2] as SMTPServerSession;
  const address = (args[0] as { address?: string } | undefined)?.address;
  const user = (session.user as { name?: string } | undefined)?.name ?? (stage === 'AUTH' ? (args[0] as { username?: string }).username : undefined);
  const refusal: Refusal = {
    client: session.remoteAddress,
    user,
    sender: stage === 'MAIL FROM' ? address : session.envelope?.mailFrom ? session.envelope.mailFrom.address : undefined,
    recipient: stage === 'RCPT TO' ? address : undefined,
    stage,
    code: code ?? 450, // smtp-server's own default for an error without a code
    reason: err.message,
  };
  log.info(refusal, 'refused');
  if (onRefusal) onRefusal({ ...refusal, enhanced: (err as { enhancedCode?: string }).enhancedCode ?? /^[245]\.\d{1,3}\.\d{1,3}\b/.exec(err.message)?.[0] });
}
