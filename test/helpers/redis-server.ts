// A real redis-server (Debian's) for tests: on a unix socket in a folder of its own (no TCP
// port at all, so nothing collides with other tests), without persistence. It can be killed
// (SIGKILL, as a crash) and started again on the same socket.
import { ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export interface TestRedis {
  /** The socket path: what redis.url takes. */
  url: string;
  /** Kills the server at once (SIGKILL); its data is gone. */
  kill(): Promise<void>;
  /** Starts it again on the same socket (empty). */
  start(): Promise<void>;
  stop(): Promise<void>;
}

export async function startRedis(): Promise<TestRedis> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dkim-relay-redis-'));
  const socket = path.join(dir, 'redis.sock');
  let child: ChildProcess | null = null;

  const start = async () => {
    child = spawn('redis-server', [
      '--port', '0', '--unixsocket', socket, '--unixsocketperm', '700',
      '--save', '', '--appendonly', 'no', '--dir', dir, '--loglevel', 'warning',
    ], { stdio: ['ignore', 'ignore', 'inherit'] });
    const deadline = Date.now() + 10_000;
    while (!(await answers(socket))) {
      if (Date.now() > deadline) throw new Error('redis-server did not answer PING within 10 s (is the redis-server package installed?)');
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const kill = async () => {
    const c = child;
    child = null;
    if (!c || c.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      c.once('exit', () => resolve());
      c.kill('SIGKILL');
    });
    fs.rmSync(socket, { force: true });
  };
  await start();
  return {
    url: socket,
    kill,
    start,
    async stop() {
      await kill();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Whether a redis-server answers PING on the socket. */
function answers(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(socket);
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.once('error', () => done(false));
    s.once('connect', () => s.write('PING\r\n'));
    s.once('data', (d) => done(d.toString().startsWith('+PONG')));
    s.setTimeout(1000, () => done(false));
  });
}
