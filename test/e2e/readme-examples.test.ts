// Issue 16 item 8: what README tells a new user to run, run as written. The nodemailer
// snippet is taken out of README.md and run as its own CommonJS file against a relay (only
// the host and port are pointed at the test relay); `npx dkim-relay` and `node
// bin/dkim-relay.js` on the system's Node.js print the command's output and nothing else.
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { addUser } from '../../src/users/store';
import { ensureBuilt, NODE, ROOT } from '../helpers/built-cli';
import { Harness, startWithSink } from '../helpers/relay-harness';
import { Sink } from '../helpers/sink';

interface RunResult { code: number; stdout: string; stderr: string }

function run(file: string, args: string[], options: { cwd: string; env: NodeJS.ProcessEnv }): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(file, args, { ...options, timeout: 60000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
    });
  });
}

/** The first ```js block after `marker` in README.md. */
function readmeSnippet(marker: string): string {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const at = readme.indexOf(marker);
  expect(at).toBeGreaterThan(-1);
  const m = /```js\n([\s\S]*?)```/.exec(readme.slice(at));
  if (!m) throw new Error(`no js block after "${marker}" in README.md`);
  return m[1];
}

describe('the nodemailer snippet', () => {
  let h: Harness;
  let sink: Sink;

  beforeAll(async () => {
    ({ h, sink } = await startWithSink());
    h.dns.set('example.com', 'MX', [{ exchange: 'mx.dest.test', priority: 10 }]);
    await addUser(h.config.usersFile, { name: 'app1', domains: ['example.org'], password: 'a long secret password' });
    await new Promise((r) => setTimeout(r, 1500)); // the relay re-reads the users file at most once a second
  }, 60000);

  afterAll(async () => {
    await h?.stop();
    await sink?.close();
  });

  test('runs as written (CommonJS) and the message is queued and delivered', async () => {
    const snippet = readmeSnippet('With nodemailer:');
    expect(snippet).toContain("host: 'relay.example.net'");
    expect(snippet).toContain('port: 2587');
    const file = path.join(h.dir, 'send.js');
    fs.writeFileSync(file, snippet.replace("host: 'relay.example.net'", "host: '127.0.0.1'").replace('port: 2587', `port: ${h.relay.ports.starttls}`));
    const password = 'a long secret password';
    const r = await run(NODE, [file], {
      cwd: h.dir,
      // require('nodemailer') from the project, as in an app that installed it
      env: { ...process.env, NODE_PATH: path.join(ROOT, 'node_modules'), SMTP_PASSWORD: password, RELAY_PASSWORD: password },
    });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^250 2\.0\.0 queued as \S+\n$/);
    const [msg] = await sink.waitForMessages(1, 15000);
    expect(msg.data.toString()).toMatch(/^Subject: Hi\r$/m);
  });
});

describe('the commands are quiet on the system Node.js', () => {
  // The Node.js that npm and a plain `node` find without the project's node_modules/.bin
  const systemPath = (process.env.PATH ?? '').split(':').filter((p) => !p.startsWith(ROOT) && !p.includes('node_modules')).join(':');
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: systemPath };
  for (const k of Object.keys(env)) if (k.startsWith('RELAY_') || k.startsWith('npm_')) delete env[k];

  beforeAll(() => ensureBuilt(), 120000);

  test('npx dkim-relay help: the usage, no npm warnings', async () => {
    const version = execFileSync('node', ['--version'], { env }).toString().trim();
    const r = await run('npx', ['dkim-relay', 'help'], { cwd: ROOT, env });
    expect({ version, stderr: r.stderr }).toEqual({ version, stderr: '' });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^usage: dkim-relay /);
  });

  test("the system Node.js satisfies package.json's engines (else npm prints EBADENGINE warnings when it reads the tree)", () => {
    const version = execFileSync('node', ['--version'], { env }).toString().trim().replace(/^v/, '').split('.').map(Number);
    const engines = (JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { engines: { node: string } }).engines.node;
    const m = /^>=\s*(\d+)(?:\.(\d+))?(?:\.(\d+))?$/.exec(engines);
    if (!m) throw new Error(`engines.node "${engines}" is not of the form >=X.Y.Z`);
    const wanted = [Number(m[1]), Number(m[2] ?? 0), Number(m[3] ?? 0)];
    const cmp = version[0] - wanted[0] || version[1] - wanted[1] || version[2] - wanted[2];
    expect({ node: version.join('.'), engines, satisfied: cmp >= 0 }).toEqual({ node: version.join('.'), engines, satisfied: true });
  });

  test('node bin/dkim-relay.js help works on the system Node.js too', async () => {
    const r = await run('node', ['bin/dkim-relay.js', 'help'], { cwd: ROOT, env });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^usage: dkim-relay /);
  });
});
