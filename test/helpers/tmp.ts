// Temp directories for tests, removed in after() hooks.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export function tmpDir(prefix = 'walstream-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export function rmrf(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
}

export const PG_BIN = process.env.PG_BIN ?? '/usr/lib/postgresql/15/bin';
