// One owner per spool: <dataDir>/spool.lock, locked with an open file description lock
// (fcntl F_OFD_SETLK on Linux, through fs-native-extensions). The kernel keeps that lock on
// the file itself, so it holds across PID namespaces (two containers on one volume see each
// other's lock), and releases it when the holder's last descriptor closes, also when it is
// killed: a restart right after a SIGKILL finds the spool free, even while the dead relay is
// still an unreaped zombie. A pid in a file checked with kill(pid, 0) did neither (every
// container's relay is pid 1; pids are reused). The file also names its holder (pid, host,
// command), but only for messages: whether the spool is taken is the kernel's answer alone.
//
// The holder removes the file when it lets go, so a stopped relay leaves nothing behind. That
// is safe because whoever takes the lock checks afterwards that the name still leads to the
// file it locked; if not (the file was removed meanwhile), it starts over with the new file.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { tryLock } from 'fs-native-extensions';

export const LOCK_FILE = 'spool.lock';

export class SpoolLock {
  private constructor(readonly file: string, private fd: number | null) {}

  /**
   * Takes the lock of `dataDir` if nobody holds it, and writes who holds it now (`command`,
   * for messages). Null when another process holds it.
   */
  static tryAcquire(dataDir: string, command: string): SpoolLock | null {
    fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    const file = path.join(dataDir, LOCK_FILE);
    const fd = lockFile(file, true);
    if (fd === null) return null;
    try {
      fs.ftruncateSync(fd, 0);
      fs.writeSync(fd, `${process.pid}\n${command}, pid ${process.pid} on host ${os.hostname()}, since ${new Date().toISOString()}\n`, 0);
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
    return new SpoolLock(file, fd);
  }

  /** Whether a process holds the lock of `dataDir` (tried and at once let go: takes nothing from a holder). */
  static isHeld(dataDir: string): boolean {
    const fd = lockFile(path.join(dataDir, LOCK_FILE), false);
    if (fd === null) return true;
    if (fd !== NO_FILE) fs.closeSync(fd);
    return false;
  }

  /** Who holds (or last held) the lock of `dataDir`, as its file says: for messages only. */
  static describeHolder(dataDir: string): string {
    try {
      const line = fs.readFileSync(path.join(dataDir, LOCK_FILE), 'utf8').split('\n')[1]?.trim();
      if (line) return line;
    } catch {
      // removed meanwhile
    }
    return 'it has not written its name yet';
  }

  /** Lets go of the lock and removes its file (while still holding it: see the top of this file). */
  release(): void {
    if (this.fd === null) return;
    try {
      if (sameFile(this.fd, this.file)) fs.rmSync(this.file, { force: true });
    } finally {
      fs.closeSync(this.fd); // closing the last descriptor of the description releases the lock
      this.fd = null;
    }
  }
}

const NO_FILE = -1;

/**
 * Opens `file` and locks it: its descriptor, or null when another process holds the lock.
 * With `create`, to own it (a write lock); without, only to see whether anyone does (a read
 * lock, which needs no write permission and is refused just the same while a holder has it;
 * a missing file is NO_FILE: nobody holds it).
 */
function lockFile(file: string, create: boolean): number | null {
  for (;;) {
    let fd: number;
    try {
      fd = fs.openSync(file, create ? fs.constants.O_RDWR | fs.constants.O_CREAT : fs.constants.O_RDONLY, 0o600);
    } catch (err) {
      if (!create && (err as NodeJS.ErrnoException).code === 'ENOENT') return NO_FILE;
      throw err;
    }
    let taken = false;
    try {
      taken = tryLock(fd, { shared: !create });
      if (taken && sameFile(fd, file)) return fd;
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
    fs.closeSync(fd); // also lets go of a lock taken on a file that was removed meanwhile
    if (!taken) return null;
  }
}

/** Whether `file` still names the file open as `fd` (not removed or replaced since it was opened). */
function sameFile(fd: number, file: string): boolean {
  const open = fs.fstatSync(fd);
  try {
    const named = fs.statSync(file);
    return named.ino === open.ino && named.dev === open.dev;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}
