// The failover tests' primary child process (test/helpers/failover-primary-child.ts): started,
// told to commit, SIGKILLed. Keeps every "ack" line it printed (commits confirmed by the
// synchronous standby before the kill). Every child started here is killed by
// killFailoverChildren() (call it from the test file's after() hook).
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), 'failover-primary-child.js');
const children: ChildProcess[] = [];

export function killFailoverChildren(): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
}

export interface Ack {
  key: string;
  n: number;
  lsn: number;
}

export class FailoverPrimary {
  readonly proc: ChildProcess;
  readonly acks: Ack[] = [];
  private lines: string[] = [];
  private waiters: Array<() => void> = [];
  readonly exited: Promise<void>;
  output = '';

  constructor(dataDir: string, round: number, committers: number) {
    this.proc = spawn(process.execPath, [CHILD, dataDir, String(round), String(committers)], { stdio: ['pipe', 'pipe', 'pipe'] });
    children.push(this.proc);
    let buf = '';
    this.proc.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (line.startsWith('ack ')) {
          const [, key, n, lsn] = line.split(' ');
          this.acks.push({ key: key!, n: Number(n), lsn: Number(lsn) });
        } else {
          this.lines.push(line);
          this.output += `${line}\n`;
        }
        this.wake();
      }
    });
    this.proc.stderr!.on('data', (d: Buffer) => (this.output += d.toString()));
    // ('close': after the last line it printed was read, unlike 'exit'.)
    this.exited = new Promise((r) => this.proc.once('close', () => {
      this.wake();
      r();
    }));
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** Wait until `cond` holds (checked on every line); fails if the child exits first. */
  async until(cond: () => boolean, what: string, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!cond()) {
      const gone = this.proc.exitCode !== null || this.proc.signalCode !== null;
      if (gone || Date.now() > deadline) throw new Error(`primary child: ${what} ${gone ? 'did not happen before it exited' : `not within ${timeoutMs} ms`}; output:\n${this.output}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, 200);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  /** The next line starting with `prefix`. */
  async line(prefix: string, timeoutMs = 60_000): Promise<string> {
    let found = '';
    await this.until(() => {
      const i = this.lines.findIndex((l) => l.startsWith(prefix));
      if (i >= 0) found = this.lines.splice(i, 1)[0]!;
      return i >= 0;
    }, `a "${prefix}" line`, timeoutMs);
    return found;
  }

  send(cmd: string): void {
    this.proc.stdin!.write(`${cmd}\n`);
  }

  async kill(): Promise<void> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill('SIGKILL');
    await this.exited;
  }
}

const STANDBY_CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), 'failover-standby-child.js');

/** The failover crash test's standby child (test/helpers/failover-standby-child.ts). */
export class FailoverStandby {
  readonly proc: ChildProcess;
  private lines: string[] = [];
  private waiters: Array<() => void> = [];
  readonly exited: Promise<void>;
  output = '';

  constructor(dataDir: string, port: number) {
    this.proc = spawn(process.execPath, [STANDBY_CHILD, dataDir, String(port)], { stdio: ['pipe', 'pipe', 'pipe'] });
    children.push(this.proc);
    let buf = '';
    this.proc.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      this.output += d.toString();
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        this.lines.push(buf.slice(0, i));
        buf = buf.slice(i + 1);
        this.wake();
      }
    });
    this.proc.stderr!.on('data', (d: Buffer) => (this.output += d.toString()));
    this.exited = new Promise((r) => this.proc.once('close', () => {
      this.wake();
      r();
    }));
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  has(prefix: string): boolean {
    return this.lines.some((l) => l.startsWith(prefix));
  }

  /** The next line starting with `prefix` (fails if the child exits first). */
  async line(prefix: string, timeoutMs = 60_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.lines.findIndex((l) => l.startsWith(prefix));
      if (i >= 0) return this.lines.splice(i, 1)[0]!;
      const gone = this.proc.exitCode !== null || this.proc.signalCode !== null;
      if (gone || Date.now() > deadline) throw new Error(`standby child: no "${prefix}" line ${gone ? 'before it exited' : `within ${timeoutMs} ms`}; output:\n${this.output}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, 200);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  send(cmd: string): void {
    this.proc.stdin!.write(`${cmd}\n`);
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill(signal);
    await this.exited;
  }
}
