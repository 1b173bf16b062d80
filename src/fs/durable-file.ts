// Writing small files so that a crash leaves either the old file or the whole new one, never
// a torn one: a temporary file in the same folder, fsync, then rename (or link), then fsync of
// the folder. Used for the users file, key files and key metadata. (The spool has its own,
// asynchronous, protocol in src/spool/spool.ts.) replaceFile is the same without blocking.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

function writeTemporary(file: string, content: string, mode: number): string {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`);
  const fd = fs.openSync(tmp, 'wx', mode);
  try {
    fs.writeFileSync(fd, content);
    fs.fchmodSync(fd, mode); // the umask may have narrowed or the caller widened it
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  return tmp;
}

export function fsyncDirSync(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Replaces (or creates) `file` with `content` atomically and durably. */
export function replaceFileSync(file: string, content: string, mode = 0o600): void {
  const tmp = writeTemporary(file, content, mode);
  try {
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  fsyncDirSync(path.dirname(file));
}

/**
 * Creates `file` with `content` atomically and durably, never over an existing file (the
 * link fails when the name exists, even with two writers at once). False when it existed.
 */
export function createFileSync(file: string, content: string, mode = 0o600): boolean {
  const tmp = writeTemporary(file, content, mode);
  try {
    fs.linkSync(tmp, file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    fs.rmSync(tmp, { force: true });
  }
  fsyncDirSync(path.dirname(file));
  return true;
}

/**
 * replaceFileSync without blocking the event loop on the disk: for files rewritten often by
 * a running relay (TLS report records), where each fsync would otherwise stall deliveries.
 */
export async function replaceFile(file: string, content: string, mode = 0o600): Promise<void> {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`);
  const handle = await fs.promises.open(tmp, 'wx', mode);
  try {
    await handle.writeFile(content);
    await handle.chmod(mode);
    await handle.sync();
  } catch (err) {
    await handle.close();
    await fs.promises.rm(tmp, { force: true });
    throw err;
  }
  await handle.close();
  try {
    await fs.promises.rename(tmp, file);
  } catch (err) {
    await fs.promises.rm(tmp, { force: true });
    throw err;
  }
  const dir = await fs.promises.open(path.dirname(file), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}
