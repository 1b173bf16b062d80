// The status page (/): one self-contained HTML page, no external assets (inline CSS and SVG),
// for an operator's first question: is the mail going out, and if not, why? Every string
// that came from outside (addresses, reply texts, client names, provider host names) goes
// through esc(): a hostile MX can put markup in its reply, a client in its address.
import { domainOf } from '../policy/sender-domains';
import { verdictOf } from '../replies/verdict';
import type { SpoolEnvelope } from '../spool/spool';
import { RecentActivity } from './recent-activity';
import { keySummaries, RelayState } from './relay-state';

/** Text for an HTML element or a quoted attribute. */
export function esc(value: unknown): string {
  return String(value ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]!));
}

interface DestinationRow {
  domain: string;
  waiting: number;
  deferred: number;
  oldest: number;
  last?: { reply: string; host?: string; at: number };
}

/**
 * A queue of at most this many messages is read whole (from disk too) for the page; a larger
 * one shows the active queue (in memory) and the number of messages on disk.
 */
export const PAGE_QUEUE_READ_LIMIT = 5000;

/** queued: every queued message (QueueRunner.allEnvelopes), or null when the queue was too large to read. */
export function renderStatusPage(state: RelayState, ready: { ready: boolean; checks: { name: string; ok: boolean; detail: string }[] }, now = Date.now(), queued: SpoolEnvelope[] | null = null): string {
  const a = state.activity;
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="60">
<title>dkim-relay status</title>
<style>${CSS}</style></head>
<body>
<header><h1>dkim-relay</h1><p>${esc(state.identity?.heloName ?? 'starting')} · up ${esc(duration(now - state.startedAt))} · <span class="${ready.ready ? 'ok' : 'bad'}" id="readiness">${ready.ready ? 'ready' : 'not ready'}</span> · ${esc(new Date(now).toISOString())}</p></header>
${ready.ready ? '' : `<section><h2>Not ready</h2><ul>${ready.checks.filter((c) => !c.ok).map((c) => `<li><b>${esc(c.name)}</b>: ${esc(c.detail)}</li>`).join('')}</ul></section>`}
<section id="totals"><h2>Since start</h2>${totals(a)}</section>
<section id="queue"><h2>Queue by destination</h2>${queueTable(state, now, queued)}</section>
<section id="paused"><h2>Paused destinations</h2>${pausedTable(a, now)}</section>
<section id="chart"><h2>Deliveries per hour, last 24 hours</h2>${chart(a)}</section>
<section id="refusals"><h2>Last refusals at submission</h2>${refusalTable(a)}</section>
<section id="keys"><h2>DKIM keys</h2>${keyTable(state)}</section>
<section id="identity"><h2>Sending identity</h2>${identity(state)}</section>
</body></html>
`;
}

function totals(a: RecentActivity): string {
  const t = a.totals;
  const items: [string, number][] = [['accepted', t.accepted], ['refused', t.refused], ['delivered', t.delivered], ['deferred', t.deferred], ['bounced', t.failed]];
  return `<dl class="totals">${items.map(([k, v]) => `<div><dt>${k}</dt><dd data-total="${k}">${v}</dd></div>`).join('')}</dl>`;
}

function queueTable(state: RelayState, now: number, queued: SpoolEnvelope[] | null): string {
  const rows = new Map<string, DestinationRow>();
  for (const e of queued ?? state.queue?.envelopes() ?? []) {
    const received = Date.parse(e.receivedAt);
    for (const r of e.recipients) {
      if (r.status !== 'queued') continue;
      const domain = domainOf(r.address);
      let row = rows.get(domain);
      if (!row) rows.set(domain, (row = { domain, waiting: 0, deferred: 0, oldest: received }));
      if (r.attempts) row.deferred++;
      else row.waiting++;
      row.oldest = Math.min(row.oldest, received);
      if (r.lastReply && (!row.last || (r.lastAttemptAt ?? 0) > row.last.at)) row.last = { reply: r.lastReply, host: r.remoteHost, at: r.lastAttemptAt ?? 0 };
    }
  }
  // Messages not due within a minute wait on disk (spool/due-index.ts) and are not read for a page view.
  const onDisk = queued ? 0 : Math.max(0, (state.queue?.size ?? 0) - (state.queue?.activeSize ?? 0));
  const diskNote = onDisk ? `<p class="on-disk" data-on-disk="${onDisk}">${onDisk} more message(s) wait on disk (not due within a minute) and are not broken down here (the queue is larger than ${PAGE_QUEUE_READ_LIMIT} messages, too many to read for a page): <code>dkim-relay queue list</code> shows them.</p>` : '';
  if (!rows.size) return diskNote || '<p class="empty">The queue is empty.</p>';
  const sorted = [...rows.values()].sort((x, y) => x.oldest - y.oldest).slice(0, 200);
  return `<table><thead><tr><th>destination</th><th>new</th><th>deferred</th><th>oldest</th><th>last reply</th><th>class</th><th>what it means</th></tr></thead><tbody>${sorted.map((r) => {
    const v = r.last ? verdictOf(r.last.reply, r.last.host) : null;
    return `<tr data-domain="${esc(r.domain)}"><td>${esc(r.domain)}</td><td>${r.waiting}</td><td>${r.deferred}</td><td>${esc(duration(now - r.oldest))}</td>` +
      `<td class="reply">${r.last ? `${esc(r.last.reply)}${r.last.host ? ` <small>(${esc(r.last.host)})</small>` : ''}` : '<i>not tried yet</i>'}</td>` +
      `<td>${v ? `<span class="cls">${esc(v.class)}</span>` : ''}</td><td>${v ? `${esc(v.explanation)}${v.fix ? `<br><small>fix: ${esc(v.fix)}</small>` : ''}` : ''}</td></tr>`;
  }).join('')}</tbody></table>${rows.size > sorted.length ? `<p>${rows.size - sorted.length} more destinations not shown.</p>` : ''}${diskNote}`;
}

function pausedTable(a: RecentActivity, now: number): string {
  const paused = a.pausedNow();
  if (!paused.length) return '<p class="empty">No destination is paused.</p>';
  return `<table><thead><tr><th>provider</th><th>until</th><th>left</th><th>reply that paused it</th><th>class</th></tr></thead><tbody>${paused.map((p) =>
    `<tr data-provider="${esc(p.provider)}"><td>${esc(p.provider)}</td><td>${esc(new Date(p.until).toISOString())}</td><td>${esc(duration(p.until - now))}</td>` +
    `<td class="reply">${esc(p.reply)}</td><td><span class="cls">${esc(verdictOf(p.reply).class)}</span></td></tr>`).join('')}</tbody></table>`;
}

function refusalTable(a: RecentActivity): string {
  const refusals = a.lastRefusals();
  if (!refusals.length) return '<p class="empty">No refusals since start.</p>';
  return `<table><thead><tr><th>when</th><th>client</th><th>user</th><th>stage</th><th>sender</th><th>recipient</th><th>reply</th></tr></thead><tbody>${refusals.map((r) =>
    `<tr><td>${esc(new Date(r.at).toISOString())}</td><td>${esc(r.client)}</td><td>${esc(r.user ?? '')}</td><td>${esc(r.stage)}</td>` +
    `<td>${esc(r.sender ?? '')}</td><td>${esc(r.recipient ?? '')}</td><td class="reply">${r.code} ${esc(r.reason)}</td></tr>`).join('')}</tbody></table>`;
}

function keyTable(state: RelayState): string {
  const keys = keySummaries(state.keysDir);
  if (!keys.length) return '<p class="empty">The key store has no keys: make one with <code>dkim-relay keygen --domain D</code>.</p>';
  return `<table><thead><tr><th>domain</th><th>selector</th><th>algorithm</th><th>state</th><th>created</th><th>activated</th><th>problem</th></tr></thead><tbody>${keys.map((k) =>
    `<tr data-key="${esc(`${k.domain}/${k.selector}`)}"><td>${esc(k.domain)}</td><td>${esc(k.selector)}</td><td>${esc(k.algorithm ?? '?')}${k.bits ? ` ${k.bits}` : ''}</td>` +
    `<td><span class="state-${esc(k.state)}">${esc(k.state)}</span></td><td>${esc(k.created ?? '')}</td><td>${esc(k.activated ?? '')}</td><td>${esc(k.problem ?? '')}</td></tr>`).join('')}</tbody></table>`;
}

function identity(state: RelayState): string {
  const id = state.identity;
  if (!id) return '<p>Not established yet.</p>';
  const sources = id.sources.length ? id.sources.map((s) => `IPv${s.family} ${esc(s.localAddress)} as ${esc(s.heloName)}`).join('<br>') : 'chosen by the OS';
  const findings = id.findings.length
    ? `<table><thead><tr><th>check</th><th>status</th><th>detail</th><th>fix</th></tr></thead><tbody>${id.findings.map((f) =>
      `<tr><td>${esc(f.id)}</td><td><span class="st-${esc(f.status)}">${esc(f.status)}</span></td><td>${esc(f.detail)}</td><td>${esc(f.fix ?? '')}</td></tr>`).join('')}</tbody></table>`
    : '<p class="empty">No checks at start (delivery through a smarthost).</p>';
  return `<p>HELO <b>${esc(id.heloName)}</b><br>source: ${sources}</p><h3>Checks at start</h3>${findings}<p><small>Run <code>dkim-relay doctor</code> for SPF, DKIM, DMARC and blocklists.</small></p>`;
}

const COLORS = ['#2b6cb0', '#c05621', '#2f855a', '#6b46c1', '#b83280', '#2c7a7b', '#975a16', '#4a5568'];

/** Stacked bars: one per hour, a colour per provider (the 7 busiest, the rest together). */
function chart(a: RecentActivity): string {
  const { hours, byProvider } = a.hourlyDeliveries();
  if (!byProvider.size) return '<p class="empty">Nothing delivered in the last 24 hours.</p>';
  const ranked = [...byProvider.entries()].sort((x, y) => sum(y[1]) - sum(x[1]));
  const shown = ranked.slice(0, COLORS.length - 1);
  const rest = ranked.slice(COLORS.length - 1);
  if (rest.length) shown.push(['other providers', hours.map((_, i) => rest.reduce((n, [, c]) => n + c[i], 0))]);
  const max = Math.max(1, ...hours.map((_, i) => shown.reduce((n, [, c]) => n + c[i], 0)));
  const W = 720, H = 160, left = 40, bottom = 20, barW = (W - left) / hours.length;
  const scale = (H - bottom - 10) / max;
  const bars: string[] = [];
  hours.forEach((start, i) => {
    let y = H - bottom;
    shown.forEach(([provider, counts], p) => {
      const n = counts[i];
      if (!n) return;
      const h = n * scale;
      y -= h;
      bars.push(`<rect x="${(left + i * barW + 1).toFixed(1)}" y="${y.toFixed(1)}" width="${(barW - 2).toFixed(1)}" height="${h.toFixed(1)}" fill="${COLORS[p]}"><title>${esc(provider)}: ${n} at ${esc(new Date(start).toISOString().slice(11, 16))} UTC</title></rect>`);
    });
  });
  const labels = hours.map((start, i) => (i % 4 === 3 ? `<text x="${(left + i * barW + barW / 2).toFixed(1)}" y="${H - 5}" text-anchor="middle">${new Date(start).toISOString().slice(11, 13)}h</text>` : '')).join('');
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="deliveries per hour">` +
    `<line x1="${left}" y1="${H - bottom}" x2="${W}" y2="${H - bottom}" stroke="#999"/><text x="${left - 4}" y="14" text-anchor="end">${max}</text><text x="${left - 4}" y="${H - bottom}" text-anchor="end">0</text>` +
    `${bars.join('')}${labels}</svg>`;
  const legend = `<ul class="legend">${shown.map(([provider, counts], p) => `<li data-provider="${esc(provider)}"><span style="background:${COLORS[p]}"></span>${esc(provider)}: ${sum(counts)}</li>`).join('')}</ul>`;
  return svg + legend;
}

function sum(values: number[]): number {
  return values.reduce((n, v) => n + v, 0);
}

function duration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  if (s < 172800) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} d`;
}

const CSS = `body{font:14px/1.4 system-ui,sans-serif;margin:0 auto;max-width:1200px;padding:0 1em 2em;color:#1a202c}
header{border-bottom:2px solid #2b6cb0}h1{margin:.4em 0 0}h2{font-size:1.1em;margin:1.4em 0 .4em}
table{border-collapse:collapse;width:100%}th,td{border-bottom:1px solid #e2e8f0;padding:3px 6px;text-align:left;vertical-align:top}
th{background:#edf2f7}td.reply{font-family:ui-monospace,monospace;font-size:12px;word-break:break-word}
.ok{color:#2f855a;font-weight:bold}.bad{color:#c53030;font-weight:bold}.empty{color:#718096}
.cls{background:#edf2f7;border-radius:3px;padding:0 4px;white-space:nowrap}
.st-pass,.state-active{color:#2f855a}.st-warn,.state-pending{color:#b7791f}.st-fail,.st-error,.state-unknown{color:#c53030}
.totals{display:flex;gap:2em;margin:0}.totals dt{color:#718096}.totals dd{margin:0;font-size:1.6em}
svg text{font-size:10px;fill:#4a5568}.legend{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:1em}
.legend span{display:inline-block;width:10px;height:10px;margin-right:4px}`;
