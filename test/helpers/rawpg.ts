// Test helper: a raw PostgreSQL-protocol client over one TCP socket, for byte-level tests of our
// walsender (malformed input, exact replies). It owns its socket; close() destroys it. Messages are
// decoded with the protocol core's BackendDecoder and queued for next().

import net from 'node:net';
import { MessageChannel } from 'node:worker_threads';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { BackendDecoder, type Frame } from '../../src/replication/protocol/frames.js';
import { decodeErrorFields, encodeQuery, encodeStartupMessage, type ErrorFields } from '../../src/replication/protocol/messages.js';
import { createRingPair, type RingPairHandle } from '../../src/replication/ring.js';
import { type ByteSocket, RingSocket } from '../../src/replication/ring-socket.js';
import type { InProcessConnectRequest } from '../../src/replication/in-process-connect.js';
import { PG_BIN } from './tmp.js';

export class RawClient {
  readonly socket: ByteSocket;
  /** In-process clients: the connection's rings (tests damage them on purpose). */
  rings: RingPairHandle | null = null;
  private readonly decoder = new BackendDecoder();
  private readonly frames: Frame[] = [];
  private waiter: (() => void) | null = null;
  closed = false;
  bytesReceived = 0;

  private constructor(socket: ByteSocket) {
    this.socket = socket;
    socket.on('data', (d: Buffer) => {
      this.bytesReceived += d.length;
      this.decoder.push(d);
      for (;;) {
        let f: Frame | null;
        try {
          f = this.decoder.next();
        } catch {
          break;
        }
        if (!f) break;
        this.frames.push({ type: f.type, body: Buffer.from(f.body) });
      }
      this.wake();
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  static connect(port: number, host = '127.0.0.1'): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect(port, host, () => resolve(new RawClient(s)));
      s.once('error', reject);
    });
  }

  /** A raw in-process connection (SharedArrayBuffer rings) through a primary's inProcessListener(). */
  static inProcess(primary: { inProcessListener(): import('node:worker_threads').MessagePort }, ringBytes = 256 * 1024): RawClient {
    const listener = primary.inProcessListener();
    const rings = createRingPair(ringBytes);
    const { port1, port2 } = new MessageChannel();
    listener.postMessage({ type: 'connect', rings, peer: port2 } satisfies InProcessConnectRequest, [port2]);
    const c = new RawClient(new RingSocket({ side: 'client', rings, peer: port1, zeroCopy: false, keepAlive: true }));
    c.socket.on('close', () => listener.close());
    c.rings = rings;
    return c;
  }

  send(b: Uint8Array): void {
    this.socket.write(b);
  }

  /** Next message, or null once the server closed the connection (and nothing is queued). */
  async next(timeoutMs = 5000): Promise<Frame | null> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const f = this.frames.shift();
      if (f) return f;
      if (this.closed) return null;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no message from the server within ${timeoutMs} ms`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.waiter = () => {
          clearTimeout(t);
          r();
        };
      });
    }
  }

  /** Messages up to and including ReadyForQuery, or until the connection closes. */
  async untilReady(timeoutMs = 5000): Promise<Frame[]> {
    const out: Frame[] = [];
    for (;;) {
      const f = await this.next(timeoutMs);
      if (!f) return out;
      out.push(f);
      if (f.type === 0x5a) return out;
    }
  }

  /** StartupMessage (replication=true) with trust authentication; returns messages up to ReadyForQuery. */
  async startup(user = 'tester', appName = 'rawtest'): Promise<Frame[]> {
    this.send(encodeStartupMessage({ user, database: 'replication', replication: 'true', application_name: appName }));
    return this.untilReady();
  }

  async query(sql: string): Promise<Frame[]> {
    this.send(encodeQuery(sql));
    return this.untilReady();
  }

  /** Wait until the server closes the connection; returns the messages received before. */
  async untilClosed(timeoutMs = 5000): Promise<Frame[]> {
    const out: Frame[] = [];
    for (;;) {
      const f = await this.next(timeoutMs);
      if (!f) return out;
      out.push(f);
    }
  }

  close(): void {
    this.socket.destroy();
  }
}

export function typeOf(f: Frame): string {
  return String.fromCharCode(f.type);
}

export function errorOf(frames: Frame[]): ErrorFields | null {
  const e = frames.find((f) => f.type === 0x45);
  return e ? decodeErrorFields(e.body) : null;
}

/** pg_receivewal as a child process; stop() sends SIGINT and waits for it. */
export interface ReceiveWal {
  child: ChildProcess;
  dir: string;
  output: () => string;
  exited: Promise<number | null>;
  stop(): Promise<number | null>;
}

export function startPgReceivewal(port: number, dir: string, extra: string[] = [], env: Record<string, string> = {}): ReceiveWal {
  fs.mkdirSync(dir, { recursive: true });
  const child = spawn(path.join(PG_BIN, 'pg_receivewal'), ['-h', '127.0.0.1', '-p', String(port), '-U', 'tester', '-D', dir, '--no-loop', '-v', '-w', ...extra], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return {
    child,
    dir,
    output: () => out,
    exited,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGINT');
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      const c = await exited;
      clearTimeout(t);
      return c;
    },
  };
}

/** Poll `cond` every `everyMs` until it is true (throws after timeoutMs). */
export async function waitFor(cond: () => boolean, timeoutMs: number, what: string, everyMs = 20): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
