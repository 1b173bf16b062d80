// What `dkim-relay serve` loads at start, in a fresh Node.js on dist/ (jest's own module
// registry would not show it): the CLI entry loads no command's module, and the serve command
// does not bring in the other commands, doctor's DNS checks, node-forge (only needed to make
// a self-signed certificate) or the Redis client (only with redis.url). Each of these costs memory in every running relay.
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { ensureBuilt, NODE, ROOT } from '../helpers/built-cli';

const DIST = path.join(ROOT, 'dist');

/** The files in require.cache of a fresh process after requiring `modules` (paths relative to dist/). */
function loadedAfter(modules: string[]): string[] {
  const script = [
    ...modules.map((m) => `require(${JSON.stringify(path.join(DIST, m))});`),
    'process.stdout.write(JSON.stringify(Object.keys(require.cache)));',
  ].join('\n');
  const out = execFileSync(NODE, ['-e', script], { cwd: ROOT, encoding: 'utf8' });
  return (JSON.parse(out) as string[]).map((f) => f.split(path.sep).join('/'));
}

const OTHER_COMMANDS = /\/dist\/cli\/(doctor|keygen|keys|queue|users)-command\.js$/;
const DOCTOR = /\/dist\/doctor\//;
const FORGE = /\/node_modules\/node-forge\//;
const HTTP_SIDE = /\/node_modules\/prom-client\/|\/dist\/http\/(?!listen-settings)/;

beforeAll(() => {
  ensureBuilt();
}, 120000);

test('the CLI entry loads no command module', () => {
  const loaded = loadedAfter(['cli.js']);
  expect(loaded.some((f) => f.endsWith('/dist/cli.js'))).toBe(true);
  expect(loaded.filter((f) => /\/dist\/cli\/[^/]+-command\.js$/.test(f))).toEqual([]);
  expect(loaded.filter((f) => DOCTOR.test(f) || FORGE.test(f))).toEqual([]);
});

test('the CLI entry and the serve command load neither node-forge, doctor nor the other commands', () => {
  const loaded = loadedAfter(['cli.js', 'cli/serve-command.js']);
  // the serve path itself is there: the relay, its submission server and TLS certificate module
  for (const m of ['/dist/cli/serve-command.js', '/dist/relay.js', '/dist/submission/server.js', '/dist/submission/tls-certificate.js']) {
    expect(loaded.some((f) => f.endsWith(m))).toBe(true);
  }
  expect(loaded.filter((f) => FORGE.test(f))).toEqual([]);
  expect(loaded.filter((f) => DOCTOR.test(f))).toEqual([]);
  expect(loaded.filter((f) => OTHER_COMMANDS.test(f))).toEqual([]);
  // the HTTP listener and prom-client only with http.listen set (relay.ts imports them then)
  expect(loaded.filter((f) => HTTP_SIDE.test(f))).toEqual([]);
  // Redis's client only when redis.url is set (relay.ts imports it then)
  expect(loaded.filter((f) => /\/node_modules\/ioredis\/|\/dist\/shared-state\/(shared-redis|redis-)/.test(f))).toEqual([]);
});
