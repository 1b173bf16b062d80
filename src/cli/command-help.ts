// What `dkim-relay help COMMAND` and `dkim-relay COMMAND --help` print: each command's usage,
// what it does and its options. Kept apart from the commands so that help needs neither the
// configuration nor the command's modules (help works even when a setting is wrong).

const CONFIG_RULE =
  'Every command reads the same settings as serve: config/default.json, then --config FILE, then\n' +
  'RELAY_* environment variables. Run it with the same --config and RELAY_* variables as the\n' +
  'relay, or it looks at other folders and DNS servers (`dkim-relay config show` prints them).';

export const COMMAND_HELP: Record<string, string> = {
  serve: `usage: dkim-relay [--config FILE] serve

Runs the relay: the submission server (STARTTLS on submission.port, implicit TLS on
submission.tlsPort when set), signing, the spool and delivery. Logs JSON lines on stdout.
SIGTERM or SIGINT: stops accepting, lets deliveries in flight finish (up to 10 s), exits 0;
queued mail stays in the spool. A second signal exits at once.

options: none besides the global --config FILE.

${CONFIG_RULE}`,

  keygen: `usage: dkim-relay keygen --domain DOMAIN [--selector SELECTOR] [--algorithm rsa|ed25519]
                        [--bits 2048|3072|4096] [--format zone|value]

Makes a DKIM key for DOMAIN in the key store (keysDir) in state pending, and prints its DNS TXT
record on stdout (explanations on stderr). The key signs once the record is published and
\`dkim-relay keys activate DOMAIN SELECTOR\` (or the running relay) has seen it in DNS.

options:
  --domain DOMAIN      the domain whose mail the key signs (the From header's domain); required
  --selector SELECTOR  the selector; default <yyyymmdd>-rsa or <yyyymmdd>-ed, with -2, -3... when taken
  --algorithm ALG      rsa (default) or ed25519 (signs only in addition to an active RSA key)
  --bits N             RSA key size: 2048 (default), 3072 or 4096
  --format FORMAT      zone (default): a zone-file line; value: the bare TXT value for a web form

${CONFIG_RULE}`,

  keys: `usage: dkim-relay keys list [DOMAIN] [--json] [--no-dns]
       dkim-relay keys activate DOMAIN SELECTOR
       dkim-relay keys retire DOMAIN SELECTOR [--force]
       dkim-relay keys record DOMAIN SELECTOR [--format zone|value]

The key lifecycle by hand. A running relay picks up every change within 5 seconds.
  list      every key: state (pending, active, retired, UNUSABLE with the reason), whether its
            DNS record matches, whether it signs. --json: as JSON; --no-dns: without DNS lookups
  activate  makes a pending key active once its TXT record is in DNS with the key's public key
  retire    stops signing with a key; keep its record published at least a week. Retiring the
            last active RSA key of a domain (its mail is then refused) needs --force
  record    prints a key's record again; --format zone (default) or value

${CONFIG_RULE}`,

  users: `usage: dkim-relay users add NAME --domain DOMAIN [--domain DOMAIN2 ...] [--password-stdin]
       dkim-relay users list [--json]
       dkim-relay users remove NAME

The users allowed to AUTH on the submission port (usersFile), and the sender domains each may use.
A running relay sees changes within a second.
  add     adds a user (an existing one must be removed first). Without --password-stdin a strong
          password is generated and printed once; with it, the password is read from stdin
  list    the users and their domains (never the password hashes); --json: as JSON
  remove  removes a user

${CONFIG_RULE}`,

  queue: `usage: dkim-relay queue list [--json]
       dkim-relay queue show ID [--json]
       dkim-relay queue retry ID|--all [--json]
       dkim-relay queue delete ID [--bounce] [--json]

The queued messages in the spool (dataDir). Safe while the relay runs: retry and delete leave a
request that the running relay applies within a second.
  list    id, age, sender, attempts, next attempt, each recipient's state and last reply
  show    one message: envelope, recipients, attempt history, stored headers; for a message
          that has left the queue, what happened to it (delivered where and when, or why
          not), from the journal of final outcomes (kept queue.journalDays, RELAY_JOURNAL_DAYS)
  retry   tries the queued recipients of ID (or of every message: --all) now
  delete  removes a message; --bounce sends the sender a DSN for the recipients not yet delivered

${CONFIG_RULE}`,

  doctor: `usage: dkim-relay doctor [--domain DOMAIN] [--json]

Checks in DNS what the big providers check: PTR, FCrDNS and HELO of the sending identity,
blocklists, and for each domain of the key store (or DOMAIN) its SPF, DKIM and DMARC records.
Prints the record or setting that fixes each problem. Exit 1 when a check fails.

options:
  --domain DOMAIN  check this domain instead of every domain of the key store
  --json           the report as JSON

${CONFIG_RULE}`,

  config: `usage: dkim-relay config show [--json] [--changed]

Prints the effective configuration, as every command (serve too) reads it with this --config
and environment: each setting, its value and where the value came from (default,
config/default.json, the --config file, or the environment variable). Secrets are masked.
  --json     as JSON: { "setting.name": { "value": ..., "source": ..., "from": ... } }, where
             source is one of default, default.json, config file, environment
  --changed  only the settings that are not at their default (like postconf -n)`,

  help: `usage: dkim-relay help [COMMAND]

Prints the list of commands, or the usage and options of COMMAND (the same as
dkim-relay COMMAND --help).`,
};
