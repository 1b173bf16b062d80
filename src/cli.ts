// The dkim-relay command: parses the global options, loads the configuration and hands
// over to one command. A user error prints one message (what is wrong, how to fix it) and
// no stack trace.
import { parseArgs } from 'node:util';
import { CliContext, CliError, Command, UsageError } from './cli-context';
import { ConfigError, loadConfig } from './config/load';

// Each command's module is loaded only when that command runs: `serve` then does not carry
// doctor's DNS checks, keygen, the queue tool and so on in its memory. The summaries stay
// here so that the usage needs none of them.
const COMMANDS: Record<string, { load: () => Promise<Command>; summary: string }> = {
  serve: { load: async () => (await import('./cli/serve-command')).serveCommand, summary: 'run the relay (submission, signing, spool, delivery)' },
  keygen: { load: async () => (await import('./cli/keygen-command')).keygenCommand, summary: 'make a DKIM key for a domain and print its DNS record' },
  keys: { load: async () => (await import('./cli/keys-command')).keysCommand, summary: 'list DKIM keys, activate one once its record is in DNS, retire one' },
  users: { load: async () => (await import('./cli/users-command')).usersCommand, summary: 'add, list or remove users allowed to AUTH' },
  queue: { load: async () => (await import('./cli/queue-command')).queueCommand, summary: 'list, show, retry or delete queued messages (works while the relay runs)' },
  doctor: { load: async () => (await import('./cli/doctor-command')).doctorCommand, summary: 'check PTR, HELO, blocklists, SPF, DKIM and DMARC in DNS and print the fixes' },
};

export const USAGE = [
  'usage: dkim-relay [--config FILE] COMMAND [ARGS]',
  '',
  'commands:',
  ...Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(8)} ${c.summary}`),
  '',
  'Settings come from config/default.json, then --config FILE, then RELAY_* environment variables (see README).',
].join('\n');

export async function main(argv: string[], io: Partial<Pick<CliContext, 'stdout' | 'stderr' | 'stdin'>> = {}): Promise<number> {
  const stdout = io.stdout ?? process.stdout;
  const stderr = io.stderr ?? process.stderr;
  const stdin = io.stdin ?? process.stdin;
  try {
    // Global options come before the command; everything after it belongs to the command.
    const { values, positionals } = parseArgs({
      args: argv,
      options: { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
      strict: false,
    });
    const commandIndex = argv.findIndex((a) => a === positionals[0]);
    const name = positionals[0];
    if (values.help || !name) {
      (values.help ? stdout : stderr).write(USAGE + '\n');
      return values.help ? 0 : 2;
    }
    const command = COMMANDS[name];
    if (!command) throw new UsageError(`unknown command "${name}"\n${USAGE}`);
    const config = loadConfig({ configFile: typeof values.config === 'string' ? values.config : undefined });
    const run = await command.load();
    return await run(argv.slice(commandIndex + 1), { config, stdout, stderr, stdin });
  } catch (err) {
    if (err instanceof UsageError) {
      stderr.write(`dkim-relay: ${err.message}\n`);
      return 2;
    }
    if (err instanceof CliError || err instanceof ConfigError || isUserFacing(err)) {
      stderr.write(`dkim-relay: ${(err as Error).message}\n`);
      return 1;
    }
    stderr.write(`dkim-relay: unexpected error: ${(err as Error).stack ?? err}\n`);
    return 1;
  }
}

/** Errors of the modules that are written for the user to read (named *Error by them). */
function isUserFacing(err: unknown): boolean {
  return err instanceof Error && ['UsersError', 'KeygenError', 'KeyLifecycleError', 'TlsCertificateError', 'SpoolError', 'IdentityError'].includes(err.constructor.name);
}
