#!/usr/bin/env node
'use strict';
// Big queue (issue 20): what a large deferred queue costs the relay: memory, the time from
// start to the first accepted message, and the accept rate, against an empty queue.
//
// Run after `npm run build`: `node bench/big-queue.js --messages 100000 [--build DIR]`.
// 1. Writes --messages deferred messages into a new spool, directly in the spool's own format
//    (submitting a million through SMTP would take hours): for each, the Spool class of the
//    build under test makes the id (Spool.newId); the message file is the message bytes, then
//    the trailer from the build's own encodeTrailer (spool/trailer.js) with the envelope as
//    acceptance writes it (sender, recipient, size, CRC-32); beside it a state file <id>.json
//    as a deferral writes it (one attempt, `451 4.3.0` from the smarthost, one history line,
//    next attempt 1 to 2 hours away, so that none is due during the run); and, when the build
//    has a due index (spool/due-index.js), the index entry of its minute, through that class.
//    No fsync (the files are synced once at the end with `sync`). Each message is 1.2 KB.
// 2. Starts a "smarthost" on 127.0.0.1 that answers `451 4.3.0` to every RCPT TO, and the
//    relay of --build (`node bin/dkim-relay.js serve`, its own process) on 127.0.0.1, port 0,
//    with an RSA key for example.test, retry schedule 1h, log level info to a file.
// 3. From the moment the relay process is spawned, a client tries to submit a message every
//    20 ms until one gets 250: "first accepted" (the start-up time that matters to clients).
// 4. RSS of the relay process (VmRSS) 15 s after the first accepted message ("settled").
// 5. Accept rate: --clients connections (default 10) submit 1.2 KB messages back to back for
//    --seconds (default 30), each one signed, spooled, tried once (451) and deferred by the
//    relay meanwhile; messages per second with a 250, the relay's CPU time (user + system,
//    /proc) per accepted message (less at the mercy of other load on the machine than the
//    rate), and the peak RSS sampled every 500 ms.
// Figures go to stdout and are appended as a row to --out (default bench/BIG-QUEUE.md).
// The spool is removed at the end, unless it was given with --data DIR: then it is generated
// there only if DIR has no spool yet, and kept (to measure two builds on the same spool: the
// spool format is the same before and after issue 20; a build without the index ignores it).
//
//   node bench/big-queue.js [--messages N] [--build DIR] [--label TEXT] [--seconds S] [--clients C] [--dir PARENT] [--data DIR] [--out FILE]
const { spawn, execFileSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const zlib = require('node:zlib');

const args = parseArgs(process.argv.slice(2));
const ROOT = path.resolve(__dirname, '..');
const BUILD = path.resolve(args.build ?? ROOT);
const MESSAGES = Number(args.messages ?? 100_000);
const SECONDS = Number(args.seconds ?? 30);
const CLIENTS = Number(args.clients ?? 10);
const OUT = path.resolve(args.out ?? path.join(ROOT, 'bench', 'BIG-QUEUE.md'));
const LABEL = args.label ?? path.basename(BUILD);
const PARENT = path.resolve(args.dir ?? os.tmpdir());
/** Give up waiting for the first accepted message after this long. */
const START_TIMEOUT_MS = Number(args['start-timeout'] ?? 900) * 1000;

function parseArgs(list) {
  const out = {};
  for (let i = 0; i < list.length; i += 2) {
    if (!list[i].startsWith('--')) throw new Error(`unexpected argument ${list[i]}; see the comment at the top of ${__filename}`);
    out[list[i].slice(2)] = list[i + 1];
  }
  return out;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * The relay's own process: `bin/dkim-relay.js serve` starts it as its child on a Node.js
 * without process.execve (Node 20), and replaces itself on one with it (same pid).
 */
function relayPid(pid) {
  try {
    const children = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
    return children.length ? relayPid(Number(children[0])) : pid;
  } catch {
    return pid;
  }
}

const TICK_MS = 1000 / Number(execFileSync('getconf', ['CLK_TCK']).toString().trim());

/** user + system CPU of the relay process, in ms. */
function cpuMs(spawnedPid) {
  const stat = fs.readFileSync(`/proc/${relayPid(spawnedPid)}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * TICK_MS;
}

function rssMb(spawnedPid) {
  const pid = relayPid(spawnedPid);
  try {
    const line = fs.readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('VmRSS:'));
    return Number(line.split(/\s+/)[1]) / 1024;
  } catch {
    return NaN;
  }
}

function messageBytes(i) {
  const body = `Message ${i} of the big queue bench.\r\n` + `${'z'.repeat(70)}\r\n`.repeat(12);
  return Buffer.from([
    'From: Bench <bench@example.test>', 'To: rcpt@dest.test', `Subject: big queue ${i}`,
    'Date: Thu, 03 Dec 2026 10:00:00 +0000', `Message-ID: <big-${i}-${crypto.randomUUID()}@example.test>`,
    'MIME-Version: 1.0', 'Content-Type: text/plain; charset=utf-8', '', body,
  ].join('\r\n'), 'latin1');
}

/** Writes `count` deferred messages in the spool format of BUILD (see the top of this file). */
function generate(dataDir, count) {
  const { Spool } = require(path.join(BUILD, 'dist/spool/spool.js'));
  const { encodeTrailer } = require(path.join(BUILD, 'dist/spool/trailer.js'));
  const indexModule = path.join(BUILD, 'dist/spool/due-index.js');
  const { DueIndex, bucketOf } = fs.existsSync(indexModule) ? require(indexModule) : {};
  const spool = new Spool(dataDir);
  const index = DueIndex ? new DueIndex(dataDir) : null;
  fs.mkdirSync(spool.queueDir, { recursive: true, mode: 0o700 });
  const now = Date.now();
  const reply = '451 4.3.0 try again later';
  for (let i = 0; i < count; i++) {
    const id = spool.newId();
    const bytes = messageBytes(i);
    const receivedAt = new Date(now - 600_000).toISOString();
    const first = {
      id, receivedAt, sender: 'bench@example.test',
      recipients: [{ address: `rcpt${i}@dest.test`, status: 'queued', attempts: 0, nextAttemptAt: now - 600_000 }],
      size: bytes.length, crc32: zlib.crc32(bytes), client: { address: '127.0.0.1' },
      signing: { domain: 'example.test', selectors: ['s1'] }, declared: {},
    };
    const next = now + 3600_000 + Math.floor(Math.random() * 3600_000);
    const state = {
      ...first,
      recipients: [{ ...first.recipients[0], attempts: 1, nextAttemptAt: next, lastReply: reply, lastAttemptAt: now - 599_000, remoteHost: 'smarthost.bench' }],
      history: [{ at: now - 599_000, recipients: [first.recipients[0].address], outcome: 'deferred', reply, host: '127.0.0.1', ip: '127.0.0.1',
        class: 'transient', explanation: 'The receiving server had a temporary problem and asked to try again later; the relay does so.' }],
    };
    // the index entry first, as the spool itself does
    if (index) index.add(bucketOf(next), id);
    fs.writeFileSync(path.join(spool.queueDir, `${id}.eml`), Buffer.concat([bytes, encodeTrailer({ ...first, dkimSignatures: '' })]), { mode: 0o600 });
    fs.writeFileSync(path.join(spool.queueDir, `${id}.json`), JSON.stringify(state), { mode: 0o600 });
    if (i % 100_000 === 99_999) console.error(`generated ${i + 1}`);
  }
  if (index) {
    fs.mkdirSync(index.dir, { recursive: true, mode: 0o700 });
    fs.writeFileSync(path.join(index.dir, 'state.json'), JSON.stringify({ clean: true, bootId: '' }));
  }
  execFileSync('sync');
}

/** The smarthost: 451 to every recipient. */
async function startDeferringSmarthost() {
  const server = net.createServer((socket) => {
    socket.on('error', () => undefined);
    socket.write('220 smarthost.bench ESMTP\r\n');
    let buffer = '';
    socket.on('data', (d) => {
      buffer += d.toString('latin1');
      let end;
      while ((end = buffer.indexOf('\r\n')) !== -1) {
        const line = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === 'EHLO') socket.write('250-smarthost.bench\r\n250-PIPELINING\r\n250 8BITMIME\r\n');
        else if (verb === 'RCPT') socket.write('451 4.3.0 try again later\r\n');
        else if (verb === 'QUIT') socket.end('221 2.0.0 bye\r\n');
        else socket.write('250 2.0.0 ok\r\n');
      }
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

function relayEnv(dir, dataDir, smarthostPort) {
  return {
    ...process.env,
    RELAY_SUBMISSION_HOST: '127.0.0.1', RELAY_SUBMISSION_PORT: '0',
    RELAY_KEYS_DIR: path.join(dir, 'keys'), RELAY_DATA_DIR: dataDir,
    RELAY_USERS_FILE: path.join(dir, 'users.json'), RELAY_HELO_NAME: 'relay.example.test',
    RELAY_SMARTHOST: `127.0.0.1:${smarthostPort}`, RELAY_RETRY_SCHEDULE: '1h',
    RELAY_KEYS_CHECK_INTERVAL: '0', RELAY_LOG_LEVEL: 'info',
  };
}

/** A minimal SMTP client: sends lines, waits for complete replies. */
async function connect(port) {
  const socket = net.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.1' });
  socket.setNoDelay(true);
  let buffer = '';
  const replies = [];
  let wake = null;
  socket.on('data', (d) => {
    buffer += d.toString('latin1');
    let m;
    while ((m = /^(\d{3}) [^\r\n]*\r\n/m.exec(buffer))) {
      replies.push(buffer.slice(0, m.index + m[0].length));
      buffer = buffer.slice(m.index + m[0].length);
    }
    wake?.();
  });
  socket.on('error', () => wake?.());
  socket.on('close', () => wake?.());
  await new Promise((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject); });
  const reply = () => new Promise((resolve, reject) => {
    const check = () => {
      if (replies.length) { wake = null; resolve(replies.shift()); } else if (socket.destroyed) reject(new Error('connection closed'));
    };
    wake = check;
    check();
  });
  const command = async (line) => { socket.write(line + '\r\n'); return reply(); };
  return { socket, reply, command };
}

async function session(port) {
  const c = await connect(port);
  const greeting = await c.reply();
  if (!greeting.startsWith('220')) throw new Error(`greeting: ${greeting.trim()}`);
  await c.command('EHLO bench.example.test');
  return c;
}

async function sendOne(c, i) {
  await c.command('MAIL FROM:<bench@example.test>');
  await c.command(`RCPT TO:<new${i}@dest.test>`);
  await c.command('DATA');
  const bytes = messageBytes(i).toString('latin1');
  return c.command(`${bytes}.`);
}

/** The relay's submission port, from its log. */
async function portOf(logFile, child) {
  for (;;) {
    const text = fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : '';
    const line = text.split('\n').find((l) => l.includes('submission listening'));
    if (line) return JSON.parse(line).starttls;
    if (child.exitCode !== null) throw new Error(`the relay exited; its log: ${logFile}\n${text.slice(-2000)}`);
    await sleep(10);
  }
}

async function main() {
  const dir = fs.mkdtempSync(path.join(PARENT, 'dkim-relay-big-queue-'));
  const keys = path.join(dir, 'keys', 'example.test');
  fs.mkdirSync(keys, { recursive: true, mode: 0o700 });
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  fs.writeFileSync(path.join(keys, 's1.key'), privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  const smarthost = await startDeferringSmarthost();
  const result = { label: LABEL, build: BUILD, messages: MESSAGES, clients: CLIENTS, seconds: SECONDS };
  const dataDir = args.data ? path.resolve(args.data) : path.join(dir, 'data');
  let child = null;
  try {
    const g0 = Date.now();
    if (!fs.existsSync(path.join(dataDir, 'spool'))) generate(dataDir, MESSAGES);
    else result.reused = dataDir;
    result.generateSeconds = Math.round((Date.now() - g0) / 100) / 10;
    result.queued = fs.readdirSync(path.join(dataDir, 'spool')).filter((n) => n.endsWith('.eml')).length;
    result.loadBefore = os.loadavg().map((l) => l.toFixed(2)).join(' ');

    const logFile = path.join(dir, 'relay.log');
    const log = fs.openSync(logFile, 'w');
    const t0 = performance.now();
    child = spawn(process.execPath, ['bin/dkim-relay.js', 'serve'], { cwd: BUILD, env: relayEnv(dir, dataDir, smarthost.address().port), stdio: ['ignore', log, log] });
    fs.closeSync(log);
    const port = await portOf(logFile, child);
    result.listeningMs = Math.round(performance.now() - t0);
    let peakDuringStart = 0;
    for (let i = 0; ; i++) {
      peakDuringStart = Math.max(peakDuringStart, rssMb(child.pid) || 0);
      if (performance.now() - t0 > START_TIMEOUT_MS) throw new Error(`no message accepted within ${START_TIMEOUT_MS / 1000} s`);
      try {
        const c = await session(port);
        const r = await sendOne(c, i);
        c.socket.destroy();
        if (r.startsWith('250')) break;
      } catch {
        // not answering yet
      }
      await sleep(20);
    }
    result.firstAcceptedMs = Math.round(performance.now() - t0);
    const settleUntil = performance.now() + 15_000;
    while (performance.now() < settleUntil) {
      peakDuringStart = Math.max(peakDuringStart, rssMb(child.pid) || 0);
      await sleep(500);
    }
    result.rssSettledMb = Math.round(rssMb(child.pid));
    result.rssPeakStartMb = Math.round(peakDuringStart);

    // the accept rate
    let accepted = 0;
    let refused = 0;
    let peak = 0;
    const end = performance.now() + SECONDS * 1000;
    const sampler = setInterval(() => (peak = Math.max(peak, rssMb(child.pid) || 0)), 500);
    const cpu0 = cpuMs(child.pid);
    let n = 1_000_000;
    await Promise.all(Array.from({ length: CLIENTS }, async () => {
      let c = await session(port);
      while (performance.now() < end) {
        const r = await sendOne(c, n++).catch(() => 'closed');
        if (r.startsWith('250')) accepted++;
        else {
          refused++;
          c.socket.destroy();
          c = await session(port);
        }
      }
      await c.command('QUIT').catch(() => undefined);
      c.socket.destroy();
    }));
    clearInterval(sampler);
    result.cpuMsPerMessage = Math.round(((cpuMs(child.pid) - cpu0) / Math.max(1, accepted)) * 100) / 100;
    result.acceptPerSecond = Math.round(accepted / SECONDS);
    result.refused = refused;
    result.rssPeakLoadMb = Math.round(peak);
    result.loadAfter = os.loadavg().map((l) => l.toFixed(2)).join(' ');
    const logText = fs.readFileSync(logFile, 'utf8');
    result.deliveryAttempts = (logText.match(/"msg":"delivery attempt"/g) ?? []).length;
  } finally {
    if (child && child.exitCode === null) {
      child.kill('SIGTERM');
      await Promise.race([new Promise((r) => child.once('exit', r)), sleep(30_000)]);
      if (child.exitCode === null) child.kill('SIGKILL');
    }
    smarthost.close();
    if (!args.keep) fs.rmSync(dir, { recursive: true, force: true });
  }
  console.log(JSON.stringify(result));
  const rev = (() => {
    try {
      return execFileSync('git', ['-C', BUILD, 'log', '-1', '--format=%h %s'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim().slice(0, 90);
    } catch {
      return '?';
    }
  })();
  if (!fs.existsSync(OUT)) fs.writeFileSync(OUT, '# Big queue\n\n');
  fs.appendFileSync(OUT, `| ${new Date().toISOString().slice(0, 16).replace('T', ' ')} | ${LABEL} (${rev}) | ${result.queued} | ${result.listeningMs} | ${result.firstAcceptedMs} | ${result.rssSettledMb} | ${result.rssPeakStartMb} | ${result.acceptPerSecond} | ${result.cpuMsPerMessage} | ${result.rssPeakLoadMb} | ${result.deliveryAttempts} | ${result.generateSeconds} | ${result.loadBefore} / ${result.loadAfter} |\n`);
}

main().catch((err) => {
  console.error(err.stack || String(err));
  process.exit(1);
});
