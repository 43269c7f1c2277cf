// Run the real psql on a replication connection to a walstream primary on 127.0.0.1 (killed after
// 10 s), collecting its output and exit status.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { PG_BIN } from './tmp.js';

export function psql(port: number, cmd: string, env: Record<string, string> = {}, user = 'tester'): Promise<{ stdout: string; stderr: string; status: number | null }> {
  const c = spawn(path.join(PG_BIN, 'psql'), [`host=127.0.0.1 port=${port} user=${user} replication=true`, '-AtX', '-c', cmd], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  let stdout = '';
  let stderr = '';
  c.stdout.on('data', (d) => (stdout += d));
  c.stderr.on('data', (d) => (stderr += d));
  const t = setTimeout(() => c.kill('SIGKILL'), 10_000);
  return new Promise((resolve) =>
    c.once('exit', (status) => {
      clearTimeout(t);
      resolve({ stdout: stdout.trim(), stderr: stderr.trim(), status });
    }),
  );
}
