// The relay and its CLI as separate processes (`node bin/dkim-relay.js ...`), configured through
// RELAY_* variables, optionally each in a PID namespace of its own (`unshare --pid --fork
// --mount-proc`: there the relay is pid 1, as in a container) or under a given umask.
import { ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { BIN, NODE } from './built-cli';
import { startDnsServer, TestDnsServer } from './dns-server';
import { freePort } from './sink';

export interface Setup { dir: string; dns: TestDnsServer; env: Record<string, string>; port: number }

export async function setupRelayFolders(extra: Record<string, string> = {}): Promise<Setup> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dkim-relay-proc-'));
  const dns = await startDnsServer({ host: '127.0.0.1' });
  const port = await freePort('127.0.0.1');
  const env: Record<string, string> = {
    RELAY_SUBMISSION_HOST: '127.0.0.1',
    RELAY_SUBMISSION_PORT: String(port),
    RELAY_KEYS_DIR: path.join(dir, 'keys'),
    RELAY_DATA_DIR: path.join(dir, 'data'),
    RELAY_USERS_FILE: path.join(dir, 'users.json'),
    RELAY_LOCAL_ADDRESS: '127.0.0.2',
    RELAY_HELO_NAME: 'relay.example.net',
    RELAY_DNS_SERVERS: dns.address,
    RELAY_DNS_TIMEOUT: '2',
    RELAY_CONNECT_TIMEOUT: '3',
    RELAY_UNSIGNED_POLICY: 'relay',
    RELAY_LOG_LEVEL: 'info',
    ...extra,
  };
  return { dir, dns, env, port };
}

export function childEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  const clean: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('RELAY_')) clean[k] = v;
  return { ...clean, ...env };
}

export interface HowToRun {
  /** In a PID namespace of its own (the command is its pid 1). */
  pidNamespace?: boolean;
  /** The umask to run under (through sh -c 'umask U; exec ...'). */
  umask?: string;
  /** Under a shell that waits for it: a parent that can be stopped (then it reaps nothing). */
  shellParent?: boolean;
  /** Variables to set besides the Setup's. */
  env?: Record<string, string>;
}

/** The command line that runs `node bin/dkim-relay.js args` as asked. */
export function commandLine(args: string[], how: HowToRun = {}): [string, string[]] {
  let argv = [NODE, BIN, ...args];
  if (how.umask !== undefined) argv = ['sh', '-c', `umask ${how.umask}; exec "$@"`, 'sh', ...argv];
  if (how.shellParent) argv = ['sh', '-c', '"$@"; exit $?', 'sh', ...argv];
  // --kill-child: when unshare dies, so does the namespace's pid 1 (no relay outlives a test)
  if (how.pidNamespace) argv = ['unshare', '--pid', '--fork', '--mount-proc', '--kill-child=SIGKILL', ...argv];
  return [argv[0], argv.slice(1)];
}

export interface Exited { code: number | null; signal: NodeJS.Signals | null }

export interface Running {
  child: ChildProcess;
  exited: Promise<Exited>;
  logFile: string;
  log(): string;
  /** The pid of the node process itself (under unshare or a shell: its child; in this namespace, not 1). */
  relayPid(): number;
}

export function startProcess(s: Setup, args: string[], how: HowToRun = {}, name = 'relay'): Running {
  const logFile = path.join(s.dir, `${name}-${Date.now()}-${Math.random().toString(36).slice(2, 6)}.log`);
  const out = fs.openSync(logFile, 'a');
  const [cmd, argv] = commandLine(args, how);
  const child = spawn(cmd, argv, { cwd: s.dir, env: childEnv({ ...s.env, ...how.env }), stdio: ['ignore', out, out] });
  fs.closeSync(out);
  const exited = new Promise<Exited>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  let relayPid: number | undefined;
  return {
    child, exited, logFile,
    log: () => fs.readFileSync(logFile, 'utf8'),
    relayPid: () => (relayPid ??= how.pidNamespace || how.shellParent ? childPidOf(child.pid!) : child.pid!),
  };
}

/** The one child of process `pid` (unshare --fork's or the shell's). */
function childPidOf(pid: number): number {
  const children = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  if (children.length !== 1) throw new Error(`expected one child of ${pid}, found ${children.join(',') || 'none'}`);
  return children[0];
}

/** Starts `serve` and resolves once the submission port answers. */
export async function serve(s: Setup, how: HowToRun = {}, port = s.port): Promise<Running> {
  const running = startProcess(s, ['serve'], how);
  const deadline = Date.now() + 20000;
  for (;;) {
    if (running.child.exitCode !== null || running.child.signalCode !== null) throw new Error(`serve exited early:\n${running.log()}`);
    if (await answers(port)) return running;
    if (Date.now() > deadline) throw new Error(`serve did not listen within 20 s:\n${running.log()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export function answers(port: number): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.on('error', () => resolve(false));
  });
}

/** Runs a CLI command to its end. */
export async function runCli(s: Setup, args: string[], how: HowToRun = {}): Promise<Exited & { output: string }> {
  const running = startProcess(s, args, how, 'cli');
  const exited = await running.exited;
  return { ...exited, output: running.log() };
}

/**
 * Sends `signal` to the relay itself (unshare blocks SIGTERM and SIGINT and would not pass them
 * on) and waits for its end: unshare exits only once its child has.
 */
export async function kill(running: Running | undefined, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  if (!running || running.child.exitCode !== null || running.child.signalCode !== null) return;
  try {
    process.kill(running.relayPid(), signal);
  } catch {
    running.child.kill('SIGKILL'); // no relay (any more): unshare alone
  }
  await running.exited;
}
