// The relay's logger: pino, JSON lines on stdout. Passwords and private keys are never
// passed to it; `redact` is a second line of defence for fields that might carry them.
import pino from 'pino';

export type Logger = pino.Logger;

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    { level, base: { name: 'dkim-relay' }, redact: ['password', '*.password', 'privateKey', '*.privateKey'] },
    destination ?? pino.destination({ sync: false })
  );
}
