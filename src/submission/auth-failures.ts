// Login limiting against password guessing. Every AUTH takes a place in two leaky buckets
// BEFORE its password is checked, so attempts in flight count as much as failed ones (40
// parallel guesses get no more checks than 40 sequential ones):
// - the client address (an IPv6 client by its /64, which one machine usually holds whole):
//   `maxFailures` failures block AUTH from it for `blockMs`, and untrusted clients from it
//   are also refused at connect. Trusted clients that do not AUTH are never refused: others'
//   guessing from a shared address (127.0.0.1) must not stop local apps from sending.
// - the user name, against guessing spread over many addresses: `maxUserFailures` failures
//   block that name, but only for addresses that have not logged in as it within
//   `knownLoginMs`. A hard lock per user would let anyone lock a real user out by guessing;
//   this way the user's own clients keep working (each still under its address's limit),
//   and only new places are refused while the name is under attack.
// A successful login clears nothing: failures leak away with time only (a full bucket in
// `blockMs`), or one correct password would buy an attacker another round of guesses.
// Answers to failures slow down after `slowAfter` of them (per address or per user).
// The counters sit behind AuthCounters (shared-state/auth-counters.ts): in memory, or shared
// by all nodes through Redis, whose answers take a round trip; so every step here is awaited.
import { Logger } from '../log';
import { Rejection } from '../policy/rejection';
import { clientKey } from '../policy/client-access';
import { userNameProblem } from '../users/store';
import { AuthCounters, BucketRule, MemoryAuthCounters } from '../shared-state/auth-counters';

export interface AuthFailureOptions {
  /** Failed logins from one address (IPv6: one /64) before AUTH from it is refused. */
  maxFailures: number;
  /** Failed logins for one user name before it is refused from addresses it did not log in from lately. */
  maxUserFailures: number;
  /** How long a block lasts (and how long full buckets take to drain). */
  blockMs: number;
  /** The wait added per failure beyond `slowAfter`, capped at five times this. */
  delayMs: number;
  slowAfter?: number;
  /** How long a successful login exempts its address from its user's block. */
  knownLoginMs?: number;
  counters?: AuthCounters;
  log?: Logger;
  now?: () => number;
}

/** An AUTH whose password is being checked; exactly one of the three is called. */
export interface LoginAttempt {
  succeeded(): Promise<void>;
  /** The reply to the failure (535, or 421 when it started a block) and how long to wait before it. */
  failed(): Promise<{ reply: Rejection; delayMs: number }>;
  /** No result (the users file could not be read): its place is given back, nothing is counted. */
  abandoned(): Promise<void>;
}

const DEFAULT_KNOWN_LOGIN_MS = 30 * 24 * 3600 * 1000;

export class AuthFailures {
  private readonly counters: AuthCounters;
  private readonly addressRule: BucketRule;
  private readonly userRule: BucketRule;
  private readonly slowAfter: number;
  private readonly knownLoginMs: number;
  private readonly now: () => number;
  private activeBlocks = 0;
  private sweeper: NodeJS.Timeout | null = null;

  constructor(private readonly options: AuthFailureOptions) {
    this.counters = options.counters ?? new MemoryAuthCounters();
    // 0 blocked at the first failure before; a bucket must hold one attempt to allow any.
    this.addressRule = { capacity: Math.max(1, options.maxFailures), blockMs: options.blockMs };
    this.userRule = { capacity: Math.max(1, options.maxUserFailures), blockMs: options.blockMs };
    this.slowAfter = options.slowAfter ?? 3;
    this.knownLoginMs = options.knownLoginMs ?? DEFAULT_KNOWN_LOGIN_MS;
    this.now = options.now ?? Date.now;
  }

  /** The refusal for a new connection from an untrusted address that is blocked, else null. */
  async connectionRefusal(address: string): Promise<Rejection | null> {
    const key = addressKey(address);
    const until = await this.counters.blockedUntil(key, this.now());
    return until ? tooManyFromAddress(labelOf(key), until - this.now()) : null;
  }

  /** Takes the attempt's places before the password is checked, or returns the refusal. */
  async begin(address: string, userName: string): Promise<LoginAttempt | Rejection> {
    const now = this.now();
    const addr = addressKey(address);
    if (!(await this.counters.reserve(addr, this.addressRule, now))) return this.refusal(addr, now);
    // A name that cannot exist gets no bucket of its own (it would only fill the map).
    const user = typeof userName === 'string' && !userNameProblem(userName) ? `user:${userName.toLowerCase()}` : null;
    const userCounted = user !== null && !(await this.counters.loggedInFrom(user, addr, this.knownLoginMs, now));
    if (userCounted && !(await this.counters.reserve(user, this.userRule, now))) {
      await this.counters.settle(addr, this.addressRule, false, now);
      return this.refusal(user, now);
    }
    let settled = false;
    const settle = async (failed: boolean) => {
      if (settled) return null; // a second result for one attempt counts nothing
      settled = true;
      const at = this.now();
      const [a, u] = await Promise.all([
        this.counters.settle(addr, this.addressRule, failed, at),
        userCounted ? this.counters.settle(user, this.userRule, failed, at) : null,
      ]);
      if (a.blockStarted) this.blockStarted(addr);
      if (u?.blockStarted) this.blockStarted(user!);
      return { a, u, at };
    };
    return {
      succeeded: async () => {
        const done = await settle(false);
        if (done && user) await this.counters.rememberLogin(user, addr, done.at);
      },
      failed: async () => {
        const { a, u, at } = (await settle(true)) ?? { a: { failures: 0 }, u: null, at: this.now() };
        const beyond = Math.ceil(Math.max(a.failures, u?.failures ?? 0) - this.slowAfter - 1e-9);
        const delayMs = beyond > 0 ? Math.min(beyond, 5) * this.options.delayMs : 0;
        const reply = (await this.counters.blockedUntil(addr, at)) ? await this.refusal(addr, at)
          : userCounted && (await this.counters.blockedUntil(user!, at)) ? await this.refusal(user!, at)
            : new Rejection(535, '5.7.8', 'authentication failed: wrong user name or password');
        return { reply, delayMs };
      },
      abandoned: async () => {
        await settle(false);
      },
    };
  }

  /** Stops the timer that logs the end of blocks. */
  close(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = null;
  }

  private async refusal(key: string, now: number): Promise<Rejection> {
    const until = await this.counters.blockedUntil(key, now);
    const label = labelOf(key);
    if (key.startsWith('user:')) {
      return until
        ? new Rejection(421, '4.7.0', `too many failed logins for ${label}; try again in ${minutes(until - now)} minute(s), or from an address that logged in as ${label} before`)
        : new Rejection(421, '4.7.0', `too many logins for ${label} in progress at once; try again later`);
    }
    return until ? tooManyFromAddress(label, until - now) : new Rejection(421, '4.7.0', `too many logins from ${label} in progress at once; try again later`);
  }

  // One line when a block starts and one when it ends (found by a timer that runs only while
  // something is blocked), so an operator sees why logins or connections are refused.
  private blockStarted(key: string): void {
    const seconds = Math.round(this.options.blockMs / 1000);
    if (key.startsWith('user:')) {
      this.options.log?.warn({ user: labelOf(key), seconds }, `too many failed logins for this user: refused for ${seconds} s from addresses that have not logged in as it lately`);
    } else {
      this.options.log?.warn({ client: labelOf(key), seconds }, `too many failed logins from this address: its AUTH (and connections from it, unless it is a trusted network) refused for ${seconds} s`);
    }
    this.activeBlocks += 1;
    this.sweeper ??= setInterval(() => this.sweep(), Math.min(1000, Math.max(this.options.blockMs, 10)));
    this.sweeper.unref();
  }

  private sweep(): void {
    for (const key of this.counters.takeEndedBlocks(this.now())) {
      this.activeBlocks -= 1;
      if (key.startsWith('user:')) this.options.log?.info({ user: labelOf(key) }, 'login block ended: this user may log in from anywhere again');
      else this.options.log?.info({ client: labelOf(key) }, 'login block ended: this address may log in again');
    }
    if (this.activeBlocks <= 0) this.close();
  }
}

function tooManyFromAddress(label: string, ms: number): Rejection {
  return new Rejection(421, '4.7.0', `too many failed logins from ${label}; try again in ${minutes(ms)} minute(s)`);
}

function minutes(ms: number): number {
  return Math.max(1, Math.ceil(ms / 60000));
}

function labelOf(key: string): string {
  return key.slice(key.indexOf(':') + 1);
}

/** The key a client address is counted under: an IPv4 address, or the /64 of an IPv6 one. */
export function addressKey(address: string): string {
  return `address:${clientKey(address)}`;
}
