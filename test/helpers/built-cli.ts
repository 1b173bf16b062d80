// The CLI as users run it: bin/dkim-relay.js on the project's Node.js, from dist/.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

export const ROOT = path.resolve(__dirname, '..', '..');
export const NODE = path.join(ROOT, 'node_modules', '.bin', 'node');
export const BIN = path.join(ROOT, 'bin', 'dkim-relay.js');

/** Newest modification time of the TypeScript sources, to see whether dist/ is stale. */
function newestSource(dir: string): number {
  let newest = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestSource(full));
    else if (entry.name.endsWith('.ts')) newest = Math.max(newest, fs.statSync(full).mtimeMs);
  }
  return newest;
}

/** The CLI runs from dist/: build it when missing or older than src/ (`npm test` builds first anyway). */
export function ensureBuilt(): void {
  const cli = path.join(ROOT, 'dist', 'cli.js');
  if (fs.existsSync(cli) && fs.statSync(cli).mtimeMs >= newestSource(path.join(ROOT, 'src'))) return;
  execFileSync('npm', ['run', 'build', '--silent'], { cwd: ROOT, stdio: 'pipe' });
}
