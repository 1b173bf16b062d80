// `dkim-relay queue`: the spool for people. list and show read the spool files directly
// (every file is replaced by rename, so a running relay never shows half a state). retry and
// delete change the queue: while a relay holds the spool lock they are handed to it as
// request files (<dataDir>/control/), which it applies within a second, so only one process
// ever writes the spool; with no relay running they edit the spool themselves, under the lock.
// list streams: one message read and printed at a time, so a queue of a million prints
// without holding a million envelopes (only their names, to print them in order).
import fsp from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { queueBounce } from '../bounce/bounce';
import { CliContext, CliError, Command, UsageError } from '../cli-context';
import { KeyStore } from '../dkim/key-store';
import { heloName } from '../identity/helo-name';
import { createLogger } from '../log';
import { ControlReply, ControlRequest, sendControlRequest } from '../spool/control';
import { Spool, SpoolEnvelope } from '../spool/spool';
import { SpoolLock } from '../spool/spool-lock';

const USAGE = [
  'usage: dkim-relay queue list [--json]',
  '       dkim-relay queue show ID [--json]',
  '       dkim-relay queue retry ID|--all [--json]',
  '       dkim-relay queue delete ID [--bounce] [--json]',
].join('\n');

export const queueCommand: Command = async (args, ctx) => {
  const { values, positionals } = (() => {
    try {
      return parseArgs({
        args,
        options: { json: { type: 'boolean' }, all: { type: 'boolean' }, bounce: { type: 'boolean' } },
        allowPositionals: true,
        strict: true,
      });
    } catch (err) {
      throw new UsageError(`${(err as Error).message}\n${USAGE}`);
    }
  })();
  const [action, id, ...rest] = positionals;
  if (rest.length) throw new UsageError(`unexpected "${rest.join(' ')}"\n${USAGE}`);
  const spool = new Spool(ctx.config.dataDir);
  const json = !!values.json;
  switch (action) {
    case 'list':
      if (id) throw new UsageError(`queue list takes no ID\n${USAGE}`);
      return list(spool, ctx, json);
    case 'show':
      if (!id) throw new UsageError(`queue show needs a message ID (see queue list)\n${USAGE}`);
      return show(spool, id, ctx, json);
    case 'retry':
      if (!id === !values.all) throw new UsageError(`queue retry needs a message ID or --all, not both\n${USAGE}`);
      return change(spool, { action: 'retry', id, all: !!values.all }, ctx, json);
    case 'delete':
      if (!id) throw new UsageError(`queue delete needs a message ID (see queue list)\n${USAGE}`);
      return change(spool, { action: 'delete', id, bounce: !!values.bounce }, ctx, json);
    default:
      throw new UsageError(`${action ? `unknown queue action "${action}"` : 'queue needs an action'}\n${USAGE}`);
  }
};

function age(receivedAt: string, now = Date.now()): string {
  const s = Math.max(0, Math.round((now - Date.parse(receivedAt)) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 172800) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86400)}d`;
}

function nextAttempt(envelope: SpoolEnvelope): number | null {
  const queued = envelope.recipients.filter((r) => r.status === 'queued');
  return queued.length ? Math.min(...queued.map((r) => r.nextAttemptAt)) : null;
}

function summary(e: SpoolEnvelope) {
  const next = nextAttempt(e);
  return {
    id: e.id,
    receivedAt: e.receivedAt,
    age: age(e.receivedAt),
    sender: e.sender,
    size: e.size,
    dsn: e.dsn ?? null,
    attempts: Math.max(0, ...e.recipients.map((r) => r.attempts)),
    nextAttemptAt: next === null ? null : new Date(next).toISOString(),
    recipients: e.recipients.map((r) => ({
      address: r.address, status: r.status, attempts: r.attempts, lastReply: r.lastReply ?? null,
      nextAttemptAt: r.status === 'queued' ? new Date(r.nextAttemptAt).toISOString() : null,
    })),
  };
}

async function list(spool: Spool, ctx: CliContext, json: boolean): Promise<number> {
  let count = 0;
  const now = Date.now();
  for await (const e of spool.envelopes()) {
    const s = summary(e);
    if (json) {
      // a JSON array written element by element, as JSON.stringify(all, null, 2) would write it
      const element = JSON.stringify(s, null, 2).replace(/\n/g, '\n  ');
      await write(ctx, `${count ? ',\n' : '[\n'}  ${element}`);
    } else {
      const next = nextAttempt(e);
      const when = next === null ? '-' : next <= now ? 'now' : `in ${age(new Date(now - (next - now)).toISOString(), now)}`;
      await write(ctx, `${e.id}  ${s.age.padStart(4)}  ${e.sender || '<>'}${e.dsn ? ` (${e.dsn === 'failed' ? 'bounce' : 'delay notice'})` : ''}  attempts ${s.attempts}  next ${when}\n` +
        e.recipients.map((r) => `    ${r.address}  ${r.status}  attempts ${r.attempts}${r.lastReply ? `  ${r.lastReply}` : ''}\n`).join(''));
    }
    count++;
  }
  if (json) ctx.stdout.write(count ? '\n]\n' : '[]\n');
  else ctx.stdout.write(count ? `${count} message(s)\n` : 'the queue is empty\n');
  return 0;
}

/** Writes, waiting when the reader is slower (a pipe to `less`), so that a long list is not buffered whole. */
function write(ctx: CliContext, text: string): Promise<void> | void {
  if (ctx.stdout.write(text)) return;
  const stream = ctx.stdout as NodeJS.WritableStream;
  if (typeof stream.once !== 'function') return;
  return new Promise((resolve) => stream.once('drain', () => resolve()));
}

async function show(spool: Spool, id: string, ctx: CliContext, json: boolean): Promise<number> {
  const envelope = await spool.read(id);
  if (!envelope) throw new CliError(`no message ${id} in the queue (${spool.queueDir}); see \`dkim-relay queue list\``);
  let headers = '';
  try {
    headers = (await spool.readHeaders(id)).toString('utf8');
  } catch {
    headers = '(the message file is gone: it was just delivered or deleted)\n';
  }
  if (json) {
    ctx.stdout.write(JSON.stringify({ ...summary(envelope), client: envelope.client, signing: envelope.signing ?? null, history: envelope.history ?? [], headers }, null, 2) + '\n');
    return 0;
  }
  const s = summary(envelope);
  const out = [
    `id:          ${envelope.id}`,
    `received:    ${envelope.receivedAt} (${s.age} ago) from ${envelope.client.address}${envelope.client.user ? ` (user ${envelope.client.user})` : ''}`,
    `sender:      ${envelope.sender || '<> (null sender)'}`,
    `size:        ${envelope.size} bytes`,
    `signed:      ${envelope.signing ? `${envelope.signing.domain} (${envelope.signing.selectors.join(', ')})` : 'no'}`,
    'recipients:',
    ...envelope.recipients.map((r) => `  ${r.address}  ${r.status}  attempts ${r.attempts}` +
      `${r.status === 'queued' ? `  next ${new Date(r.nextAttemptAt).toISOString()}` : ''}${r.lastReply ? `\n    last reply: ${r.lastReply}` : ''}`),
    'history:',
    ...(envelope.history?.length ? envelope.history.map((h) => `  ${new Date(h.at).toISOString()}  ${h.outcome}  ${h.recipients.join(', ')}` +
      `${h.host ? `  ${h.host}${h.ip ? ` [${h.ip}]` : ''}` : ''}  ${h.reply}` +
      `${h.class ? `\n    ${h.class}: ${h.explanation}${h.fix ? ` Fix: ${h.fix}` : ''}` : ''}`) : ['  (no attempt yet)']),
    'headers:',
    headers.replace(/\r\n/g, '\n').replace(/\n$/, '').split('\n').map((l) => `  ${l}`).join('\n'),
  ];
  ctx.stdout.write(out.join('\n') + '\n');
  return 0;
}

async function change(spool: Spool, request: ControlRequest, ctx: CliContext, json: boolean): Promise<number> {
  let reply: ControlReply;
  // The lock says whether a relay runs (in this PID namespace or another, on this data dir).
  // Taken, it is kept for the edit, so no relay can start in between; a relay starting right
  // now waits for it (Spool.lock).
  if (await spool.tryLock(`dkim-relay queue ${request.action}`)) {
    reply = await changeOffline(spool, request, ctx);
  } else {
    reply = await sendControlRequest(ctx.config.dataDir, request).catch((err: Error) => {
      throw new CliError(`${err.message}; is the relay that holds the spool (${SpoolLock.describeHolder(ctx.config.dataDir)}) stuck?`);
    });
  }
  if (json) ctx.stdout.write(JSON.stringify(reply) + '\n');
  else (reply.ok ? ctx.stdout : ctx.stderr).write(`${reply.ok ? '' : 'dkim-relay: '}${reply.message}\n`);
  return reply.ok ? 0 : 1;
}

/** No relay runs: edit the spool directly, holding its lock (taken by the caller) meanwhile. */
async function changeOffline(spool: Spool, request: ControlRequest, ctx: CliContext): Promise<ControlReply> {
  try {
    if (request.action === 'retry') {
      const one = request.all ? null : await spool.read(request.id ?? '');
      if (!request.all && !one) return { ok: false, message: `no message ${request.id} in the queue` };
      const targets = one ? [one] : spool.envelopes();
      const now = Date.now();
      const ids: string[] = [];
      for await (const e of targets) {
        const queued = e.recipients.filter((r) => r.status === 'queued');
        if (!queued.length) continue;
        for (const r of queued) r.nextAttemptAt = now;
        await spool.update(e);
        ids.push(e.id);
      }
      return { ok: true, ids, message: `${ids.length} message(s) will be tried as soon as the relay runs (it is not running now)` };
    }
    const envelope = await spool.read(request.id);
    if (!envelope) return { ok: false, message: `no message ${request.id} in the queue` };
    if (request.bounce) {
      await fsp.mkdir(spool.tmpDir, { recursive: true, mode: 0o700 });
      const waiting = envelope.recipients.filter((r) => r.status === 'queued' || (r.status === 'failed' && !r.notified));
      const log = createLogger('silent');
      await queueBounce(envelope, waiting.map((r) => ({
        address: r.address, action: 'failed' as const,
        reply: r.status === 'queued' ? 'deleted from the queue by the administrator' : r.lastReply ?? 'failed',
        remoteHost: r.remoteHost, lastAttemptAt: r.lastAttemptAt,
      })), 'failed', { spool, keys: new KeyStore(ctx.config.keysDir), heloName: heloName(ctx.config), log });
    }
    await spool.remove(envelope.id);
    return { ok: true, ids: [envelope.id], message: `message ${envelope.id} deleted${request.bounce ? ', its sender gets a bounce at the next start' : ''}` };
  } finally {
    await spool.unlock();
  }
}
