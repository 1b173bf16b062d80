// Slows down and then shuts out an address that keeps failing AUTH (password guessing):
// after `slowAfter` failures each further answer waits longer, and at `maxFailures` the
// address is refused with 421 4.7.0 for `blockMs`, on AUTH and on new connections.
// In memory: a restart forgets. (Shared across nodes later, like the destination limits.)
export interface AuthFailureOptions {
  maxFailures: number;
  blockMs: number;
  /** The wait added per failure beyond `slowAfter`, capped at five times this. */
  delayMs: number;
  slowAfter?: number;
}

interface Entry { failures: number; lastFailure: number; blockedUntil: number }

export class AuthFailures {
  private readonly entries = new Map<string, Entry>();
  private readonly slowAfter: number;

  constructor(private readonly options: AuthFailureOptions) {
    this.slowAfter = options.slowAfter ?? 3;
  }

  /** Milliseconds the address stays refused, 0 when it is not. */
  blockedFor(address: string, now = Date.now()): number {
    const entry = this.entries.get(address);
    return entry && entry.blockedUntil > now ? entry.blockedUntil - now : 0;
  }

  /** Counts a failure; returns how long to wait before answering it. */
  recordFailure(address: string, now = Date.now()): number {
    this.prune(now);
    const entry = this.entries.get(address) ?? { failures: 0, lastFailure: now, blockedUntil: 0 };
    entry.failures += 1;
    entry.lastFailure = now;
    if (entry.failures >= this.options.maxFailures) entry.blockedUntil = now + this.options.blockMs;
    this.entries.set(address, entry);
    const beyond = entry.failures - this.slowAfter;
    return beyond > 0 ? Math.min(beyond, 5) * this.options.delayMs : 0;
  }

  recordSuccess(address: string): void {
    this.entries.delete(address);
  }

  // Forget addresses quiet for a block period, so the map cannot grow without bound.
  private prune(now: number): void {
    if (this.entries.size < 10_000) return;
    for (const [address, entry] of this.entries) {
      if (entry.blockedUntil < now && now - entry.lastFailure > this.options.blockMs) this.entries.delete(address);
    }
  }
}
