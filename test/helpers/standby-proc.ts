// A standby child process (test/helpers/standby-child.ts) and the lines it prints, for tests that
// SIGKILL, SIGSTOP or restart a standby. Every process started here is killed by killStandbyChildren()
// (call it from the test file's after() hook).
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Lsn } from '../../src/wal/lsn.js';

const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), 'standby-child.js');
const children: ChildProcess[] = [];

export function killStandbyChildren(): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
}

export class StandbyChild {
  readonly proc: ChildProcess;
  private lines: string[] = [];
  private waiters: Array<() => void> = [];
  readonly exited: Promise<number | null>;
  output = '';

  /**
   * A standby of the primary at 127.0.0.1:`port`, user rep / password pw. `serve`: it serves
   * replication on that port (0 = ephemeral: the fourth field of its ready line) as `applicationName`.
   */
  constructor(dataDir: string, port: number, serve: { port: number; applicationName: string } | null = null) {
    const extra = serve === null ? [] : [String(serve.port), serve.applicationName];
    this.proc = spawn(process.execPath, [CHILD, dataDir, '127.0.0.1', String(port), 'rep', 'pw', '0', ...extra], { stdio: ['pipe', 'pipe', 'pipe'] });
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
    this.exited = new Promise((r) => this.proc.once('exit', (code) => {
      this.wake();
      r(code);
    }));
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** The next line starting with `prefix` (fails at once if the child exited without one). */
  async line(prefix: string, timeoutMs = 60_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.lines.findIndex((l) => l.startsWith(prefix));
      if (i >= 0) return this.lines.splice(i, 1)[0]!;
      const gone = this.proc.exitCode !== null || this.proc.signalCode !== null;
      if (gone || Date.now() > deadline) throw new Error(`child: no "${prefix}" line ${gone ? 'before it exited' : `within ${timeoutMs} ms`}; output:\n${this.output}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, 200);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  has(prefix: string): boolean {
    return this.lines.some((l) => l.startsWith(prefix));
  }

  send(cmd: string): void {
    this.proc.stdin!.write(cmd + '\n');
  }

  /** Store digest once replay passed `lsn`. */
  async digest(lsn: Lsn): Promise<string> {
    this.send(`digest ${lsn}`);
    return (await this.line(`digest ${lsn} `)).split(' ')[2]!;
  }

  /** receiverStatus() of the child. */
  async status<T = Record<string, unknown>>(): Promise<T> {
    this.send('status');
    return JSON.parse((await this.line('status ')).slice('status '.length)) as T;
  }

  async kill(signal: NodeJS.Signals): Promise<void> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill(signal);
    await this.exited;
  }

  async stop(): Promise<void> {
    await this.kill('SIGTERM');
  }
}
