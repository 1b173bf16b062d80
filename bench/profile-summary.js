#!/usr/bin/env node
'use strict';
// Summarizes a V8 .cpuprofile (node --cpu-prof) as Markdown: where the relay's CPU time goes,
// by owner (our dist/ code, each npm package, each Node.js subsystem, GC), then the functions
// with the most self time, then the most inclusive time (a function counted once per sample
// however deep it recurses). Native frames (no script URL) are charged to the nearest
// JavaScript caller for the by-owner table, and listed by name in the function tables.
//   node bench/profile-summary.js FILE.cpuprofile [--top 25]
const fs = require('node:fs');

const file = process.argv[2];
const topArg = process.argv.indexOf('--top');
const TOP = topArg > 0 ? Number(process.argv[topArg + 1]) : 25;
if (!file) {
  process.stderr.write('usage: profile-summary.js FILE.cpuprofile [--top N]\n');
  process.exit(2);
}
const profile = JSON.parse(fs.readFileSync(file, 'utf8'));
const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

const SPECIAL = new Set(['(garbage collector)', '(program)', '(idle)', '(root)']);

function owner(url) {
  if (!url) return null;
  const nm = url.lastIndexOf('/node_modules/');
  if (nm !== -1) {
    const rest = url.slice(nm + '/node_modules/'.length).split('/');
    return rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0];
  }
  if (url.includes('/dist/') || url.includes('/bin/dkim-relay')) return 'dkim-relay (ours)';
  if (url.startsWith('node:')) {
    const m = /^node:(?:internal\/)?(?:deps\/)?([a-z_0-9]+)/.exec(url);
    const sub = m ? m[1] : url;
    const group = { streams: 'stream', per_context: 'bootstrap', bootstrap: 'bootstrap', process: 'process/timers', timers: 'process/timers', async_hooks: 'process/timers' }[sub] ?? sub;
    return `node:${group}`;
  }
  return url;
}

function label(n) {
  const f = n.callFrame;
  const name = f.functionName || '(anonymous)';
  if (!f.url) return SPECIAL.has(name) ? name : `${name} [native]`;
  const short = f.url.replace(/^file:\/\//, '').replace(/^.*\/node_modules\//, '').replace(/^.*\/dist\//, 'dist/');
  return `${name} ${short}:${f.lineNumber + 1}`;
}

function ownerOf(id) {
  const n = nodes.get(id);
  const name = n.callFrame.functionName;
  if (!n.callFrame.url && SPECIAL.has(name)) return name;
  for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
    const o = owner(nodes.get(cur).callFrame.url);
    if (o) return o;
  }
  return '(native, no JS caller)';
}

const samples = profile.samples;
const deltas = profile.timeDeltas;
const self = new Map();
const selfOwner = new Map();
const inclusive = new Map();
let total = 0;
let idle = 0;
for (let i = 0; i < samples.length; i++) {
  const dt = (deltas[i + 1] ?? deltas[i] ?? 0) / 1000; // ms; a sample's time runs to the next one
  const id = samples[i];
  const n = nodes.get(id);
  total += dt;
  if (n.callFrame.functionName === '(idle)') {
    idle += dt;
    continue;
  }
  const l = label(n);
  self.set(l, (self.get(l) ?? 0) + dt);
  const o = ownerOf(id);
  selfOwner.set(o, (selfOwner.get(o) ?? 0) + dt);
  const seen = new Set();
  for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
    const cn = nodes.get(cur);
    if (cn.callFrame.functionName === '(root)') continue;
    const cl = label(cn);
    if (seen.has(cl)) continue;
    seen.add(cl);
    inclusive.set(cl, (inclusive.get(cl) ?? 0) + dt);
  }
}
const busy = total - idle;
const pct = (v) => `${((100 * v) / busy).toFixed(1)}%`;
const ms = (v) => v.toFixed(0);
const sorted = (m) => [...m.entries()].sort((a, b) => b[1] - a[1]);

const out = [];
out.push(`Profile ${require('node:path').basename(file)}: ${ms(total)} ms sampled, ${ms(idle)} ms idle, ${ms(busy)} ms busy (percentages below are of busy time).`);
out.push('');
out.push('| owner (native frames charged to their JS caller) | self ms | share |');
out.push('|---|---:|---:|');
for (const [o, v] of sorted(selfOwner)) if (v / busy >= 0.002) out.push(`| ${o} | ${ms(v)} | ${pct(v)} |`);
out.push('');
out.push(`Top ${TOP} functions by self time:`);
out.push('');
out.push('| function | self ms | share |');
out.push('|---|---:|---:|');
for (const [l, v] of sorted(self).slice(0, TOP)) out.push(`| \`${l.replace(/\|/g, '\\|')}\` | ${ms(v)} | ${pct(v)} |`);
out.push('');
out.push(`Top ${TOP + 10} functions by inclusive time (callers included):`);
out.push('');
out.push('| function | inclusive ms | share |');
out.push('|---|---:|---:|');
for (const [l, v] of sorted(inclusive).slice(0, TOP + 10)) out.push(`| \`${l.replace(/\|/g, '\\|')}\` | ${ms(v)} | ${pct(v)} |`);
process.stdout.write(out.join('\n') + '\n');
