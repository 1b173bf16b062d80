// Python's email.headerregistry as an independent reader of From (test/helpers/python_from.py),
// one process for a whole batch of messages.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { PYTHON } from './dkim-verify';

export interface PythonFrom {
  addresses?: [display: string, username: string, domain: string][];
  defects?: string[];
  error?: string;
}

export function pythonReadsFrom(messages: Buffer[]): Promise<PythonFrom[]> {
  return new Promise((resolve, reject) => {
    const child = execFile(PYTHON, [path.join(__dirname, 'python_from.py')], { maxBuffer: 256 * 1024 * 1024 }, (err, stdout) => {
      if (err) return reject(err);
      const lines = stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as PythonFrom);
      if (lines.length !== messages.length) return reject(new Error(`python_from.py answered ${lines.length} of ${messages.length}`));
      resolve(lines);
    });
    child.stdin?.end(messages.map((m) => JSON.stringify(m.toString('base64'))).join('\n') + '\n');
  });
}
