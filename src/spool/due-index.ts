// The spool's index of what is due when, so that the relay finds the messages to try next
// without reading every file of a large queue: <dataDir>/spool-index/<minute>/<id>, one empty
// file per queued message in the folder of the minute (epoch ms / 60000) of its next attempt.
// The spool files stay the truth; an entry is only a hint that the message may be due then:
// - an entry is made before the message it points to is written (at commit), and moved to its
//   new minute by one rename once a deferral's state is on disk, so a crash leaves at worst an
//   entry too many (its message never committed, or removed) or an early one, both harmless:
//   whoever reads an entry checks the message (gone: the entry is dropped; due later: the
//   entry is moved to the right minute);
// - entries are not fsynced (the spool files are): a power loss can lose some. That is what
//   `state.json` is for: it tells whether the relay stopped cleanly and on which boot the
//   index was last written; after a crash of the machine (not clean, another boot), after a
//   start without an index (an older version's spool), until such a repair has once finished,
//   and once a day, a slow scan of the spool adds what is missing (queue-runner.ts).
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';

export const BUCKET_MS = 60_000;

/** The index folder (a minute) of a due time. */
export function bucketOf(at: number): number {
  return Math.floor(at / BUCKET_MS);
}

interface IndexState {
  /** The relay that last used the index stopped cleanly. */
  clean: boolean;
  /** /proc/sys/kernel/random/boot_id when it was written. */
  bootId: string;
  /** The index was found untrusted and the walk that repairs it has not finished yet. */
  needsRepair?: boolean;
}

function currentBootId(): string {
  try {
    return fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return '';
  }
}

export class DueIndex {
  readonly dir: string;
  private readonly stateFile: string;
  /** Minute folders known to exist (so that adding an entry is one file create). */
  private readonly known = new Set<number>();
  private needsRepair = false;

  constructor(dataDir: string) {
    this.dir = path.join(dataDir, 'spool-index');
    this.stateFile = path.join(this.dir, 'state.json');
  }

  /**
   * Opens the index for a relay: says whether it can be trusted as it is, and marks it in use
   * (not clean) until close(). Not trusted: no index yet, or the last relay neither stopped
   * cleanly nor ran on this boot (a crash of the machine may have lost entries not yet on disk;
   * a killed process loses none: its entries are in the page cache), or a repair of it was cut
   * short. Untrusted, it stays so (on disk) until repaired() is called.
   */
  async open(): Promise<{ trusted: boolean; existed: boolean }> {
    let existed = true;
    let state: IndexState | null = null;
    try {
      state = JSON.parse(await fsp.readFile(this.stateFile, 'utf8')) as IndexState;
    } catch {
      existed = fs.existsSync(this.dir) && fs.readdirSync(this.dir).length > 0;
    }
    await fsp.mkdir(this.dir, { recursive: true, mode: 0o700 });
    const bootId = currentBootId();
    const trusted = !!state && !state.needsRepair && (state.clean || (!!bootId && state.bootId === bootId));
    this.needsRepair = !trusted;
    await this.writeState({ clean: false, bootId, needsRepair: this.needsRepair });
    return { trusted, existed };
  }

  /** The walk of the whole spool is done: the index has every message. */
  async repaired(): Promise<void> {
    this.needsRepair = false;
    await this.writeState({ clean: false, bootId: currentBootId(), needsRepair: false });
  }

  /** Marks a clean stop: the next start trusts the index (unless a repair is still owed). */
  async close(): Promise<void> {
    await this.writeState({ clean: true, bootId: currentBootId(), needsRepair: this.needsRepair });
  }

  private async writeState(state: IndexState): Promise<void> {
    const tmp = `${this.stateFile}.tmp`;
    const handle = await fsp.open(tmp, 'w', 0o600);
    try {
      await handle.writeFile(JSON.stringify(state));
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fsp.rename(tmp, this.stateFile);
  }

  entryPath(bucket: number, id: string): string {
    return path.join(this.dir, String(bucket), id);
  }

  /**
   * Adds an entry. Synchronous: one file create in the page cache (tens of microseconds), made
   * on the path to a 250 before the message's own fsync. An entry already there is fine.
   */
  add(bucket: number, id: string): void {
    const file = this.entryPath(bucket, id);
    for (let attempt = 0; ; attempt++) {
      this.folder(bucket);
      try {
        fs.closeSync(fs.openSync(file, 'wx', 0o600));
        return;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EEXIST') return;
        // the folder was removed as empty in between (drop): make it again
        if (code !== 'ENOENT' || attempt > 0) throw err;
        this.known.delete(bucket);
      }
    }
  }

  /** Makes sure a minute's folder exists. */
  private folder(bucket: number): void {
    if (this.known.has(bucket)) return;
    fs.mkdirSync(path.join(this.dir, String(bucket)), { recursive: true, mode: 0o700 });
    this.known.add(bucket);
  }

  /**
   * Moves an entry to another minute: one rename, so that at every instant one of the two
   * exists (a crash leaves the old one or the new one). An entry that is not where it was
   * thought to be is made anew.
   */
  async move(from: number, to: number, id: string): Promise<void> {
    if (from === to) return;
    try {
      this.folder(to);
      await fsp.rename(this.entryPath(from, id), this.entryPath(to, id));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      this.known.delete(to); // (or its folder went as empty meanwhile)
      this.add(to, id);
    }
  }

  async remove(bucket: number, id: string): Promise<void> {
    await fsp.unlink(this.entryPath(bucket, id)).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
  }

  has(bucket: number, id: string): boolean {
    return fs.existsSync(this.entryPath(bucket, id));
  }

  /** The minutes that have entries (or had: a folder is removed once found empty), in order. */
  async buckets(): Promise<number[]> {
    const names = await fsp.readdir(this.dir).catch(() => [] as string[]);
    return names.filter((n) => /^\d+$/.test(n)).map(Number).sort((a, b) => a - b);
  }

  /** The ids in one minute's folder, read as a stream (a minute may hold a great many). */
  async *entries(bucket: number): AsyncGenerator<string> {
    let dir: fs.Dir;
    try {
      dir = await fsp.opendir(path.join(this.dir, String(bucket)), { bufferSize: 256 });
    } catch {
      return;
    }
    for await (const entry of dir) yield entry.name;
  }

  /** Removes a minute's folder if it is empty. */
  async drop(bucket: number): Promise<void> {
    this.known.delete(bucket);
    await fsp.rmdir(path.join(this.dir, String(bucket))).catch(() => undefined);
  }
}
