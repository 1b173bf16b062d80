// A DNSSEC-signed test DNS on loopback, for DANE and anything else that needs validated
// answers: NSD (authoritative) serves a signed test root "." and the test zones under it,
// each signed with ldns-signzone (ldnsutils) or left unsigned; Debian's unbound validates
// with the test root's key as its trust anchor and is the resolver the relay is pointed at.
// Both run in the foreground as children of the test, with their own config files in a
// temporary folder, no chroot, no privilege drop, on ephemeral loopback ports.
//
// Because the root itself is signed and anchored, "." DNSKEY comes with the AD bit, as it does
// from a real validating resolver; names outside the test zones get a validated NXDOMAIN.
// Kinds of zone: signed (DS in the root: answers validate, AD), unsigned (no DS: insecure, no
// AD), expired (DS in the root, signatures out of date: bogus, SERVFAIL). `forge` names
// records that are changed after signing, so their signatures fail (bogus, SERVFAIL) while
// the rest of the zone validates.
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import dgram from 'node:dgram';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import * as dnsPacket from 'dns-packet';

export interface TestZone {
  /** e.g. "dane.test" (no trailing dot) */
  name: string;
  /** zone-file lines with absolute names: "mx1.dane.test. A 127.0.0.3" (TTL and class are added) */
  records: string[];
  dnssec: 'signed' | 'unsigned' | 'expired';
  /** owner names (no trailing dot) whose records get other data after signing: bogus */
  forge?: string[];
}

export interface DnssecDns {
  /** "127.0.0.1:PORT" of unbound, the form RELAY_DNS_SERVERS takes */
  resolver: string;
  /** "127.0.0.1:PORT" of nsd */
  authoritative: string;
  dir: string;
  /** The log output of both daemons so far (for a failing test's message). */
  logs(): string;
  close(): Promise<void>;
}

const TTL = 60;

/** A zone's SOA and NS lines; the one name server "ns." is the NSD of the test. */
function apex(name: string): string[] {
  const origin = name === '.' ? '.' : `${name}.`;
  return [
    `${origin} ${TTL} IN SOA ns. hostmaster.${origin === '.' ? '' : origin} 1 3600 600 86400 ${TTL}`,
    `${origin} ${TTL} IN NS ns.`,
  ];
}

function withTtl(line: string): string {
  const [owner, ...rest] = line.trim().split(/\s+/);
  return /^\d+$/.test(rest[0]) ? line : `${owner} ${TTL} IN ${rest.join(' ')}`.replace(/ IN IN /, ' IN ');
}

/** Signs a zone file with a new ECDSA key; returns the DS record of the key. */
function sign(dir: string, name: string, file: string, expired: boolean): string {
  const origin = name === '.' ? '.' : name;
  const key = execFileSync('ldns-keygen', ['-a', 'ECDSAP256SHA256', '-k', '-r', '/dev/urandom', origin], { cwd: dir, encoding: 'utf8' }).trim();
  const dates = expired ? ['-i', '20200101000000', '-e', '20200201000000'] : [];
  execFileSync('ldns-signzone', [...dates, '-o', origin, '-f', `${file}.signed`, file, key], { cwd: dir });
  return fs.readFileSync(path.join(dir, `${key}.ds`), 'utf8').trim();
}

/** Changes the data of the named owners' records (not their signatures): they no longer verify. */
function forge(signedFile: string, owners: string[]): void {
  const wanted = new Set(owners.map((o) => `${o.toLowerCase()}.`));
  const lines = fs.readFileSync(signedFile, 'utf8').split('\n').map((line) => {
    const f = line.split(/\s+/);
    if (!wanted.has(f[0]?.toLowerCase()) || f[3] === 'RRSIG' || f[3] === 'NSEC' || f.length < 5) return line;
    // the last field is hex (TLSA), an address or text: flip its last character
    const last = f[f.length - 1];
    const flipped = last.slice(0, -1) + (last.endsWith('0') ? '1' : '0');
    return [...f.slice(0, -1), flipped].join('\t');
  });
  fs.writeFileSync(signedFile, lines.join('\n'));
}

/** A port free for both UDP and TCP on host right now. */
async function freePort(host: string): Promise<number> {
  for (;;) {
    const udp = dgram.createSocket('udp4');
    const port = await new Promise<number>((resolve, reject) => {
      udp.once('error', reject);
      udp.bind(0, host, () => resolve(udp.address().port));
    });
    const tcpFree = await new Promise<boolean>((resolve) => {
      const server = net.createServer();
      server.once('error', () => resolve(false));
      server.listen(port, host, () => server.close(() => resolve(true)));
    });
    await new Promise<void>((resolve) => udp.close(() => resolve()));
    if (tcpFree) return port;
  }
}

/** Resolves once the server answers a query for "." SOA over UDP. */
async function waitForAnswer(host: string, port: number, child: ChildProcess, logs: () => string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`the DNS daemon exited (${child.exitCode}): ${logs()}`);
    const ok = await new Promise<boolean>((resolve) => {
      const socket = dgram.createSocket('udp4');
      const timer = setTimeout(() => {
        socket.close();
        resolve(false);
      }, 300);
      socket.on('message', () => {
        clearTimeout(timer);
        socket.close();
        resolve(true);
      });
      socket.on('error', () => undefined);
      socket.send(dnsPacket.encode({ type: 'query', id: 1, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'SOA', name: '.' }] }), port, host);
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`the DNS daemon on ${host}:${port} did not answer within ${timeoutMs / 1000} s: ${logs()}`);
}

function startDaemon(command: string, args: string[], output: string[]): ChildProcess {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (d: Buffer) => output.push(d.toString()));
  child.stderr!.on('data', (d: Buffer) => output.push(d.toString()));
  child.on('error', (err) => output.push(`${command}: ${err.message}`));
  return child;
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
  await exited;
  clearTimeout(timer);
}

export async function startDnssecDns(zones: TestZone[], options: { host?: string } = {}): Promise<DnssecDns> {
  const host = options.host ?? '127.0.0.1';
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dkim-relay-dnssec-'));
  const output: string[] = [];
  const logs = () => output.join('').slice(-4000);

  // the zones under the root, then the root with their delegations (and DS for the signed ones)
  const rootLines = [...apex('.'), `ns. ${TTL} IN A ${host}`];
  const zoneFiles: { name: string; file: string }[] = [];
  for (const zone of zones) {
    const file = `${zone.name}.zone`;
    fs.writeFileSync(path.join(dir, file), [...apex(zone.name), ...zone.records.map(withTtl)].join('\n') + '\n');
    rootLines.push(`${zone.name}. ${TTL} IN NS ns.`);
    if (zone.dnssec !== 'unsigned') {
      const ds = sign(dir, zone.name, file, zone.dnssec === 'expired');
      rootLines.push(withTtl(ds));
      if (zone.forge?.length) forge(path.join(dir, `${file}.signed`), zone.forge);
      zoneFiles.push({ name: zone.name, file: `${file}.signed` });
    } else {
      zoneFiles.push({ name: zone.name, file });
    }
  }
  fs.writeFileSync(path.join(dir, 'root.zone'), rootLines.join('\n') + '\n');
  const rootDs = sign(dir, '.', 'root.zone', false);
  fs.writeFileSync(path.join(dir, 'root.ds'), `${rootDs}\n`);
  zoneFiles.unshift({ name: '.', file: 'root.zone.signed' });

  let nsd: ChildProcess | null = null;
  let unbound: ChildProcess | null = null;
  try {
    const nsdPort = await freePort(host);
    fs.writeFileSync(path.join(dir, 'nsd.conf'), [
      'server:',
      `  ip-address: ${host}@${nsdPort}`,
      `  port: ${nsdPort}`,
      '  do-ip6: no',
      '  server-count: 1',
      '  database: ""',
      `  zonelistfile: "${dir}/zone.list"`,
      `  xfrdfile: "${dir}/xfrd.state"`,
      `  xfrdir: "${dir}"`,
      `  pidfile: "${dir}/nsd.pid"`,
      `  zonesdir: "${dir}"`,
      '  username: ""',
      '  chroot: ""',
      '  verbosity: 1',
      'remote-control:',
      '  control-enable: no',
      ...zoneFiles.flatMap((z) => ['zone:', `  name: "${z.name}"`, `  zonefile: "${dir}/${z.file}"`]),
    ].join('\n') + '\n');
    nsd = startDaemon('/usr/sbin/nsd', ['-d', '-c', path.join(dir, 'nsd.conf')], output);
    await waitForAnswer(host, nsdPort, nsd, logs);

    const unboundPort = await freePort(host);
    const stub = (name: string) => ['stub-zone:', `  name: "${name}"`, `  stub-addr: ${host}@${nsdPort}`];
    fs.writeFileSync(path.join(dir, 'unbound.conf'), [
      'server:',
      `  interface: ${host}@${unboundPort}`,
      `  port: ${unboundPort}`,
      '  do-ip6: no',
      '  do-daemonize: no',
      '  chroot: ""',
      '  username: ""',
      `  directory: "${dir}"`,
      `  pidfile: "${dir}/unbound.pid"`,
      '  use-syslog: no',
      '  logfile: ""',
      '  verbosity: 1',
      '  val-log-level: 2',
      '  num-threads: 1',
      '  outgoing-range: 64',
      '  so-reuseport: no',
      '  do-not-query-localhost: no',
      '  qname-minimisation: no',
      '  module-config: "validator iterator"',
      `  trust-anchor-file: "${dir}/root.ds"`,
      '  access-control: 127.0.0.0/8 allow',
      // unbound answers the special-use names (RFC 6761: test., invalid., ...) itself by default
      ...[...new Set(zones.map((z) => z.name.split('.').pop()!))].map((tld) => `  local-zone: "${tld}." nodefault`),
      'remote-control:',
      '  control-enable: no',
      ...stub('.'),
      ...zones.flatMap((z) => stub(z.name)),
    ].join('\n') + '\n');
    unbound = startDaemon('/usr/sbin/unbound', ['-d', '-c', path.join(dir, 'unbound.conf')], output);
    await waitForAnswer(host, unboundPort, unbound, logs);

    const [nsdChild, unboundChild] = [nsd, unbound];
    return {
      resolver: `${host}:${unboundPort}`,
      authoritative: `${host}:${nsdPort}`,
      dir,
      logs,
      async close() {
        await Promise.all([stop(unboundChild), stop(nsdChild)]);
        fs.rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await Promise.all([unbound && stop(unbound), nsd && stop(nsd)]);
    fs.rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
