#!/usr/bin/env node
'use strict';
// Header drip (issue 15, section 3): what a client costs the relay when it sends a large header
// section in tiny writes, and how long another client waits meanwhile.
//
// Run with `npx node` (the Node.js 24 of the devDependencies). Starts a built relay (`node bin/dkim-relay.js serve` from --build, default: this checkout,
// which must be built) as its own process on 127.0.0.1, port 0, with an RSA key for
// example.test and a smarthost that refuses connections (so delivery costs next to nothing).
// Then, for each write size (40 bytes, and 64 KB), one client sends a message whose header
// section is --size bytes (default 1,000,000: just below submission.maxHeaderSize, 1 MB) in
// writes of that size, with Nagle off and each write handed to the kernel before the next
// (small writes then wait --pause-ms, default 1, as the attack did: unpaced, the relay reads
// them in 64 KB batches and the drip costs nothing),
// first alone, then again while a second client (also 127.0.0.1) submits a small message
// every 200 ms. Measured:
// - relay CPU: user + system time of the relay process (/proc/PID/stat) from the dripping
//   client's MAIL FROM until its 250 (or refusal), in the run alone (in the second run it
//   includes the other client's submissions);
// - the wall time of that DATA, and the second client's submission latency (median, max).
// Figures go to stdout and are appended as a section to --out (default bench/HEADER-DRIP.md).
//
//   npx node bench/header-drip.js [--build DIR] [--label TEXT] [--size BYTES] [--pause-ms MS] [--out FILE]
const { spawn, execFileSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const args = parseArgs(process.argv.slice(2));
const ROOT = path.resolve(__dirname, '..');
const BUILD = path.resolve(args.build ?? ROOT);
const SIZE = Number(args.size ?? 1_000_000);
const OUT = path.resolve(args.out ?? path.join(ROOT, 'bench', 'HEADER-DRIP.md'));
const LABEL = args.label ?? 'run';
const WRITES = [40, 65536];
/** Pause after each small write, so that (as in the attack) the relay reads them one by one. */
const PAUSE_MS = Number(args['pause-ms'] ?? 1);
const TICK_MS = 1000 / Number(execFileSync('getconf', ['CLK_TCK']).toString().trim());

function parseArgs(list) {
  const out = {};
  for (let i = 0; i < list.length; i += 2) {
    if (!list[i].startsWith('--')) throw new Error(`unexpected argument ${list[i]}; see the comment at the top of ${__filename}`);
    out[list[i].slice(2)] = list[i + 1];
  }
  return out;
}

/** user + system CPU of a process, in ms. */
function cpuMs(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * TICK_MS;
}

async function closedPort() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function startRelay(dir) {
  const keys = path.join(dir, 'keys', 'example.test');
  fs.mkdirSync(keys, { recursive: true, mode: 0o700 });
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  fs.writeFileSync(path.join(keys, 's1.key'), privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  const env = {
    ...process.env,
    RELAY_SUBMISSION_HOST: '127.0.0.1', RELAY_SUBMISSION_PORT: '0',
    RELAY_KEYS_DIR: path.join(dir, 'keys'), RELAY_DATA_DIR: path.join(dir, 'data'),
    RELAY_USERS_FILE: path.join(dir, 'users.json'), RELAY_HELO_NAME: 'relay.example.test',
    RELAY_SMARTHOST: `127.0.0.1:${await closedPort()}`, RELAY_RETRY_SCHEDULE: '1h',
    RELAY_KEYS_CHECK_INTERVAL: '0', RELAY_LOG_LEVEL: 'info',
  };
  const log = fs.openSync(path.join(dir, 'relay.log'), 'w');
  const child = spawn(process.execPath, ['bin/dkim-relay.js', 'serve'], { cwd: BUILD, env, stdio: ['ignore', log, log] });
  const deadline = Date.now() + 30_000;
  for (;;) {
    const text = fs.readFileSync(path.join(dir, 'relay.log'), 'utf8');
    const line = text.split('\n').find((l) => l.includes('submission listening'));
    if (line) return { child, port: JSON.parse(line).starttls };
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`the relay did not start; its log: ${path.join(dir, 'relay.log')}\n${text}`);
    await new Promise((r) => setTimeout(r, 100));
  }
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
  await new Promise((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject); });
  const reply = () => new Promise((resolve, reject) => {
    const check = () => {
      if (replies.length) { wake = null; resolve(replies.shift()); } else if (socket.destroyed) reject(new Error('connection closed'));
    };
    wake = check;
    check();
  });
  const write = (data) => new Promise((resolve, reject) => socket.write(data, (err) => (err ? reject(err) : resolve())));
  const command = async (line) => { await write(line + '\r\n'); return reply(); };
  return { socket, reply, write, command };
}

function headerSection(size) {
  const top = [
    'From: Bench <bench@example.test>', 'To: rcpt@dest.test', 'Subject: header drip',
    'Date: Thu, 03 Dec 2026 10:00:00 +0000', `Message-ID: <${crypto.randomUUID()}@example.test>`,
  ].join('\r\n') + '\r\n';
  const lines = [top];
  let length = top.length;
  for (let i = 0; length + 100 < size; i++) {
    const line = `X-Filler-${String(i).padStart(6, '0')}: ${'x'.repeat(60)}\r\n`;
    lines.push(line);
    length += line.length;
  }
  const last = `X-Last: ${'y'.repeat(Math.max(1, size - length - 12))}\r\n`;
  return Buffer.from(lines.join('') + last + '\r\n', 'latin1');
}

async function submitSmall(port) {
  const started = performance.now();
  const c = await connect(port);
  try {
    await c.reply();
    await c.command('EHLO probe.example.test');
    await c.command('MAIL FROM:<probe@example.test>');
    await c.command('RCPT TO:<rcpt@dest.test>');
    await c.command('DATA');
    const r = await c.command('From: <probe@example.test>\r\nTo: rcpt@dest.test\r\nSubject: probe\r\n\r\nhello\r\n.');
    if (!r.startsWith('250')) throw new Error(`probe refused: ${r.trim()}`);
    await c.command('QUIT').catch(() => undefined);
  } finally {
    c.socket.destroy();
  }
  return performance.now() - started;
}

async function dripRun(relay, writeSize, withProbes) {
  const header = headerSection(SIZE);
  const c = await connect(relay.port);
  await c.reply();
  await c.command('EHLO drip.example.test');
  const probes = [];
  let dripping = withProbes;
  const prober = (async () => {
    while (dripping) {
      const t = performance.now();
      probes.push(await submitSmall(relay.port));
      await new Promise((r) => setTimeout(r, Math.max(0, 200 - (performance.now() - t))));
    }
  })();
  const cpu0 = cpuMs(relay.child.pid);
  const t0 = performance.now();
  await c.command('MAIL FROM:<bench@example.test>');
  await c.command('RCPT TO:<rcpt@dest.test>');
  await c.command('DATA');
  for (let i = 0; i < header.length; i += writeSize) {
    await c.write(header.subarray(i, i + writeSize));
    // Paced, as the attack was: writes sent at once would reach the relay in large reads.
    if (writeSize < 1024 && PAUSE_MS) await new Promise((r) => setTimeout(r, PAUSE_MS));
  }
  const final = await c.command('body line\r\n.');
  const wall = performance.now() - t0;
  const cpu = cpuMs(relay.child.pid) - cpu0;
  dripping = false;
  await prober;
  await c.command('QUIT').catch(() => undefined);
  c.socket.destroy();
  probes.sort((a, b) => a - b);
  return {
    writeSize, headerBytes: header.length, reply: final.trim(), cpuMs: Math.round(cpu), wallMs: Math.round(wall),
    probes: probes.length, probeMedianMs: Math.round(probes[Math.floor(probes.length / 2)] ?? NaN), probeMaxMs: Math.round(probes[probes.length - 1] ?? NaN),
  };
}

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dkim-relay-header-drip-'));
  const relay = await startRelay(dir);
  const results = [];
  try {
    await submitSmall(relay.port); // warm-up
    for (const size of WRITES) {
      // twice: alone for the relay's CPU, then with the other client (whose submissions cost CPU too)
      const alone = await dripRun(relay, size, false);
      const probed = await dripRun(relay, size, true);
      const r = { ...alone, probes: probed.probes, probeMedianMs: probed.probeMedianMs, probeMaxMs: probed.probeMaxMs, cpuWithProbesMs: probed.cpuMs };
      console.log(JSON.stringify(r));
      results.push(r);
    }
  } finally {
    relay.child.kill('SIGTERM');
    await new Promise((r) => relay.child.once('exit', r));
    fs.rmSync(dir, { recursive: true, force: true });
  }
  let rev = '';
  try {
    rev = execFileSync('git', ['log', '-1', '--format=%h %s'], { cwd: BUILD }).toString().trim();
    if (execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: BUILD }).toString().trim()) rev += ', plus uncommitted changes';
  } catch {
    rev = 'not a git checkout';
  }
  const load = fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  const section = [
    '', `## ${LABEL}`, '',
    `${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC, build ${BUILD === ROOT ? 'this checkout' : BUILD} (${rev}), load average ${load}; ` +
      `\`npx node bench/header-drip.js${process.argv.slice(2).map((a) => ' ' + a).join('')}\``, '',
    '| writes of | header bytes | reply | relay CPU ms | DATA wall ms | again with the other client: its submissions, median ms, max ms; relay CPU ms |',
    '|---:|---:|---|---:|---:|---|',
    ...results.map((r) => `| ${r.writeSize} B | ${r.headerBytes} | ${r.reply.slice(0, 40)} | ${r.cpuMs} | ${r.wallMs} | ${r.probes}, ${r.probeMedianMs}, ${r.probeMaxMs}; ${r.cpuWithProbesMs} |`),
    '',
  ].join('\n');
  fs.appendFileSync(OUT, section);
  console.log(`appended to ${OUT}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
