// When a check of the CLI fails (a DKIM record "missing", a doctor check), the cause may be
// that this command did not get the relay's settings: every command reads --config and
// RELAY_* itself. This line says which key store and DNS servers the command used, and
// where those values came from, so a mismatch with the running relay shows at once.
import path from 'node:path';
import { CliContext } from '../cli-context';

export function configUsedNote(ctx: CliContext): string {
  const origin = (name: string) => {
    const o = ctx.origins?.[name];
    return !o || o.source === 'default' ? 'default' : o.source === 'environment' ? `from ${o.from}` : `from ${o.from ?? o.source}`;
  };
  const servers = ctx.config.dns.servers.length ? ctx.config.dns.servers.join(', ') : 'the system resolvers (/etc/resolv.conf)';
  return `This used keys dir ${path.resolve(ctx.config.keysDir)} (keysDir, ${origin('keysDir')}) and DNS servers ${servers} ` +
    `(dns.servers, ${origin('dns.servers')}). A relay started with other RELAY_* variables or --config sees other keys and DNS: ` +
    'run this command with the same ones (`dkim-relay config show` prints what a command sees).';
}
