// The journal of final outcomes: when a message leaves the queue (every recipient delivered
// or failed, expired, or deleted by `queue delete`), one JSON line saying what happened to
// it, so `queue show ID` can answer "did my mail go out?" after the spool forgot the message.
// <dataDir>/journal/YYYY-MM-DD.jsonl, one file per UTC day of the outcome, kept `days` days
// (a day file goes once its last possible record is older than that) and at most
// `maxDayBytes` per file: beyond it the day's further records are dropped with one warning,
// so a flood cannot fill the disk the spool needs.
// Durability: informational only, the spool is the truth. Records are buffered and appended
// in batches (every JOURNAL_FLUSH_MS, or sooner when BATCH_BYTES are waiting) without fsync: a crash
// loses the last fraction of a second of records, and an OS crash whatever the page cache
// held. Nothing on the delivery path waits for the journal. A record cut short by a crash is a
// line without its end: the next write starts a new line first, and readers skip any line
// that is not whole JSON. Readers (the queue CLI, the status page) need no lock: records are
// only ever appended, as whole lines, by the one process that holds the spool lock.
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import readline from 'node:readline';
import type { AttemptRecord } from './spool';

export type FinalStatus = 'delivered' | 'failed' | 'expired' | 'deleted';

export interface JournalRecipient {
  address: string;
  status: FinalStatus;
  attempts: number;
  /** The last attempt: when (ISO), the host and IP that answered. */
  at?: string;
  host?: string;
  ip?: string;
  /** The final word: the last reply, "gave up after ...", or the deletion. */
  reply?: string;
  /** What it means (replies/verdict.ts), or "expired" / "deleted". */
  class?: string;
  explanation?: string;
  fix?: string;
  /** The id of the bounce (DSN) that told the sender about this recipient. */
  bounceId?: string;
}

/** One line of the message's attempt history, as `queue show` prints it for queued messages (outcome: as read back, any string). */
export type JournalAttempt = Omit<AttemptRecord, 'outcome'> & { outcome: string };

export interface JournalRecord {
  id: string;
  /** When the message left the queue (ISO). */
  finishedAt: string;
  /** delivered: every recipient; failed: none; partly-delivered; deleted: by `queue delete`. */
  outcome: 'delivered' | 'failed' | 'partly-delivered' | 'deleted';
  receivedAt: string;
  sender: string;
  size: number;
  client: { address: string; user?: string };
  /** This message is itself a DSN made by the relay. */
  dsn?: 'failed' | 'delayed';
  recipients: JournalRecipient[];
  /** Bounces (DSN ids) queued to the sender about this message. */
  bounces: string[];
  /** Why a failed recipient got no bounce, when one did not. */
  noBounce?: string;
  /** The last attempts, oldest first, each with its class and explanation. */
  history: JournalAttempt[];
}

export interface JournalOptions {
  /** Days records are kept; 0: no journal (and the files of an earlier one are removed). */
  days: number;
  /** Most bytes of one day file; further records of that day are dropped. */
  maxDayBytes: number;
  /** Told once per day when the cap is reached, and of write failures. */
  warn?: (fields: Record<string, unknown>, message: string) => void;
}

const DAY_MS = 86_400_000;
/** Longest a record waits in memory before it is written. */
export const JOURNAL_FLUSH_MS = 200;
const BATCH_BYTES = 256 * 1024;
const DAY_FILE = /^(\d{4}-\d{2}-\d{2})\.jsonl$/;

export function journalDir(dataDir: string): string {
  return path.join(dataDir, 'journal');
}

function dayOf(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

/** Start of the UTC day `day` (YYYY-MM-DD), epoch ms. */
function dayStart(day: string): number {
  return Date.parse(`${day}T00:00:00Z`);
}

/** The day files in the journal folder, oldest first. */
async function dayFiles(dataDir: string): Promise<string[]> {
  try {
    return (await fsp.readdir(journalDir(dataDir))).filter((n) => DAY_FILE.test(n)).sort();
  } catch {
    return [];
  }
}

/** Appends records in batches to the day files; held by the process that holds the spool lock. */
export class JournalWriter {
  private pending = new Map<string, string[]>();
  private pendingBytes = 0;
  private timer: NodeJS.Timeout | null = null;
  private rotateTimer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> = Promise.resolve();
  private rotatedDay = '';
  /** The day whose file reached maxDayBytes (told once). */
  private fullDay = '';

  constructor(readonly dataDir: string, private readonly options: JournalOptions) {}

  get enabled(): boolean {
    return this.options.days > 0;
  }

  /** Creates the folder and removes day files past the retention (all of them when off). */
  async open(now = Date.now()): Promise<void> {
    if (this.enabled) await fsp.mkdir(journalDir(this.dataDir), { recursive: true, mode: 0o700 });
    await this.rotate(now);
    if (!this.enabled) return;
    // Hourly, so old files go even on days without mail.
    this.rotateTimer = setInterval(() => void this.rotate().catch(() => undefined), 3_600_000);
    this.rotateTimer.unref();
  }

  /** Deletes the day files whose newest possible record is older than the retention. */
  async rotate(now = Date.now()): Promise<string[]> {
    this.rotatedDay = dayOf(now);
    const removed: string[] = [];
    for (const name of await dayFiles(this.dataDir)) {
      const end = dayStart(DAY_FILE.exec(name)![1]) + DAY_MS;
      if (end > now - this.options.days * DAY_MS) continue;
      await fsp.rm(path.join(journalDir(this.dataDir), name), { force: true });
      removed.push(name);
    }
    return removed;
  }

  /** Queues a record; it reaches the file within JOURNAL_FLUSH_MS. Never throws, never waits. */
  append(record: JournalRecord, now = Date.now()): void {
    if (!this.enabled) return;
    const line = JSON.stringify(record) + '\n';
    const day = dayOf(now);
    const lines = this.pending.get(day);
    if (lines) lines.push(line);
    else this.pending.set(day, [line]);
    this.pendingBytes += Buffer.byteLength(line);
    if (this.pendingBytes >= BATCH_BYTES) void this.flush();
    else if (!this.timer) {
      this.timer = setTimeout(() => void this.flush(), JOURNAL_FLUSH_MS);
      this.timer.unref();
    }
  }

  /** Writes what is waiting; resolves when it is in the files (not fsynced). */
  flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const batch = this.pending;
    this.pending = new Map();
    this.pendingBytes = 0;
    // one write at a time, in order
    this.flushing = this.flushing.then(() => this.write(batch));
    return this.flushing;
  }

  async close(): Promise<void> {
    if (this.rotateTimer) clearInterval(this.rotateTimer);
    this.rotateTimer = null;
    await this.flush();
  }

  private async write(batch: Map<string, string[]>): Promise<void> {
    for (const [day, lines] of batch) {
      try {
        await this.writeDay(day, lines);
      } catch (err) {
        this.options.warn?.({ err: (err as Error).message, records: lines.length }, 'the journal of final outcomes could not be written; those records are lost (the spool and delivery are not affected)');
      }
    }
    if (dayOf(Date.now()) !== this.rotatedDay) await this.rotate().catch(() => undefined);
  }

  private async writeDay(day: string, lines: string[]): Promise<void> {
    const dir = journalDir(this.dataDir);
    await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
    const handle = await fsp.open(path.join(dir, `${day}.jsonl`), 'a+', 0o600);
    try {
      const { size } = await handle.stat();
      let text = '';
      // A line cut short by a crash gets its end here, so the next record starts a line of its own.
      if (size > 0) {
        const last = Buffer.alloc(1);
        await handle.read(last, 0, 1, size - 1);
        if (last[0] !== 0x0a) text = '\n';
      }
      let bytes = size + text.length;
      let dropped = 0;
      for (const line of lines) {
        const length = Buffer.byteLength(line);
        if (bytes + length > this.options.maxDayBytes) {
          dropped++;
          continue;
        }
        text += line;
        bytes += length;
      }
      if (text) await handle.write(text);
      if (dropped && this.fullDay !== day) {
        this.fullDay = day;
        this.options.warn?.({ day, maxDayBytes: this.options.maxDayBytes, dropped },
          'the journal of final outcomes reached its size for today: further outcomes of today are not recorded (raise queue.journalMaxDaySize, RELAY_JOURNAL_MAX_DAY_SIZE)');
      }
    } finally {
      await handle.close();
    }
  }
}

/** Reads the journal; safe while a relay appends to it (no lock needed). */
export class JournalReader {
  /** Lines that were not whole JSON records (cut short by a crash, or being written). */
  skipped = 0;

  constructor(readonly dataDir: string) {}

  /**
   * The last record of message `id`, or null. Scans the day files from the message's
   * acceptance (its id tells) on, or from `sinceMs` when that is later.
   */
  async find(id: string, sinceMs = 0): Promise<JournalRecord | null> {
    // a message leaves the queue after it was accepted: earlier days cannot hold it (a day of slack for clocks)
    const from = Math.max(sinceMs, (acceptedAt(id) ?? 0) - DAY_MS);
    const needle = `{"id":${JSON.stringify(id)},`;
    let found: JournalRecord | null = null;
    for (const name of await dayFiles(this.dataDir)) {
      if (dayStart(name.slice(0, 10)) + DAY_MS <= from) continue;
      await this.scan(name, (line) => {
        if (!line.startsWith(needle)) return;
        const record = this.parse(line);
        if (record?.id === id) found = record;
      });
    }
    return found;
  }

  /** Visits the records of messages that left the queue at or after `sinceMs`, oldest first, without keeping them. */
  async forEach(sinceMs: number, visit: (record: JournalRecord) => void): Promise<void> {
    for (const name of await dayFiles(this.dataDir)) {
      if (dayStart(name.slice(0, 10)) + DAY_MS <= sinceMs) continue;
      await this.scan(name, (line) => {
        const record = this.parse(line);
        if (record && Date.parse(record.finishedAt) >= sinceMs) visit(record);
      });
    }
  }

  /** The last `limit` records of messages that left the queue at or after `sinceMs`, oldest first. */
  async recent(sinceMs: number, limit = 1000): Promise<JournalRecord[]> {
    const out: JournalRecord[] = [];
    await this.forEach(sinceMs, (record) => {
      out.push(record);
      if (out.length >= 2 * limit) out.splice(0, out.length - limit); // amortized: no shift per record
    });
    return out.slice(-limit);
  }

  private parse(line: string): JournalRecord | null {
    try {
      const record = JSON.parse(line) as JournalRecord;
      if (record && typeof record.id === 'string' && Array.isArray(record.recipients)) return record;
    } catch {
      // a torn line
    }
    this.skipped++;
    return null;
  }

  private async scan(name: string, each: (line: string) => void): Promise<void> {
    let stream: fs.ReadStream;
    try {
      stream = fs.createReadStream(path.join(journalDir(this.dataDir), name), { encoding: 'utf8' });
    } catch {
      return;
    }
    const lines = readline.createInterface({ input: stream, crlfDelay: Infinity });
    try {
      for await (const line of lines) if (line) each(line);
    } catch (err) {
      // removed by rotation meanwhile: nothing in it
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    } finally {
      lines.close();
      stream.destroy();
    }
  }
}

/** When a message was accepted, from its id (spool.newId: 9 base36 digits of ms first); null for a foreign id. */
function acceptedAt(id: string): number | null {
  if (!/^[0-9A-Z]{17}$/.test(id)) return null;
  const ms = parseInt(id.slice(0, 9), 36);
  return Number.isFinite(ms) ? ms : null;
}
