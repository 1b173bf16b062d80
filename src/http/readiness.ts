// /healthz and /readyz. Alive: the process answers. Ready: the spool takes a write (a real
// one: a full disk or a read-only mount fails it, where a permission check would not, as
// root), the submission server listens, and the sending identity is established.
import fsp from 'node:fs/promises';
import path from 'node:path';
import { RelayState } from './relay-state';

export interface ReadinessCheck { name: 'spool' | 'submission' | 'identity'; ok: boolean; detail: string }
export interface Readiness { ready: boolean; checks: ReadinessCheck[] }

let probes = 0;

export async function readiness(state: RelayState): Promise<Readiness> {
  const checks: ReadinessCheck[] = [
    await spoolCheck(state.dataDir),
    state.submissionListening
      ? { name: 'submission', ok: true, detail: 'listening' }
      : { name: 'submission', ok: false, detail: 'the submission server is not listening (starting or stopping)' },
    state.identity
      ? { name: 'identity', ok: true, detail: `HELO ${state.identity.heloName}${state.identity.localAddress ? ` from ${state.identity.sources.map((s) => s.localAddress).join(', ')}` : ''}` }
      : { name: 'identity', ok: false, detail: 'the sending identity is not established yet (its DNS checks run at start)' },
  ];
  return { ready: checks.every((c) => c.ok), checks };
}

async function spoolCheck(dataDir: string): Promise<ReadinessCheck> {
  const file = path.join(dataDir, 'spool-tmp', `.readyz-${process.pid}-${++probes}`);
  try {
    const handle = await fsp.open(file, 'w');
    try {
      await handle.write('x');
    } finally {
      await handle.close();
    }
    await fsp.unlink(file);
    return { name: 'spool', ok: true, detail: 'writable' };
  } catch (err) {
    await fsp.unlink(file).catch(() => undefined);
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    const why: Record<string, string> = { ENOSPC: 'the file system is full', EROFS: 'the file system is read-only', EACCES: 'no permission', EPERM: 'no permission', ENOENT: 'the folder is missing' };
    return { name: 'spool', ok: false, detail: `the spool in ${dataDir} cannot be written (${code}${why[code] ? `: ${why[code]}` : ''}); accepted mail would be refused with 452` };
  }
}
