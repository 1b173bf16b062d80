// The doctor's report for people: grouped by domain (the relay's identity first), one line
// per check with its verdict, and under each failure or warning the fix to paste. The JSON
// form for scripts is the checks and the summary as they are.
import { DoctorReport } from './run-doctor';

const LABEL = { pass: 'PASS', warn: 'WARN', fail: 'FAIL', error: 'ERROR', info: 'INFO' } as const;

export function formatReport(report: DoctorReport): string {
  const lines: string[] = [];
  const groups: (string | null)[] = [null, ...report.domains];
  const idWidth = Math.min(32, Math.max(...report.checks.map((c) => c.id.length)));
  for (const domain of groups) {
    const checks = report.checks.filter((c) => c.domain === domain);
    if (!checks.length) continue;
    if (lines.length) lines.push('');
    lines.push(domain === null
      ? `Sending identity: ${report.identity.sources.length > 1
        ? report.identity.sources.map((s) => `${s.localAddress} (HELO ${s.heloName})`).join(', ')
        : `${report.identity.localAddress ?? 'source IP chosen by the OS'}, HELO ${report.identity.heloName}`}`
      : `Domain ${domain}`);
    for (const c of checks) {
      lines.push(`  ${LABEL[c.status].padEnd(5)}  ${c.id.padEnd(idWidth)}  ${c.detail}`);
      if (c.fix && c.status !== 'pass' && c.status !== 'info') lines.push(`  ${' '.repeat(5)}  ${' '.repeat(idWidth)}  fix: ${c.fix}`);
    }
  }
  if (!report.domains.length) {
    lines.push('', 'No signing domain: the key store has no keys. Make one with dkim-relay keygen --domain DOMAIN, or check a domain with dkim-relay doctor --domain DOMAIN.');
  }
  const s = report.summary;
  lines.push('', `${s.fail} failed, ${s.error} could not be checked, ${s.warn} warnings, ${s.pass} passed, ${s.info} notes.`);
  return `${lines.join('\n')}\n`;
}

export function reportJson(report: DoctorReport): string {
  return `${JSON.stringify({ checks: report.checks, summary: report.summary }, null, 2)}\n`;
}
