// `dkim-relay doctor [--domain D] [--json]`: checks in DNS everything the providers check
// (DESIGN.md's table) for the relay's identity and each signing domain, and prints the fix
// for each problem. Exit 0 when nothing fails, 1 when something fails, 2 for wrong
// arguments. Checks that could not be run (DNS errors) are reported but do not change the
// exit code. The report goes to stdout; progress, when the run takes more than a moment,
// to stderr.
import { parseArgs } from 'node:util';
import { Command, UsageError } from '../cli-context';
import { formatReport, reportJson } from '../doctor/report';
import { DoctorDomainError, runDoctor } from '../doctor/run-doctor';
import { configUsedNote } from './config-used';

export const DOCTOR_USAGE = 'usage: dkim-relay doctor [--domain DOMAIN] [--json]';

/** Progress appears once the run has taken this long. */
const QUIET_MS = 1000;

export const doctorCommand: Command = async (args, ctx) => {
  let values: { domain?: string; json?: boolean; help?: boolean };
  try {
    ({ values } = parseArgs({
      args, allowPositionals: false, strict: true,
      options: { domain: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    }));
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\n${DOCTOR_USAGE}`);
  }
  if (values.help) {
    ctx.stdout.write(`${DOCTOR_USAGE}\n`);
    return 0;
  }

  const started = Date.now();
  let current = '';
  let shown = false;
  const show = (step: string) => ctx.stderr.write(`doctor: checking ${step}...\n`);
  const timer = setTimeout(() => {
    shown = true;
    if (current) show(current);
  }, QUIET_MS);
  timer.unref();
  let report;
  try {
    report = await runDoctor(ctx.config, {
      domain: values.domain,
      onProgress: (step) => {
        current = step;
        if (shown) show(step);
      },
    });
  } catch (err) {
    if (err instanceof DoctorDomainError) throw new UsageError(`--domain: ${err.message}\n${DOCTOR_USAGE}`);
    throw err;
  } finally {
    clearTimeout(timer);
  }
  if (shown) ctx.stderr.write(`doctor: done in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
  ctx.stdout.write(values.json ? reportJson(report) : formatReport(report));
  if (!report.summary.ok) ctx.stderr.write(`${configUsedNote(ctx)}\n`);
  return report.summary.ok ? 0 : 1;
};
