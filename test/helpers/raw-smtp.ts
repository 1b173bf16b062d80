// A raw SMTP client for hostile and broken input: sends exactly the bytes it is given and
// reads the replies as they come, so a test can see every reply line the server writes.
import net from 'node:net';

export interface RawSession {
  /** Sends bytes as they are (no CRLF added). */
  write(data: string | Buffer): void;
  /** Sends a line with CRLF and waits for its complete (possibly multi-line) reply. */
  command(line: string | Buffer): Promise<string>;
  /** Waits for the next complete reply. */
  reply(timeoutMs?: number): Promise<string>;
  /** Every reply line received so far. */
  lines: string[];
  closed: Promise<void>;
  isClosed(): boolean;
  end(): void;
}

export async function connectRaw(port: number, localAddress = '127.0.0.1', host = '127.0.0.1'): Promise<RawSession> {
  const socket = net.connect({ host, port, localAddress });
  let buffer = '';
  const lines: string[] = [];
  const replies: string[] = [];
  let waiter: (() => void) | null = null;
  let closed = false;
  const closedPromise = new Promise<void>((resolve) => socket.on('close', () => {
    closed = true;
    waiter?.();
    resolve();
  }));
  socket.on('error', () => undefined);
  socket.on('data', (chunk: Buffer) => {
    buffer += chunk.toString('latin1');
    let i;
    let current: string[] = [];
    while ((i = buffer.indexOf('\r\n')) !== -1) {
      const line = buffer.slice(0, i);
      buffer = buffer.slice(i + 2);
      lines.push(line);
      current.push(line);
      if (/^\d{3} /.test(line) || !/^\d{3}-/.test(line)) {
        replies.push(current.join('\n'));
        current = [];
      }
    }
    if (current.length) buffer = current.map((l) => l + '\r\n').join('') + buffer;
    waiter?.();
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });

  const reply = (timeoutMs = 10000) => new Promise<string>((resolve, reject) => {
    const check = () => {
      if (replies.length) {
        waiter = null;
        clearTimeout(timer);
        resolve(replies.shift()!);
      } else if (closed) {
        waiter = null;
        clearTimeout(timer);
        reject(new Error('connection closed without a reply'));
      }
    };
    const timer = setTimeout(() => {
      waiter = null;
      reject(new Error(`no reply within ${timeoutMs} ms`));
    }, timeoutMs);
    waiter = check;
    check();
  });

  return {
    write: (data) => {
      if (!socket.destroyed) socket.write(data);
    },
    command: (line) => {
      if (!socket.destroyed) socket.write(Buffer.concat([Buffer.isBuffer(line) ? line : Buffer.from(line, 'latin1'), Buffer.from('\r\n')]));
      return reply();
    },
    reply,
    lines,
    closed: closedPromise,
    isClosed: () => closed,
    end: () => socket.destroy(),
  };
}

/** A reply line as RFC 5321 + RFC 2034 want it: code, and for 4xx/5xx an enhanced status code. */
export function isWellFormedReply(line: string): boolean {
  const m = /^(\d)(\d\d)([ -])(.*)$/.exec(line);
  if (!m) return false;
  // RFC 2034 section 4: replies to HELO/EHLO (and the greeting) carry no enhanced code
  if (/\b(EHLO|HELO)\b/.test(m[4])) return true;
  if (m[1] === '4' || m[1] === '5') return /^[45]\.\d{1,3}\.\d{1,3}( |$)/.test(m[4]);
  return true;
}
