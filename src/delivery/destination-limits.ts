// How hard one destination may be pushed: connections open at once, messages per connection,
// and how long it is left alone after it throttled us. A destination is recognised by its MX
// host names: the big providers have presets (their published or observed limits, kept on
// the careful side), the configuration's rules come first, everything else gets the defaults.
// The counters (open connections, message rates, pauses) sit behind DestinationState, kept in
// memory here; several relay nodes share them through Redis (Outlook counts connections from
// all of a sender's IPs): shared-state/redis-destination-state.ts implements the same interface.
import { DestinationLimitRule, Rate } from '../config/schema';
import { MemoryRates } from '../shared-state/gcra';

/** Built-in presets; `delivery.destinationLimits` rules with the same `match` replace them. */
export const PRESET_RULES: DestinationLimitRule[] = [
  // Outlook / Hotmail / Microsoft 365: throttles with 451 4.7.650 above a few connections.
  { match: '*.protection.outlook.com', connections: 5, messagesPerConnection: 50, throttlePause: 900 },
  // GMX and WEB.DE (United Internet): "Reject due to policy restrictions" when pushed.
  { match: '*.gmx.net', connections: 4, messagesPerConnection: 20, throttlePause: 900 },
  { match: '*.web.de', connections: 4, messagesPerConnection: 20, throttlePause: 900 },
  // Gmail / Google Workspace: generous, but 421 4.7.28 for bursts from a new IP.
  { match: '*.google.com', connections: 10, messagesPerConnection: 100, throttlePause: 600 },
  { match: '*.googlemail.com', connections: 10, messagesPerConnection: 100, throttlePause: 600 },
  // Yahoo / AOL: 421 4.7.0 [TSnn] deferrals.
  { match: '*.yahoodns.net', connections: 5, messagesPerConnection: 20, throttlePause: 900 },
  // T-Online: strict with unknown senders.
  { match: '*.t-online.de', connections: 3, messagesPerConnection: 20, throttlePause: 900 },
];

export interface DestinationLimit {
  /** What the counters are kept under: the rule (all hosts of a provider share it) or the first MX host. */
  key: string;
  /** The rule that matched, or "default". */
  rule: string;
  connections: number;
  messagesPerConnection: number;
  throttlePauseMs: number;
  /** Most messages per period (GCRA), when a rule sets one. */
  rate?: Rate;
}

export interface LimitDefaults {
  connections: number;
  messagesPerConnection: number;
  /** seconds */
  throttlePause: number;
}

export function hostMatches(pattern: string, host: string): boolean {
  const h = host.toLowerCase().replace(/\.$/, '');
  const p = pattern.toLowerCase().replace(/\.$/, '');
  if (p.startsWith('*.')) return h.endsWith(p.slice(1)) || h === p.slice(2);
  return h === p;
}

/** The configured rules first, then the presets they do not replace. */
export function effectiveRules(configured: DestinationLimitRule[]): DestinationLimitRule[] {
  const own = new Set(configured.map((r) => r.match.toLowerCase()));
  return [...configured, ...PRESET_RULES.filter((r) => !own.has(r.match))];
}

/** The limit for a destination given its MX host names in priority order. */
export function limitFor(hosts: string[], rules: DestinationLimitRule[], defaults: LimitDefaults): DestinationLimit {
  const rule = rules.find((r) => hosts.some((h) => hostMatches(r.match, h)));
  return {
    key: rule ? `rule:${rule.match}` : `host:${(hosts[0] ?? '').toLowerCase()}`,
    rule: rule ? rule.match : 'default',
    connections: rule?.connections ?? defaults.connections,
    messagesPerConnection: rule?.messagesPerConnection ?? defaults.messagesPerConnection,
    throttlePauseMs: (rule?.throttlePause ?? defaults.throttlePause) * 1000,
    ...(rule?.rate ? { rate: rule.rate } : {}),
  };
}

/** A connection slot held; given back once, when the connection is closed. */
export interface Lease {
  release(): void;
}

/** Connection slots, message rates and pauses per destination key. */
export interface DestinationState {
  /** Takes a connection slot when fewer than `max` are open; null when the destination is full. */
  acquire(key: string, max: number): Promise<Lease | null>;
  /** Counts one message against the rate: 0 when it may go now, else the epoch ms when the next may. */
  takeRate(key: string, rate: Rate): Promise<number>;
  /** Pauses the destination until `untilMs`; true when it was not paused already (log it then). */
  pause(key: string, untilMs: number): boolean;
  /** Epoch ms until which the destination is paused, 0 when it is not. */
  pausedUntil(key: string): number;
}

export class MemoryDestinationState implements DestinationState {
  private readonly open = new Map<string, number>();
  private readonly pauses = new Map<string, number>();
  private readonly rates = new MemoryRates();

  /** Connections this node holds to `key`. */
  held(key: string): number {
    return this.open.get(key) ?? 0;
  }

  acquire(key: string, max: number): Promise<Lease | null> {
    return Promise.resolve(this.acquireNow(key, max));
  }

  acquireNow(key: string, max: number): Lease | null {
    const n = this.open.get(key) ?? 0;
    if (n >= max) return null;
    this.open.set(key, n + 1);
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        const left = (this.open.get(key) ?? 1) - 1;
        if (left > 0) this.open.set(key, left);
        else this.open.delete(key);
      },
    };
  }

  takeRate(key: string, rate: Rate): Promise<number> {
    return Promise.resolve(this.rates.take(key, rate));
  }

  pause(key: string, untilMs: number): boolean {
    const was = this.pausedUntil(key);
    if (untilMs > was) this.pauses.set(key, untilMs);
    return was === 0;
  }

  pausedUntil(key: string): number {
    const until = this.pauses.get(key) ?? 0;
    if (until && until <= Date.now()) {
      this.pauses.delete(key);
      return 0;
    }
    return until;
  }
}
