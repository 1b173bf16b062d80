// A dedicated Postfix instance (Debian's postfix, `postfix -c DIR`) used as a client of the
// relay, configured the way README.md tells users: relayhost, SASL with
// smtp_sasl_password_maps, smtp_tls_security_level = encrypt. Mail is injected with
// Postfix's own sendmail. Pitfalls (see ../shared/peer/setup.sh): no chroot (the queue dir is
// not the default one), no syslog (maillog_file), and `postfix -c` needs root.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface PostfixClient {
  dir: string;
  sendmail(from: string, to: string[], message: string): Promise<void>;
  log(): string;
  stop(): Promise<void>;
}

export async function startPostfixClient(opts: { relayPort: number; user: string; password: string; bindAddress: string }): Promise<PostfixClient> {
  for (const bin of ['/usr/sbin/postfix', '/usr/sbin/postconf', '/usr/sbin/postmap', '/usr/sbin/sendmail']) {
    if (!fs.existsSync(bin)) throw new Error(`${bin} is missing: install Debian's postfix and libsasl2-modules (.ci/run does)`);
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dkim-relay-postfix-'));
  fs.chmodSync(dir, 0o755);
  const conf = path.join(dir, 'conf');
  const spool = path.join(dir, 'spool');
  const data = path.join(dir, 'data');
  const logFile = path.join(dir, 'maillog');
  fs.mkdirSync(conf);
  fs.mkdirSync(spool);
  fs.mkdirSync(data);
  await run('chown', ['postfix:postfix', data]);
  const relay = `[127.0.0.1]:${opts.relayPort}`;
  fs.writeFileSync(path.join(conf, 'main.cf'), [
    'compatibility_level = 3.6',
    `queue_directory = ${spool}`,
    `data_directory = ${data}`,
    'mail_owner = postfix',
    'setgid_group = postdrop',
    'myhostname = client.example.org',
    'mydomain = example.org',
    'myorigin = $mydomain',
    'mydestination =',
    'local_recipient_maps =',
    'alias_maps =',
    'alias_database =',
    'inet_interfaces = 127.0.0.1',
    'inet_protocols = ipv4',
    `smtp_bind_address = ${opts.bindAddress}`,
    // As README.md tells users:
    `relayhost = ${relay}`,
    'smtp_sasl_auth_enable = yes',
    `smtp_sasl_password_maps = hash:${conf}/sasl_passwd`,
    'smtp_sasl_security_options = noanonymous',
    'smtp_sasl_tls_security_options = noanonymous',
    'smtp_tls_security_level = encrypt',
    'smtp_tls_loglevel = 1',
    // no syslog here: postlogd writes this file (its prefix must be allowed)
    `maillog_file = ${logFile}`,
    `maillog_file_prefixes = ${dir}`,
    'biff = no',
    // retry quickly: the test waits for the first delivery
    'queue_run_delay = 1s',
    'minimal_backoff_time = 1s',
    'maximal_backoff_time = 2s',
    '',
  ].join('\n'));
  fs.copyFileSync('/etc/postfix/master.cf', path.join(conf, 'master.cf'));
  await run('/usr/sbin/postconf', ['-c', conf, '-M#', 'smtp/inet']);
  await run('/usr/sbin/postconf', ['-c', conf, '-F', '*/*/chroot = n']);
  fs.writeFileSync(path.join(conf, 'sasl_passwd'), `${relay} ${opts.user}:${opts.password}\n`, { mode: 0o600 });
  await run('/usr/sbin/postmap', ['-c', conf, `hash:${conf}/sasl_passwd`]);
  await run('/usr/sbin/postfix', ['-c', conf, 'set-permissions']).catch(() => undefined);
  await run('/usr/sbin/postfix', ['-c', conf, 'start']);

  return {
    dir,
    async sendmail(from, to, message) {
      await new Promise<void>((resolve, reject) => {
        const child = execFile('/usr/sbin/sendmail', ['-C', conf, '-f', from, '-i', '--', ...to], (err) => (err ? reject(err) : resolve()));
        child.stdin!.end(message);
      });
    },
    log: () => (fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : ''),
    async stop() {
      await run('/usr/sbin/postfix', ['-c', conf, 'stop']).catch(() => undefined);
      // postfix stop returns before every daemon has exited
      for (let i = 0; i < 50; i++) {
        try {
          await run('/usr/sbin/postfix', ['-c', conf, 'status']);
        } catch {
          break;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
