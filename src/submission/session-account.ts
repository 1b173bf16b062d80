// A session logged in as a user goes on only while that account is as it was at login: a
// user removed (`dkim-relay users remove`) or given a new password since cannot go on
// sending on a connection opened before. Checked on MAIL FROM and RCPT TO (one stat of the
// users file); the session is then closed with 421, since smtp-server allows no second AUTH
// on a connection and the client has to connect and log in again.
import { Rejection } from '../policy/rejection';
import { UserDirectory, UserRecord } from '../users/store';

export interface SessionUser { name: string; domains: string[] }

// The password hash each session logged in with, kept out of the session object, which is
// handed on to acceptance and may end up in a log line.
const loggedInWith = new WeakMap<SessionUser, string>();

/** The session's user for a successful login as `user`. */
export function sessionUserFor(user: UserRecord): SessionUser {
  const session: SessionUser = { name: user.name, domains: [...user.domains] };
  loggedInWith.set(session, user.password);
  return session;
}

/**
 * Null when the account is unchanged (its sender domains are brought up to date in the
 * session); else the refusal that closes the session.
 */
export function accountChangeRefusal(users: UserDirectory, session: SessionUser): Rejection | null {
  const now = users.current(session.name);
  if (now && now.password === loggedInWith.get(session)) {
    session.domains = [...now.domains];
    return null;
  }
  const what = now ? 'its password was changed' : 'it was removed';
  return new Rejection(421, '4.7.0', `the account ${session.name} changed since this session logged in (${what}); connect and log in again`);
}
