// The durable queue on disk. A message is two files in <dataDir>/spool: <id>.eml (the
// message bytes as received, after the intake's header fixes) and <id>.json (the envelope:
// sender, recipients with their delivery state, and the DKIM-Signature fields to put in
// front of the message). The .json is written last and marks the message as accepted:
//   write tmp/<id>.eml + fsync, write tmp/<id>.json + fsync, rename both into spool/,
//   fsync spool/. Only then may the client hear 250.
// On start, a .eml without its .json is a message that was never acknowledged: removed.
// Delivery state (per recipient, and a short attempt history) is rewritten into <id>.json
// after every attempt (tmp + fsync + rename), so a restart does not send again to a
// recipient whose delivery was recorded; a crash between a 250 from the MX and that write
// sends it again (at least once, never lost). Writes of one message are serialized.
// One process owns a spool at a time: <dataDir>/spool.lock holds its pid. The queue CLI
// reads the spool directly and, while a relay holds the lock, asks it to change things
// through request files in <dataDir>/control/ (control.ts).
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';

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
}

export const HISTORY_LENGTH = 20;

export interface SpoolEnvelope {
  id: string;
  receivedAt: string;
  /** Envelope sender (MAIL FROM); '' is the null sender. */
  sender: string;
  recipients: RecipientState[];
  /** DKIM-Signature header fields, CRLF-terminated, sent in front of the message. */
  dkimSignatures: string;
  size: number;
  client: { address: string; user?: string };
  signing?: { domain: string; selectors: string[] };
  /** Recent attempts, oldest first. */
  history?: AttemptRecord[];
  /** A delay warning (DSN, Action: delayed) has been queued. */
  delayNotified?: boolean;
  /** This message is a DSN made by the relay (its sender is the null sender). */
  dsn?: 'failed' | 'delayed';
}

export class SpoolError extends Error {
  constructor(message: string, readonly code?: string) {
    super(message);
  }
}

async function fsyncDir(dir: string): Promise<void> {
  const handle = await fsp.open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
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

/** Receives one message's bytes into the spool's tmp folder until commit or abort. */
export class MessageWriter {
  private bytes = 0;
  private closed = false;
  constructor(private readonly spool: Spool, readonly id: string, private readonly handle: fsp.FileHandle, private readonly tmpFile: string) {}

  get size(): number {
    return this.bytes;
  }

  async write(chunk: Buffer): Promise<void> {
    let offset = 0;
    while (offset < chunk.length) {
      const { bytesWritten } = await this.handle.write(chunk, offset, chunk.length - offset);
      offset += bytesWritten;
    }
    this.bytes += chunk.length;
  }

  /** Makes the message durable and part of the queue. Resolves only once it is on disk. */
  async commit(envelope: Omit<SpoolEnvelope, 'id' | 'size'>): Promise<SpoolEnvelope> {
    const full: SpoolEnvelope = { ...envelope, id: this.id, size: this.bytes };
    await this.handle.sync();
    await this.handle.close();
    this.closed = true;
    await this.spool.commitFiles(this.id, this.tmpFile, full);
    return full;
  }

  /** Drops a message that will not be accepted. Never throws. */
  async abort(): Promise<void> {
    if (!this.closed) await this.handle.close().catch(() => undefined);
    this.closed = true;
    await fsp.rm(this.tmpFile, { force: true }).catch(() => undefined);
  }
}

export class Spool {
  readonly queueDir: string;
  readonly tmpDir: string;
  readonly lockFile: string;
  /** Per message, the end of its chain of envelope writes. */
  private readonly writes = new Map<string, Promise<void>>();
  private readonly queueDirSync: FolderSync;

  constructor(readonly dataDir: string) {
    this.queueDir = path.join(dataDir, 'spool');
    this.queueDirSync = new FolderSync(this.queueDir);
    this.tmpDir = path.join(dataDir, 'spool-tmp');
    this.lockFile = path.join(dataDir, 'spool.lock');
  }

  /** The pid of the live process holding the spool lock, or null. */
  static lockHolder(dataDir: string): number | null {
    let pid: number;
    try {
      pid = Number(fs.readFileSync(path.join(dataDir, 'spool.lock'), 'utf8').trim());
    } catch {
      return null;
    }
    if (!Number.isInteger(pid) || pid <= 0) return null;
    try {
      process.kill(pid, 0);
      return pid;
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === 'EPERM' ? pid : null;
    }
  }

  /**
   * Takes the spool lock for this process. A lock left by a dead process (a crash) is taken
   * over; a live one means another relay uses this spool: refused.
   */
  async lock(): Promise<void> {
    await fsp.mkdir(this.dataDir, { recursive: true, mode: 0o700 });
    const holder = Spool.lockHolder(this.dataDir);
    if (holder !== null && holder !== process.pid) {
      throw new SpoolError(`the spool in ${this.dataDir} is in use by another dkim-relay (pid ${holder}); stop it first or use another dataDir`);
    }
    const tmp = `${this.lockFile}.${process.pid}.tmp`;
    await writeFileSynced(tmp, `${process.pid}\n`);
    await fsp.rename(tmp, this.lockFile);
  }

  async unlock(): Promise<void> {
    if (Spool.lockHolder(this.dataDir) === process.pid) await fsp.rm(this.lockFile, { force: true });
  }

  /** Creates the folders, removes what was never acknowledged. Returns the queued envelopes. */
  async open(): Promise<SpoolEnvelope[]> {
    await fsp.mkdir(this.queueDir, { recursive: true, mode: 0o700 });
    await fsp.rm(this.tmpDir, { recursive: true, force: true });
    await fsp.mkdir(this.tmpDir, { recursive: true, mode: 0o700 });
    const names = new Set(await fsp.readdir(this.queueDir));
    const envelopes: SpoolEnvelope[] = [];
    for (const name of names) {
      if (name.endsWith('.eml') && !names.has(name.slice(0, -4) + '.json')) {
        await fsp.rm(path.join(this.queueDir, name), { force: true });
      } else if (name.endsWith('.json')) {
        const envelope = await this.read(name.slice(0, -5));
        if (envelope) envelopes.push(envelope);
      } else if (name.endsWith('.tmp')) {
        await fsp.rm(path.join(this.queueDir, name), { force: true });
      }
    }
    return envelopes.sort((a, b) => a.receivedAt.localeCompare(b.receivedAt));
  }

  newId(): string {
    // Sortable by time, unique without coordination: 9 base36 chars of ms + 8 random hex.
    return (Date.now().toString(36).padStart(9, '0') + crypto.randomBytes(4).toString('hex')).toUpperCase();
  }

  async createWriter(): Promise<MessageWriter> {
    const id = this.newId();
    const tmpFile = path.join(this.tmpDir, `${id}.eml`);
    try {
      const handle = await fsp.open(tmpFile, 'wx', 0o600);
      return new MessageWriter(this, id, handle, tmpFile);
    } catch (err) {
      throw asSpoolError(err);
    }
  }

  /** @internal the commit protocol described at the top of this file. */
  async commitFiles(id: string, tmpMessage: string, envelope: SpoolEnvelope): Promise<void> {
    try {
      const tmpEnvelope = path.join(this.tmpDir, `${id}.json`);
      await writeFileSynced(tmpEnvelope, JSON.stringify(envelope));
      await fsp.rename(tmpMessage, this.messagePath(id));
      await fsp.rename(tmpEnvelope, this.envelopePath(id));
      await this.queueDirSync.sync();
    } catch (err) {
      await fsp.rm(this.envelopePath(id), { force: true }).catch(() => undefined);
      await fsp.rm(this.messagePath(id), { force: true }).catch(() => undefined);
      throw asSpoolError(err);
    }
  }

  messagePath(id: string): string {
    return path.join(this.queueDir, `${id}.eml`);
  }

  envelopePath(id: string): string {
    return path.join(this.queueDir, `${id}.json`);
  }

  async read(id: string): Promise<SpoolEnvelope | null> {
    try {
      return JSON.parse(await fsp.readFile(this.envelopePath(id), 'utf8')) as SpoolEnvelope;
    } catch {
      return null;
    }
  }

  /**
   * Rewrites the envelope (delivery state) atomically: tmp + fsync + rename. A lost update
   * only repeats a delivery. A message already removed is not brought back.
   */
  update(envelope: SpoolEnvelope): Promise<void> {
    const text = JSON.stringify(envelope); // the state as of now, not as of the write
    return this.serialize(envelope.id, async () => {
      if (!fs.existsSync(this.messagePath(envelope.id))) return;
      const tmp = this.envelopePath(envelope.id) + '.tmp';
      await writeFileSynced(tmp, text);
      await fsp.rename(tmp, this.envelopePath(envelope.id));
    });
  }

  /** Removes a message whose recipients are all final. The envelope goes first. */
  remove(id: string): Promise<void> {
    return this.serialize(id, async () => {
      await fsp.rm(this.envelopePath(id), { force: true });
      await fsp.rm(this.messagePath(id), { force: true });
    });
  }

  /** Resolves once every envelope write started so far is done. */
  async idle(): Promise<void> {
    await Promise.allSettled([...this.writes.values()]);
  }

  private serialize(id: string, write: () => Promise<void>): Promise<void> {
    const previous = this.writes.get(id) ?? Promise.resolve();
    const next = previous.catch(() => undefined).then(write);
    const tail = next.catch(() => undefined);
    this.writes.set(id, tail);
    void tail.then(() => {
      if (this.writes.get(id) === tail) this.writes.delete(id);
    });
    return next;
  }

  /** Every queued envelope, read from disk (for the queue CLI; safe while a relay runs). */
  async list(): Promise<SpoolEnvelope[]> {
    let names: string[];
    try {
      names = await fsp.readdir(this.queueDir);
    } catch {
      return [];
    }
    const envelopes: SpoolEnvelope[] = [];
    for (const name of names) {
      if (!name.endsWith('.json')) continue;
      const envelope = await this.read(name.slice(0, -5));
      if (envelope) envelopes.push(envelope);
    }
    return envelopes.sort((a, b) => a.receivedAt.localeCompare(b.receivedAt) || a.id.localeCompare(b.id));
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

  /** The signed message as sent: the DKIM-Signature fields, then the stored bytes. */
  openSigned(envelope: SpoolEnvelope): Readable {
    const file = fs.createReadStream(this.messagePath(envelope.id));
    return Readable.from((async function* () {
      if (envelope.dkimSignatures) yield Buffer.from(envelope.dkimSignatures, 'latin1');
      for await (const chunk of file) yield chunk as Buffer;
    })());
  }
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

function asSpoolError(err: unknown): SpoolError {
  const code = (err as NodeJS.ErrnoException).code;
  return new SpoolError(`spool write failed (${code ?? (err as Error).message})`, code);
}
