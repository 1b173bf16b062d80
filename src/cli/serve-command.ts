// `dkim-relay serve`: runs the relay until SIGTERM or SIGINT, then stops accepting, lets
// deliveries in flight finish (up to 10 s) and exits; queued mail stays in the spool (a
// delivery cut off is tried again at the next start, so its recipient may get it twice,
// never not at all). A second signal exits at once.
import { Command, UsageError } from '../cli-context';
import { startRelay } from '../relay';

export const SHUTDOWN_TIMEOUT_MS = 10_000;

export const serveCommand: Command = async (args, ctx) => {
  if (args.length) throw new UsageError(`serve takes no arguments (got "${args.join(' ')}")\nusage: dkim-relay [--config FILE] serve`);
  const relay = await startRelay(ctx.config);
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  const now = () => {
    ctx.stderr.write('dkim-relay: second signal, exiting at once; queued mail stays in the spool\n');
    process.exit(1);
  };
  process.once('SIGTERM', now);
  process.once('SIGINT', now);
  await relay.close(SHUTDOWN_TIMEOUT_MS);
  // Nothing of the relay should keep the process alive now; if something does, do not hang.
  setTimeout(() => process.exit(0), 2000).unref();
  return 0;
};
