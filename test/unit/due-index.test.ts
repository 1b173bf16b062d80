// The spool's due index on a real file system (src/spool/due-index.ts): its entries, and when a
// start may trust it (or must walk the spool to repair it).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { bucketOf, DueIndex } from '../../src/spool/due-index';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dkim-relay-due-index-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const stateFile = () => path.join(dir, 'spool-index', 'state.json');

test('entries: one empty file per message in the folder of its minute; listed minute by minute, in order', async () => {
  const index = new DueIndex(dir);
  await index.open();
  const now = Date.now();
  index.add(bucketOf(now + 3 * 60_000), 'C');
  index.add(bucketOf(now), 'A');
  index.add(bucketOf(now), 'B');
  index.add(bucketOf(now), 'B'); // again: fine
  expect(await index.buckets()).toEqual([bucketOf(now), bucketOf(now + 3 * 60_000)]);
  const first: string[] = [];
  for await (const id of index.entries(bucketOf(now))) first.push(id);
  expect(first.sort()).toEqual(['A', 'B']);
  expect(fs.statSync(index.entryPath(bucketOf(now), 'A')).size).toBe(0);
  await index.remove(bucketOf(now), 'A');
  await index.remove(bucketOf(now), 'A'); // gone already: fine
  expect(index.has(bucketOf(now), 'A')).toBe(false);
  await index.drop(bucketOf(now)); // not empty: kept
  expect(index.has(bucketOf(now), 'B')).toBe(true);
  await index.remove(bucketOf(now), 'B');
  await index.drop(bucketOf(now));
  expect(await index.buckets()).toEqual([bucketOf(now + 3 * 60_000)]);
  index.add(bucketOf(now), 'D'); // its folder was removed: made again
  expect(index.has(bucketOf(now), 'D')).toBe(true);
  // a deferral moves an entry by one rename; one that is not where it was thought is made anew
  await index.move(bucketOf(now), bucketOf(now + 60 * 60_000), 'D');
  expect([index.has(bucketOf(now), 'D'), index.has(bucketOf(now + 60 * 60_000), 'D')]).toEqual([false, true]);
  await index.move(bucketOf(now), bucketOf(now + 2 * 60 * 60_000), 'E');
  expect(index.has(bucketOf(now + 2 * 60 * 60_000), 'E')).toBe(true);
});

test('a start trusts the index after a clean stop, or after a killed relay on the same boot; not after a crash of the machine, nor when there was none', async () => {
  const first = await new DueIndex(dir).open();
  expect(first).toEqual({ trusted: false, existed: false });
  // (the repair of the first start is cut short by a kill: the next start must walk again)
  expect((await new DueIndex(dir).open()).trusted).toBe(false);
  const repairing = new DueIndex(dir);
  await repairing.open();
  await repairing.repaired();
  // killed (no close) on this boot: the entries were in the page cache, none lost
  expect((await new DueIndex(dir).open()).trusted).toBe(true);
  // a relay that ran on another boot and never stopped cleanly: the machine crashed
  fs.writeFileSync(stateFile(), JSON.stringify({ clean: false, bootId: 'another-boot' }));
  const afterCrash = new DueIndex(dir);
  expect(await afterCrash.open()).toEqual({ trusted: false, existed: true });
  // stopped cleanly before its repair was done: still owed
  await afterCrash.close();
  expect((await new DueIndex(dir).open()).trusted).toBe(false);
  const fixed = new DueIndex(dir);
  await fixed.open();
  await fixed.repaired();
  await fixed.close();
  fs.writeFileSync(stateFile(), JSON.stringify({ ...JSON.parse(fs.readFileSync(stateFile(), 'utf8')), bootId: 'another-boot' }));
  expect((await new DueIndex(dir).open()).trusted).toBe(true); // a clean stop, then a reboot
});
