// `dkim-relay serve`: runs the relay until SIGTERM or SIGINT, then stops accepting, lets
// deliveries in flight finish (up to 10 s) and exits; queued mail stays in the spool.
import { Command, UsageError } from '../cli-context';
import { startRelay } from '../relay';

export const serveCommand: Command = async (args, ctx) => {
  if (args.length) throw new UsageError(`serve takes no arguments (got "${args.join(' ')}")\nusage: dkim-relay [--config FILE] serve`);
  const relay = await startRelay(ctx.config);
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  await relay.close(10_000);
  return 0;
};
