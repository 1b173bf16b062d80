// Logins over raw SMTP for the login-limiting tests (test/security/auth-*.test.ts): AUTH
// PLAIN from a chosen loopback address (all of 127.0.0.0/8 may AUTH without TLS by
// default), the relay's log lines about logins, and the `dkim-relay users` CLI as users run it.
import { execFile } from 'node:child_process';
import { connectRaw, RawSession } from './raw-smtp';
import { BIN, ensureBuilt, NODE, ROOT } from './built-cli';
import { Harness, logLines } from './relay-harness';

export function plainAuth(user: string, pass: string): string {
  return `AUTH PLAIN ${Buffer.from(`\0${user}\0${pass}`).toString('base64')}`;
}

/** A connection that has had its greeting and EHLO; null with the greeting when the relay refused it. */
export async function openSession(port: number, localAddress: string): Promise<{ session: RawSession | null; greeting: string }> {
  const session = await connectRaw(port, localAddress);
  const greeting = await session.reply().catch((err: Error) => `(no greeting: ${err.message})`);
  if (!greeting.startsWith('220')) {
    session.end();
    return { session: null, greeting };
  }
  await session.command('EHLO client.test');
  return { session, greeting };
}

/** One AUTH PLAIN on a new connection; the reply (or the refused greeting). Closes the connection unless `keep`. */
export async function login(port: number, localAddress: string, user: string, pass: string, keep = false): Promise<{ reply: string; session: RawSession | null }> {
  const { session, greeting } = await openSession(port, localAddress);
  if (!session) return { reply: greeting, session: null };
  const reply = await session.command(plainAuth(user, pass)).catch((err: Error) => `(no reply: ${err.message})`);
  if (!keep) session.end();
  return { reply, session: keep ? session : null };
}

/** Log lines of password checks (failed or successful logins), optionally of one client address. */
export function passwordChecks(h: Harness, client?: string): Record<string, unknown>[] {
  return logLines(h).filter((l) => (l.msg === 'authentication failed' || l.msg === 'authenticated') && (!client || l.client === client));
}

/** Runs `node bin/dkim-relay.js ARGS` with the harness's RELAY_* settings. */
export function runCli(h: Harness, args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  ensureBuilt();
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('RELAY_')) env[k] = v;
  return new Promise((resolve, reject) => {
    const child = execFile(NODE, [BIN, ...args], { cwd: ROOT, env: { ...env, ...h.env }, timeout: 30000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
      if (err && code === -1) return reject(err);
      resolve({ code, stdout, stderr });
    });
    child.stdin!.end(input ?? '');
  });
}
