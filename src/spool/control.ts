// Requests to a running relay from the queue CLI, as files: the CLI writes
// <dataDir>/control/<name>.request.json (tmp + rename, so the relay never sees half a file),
// the relay applies it within a second, writes <name>.reply.json the same way and removes
// the request. Only the relay that holds the spool lock changes the spool while it runs,
// so the CLI never races it on the envelope files.
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';

export type ControlRequest =
  | { action: 'retry'; id?: string; all?: boolean }
  | { action: 'delete'; id: string; bounce: boolean };

export interface ControlReply {
  ok: boolean;
  /** What was done, for the person at the terminal. */
  message: string;
  ids?: string[];
}

export function controlDir(dataDir: string): string {
  return path.join(dataDir, 'control');
}

const REQUEST = '.request.json';
const REPLY = '.reply.json';

async function writeAtomically(file: string, value: unknown): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await fsp.writeFile(tmp, JSON.stringify(value), { mode: 0o600 });
  await fsp.rename(tmp, file);
}

/** CLI side: hands a request to the running relay and waits for its reply. */
export async function sendControlRequest(dataDir: string, request: ControlRequest, timeoutMs = 10_000): Promise<ControlReply> {
  const dir = controlDir(dataDir);
  await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
  const name = `${Date.now().toString(36)}-${crypto.randomBytes(4).toString('hex')}`;
  await writeAtomically(path.join(dir, name + REQUEST), request);
  const replyFile = path.join(dir, name + REPLY);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const reply = JSON.parse(await fsp.readFile(replyFile, 'utf8')) as ControlReply;
      await fsp.rm(replyFile, { force: true });
      return reply;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    if (Date.now() > deadline) {
      await fsp.rm(path.join(dir, name + REQUEST), { force: true });
      throw new Error(`the running relay did not answer within ${timeoutMs / 1000} s (request files in ${dir})`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Relay side: applies every pending request with `handle` and answers it. */
export async function processControlRequests(dataDir: string, handle: (request: ControlRequest) => Promise<ControlReply>): Promise<number> {
  const dir = controlDir(dataDir);
  let names: string[];
  try {
    names = await fsp.readdir(dir);
  } catch {
    return 0;
  }
  let done = 0;
  for (const file of names.filter((n) => n.endsWith(REQUEST)).sort()) {
    const full = path.join(dir, file);
    let reply: ControlReply;
    try {
      const request = JSON.parse(await fsp.readFile(full, 'utf8')) as ControlRequest;
      reply = await handle(request);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // the CLI gave up meanwhile
      reply = { ok: false, message: `bad request: ${(err as Error).message}` };
    }
    await writeAtomically(path.join(dir, file.slice(0, -REQUEST.length) + REPLY), reply);
    await fsp.rm(full, { force: true });
    done++;
  }
  // Replies nobody fetched (the CLI was interrupted) are dropped after a minute.
  for (const file of names.filter((n) => n.endsWith(REPLY))) {
    const full = path.join(dir, file);
    try {
      if (Date.now() - fs.statSync(full).mtimeMs > 60_000) await fsp.rm(full, { force: true });
    } catch {
      // gone already
    }
  }
  return done;
}
