// The one Redis connection a node shares its state through (redis.url), and whether Redis is
// usable right now. Every call is bounded (CALL_TIMEOUT_MS, no offline queue): when Redis is
// down or slow the callers fall back to local limits at once, so submission and delivery
// never wait on Redis. One line is logged when the node falls back and one when Redis is back.
// A heartbeat (a sorted set of node names by last seen) tells each node how many nodes are
// alive, so in a fallback each takes its share of a shared limit.
import Redis from 'ioredis';
import { Logger } from '../log';

/** Longest a Redis call may take before the node works on local state instead. */
export const CALL_TIMEOUT_MS = 200;
/** How often a node says it is alive (and reads the pauses, see redis-destination-state.ts). */
export const HEARTBEAT_MS = 500;
/** Calls in a row that time out or fail before the node says it fell back (one slow call is no outage). */
const FAILURES_FOR_FALLBACK = 3;
/** A node not heard of for this long no longer counts as alive. */
const NODE_ALIVE_MS = 5000;

export const KEY_PREFIX = 'dkim-relay:';

export interface SharedRedisOptions {
  url: string;
  nodeName: string;
  log: Logger;
}

/** "redis://:secret@host" -> "redis://:********@host": for log lines. */
export function maskedUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/@]*):[^@/]*@/i, '$1:********@');
}

export class SharedRedis {
  readonly client: Redis;
  readonly nodeName: string;
  private readonly log: Logger;
  private usable = true;
  private failures = 0;
  /** The client's last connection error (wrong password, refused...), for the fallback line. */
  private lastError = '';
  private aliveNodes = 1;
  private readonly tickers: (() => Promise<void>)[] = [];
  private timer: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(options: SharedRedisOptions) {
    this.nodeName = options.nodeName;
    this.log = options.log;
    this.client = new Redis(options.url, {
      commandTimeout: CALL_TIMEOUT_MS,
      connectTimeout: 1000,
      // A call while disconnected fails at once instead of waiting in a queue.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      // Reconnect every second for as long as it takes.
      retryStrategy: () => 1000,
      lazyConnect: false,
    });
    // ioredis emits every failed (re)connect; the fallback line below says it once, with the
    // last of these errors (its messages name no password).
    this.client.on('error', (err: Error) => {
      this.lastError = err.message;
    });
    this.client.on('ready', () => this.markUp());
    // A moment later, so the line can name the error that closed it (it may come after).
    this.client.on('close', () => {
      setTimeout(() => {
        if (!this.closed && this.client.status !== 'ready') this.markDown(`connection lost${this.lastError ? `: ${this.lastError}` : ''}`);
      }, 100).unref();
    });
    this.log.info({ redis: maskedUrl(options.url), node: this.nodeName }, 'sharing limits, pauses and login counters with other nodes through Redis');
  }

  /** Redis answered the last call (or nothing failed yet). */
  get up(): boolean {
    return this.usable && this.client.status === 'ready';
  }

  /** Nodes that sent a heartbeat lately, this one included (as last seen; at least 1). */
  get nodes(): number {
    return this.aliveNodes;
  }

  /**
   * Runs a Redis call; undefined when Redis is down, slow or errs (the caller then works on
   * local state; logged once per outage, after FAILURES_FOR_FALLBACK failures in a row).
   * Not tried at all while the connection is down, so a fallback costs nothing.
   */
  async call<T>(what: string, fn: (client: Redis) => Promise<T>): Promise<T | undefined> {
    if (this.closed || this.client.status !== 'ready') {
      this.markDown(`not connected${this.lastError ? `: ${this.lastError}` : ''}`);
      return undefined;
    }
    try {
      const value = await fn(this.client);
      this.failures = 0;
      this.markUp();
      return value;
    } catch (err) {
      // This call's caller goes on locally either way; the fallback is declared (and logged)
      // when the failures go on.
      if (++this.failures >= FAILURES_FOR_FALLBACK) this.markDown(`${what}: ${(err as Error).message}`);
      return undefined;
    }
  }

  /** Runs `fn` every heartbeat while Redis is usable (after the heartbeat itself). */
  onTick(fn: () => Promise<void>): void {
    this.tickers.push(fn);
  }

  /** Waits (at most a second) for the first connection, then starts the heartbeat. */
  async start(): Promise<void> {
    if (this.client.status !== 'ready') {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise((resolve) => this.client.once('ready', resolve)),
        new Promise((resolve) => { timer = setTimeout(resolve, 1000); }),
      ]);
      clearTimeout(timer);
      if ((this.client.status as string) !== 'ready') this.markDown(`not reachable at start${this.lastError ? `: ${this.lastError}` : ''}`);
    }
    const tick = async () => {
      await this.heartbeat();
      for (const fn of this.tickers) await fn().catch(() => undefined);
    };
    this.timer = setInterval(() => void tick(), HEARTBEAT_MS);
    this.timer.unref();
    await tick();
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.closed = true;
    if (this.client.status === 'ready') {
      await this.client.zrem(`${KEY_PREFIX}nodes`, this.nodeName).catch(() => undefined);
      await this.client.quit().catch(() => undefined);
    }
    this.client.disconnect();
  }

  private async heartbeat(): Promise<void> {
    const key = `${KEY_PREFIX}nodes`;
    const now = Date.now();
    const alive = await this.call('heartbeat', (c) => c.multi()
      .zadd(key, now, this.nodeName)
      .zremrangebyscore(key, '-inf', now - NODE_ALIVE_MS)
      .zcard(key)
      .pexpire(key, NODE_ALIVE_MS * 4)
      .exec());
    const count = alive?.[2]?.[1];
    if (typeof count === 'number' && count > 0) this.aliveNodes = count;
  }

  private markDown(reason: string): void {
    if (!this.usable || this.closed) return;
    this.usable = false;
    this.log.warn({ reason, nodes: this.aliveNodes }, `Redis unusable: working on local limits (each node takes its share: 1/${this.aliveNodes} of every connection limit) until it is back`);
  }

  private markUp(): void {
    if (this.usable || this.closed || this.client.status !== 'ready') return;
    this.usable = true;
    this.log.info('Redis is back: limits, pauses and login counters are shared again');
  }
}
