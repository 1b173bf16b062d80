// The durable queue on disk. A message is one file, <dataDir>/spool/<id>.eml: the message
// bytes as received (after the intake's header fixes), then a trailer holding the envelope
// (sender, recipients, the DKIM-Signature fields to put in front of the message) as JSON,
// then a fixed-size footer giving the JSON's length (trailer.ts). The envelope is known only
// at the end of DATA (the signature needs the body hash), hence a trailer rather than a
// header; and since the trailer is written last, a file whose trailer is whole is a file
// whose bytes are all there (after a crash too, on file systems that write data before the
// size that covers it: ext4 data=ordered, the default, XFS, btrfs). Where that order is not
// kept (ext4 without a journal), the envelope's CRC-32 of the message bytes, checked at
// start, catches a whole trailer after bytes that never reached the disk. Accepting a message is
// - small (held in memory until its commit): write spool/<id>.eml at once, then fsync the
//   file and fsync spool/ together (the folder's fsync is shared by the messages committed
//   at the same moment). The file needs no temporary name: until its trailer is whole it
//   is nobody's, and nothing orders the two fsyncs, so neither waits for the other.
// - large (streamed to disk as it arrives): spool-tmp/<id>.eml + fsync, rename into spool/,
//   fsync spool/. Its trailer comes long after its first bytes, so it is written aside.
// Only then may the client hear 250. The bytes of a message just committed stay in memory
// (within a budget) so its first delivery does not read the file back.
// Delivery state (per recipient, and a short attempt history) lives in <id>.json once the
// first attempt leaves something to remember (a deferral, a bounce): rewritten after each
// such attempt (tmp + fsync + rename); when it exists it wins over the trailer. The
// DKIM-Signature fields never change, so they stay in the trailer alone: not in state files,
// and not in the envelope kept in memory (about a third of a queued envelope's memory); the
// spool puts them in front of the message whenever it is sent. A message
// delivered at the first attempt never gets one. A crash between a 250 from the MX and that
// write sends it again (at least once, never lost). Writes of one message are serialized.
// On start, a .eml without a valid trailer was never acknowledged: removed. One whose bytes
// do not match their checksum may or may not have been: moved to spool-damaged/, not sent.
// What is due when is in an index beside the spool (due-index.ts), so that a large queue is
// neither read whole at start nor held in memory: the relay loads what is due (load) and
// counts the messages in the background (count); `scan` walks every file, for the queue CLI
// and for the index's repair. On start nothing is read but the folders: a file left torn by
// a crash is removed when the index or a scan leads to it, and a message's checksum is
// checked whenever it is loaded from disk for delivery.
// One process owns a spool at a time: it holds the lock of <dataDir>/spool.lock, a lock the
// kernel keeps (spool-lock.ts). The queue CLI reads the spool directly and, while a relay
// holds the lock, asks it to change things through request files in <dataDir>/control/
// (control.ts).
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { bucketOf, BUCKET_MS, DueIndex } from './due-index';
import { LOCK_FILE, SpoolLock } from './spool-lock';
import { encodeTrailer, readTrailer } from './trailer';

export type RecipientStatus = 'queued' | 'delivered' | 'failed';

export interface RecipientState {
  address: string;
  status: RecipientStatus;
  attempts: number;
  /** Epoch ms of the next delivery attempt while queued. */
  nextAttemptAt: number;
  lastReply?: string;
  /** Epoch ms of the last attempt. */
  lastAttemptAt?: number;
  /** The host that gave the last reply ("dns; host" in a DSN). */
  remoteHost?: string;
  /** A DSN about this recipient's failure has been queued. */
  notified?: boolean;
  /** The id of that DSN (for the journal of final outcomes). */
  bounceId?: string;
  /** Given up because the retry time ran out (not refused by the destination). */
  expired?: boolean;
}

/** One line of a message's delivery history (the last HISTORY_LENGTH are kept). */
export interface AttemptRecord {
  at: number;
  recipients: string[];
  outcome: 'delivered' | 'deferred' | 'failed' | 'paused' | 'bounced' | 'deleted';
  reply: string;
  host?: string;
  ip?: string;
  /** What the reply means (replies/): its class and a plain-language explanation with the fix. */
  class?: string;
  explanation?: string;
  fix?: string;
}

export const HISTORY_LENGTH = 20;

export interface SpoolEnvelope {
  id: string;
  receivedAt: string;
  /** Envelope sender (MAIL FROM); '' is the null sender. */
  sender: string;
  recipients: RecipientState[];
  size: number;
  /** CRC-32 of the `size` message bytes; checked at start (absent in spools of older versions). */
  crc32?: number;
  client: { address: string; user?: string };
  signing?: { domain: string; selectors: string[] };
  /** Recent attempts, oldest first. */
  history?: AttemptRecord[];
  /** A delay warning (DSN, Action: delayed) has been queued. */
  delayNotified?: boolean;
  /** This message is a DSN made by the relay (its sender is the null sender). */
  dsn?: 'failed' | 'delayed';
  /** This message is a TLS report (RFC 8460) made by the relay: its sessions are not reported on. */
  tlsReport?: boolean;
  /**
   * MAIL FROM parameters the client declared, passed on at delivery (absent in spools of
   * older versions and when none was declared).
   */
  declared?: { body8bit?: boolean; smtputf8?: boolean };
}

/** What a new message is committed with: its envelope and its signatures. */
export type NewEnvelope = Omit<SpoolEnvelope, 'id' | 'size' | 'crc32'> & {
  /** DKIM-Signature header fields, CRLF-terminated, sent in front of the message ('' for none). */
  dkimSignatures: string;
};

/** The trailer's JSON: the first envelope and the signatures. */
type StoredEnvelope = SpoolEnvelope & { dkimSignatures?: string };

/**
 * The envelope without the signatures (which state files of older versions carry too). A new
 * object rather than `delete`, which would leave V8 a slower, larger dictionary-mode object.
 */
function envelopeOf(stored: StoredEnvelope): SpoolEnvelope {
  const { dkimSignatures: _signatures, ...envelope } = stored;
  return envelope;
}

/** The envelope in `file`'s trailer; null when the trailer is missing or broken. */
async function trailerEnvelope(file: string): Promise<SpoolEnvelope | null> {
  const stored = await readTrailer<StoredEnvelope>(file);
  return stored && envelopeOf(stored);
}

/**
 * When a message is next due: its earliest queued recipient. One with none left queued (its
 * bounce could not be queued yet) is due again in a minute.
 */
export function dueOf(envelope: SpoolEnvelope, now = Date.now()): number {
  let due = Infinity;
  for (const r of envelope.recipients) if (r.status === 'queued' && r.nextAttemptAt < due) due = r.nextAttemptAt;
  return due === Infinity ? now + BUCKET_MS : due;
}

/** The time part of a message id (ids sort by the time they were made, see newId). */
const ID_TIME_LENGTH = 9;

export class SpoolError extends Error {
  constructor(message: string, readonly code?: string) {
    super(message);
  }
}

// Calls that only touch the page cache (open, write, close and rename of small files)
// are made synchronously: they take microseconds, less than a round trip through libuv's
// thread pool, and each round trip added latency before the 250 (measured: about 0.3 ms
// each on this 2-core machine, six of them per message). Only the calls that wait for the
// disk, fsync of a file and of the folder, go to the pool.
const fsync = promisify(fs.fsync);

async function fsyncDir(dir: string): Promise<void> {
  const fd = fs.openSync(dir, 'r');
  try {
    await fsync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Group commit of a folder's fsync: messages committed at the same time share one. A caller
 * is answered by an fsync that started after it asked (an fsync already running may have
 * missed its rename), so sharing never weakens the guarantee.
 */
class FolderSync {
  private running: Promise<void> | null = null;
  private next: Promise<void> | null = null;
  constructor(private readonly dir: string) {}

  sync(): Promise<void> {
    if (!this.running) return this.start();
    if (!this.next) {
      this.next = this.running.catch(() => undefined).then(() => {
        this.next = null;
        return this.start();
      });
    }
    return this.next;
  }

  private start(): Promise<void> {
    const run = fsyncDir(this.dir);
    this.running = run;
    const clear = () => {
      if (this.running === run) this.running = null;
    };
    run.then(clear, clear);
    return run;
  }
}

/** Messages up to this size are held in memory until their commit, then written at once. */
const MEMORY_LIMIT = 256 * 1024;
/** Bytes of recently committed messages kept in memory for their first delivery. */
const RECENT_BUDGET = 32 * 1024 * 1024;

/**
 * Receives one message's bytes until commit or abort: in memory while it is small, then
 * streamed to spool-tmp/<id>.eml.
 */
export class MessageWriter {
  private bytes = 0;
  private crc = 0;
  private chunks: Buffer[] | null = [];
  private handle: fsp.FileHandle | null = null;
  private closed = false;
  constructor(private readonly spool: Spool, readonly id: string, private readonly tmpFile: string) {}

  get size(): number {
    return this.bytes;
  }

  /** The next `length` bytes can still be held in memory. */
  private fits(length: number): boolean {
    return this.chunks !== null && this.bytes + length <= MEMORY_LIMIT;
  }

  async write(chunk: Buffer): Promise<void> {
    this.crc = zlib.crc32(chunk, this.crc);
    if (this.fits(chunk.length)) {
      this.chunks!.push(chunk);
    } else {
      if (!this.handle) await this.openFile();
      await writeAll(this.handle!, this.chunks ? [...this.chunks, chunk] : [chunk]);
      this.chunks = null;
    }
    this.bytes += chunk.length;
  }

  /** Makes the message durable and part of the queue. Resolves only once it is on disk. */
  async commit(envelope: NewEnvelope): Promise<SpoolEnvelope> {
    const { dkimSignatures, ...fields } = envelope;
    const full: SpoolEnvelope = { ...fields, id: this.id, size: this.bytes, crc32: this.crc };
    const trailer = encodeTrailer({ ...full, dkimSignatures } satisfies StoredEnvelope);
    if (!this.handle) {
      await this.spool.commitFromMemory(this.id, this.chunks!, trailer, Buffer.from(dkimSignatures, 'latin1'), dueOf(full));
      return full;
    }
    await writeAll(this.handle, [trailer]);
    await this.handle.sync();
    this.closed = true;
    await this.handle.close();
    this.spool.commitFile(this.id, this.tmpFile, dueOf(full));
    await this.spool.syncQueue(this.id);
    return full;
  }

  /** Drops a message that will not be accepted. Never throws. */
  async abort(): Promise<void> {
    this.chunks = null;
    if (this.handle && !this.closed) await this.handle.close().catch(() => undefined);
    this.closed = true;
    if (this.handle) await fsp.unlink(this.tmpFile).catch(() => undefined);
  }

  private async openFile(): Promise<void> {
    this.handle = await fsp.open(this.tmpFile, 'wx', 0o600);
  }
}

async function writeAll(handle: fsp.FileHandle, buffers: Buffer[]): Promise<void> {
  let { bytesWritten } = await handle.writev(buffers);
  const total = buffers.reduce((n, b) => n + b.length, 0);
  if (bytesWritten === total) return;
  // A short write (rare: signals, some file systems): write the rest piece by piece.
  const rest = Buffer.concat(buffers).subarray(bytesWritten);
  for (let offset = 0; offset < rest.length; offset += bytesWritten) {
    ({ bytesWritten } = await handle.write(rest, offset, rest.length - offset));
  }
}

function writeAllSync(fd: number, buffers: Buffer[]): void {
  const total = buffers.reduce((n, b) => n + b.length, 0);
  let written = fs.writevSync(fd, buffers);
  if (written === total) return;
  const rest = Buffer.concat(buffers).subarray(written);
  for (let offset = 0; offset < rest.length; offset += written) written = fs.writeSync(fd, rest, offset);
}

export class Spool {
  readonly queueDir: string;
  readonly tmpDir: string;
  readonly lockFile: string;
  private heldLock: SpoolLock | null = null;
  /** Where open() moves queued messages whose bytes do not match their checksum. */
  readonly damagedDir: string;
  /** The files load() moved to damagedDir (each also reported through onDamaged). */
  readonly damaged: string[] = [];
  /** Per message, the end of its chain of state writes. */
  private readonly writes = new Map<string, Promise<void>>();
  private readonly queueDirSync: FolderSync;
  /** Messages known to have a state file (<id>.json) besides their .eml. */
  private readonly stateFiles = new Set<string>();
  /** Recently committed messages as they are sent (signatures, then the bytes), for their first delivery. */
  private readonly recent = new Map<string, Buffer>();
  private recentBytes = 0;
  /** What is due when (due-index.ts). */
  readonly index: DueIndex;
  /**
   * The messages this process holds (in memory, or being committed), with the minute of their
   * index entry: their entry moves with their state (update), and nobody else touches it.
   */
  private readonly held = new Map<string, number>();
  /** Queued messages (.eml files), once counted (count); null until then. */
  private queuedCount: number | null = null;
  /** A count under way: messages made since `before` are counted apart, removals of older ones wait for it. */
  private counting: { before: string; delta: number; done: Promise<void> } | null = null;
  /** Called with each file load() sets aside (see setAside). */
  onDamaged: ((file: string) => void) | null = null;

  constructor(readonly dataDir: string) {
    this.queueDir = path.join(dataDir, 'spool');
    this.queueDirSync = new FolderSync(this.queueDir);
    this.tmpDir = path.join(dataDir, 'spool-tmp');
    this.damagedDir = path.join(dataDir, 'spool-damaged');
    this.lockFile = path.join(dataDir, LOCK_FILE);
    this.index = new DueIndex(dataDir);
  }

  /** Who holds the spool lock (as its file tells), or null when nobody does. */
  static lockHolder(dataDir: string): string | null {
    return SpoolLock.isHeld(dataDir) ? SpoolLock.describeHolder(dataDir) : null;
  }

  /**
   * Takes the spool lock (spool-lock.ts) for this process as `command` (named in the messages
   * of others who find it taken). Another holder is waited for up to `waitMs` (a queue command
   * may hold it for a moment, or be probing it), then refused.
   */
  async lock(command = 'dkim-relay serve', waitMs = 5000): Promise<void> {
    const deadline = Date.now() + waitMs;
    while (!(await this.tryLock(command))) {
      if (Date.now() >= deadline) {
        throw new SpoolError(`the spool in ${this.dataDir} is in use by another dkim-relay (${SpoolLock.describeHolder(this.dataDir)}); ` +
          'one data dir belongs to one relay at a time: stop the other one first, or give this one its own dataDir (RELAY_DATA_DIR)', 'ELOCKED');
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Takes the spool lock if nobody holds it; false when another process does. */
  async tryLock(command: string): Promise<boolean> {
    if (this.heldLock) return true;
    try {
      this.heldLock = SpoolLock.tryAcquire(this.dataDir, command);
    } catch (err) {
      throw new SpoolError(`cannot lock the spool (${path.join(this.dataDir, LOCK_FILE)}): ${(err as Error).message}; ` +
        'the data dir and that file must belong to (or be writable by) the user the relay runs as', (err as NodeJS.ErrnoException).code);
    }
    return this.heldLock !== null;
  }

  async unlock(): Promise<void> {
    this.heldLock?.release();
    this.heldLock = null;
  }

  /**
   * Creates the folders and opens the index, reading no message: a large spool opens as fast
   * as an empty one. `indexTrusted` false: the index may lack messages (see due-index.ts), a
   * scan (repairIndex) must add them.
   */
  async open(): Promise<{ indexTrusted: boolean; indexExisted: boolean }> {
    await fsp.mkdir(this.queueDir, { recursive: true, mode: 0o700 });
    await fsp.rm(this.tmpDir, { recursive: true, force: true });
    await fsp.mkdir(this.tmpDir, { recursive: true, mode: 0o700 });
    const { trusted, existed } = await this.index.open();
    return { indexTrusted: trusted, indexExisted: existed };
  }

  /** A clean stop: the index is marked as whole for the next start. */
  async close(): Promise<void> {
    await this.idle();
    await this.index.close();
  }

  /**
   * A queued message's envelope for delivery, read once any write of it under way is done.
   * Its bytes are checked against their checksum: a mismatch is set aside (setAside). Null
   * when the message is gone, or its file has no whole trailer (never committed: removed).
   * Rejects, naming the file, when it cannot be read. With `bucket`, the message is held from
   * now on with its index entry in that minute (see `held`).
   */
  load(id: string, bucket?: number): Promise<SpoolEnvelope | null> {
    return this.serialize(id, async () => {
      const file = this.messagePath(id);
      const unreadable = (err: NodeJS.ErrnoException): never => {
        throw new SpoolError(`cannot read the queued message ${file} (${err.code ?? err.message}); fix the file's permissions or the disk`, err.code);
      };
      if (!fs.existsSync(file)) {
        // a state file left by a removal cut short
        if (this.stateFiles.delete(id) || fs.existsSync(this.statePath(id))) await fsp.rm(this.statePath(id), { force: true });
        return null;
      }
      const envelope = (await this.readState(id)) ?? (await trailerEnvelope(file).catch(unreadable));
      if (!envelope) {
        // Only a file whose trailer is missing or broken is removed (never acknowledged);
        // one that cannot be read is kept (unreadable, above).
        await fsp.rm(file, { force: true });
        this.counted(id, -1);
        return null;
      }
      if (envelope.crc32 !== undefined && (await checksumOf(file, envelope.size).catch(unreadable)) !== envelope.crc32) {
        await this.setAside(id);
        this.counted(id, -1);
        return null;
      }
      if (bucket !== undefined) this.held.set(id, bucket);
      return envelope;
    });
  }

  /** The message is no longer held in memory: its index entry stays where it is, for whoever loads it next. */
  release(id: string): void {
    this.held.delete(id);
    this.forget(id);
  }

  /** Held by this process (in memory or being committed): its index entries are its own. */
  isHeld(id: string): boolean {
    return this.held.has(id);
  }

  /** The minute of a held message's index entry. */
  heldBucket(id: string): number | undefined {
    return this.held.get(id);
  }

  /**
   * Moves the index entry of a message found in minute `from` to the minute it is due (an
   * entry that was early: a crash between a state write and the move of its entry, or a
   * state changed by the queue CLI with no relay running).
   */
  async reindex(id: string, from: number, due: number): Promise<void> {
    const to = bucketOf(due);
    await this.index.move(from, to, id);
    if (this.held.has(id)) this.held.set(id, to);
  }

  /** Queued messages (a count of the .eml files, kept up to date), or null before the first count. */
  get queued(): number | null {
    return this.queuedCount === null ? null : this.queuedCount + (this.counting?.delta ?? 0);
  }

  /**
   * Counts the queued messages by their names (a stream of the folder: no file is read). Meanwhile
   * messages made since it began are counted apart (their ids sort after `before`) and the
   * removal of older ones waits for its end, so the count is exact.
   */
  async count(): Promise<number> {
    if (this.counting) {
      await this.counting.done;
      return this.queued ?? 0;
    }
    let finish!: () => void;
    const before = this.newId().slice(0, ID_TIME_LENGTH);
    this.counting = { before, delta: 0, done: new Promise((resolve) => (finish = resolve)) };
    let n = 0;
    try {
      for await (const name of namesIn(this.queueDir)) {
        if (name.endsWith('.eml') && name.slice(0, ID_TIME_LENGTH) < before) n++;
      }
      this.queuedCount = n + this.counting.delta;
    } finally {
      this.counting = null;
      finish();
    }
    return this.queuedCount;
  }

  /** A message was made (+1) or removed (-1): the count follows. */
  private counted(id: string, change: 1 | -1): void {
    if (this.counting && id.slice(0, ID_TIME_LENGTH) >= this.counting.before) this.counting.delta += change;
    else if (this.queuedCount !== null) this.queuedCount = Math.max(0, this.queuedCount + change);
  }

  /**
   * Walks every message of the spool (the slow way: each envelope is read) and adds the index
   * entries that are missing; removes what a crash left behind: files without a whole trailer,
   * state files without their message, temporary files. Messages held by this process and
   * those made after the walk began are left alone. `pause` is awaited after every `batch`
   * messages (so that a large spool is walked without starving the relay); false ends the walk.
   */
  async repairIndex(pause: () => Promise<boolean | void>, batch = 200): Promise<{ checked: number; added: number; removed: number; complete: boolean }> {
    const before = this.newId().slice(0, ID_TIME_LENGTH);
    const old = (name: string) => name.slice(0, ID_TIME_LENGTH) < before;
    const result = { checked: 0, added: 0, removed: 0, complete: false };
    let sincePause = 0;
    for await (const name of namesIn(this.queueDir)) {
      if (++sincePause >= batch) {
        sincePause = 0;
        if ((await pause()) === false) return result;
      }
      const file = path.join(this.queueDir, name);
      if (name.endsWith('.tmp')) {
        // a state write cut short (a running one is younger than a minute)
        const stat = await fsp.stat(file).catch(() => null);
        if (stat && Date.now() - stat.mtimeMs > 60_000) await fsp.rm(file, { force: true });
        continue;
      }
      if (!old(name)) continue;
      if (name.endsWith('.json')) {
        const id = name.slice(0, -5);
        if (!this.held.has(id) && !fs.existsSync(this.messagePath(id))) {
          await this.serialize(id, () => fsp.rm(file, { force: true }));
        }
        continue;
      }
      if (!name.endsWith('.eml')) continue;
      const id = name.slice(0, -4);
      result.checked++;
      await this.serialize(id, async () => {
        if (this.held.has(id) || !fs.existsSync(file)) return;
        let envelope: SpoolEnvelope | null;
        try {
          envelope = (await this.readState(id)) ?? (await trailerEnvelope(file));
        } catch {
          return; // unreadable: kept, and reported when the index leads the relay to it
        }
        if (!envelope) {
          await fsp.rm(file, { force: true });
          this.counted(id, -1);
          result.removed++;
          return;
        }
        const bucket = bucketOf(dueOf(envelope));
        if (!this.index.has(bucket, id)) {
          this.index.add(bucket, id);
          result.added++;
        }
      });
    }
    result.complete = true;
    return result;
  }

  /**
   * A message whose trailer is whole but whose bytes are not what was written: its file
   * reached the disk out of order (file systems that do not write data before the size, such
   * as ext4 without a journal) or was damaged later. Whether its client heard 250 cannot be
   * told, so it is neither sent nor deleted: it is moved aside for a person to look at.
   */
  private async setAside(id: string): Promise<void> {
    await fsp.mkdir(this.damagedDir, { recursive: true, mode: 0o700 });
    for (const name of [`${id}.eml`, `${id}.json`]) {
      try {
        await fsp.rename(path.join(this.queueDir, name), path.join(this.damagedDir, name));
      } catch (err) {
        ignoreMissing(err as NodeJS.ErrnoException);
        continue;
      }
      this.damaged.push(path.join(this.damagedDir, name));
      this.onDamaged?.(path.join(this.damagedDir, name));
    }
    this.stateFiles.delete(id);
  }

  newId(): string {
    // Sortable by time, unique without coordination: 9 base36 chars of ms + 8 random hex.
    return (Date.now().toString(36).padStart(9, '0') + crypto.randomBytes(4).toString('hex')).toUpperCase();
  }

  /** A writer for a new message. Nothing touches the disk before its first large write or commit. */
  createWriter(): MessageWriter {
    const id = this.newId();
    return new MessageWriter(this, id, path.join(this.tmpDir, `${id}.eml`));
  }

  /**
   * @internal the commit of a message held in memory (see the top of this file): one
   * synchronous write of the whole file into the queue, then its fsync and the folder's at
   * once. Resolves when both are done; on any failure the file is removed and nothing was
   * accepted. The message is then kept in memory as it will be sent: `signatures` first.
   */
  async commitFromMemory(id: string, message: Buffer[], trailer: Buffer, signatures: Buffer, due = Date.now()): Promise<void> {
    const file = this.messagePath(id);
    let fd: number;
    try {
      this.indexNew(id, due);
      fd = fs.openSync(file, 'wx', 0o600);
    } catch (err) {
      this.unindex(id);
      throw asSpoolError(err);
    }
    let failure: unknown = null;
    try {
      writeAllSync(fd, [...message, trailer]);
      // allSettled, not all: the descriptor is closed only once its fsync is over
      const synced = await Promise.allSettled([fsync(fd), this.queueDirSync.sync()]);
      failure = synced.find((r): r is PromiseRejectedResult => r.status === 'rejected')?.reason ?? null;
    } catch (err) {
      failure = err;
    }
    fs.closeSync(fd);
    if (failure) {
      unlinkIfPresent(file);
      this.unindex(id);
      throw asSpoolError(failure);
    }
    this.counted(id, 1);
    this.remember(id, [signatures, ...message]);
  }

  /**
   * The index entry of a message being committed, made before its file: a crash in between
   * leaves an entry without a message (harmless), never a message without an entry. The
   * message is held from now on (the relay keeps it in memory or releases it).
   */
  private indexNew(id: string, due: number): void {
    const bucket = bucketOf(due);
    this.index.add(bucket, id);
    this.held.set(id, bucket);
  }

  /** A commit that failed: its entry goes too. */
  private unindex(id: string): void {
    const bucket = this.held.get(id);
    this.held.delete(id);
    if (bucket !== undefined) void this.index.remove(bucket, id).catch(() => undefined);
  }

  /**
   * @internal the commit of a message streamed to disk (see the top of this file), once the
   * writer has written and fsynced the temporary file: the rename into the queue.
   */
  commitFile(id: string, tmpFile: string, due = Date.now()): void {
    try {
      this.indexNew(id, due);
      fs.renameSync(tmpFile, this.messagePath(id));
    } catch (err) {
      unlinkIfPresent(tmpFile);
      this.unindex(id);
      throw asSpoolError(err);
    }
  }

  /** @internal the folder fsync that makes the rename of `id` durable (shared, see FolderSync). */
  async syncQueue(id: string): Promise<void> {
    try {
      await this.queueDirSync.sync();
    } catch (err) {
      this.forget(id);
      unlinkIfPresent(this.messagePath(id));
      this.unindex(id);
      throw asSpoolError(err);
    }
    this.counted(id, 1);
  }

  messagePath(id: string): string {
    return path.join(this.queueDir, `${id}.eml`);
  }

  statePath(id: string): string {
    return path.join(this.queueDir, `${id}.json`);
  }

  /** A queued message's envelope: its state file when it has one, else its trailer; null when neither can be read. */
  async read(id: string): Promise<SpoolEnvelope | null> {
    const state = await this.readState(id);
    if (state) return state;
    try {
      return await trailerEnvelope(this.messagePath(id));
    } catch {
      return null;
    }
  }

  /** The DKIM-Signature fields of a queued message, from its trailer (empty when it was not signed). */
  async readSignatures(id: string): Promise<Buffer> {
    const file = this.messagePath(id);
    const stored = await readTrailer<StoredEnvelope>(file);
    if (!stored) throw new SpoolError(`the envelope at the end of ${file} cannot be read`);
    return Buffer.from(stored.dkimSignatures ?? '', 'latin1');
  }

  /** The state file's envelope; null when there is none (or an unreadable one: the trailer still holds the first state). */
  private async readState(id: string): Promise<SpoolEnvelope | null> {
    try {
      const envelope = JSON.parse(await fsp.readFile(this.statePath(id), 'utf8')) as StoredEnvelope;
      this.stateFiles.add(id);
      return envelopeOf(envelope);
    } catch {
      return null;
    }
  }

  /**
   * Writes the delivery state atomically: tmp + fsync + rename. A lost update only repeats
   * a delivery. A message already removed is not brought back.
   */
  update(envelope: SpoolEnvelope): Promise<void> {
    const { id } = envelope;
    const text = JSON.stringify(envelope); // the state as of now, not as of the write
    this.forget(id); // a retry comes much later: read it from disk then
    // The index entry follows the state: moved (renamed) to the new minute once the state is
    // on disk (a crash in between leaves it in the old minute: early, which is harmless). A
    // message not held (the queue CLI) has an old entry unknown here: a new one is made, the
    // old one left for the relay to drop when it finds it.
    const to = bucketOf(dueOf(envelope));
    const from = this.held.get(id);
    if (from !== undefined) this.held.set(id, to);
    return this.serialize(id, async () => {
      if (!fs.existsSync(this.messagePath(id))) return;
      const tmp = this.statePath(id) + '.tmp';
      await writeFileSynced(tmp, text);
      await fsp.rename(tmp, this.statePath(id));
      this.stateFiles.add(id);
      if (from === undefined) this.index.add(to, id);
      else await this.index.move(from, to, id);
    });
  }

  /**
   * Removes a message whose recipients are all final. The message file goes first: once it
   * is gone the message is gone, and a state file left by a crash is cleaned up at start.
   */
  remove(id: string): Promise<void> {
    this.forget(id);
    const bucket = this.held.get(id);
    this.held.delete(id);
    // Asynchronous: an unlink frees the file's blocks and can wait for the journal (measured
    // up to several ms while fsyncs run), which the event loop should not.
    return this.serialize(id, async () => {
      // a count under way that may have counted this message: removed once it is over
      if (this.counting && id.slice(0, ID_TIME_LENGTH) < this.counting.before) await this.counting.done;
      let removed = true;
      await fsp.unlink(this.messagePath(id)).catch((err: NodeJS.ErrnoException) => {
        ignoreMissing(err);
        removed = false;
      });
      if (removed) this.counted(id, -1);
      if (this.stateFiles.delete(id) || fs.existsSync(this.statePath(id))) await fsp.unlink(this.statePath(id)).catch(ignoreMissing);
      // the message file goes first: an entry left by a crash here points at nothing (harmless)
      if (bucket !== undefined) await this.index.remove(bucket, id);
    });
  }

  /** Resolves once every state write started so far is done. */
  async idle(): Promise<void> {
    await Promise.allSettled([...this.writes.values()]);
  }

  private serialize<T>(id: string, write: () => Promise<T>): Promise<T> {
    const previous = this.writes.get(id) ?? Promise.resolve();
    const next = previous.catch(() => undefined).then(write);
    const tail: Promise<void> = next.then(() => undefined, () => undefined);
    this.writes.set(id, tail);
    void tail.then(() => {
      if (this.writes.get(id) === tail) this.writes.delete(id);
    });
    return next;
  }

  private remember(id: string, chunks: Buffer[]): void {
    const size = chunks.reduce((n, b) => n + b.length, 0);
    if (this.recentBytes + size > RECENT_BUDGET) return; // read from disk when its turn comes
    this.recent.set(id, ownCopy(chunks, size));
    this.recentBytes += size;
  }

  private forget(id: string): void {
    const bytes = this.recent.get(id);
    if (!bytes) return;
    this.recent.delete(id);
    this.recentBytes -= bytes.length;
  }

  /**
   * Every queued envelope, read from disk, in the order of their ids (the order they were
   * accepted), one at a time: only the names are held (for the queue CLI; safe while a relay runs).
   */
  async *envelopes(): AsyncGenerator<SpoolEnvelope> {
    const ids: string[] = [];
    for await (const name of namesIn(this.queueDir)) if (name.endsWith('.eml')) ids.push(name.slice(0, -4));
    ids.sort();
    for (const id of ids) {
      const envelope = await this.read(id);
      if (envelope) yield envelope;
    }
  }

  /**
   * When the oldest queued message was accepted (epoch ms; null: the queue is empty), read off
   * the names (ids begin with their time) without opening a message. The walk is cached for
   * `maxAgeMs`: a million messages take a second or so to list.
   */
  async oldestQueuedAt(maxAgeMs = 60_000): Promise<number | null> {
    const now = Date.now();
    if (this.oldestCache && now - this.oldestCache.at < maxAgeMs) return this.oldestCache.value;
    let min: string | null = null;
    for await (const name of namesIn(this.queueDir)) {
      if (name.endsWith('.eml') && (min === null || name < min)) min = name;
    }
    const value = min === null ? null : parseInt(min.slice(0, ID_TIME_LENGTH), 36);
    this.oldestCache = { at: now, value: Number.isFinite(value) ? value : null };
    return this.oldestCache.value;
  }

  private oldestCache: { at: number; value: number | null } | null = null;

  /** Every queued envelope as a list (see envelopes; for small spools and tests). */
  async list(): Promise<SpoolEnvelope[]> {
    const all: SpoolEnvelope[] = [];
    for await (const envelope of this.envelopes()) all.push(envelope);
    return all;
  }

  /** The stored header section of a message (without the DKIM-Signature fields), at most `limit` bytes. */
  async readHeaders(id: string, limit = 256 * 1024): Promise<Buffer> {
    const handle = await fsp.open(this.messagePath(id), 'r');
    try {
      const chunks: Buffer[] = [];
      let total = 0;
      for (;;) {
        const buffer = Buffer.alloc(16 * 1024);
        const { bytesRead } = await handle.read(buffer, 0, buffer.length, total);
        if (!bytesRead) break;
        chunks.push(buffer.subarray(0, bytesRead));
        total += bytesRead;
        const all = Buffer.concat(chunks);
        const end = all.indexOf('\r\n\r\n');
        if (end !== -1) return all.subarray(0, end + 2);
        if (total >= limit) return all.subarray(0, limit);
      }
      return Buffer.concat(chunks);
    } finally {
      await handle.close();
    }
  }

  /**
   * The signed message as sent: the DKIM-Signature fields, then the stored message bytes.
   * From memory (one Buffer) when the message was just committed, else streamed from its file,
   * the signatures read from its trailer first (a failure to read either is a stream error).
   */
  openSigned(envelope: SpoolEnvelope): Buffer | Readable {
    const signed = this.recent.get(envelope.id);
    if (signed) return signed;
    const { id, size } = envelope;
    const file = this.messagePath(id);
    const signatures = () => this.readSignatures(id);
    return Readable.from((async function* () {
      const fields = await signatures();
      if (fields.length) yield fields;
      if (!size) return;
      for await (const chunk of fs.createReadStream(file, { start: 0, end: size - 1 })) yield chunk as Buffer;
    })());
  }
}

/**
 * One copy of the chunks in memory of its own, exactly `size` bytes, so that the budget counts
 * what is kept. The chunks may be views into larger socket buffers, and Buffer.concat puts
 * anything under 32 KB into a slice of Node's shared 64 KB allocation pool: a kept message
 * then holds a whole pool slab alive (measured: 17 MB of queued messages held 43 MB).
 */
export function ownCopy(chunks: Buffer[], size: number): Buffer {
  const copy = Buffer.allocUnsafeSlow(size);
  let offset = 0;
  for (const chunk of chunks) offset += chunk.copy(copy, offset);
  return copy;
}

/** The names in a folder, as a stream (none when it does not exist). */
async function* namesIn(dir: string): AsyncGenerator<string> {
  let handle: fs.Dir;
  try {
    handle = await fsp.opendir(dir, { bufferSize: 1024 });
  } catch {
    return;
  }
  for await (const entry of handle) yield entry.name;
}

/** CRC-32 of the first `size` bytes of `file`. */
async function checksumOf(file: string, size: number): Promise<number> {
  let crc = 0;
  if (!size) return crc;
  for await (const chunk of fs.createReadStream(file, { start: 0, end: size - 1, highWaterMark: 1 << 20 })) {
    crc = zlib.crc32(chunk as Buffer, crc);
  }
  return crc;
}

async function writeFileSynced(file: string, text: string): Promise<void> {
  const handle = await fsp.open(file, 'w', 0o600);
  try {
    await handle.writeFile(text);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function ignoreMissing(err: NodeJS.ErrnoException): void {
  if (err.code !== 'ENOENT') throw err;
}

function unlinkIfPresent(file: string): void {
  try {
    fs.unlinkSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

function asSpoolError(err: unknown): SpoolError {
  const code = (err as NodeJS.ErrnoException).code;
  return new SpoolError(`spool write failed (${code ?? (err as Error).message})`, code);
}
