// A full spool, for real: the data dir on a 2 MB tmpfs (mounting needs root, which the test
// runs as here), filled up. The client must get 452 4.3.1, never 250, and nothing half
// written may stay behind; once there is room again, mail is accepted.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DOMAIN, Harness, rawMessage, startHarness, submit, submitError } from '../helpers/relay-harness';

let h: Harness;
let mountDir: string;

beforeAll(async () => {
  mountDir = fs.mkdtempSync(path.join(os.tmpdir(), 'dkim-relay-tmpfs-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', mountDir], { stdio: 'pipe' });
  } catch (err) {
    throw new Error(`this test mounts a small tmpfs and needs root: ${(err as { stderr?: Buffer }).stderr?.toString() ?? err}`);
  }
  h = await startHarness({ RELAY_DATA_DIR: path.join(mountDir, 'data'), RELAY_MX_PORT: '9' });
});

afterAll(async () => {
  await h?.stop();
  execFileSync('umount', [mountDir], { stdio: 'pipe' });
  fs.rmdirSync(mountDir);
});

test('ENOSPC: 452 4.3.1 and nothing left behind; accepted again once there is room', async () => {
  const filler = path.join(mountDir, 'filler');
  const fd = fs.openSync(filler, 'w');
  try {
    for (;;) fs.writeSync(fd, Buffer.alloc(64 * 1024, 1));
  } catch (err) {
    expect((err as NodeJS.ErrnoException).code).toBe('ENOSPC');
  } finally {
    fs.closeSync(fd);
  }
  const body = ('x'.repeat(76) + '\r\n').repeat(2000); // ~156 KB, more than is left
  const r = await submitError(h, { to: ['user@dest.test'], raw: rawMessage(`app@${DOMAIN}`, 'user@dest.test', { body }) });
  expect(r.code).toBe(452);
  expect(r.response).toMatch(/^452 4\.3\.1 the relay's spool is full/);
  const spoolDir = path.join(mountDir, 'data');
  expect(fs.readdirSync(path.join(spoolDir, 'spool'))).toEqual([]);
  expect(fs.readdirSync(path.join(spoolDir, 'spool-tmp'))).toEqual([]);

  fs.rmSync(filler);
  const ok = await submit(h, { to: ['user@dest.test'], raw: rawMessage(`app@${DOMAIN}`, 'user@dest.test', { body }) });
  expect(ok.response).toMatch(/^250 2\.0\.0 queued as/);
});
