// Runs docker and docker-compose against the test's own Docker daemon
// (test/peers/docker/dockerd.sh starts it; .ci/run does that).
import { spawn } from 'node:child_process';

export const DOCKER_HOST = process.env.DKIM_RELAY_TEST_DOCKER_HOST ?? 'unix:///run/dkim-relay-test-docker.sock';
// The classic builder: the same on Debian's docker.io (20.10) and on newer CLIs without buildx.
const env = { ...process.env, DOCKER_HOST, DOCKER_BUILDKIT: '0', COMPOSE_DOCKER_CLI_BUILD: '0' };

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to its end; never rejects for a non-zero exit (the caller asserts on code). */
export function run(cmd: string, args: string[], opts: { cwd?: string; input?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${cmd}: ${e.message}`));
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.input ?? '');
  });
}

/** Runs a command and rejects, with its output, unless it exits 0. */
export async function runOk(cmd: string, args: string[], opts: { cwd?: string; input?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r;
}

export const docker = (args: string[], opts?: { cwd?: string; input?: string; timeoutMs?: number }) => run('docker', args, opts);

/** One field of `docker inspect` (a Go template such as '{{.State.Pid}}'), '' when there is no such container. */
export async function inspect(container: string, template: string): Promise<string> {
  const r = await docker(['inspect', '-f', template, container]);
  return r.code === 0 ? r.stdout.trim() : '';
}

/** Fails with how to start it when the test's Docker daemon does not answer. */
export async function assertDockerUp(): Promise<void> {
  const r = await run('docker', ['version', '--format', '{{.Server.Version}}']).catch((e: Error) => ({ code: -1, stdout: '', stderr: e.message }));
  if (r.code !== 0) {
    throw new Error(
      `no Docker daemon answers on ${DOCKER_HOST}: ${r.stderr.trim()}\n` +
        'start it as root with test/peers/docker/dockerd.sh (needs Debian\'s docker.io and debootstrap; .ci/run installs and starts them)'
    );
  }
}

/** Polls until check() returns a value other than undefined, or fails after timeoutMs with what(). */
export async function waitFor<T>(check: () => Promise<T | undefined>, timeoutMs: number, what: () => Promise<string> | string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`waited ${timeoutMs} ms: ${await what()}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}
