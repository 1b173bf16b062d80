// Why the relay could not start, said in the words of the settings: a port in use, a port
// that needs privileges, an address that is not this machine's, a data dir that cannot be
// made or written. A user meets these on the first start, so they get the setting and the
// fix, not a stack trace.

/** The relay could not start; the message names the setting and the fix. */
export class StartError extends Error {}

/** A StartError for a data dir that cannot be made or written; other errors unchanged. */
export function explainDataDirError(err: unknown, dataDir: string): unknown {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const why: Record<string, string> = {
    EEXIST: 'is a file, not a folder',
    ENOTDIR: 'has a file where a folder of its path should be',
    EACCES: 'cannot be made or written by this user',
    EPERM: 'cannot be made or written by this user',
    EROFS: 'is on a read-only file system',
  };
  if (!code || !why[code]) return err;
  return new StartError(`dataDir (env RELAY_DATA_DIR) ${dataDir} ${why[code]} (${code}): the spool and TLS certificate live there; ` +
    'point dataDir at a folder this user may write (it is made when missing), or fix its owner and permissions');
}

export interface ListenSettings { host: string; port: number; tlsPort: number }

/** A StartError for a listen() failure that a setting explains; other errors unchanged. */
export function explainListenError(err: unknown, s: ListenSettings): unknown {
  const e = err as NodeJS.ErrnoException & { port?: number };
  if (!e || typeof e !== 'object' || !e.code) return err;
  const tls = s.tlsPort !== 0 && e.port === s.tlsPort && s.tlsPort !== s.port;
  const setting = tls ? 'submission.tlsPort (env RELAY_SUBMISSION_TLS_PORT)' : 'submission.port (env RELAY_SUBMISSION_PORT)';
  const port = tls ? s.tlsPort : s.port;
  const where = s.host.includes(':') ? `[${s.host}]:${port}` : `${s.host}:${port}`;
  switch (e.code) {
    case 'EADDRINUSE':
      if (s.tlsPort !== 0 && s.tlsPort === s.port) {
        return new StartError(`submission.port and submission.tlsPort are both ${s.port}: give the implicit-TLS listener its own port (RELAY_SUBMISSION_TLS_PORT), or 0 to turn it off`);
      }
      return new StartError(`${setting} is ${port}, but ${where} is already in use (another dkim-relay, or another mail server?): ` +
        `stop that program, or choose a free port with ${tls ? 'RELAY_SUBMISSION_TLS_PORT' : 'RELAY_SUBMISSION_PORT'}`);
    case 'EACCES':
      return new StartError(`${setting} is ${port}, and this user may not listen on ${where}: ports below 1024 need root or ` +
        'the capability CAP_NET_BIND_SERVICE (for example AmbientCapabilities=CAP_NET_BIND_SERVICE in a systemd unit); or use a port above 1023');
    case 'EADDRNOTAVAIL':
      return new StartError(`submission.host (env RELAY_SUBMISSION_HOST) is ${s.host}, which is not an address of this machine: ` +
        'use one of its addresses, or 0.0.0.0 (or ::) for all');
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new StartError(`submission.host (env RELAY_SUBMISSION_HOST) is ${s.host}, which does not resolve to an address of this machine: ` +
        'use an IP address such as 127.0.0.1, or 0.0.0.0 (or ::) for all');
    default:
      return err;
  }
}
