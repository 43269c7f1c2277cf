// Example: an HTTP key-value service with read-your-writes on a standby (node:http). One process
// holds a walstream primary and an in-process standby of it; writes go to the primary and return
// their commit LSN (header X-Commit-LSN and cookie walstream-lsn); reads go to the standby's reader
// threads (reader.ts, openReader on standby.readerHandle()), which first wait until the standby has
// replayed the LSN the client sent back, so a client always reads its own writes even though
// reads never touch the primary.
//
//   PUT /kv/<key>   body: JSON  → 200 {"lsn":"0/1A2B3C"}, X-Commit-LSN: 0/1A2B3C, Set-Cookie: walstream-lsn=0/1A2B3C
//   GET /kv/<key>   X-Commit-LSN header, else the cookie (neither: read at once); X-Wait-Ms: how
//                   long to wait for replay (default readWaitMs, at most MAX_READ_WAIT_MS)
//                   → 200 the JSON value | 404; X-Replay-LSN: the standby's replay position read at
//   errors          {"error": code, "message"}: 400 bad LSN or JSON, 413 body over MAX_BODY_BYTES,
//                   404/405 other paths and methods, 504 the standby did not replay the LSN in time
//
// Who runs it: `node dist/examples/read-your-writes/service.js --data DIR [--port P]`, or
// startService() from code (the tests). What it owns: the HTTP server, the primary, the standby
// and the reader threads. How it stops: close() (SIGINT/SIGTERM from the command line): stop
// accepting, end the readers, close the standby, then the primary (shutdown checkpoint).

import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import { lsnToString, parseLsn, Primary, Standby } from 'walstream';
import type { ReadReply, ReadRequest } from './reader.js';

/** Largest request body, in bytes. */
export const MAX_BODY_BYTES = 64 * 1024;
/** Reader threads by default. */
export const DEFAULT_READER_THREADS = 2;
/** How long a read waits for the standby to replay the client's LSN by default, in ms. */
export const DEFAULT_READ_WAIT_MS = 5_000;
/** Longest wait a request may ask for with X-Wait-Ms, in ms. */
export const MAX_READ_WAIT_MS = 60_000;
export const LSN_HEADER = 'x-commit-lsn';
export const WAIT_HEADER = 'x-wait-ms';
export const REPLAY_HEADER = 'x-replay-lsn';
export const LSN_COOKIE = 'walstream-lsn';
const TABLE = 'kv';

export interface ServiceOptions {
  /** holds primary/ and standby/ (created if missing) */
  dataDir: string;
  /** HTTP port on 127.0.0.1 (0: any free port) */
  port?: number;
  readerThreads?: number;
  readWaitMs?: number;
}

export interface Service {
  readonly port: number;
  readonly primary: Primary;
  readonly standby: Standby;
  close(): Promise<void>;
}

class HttpError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

/** Reader threads with round-robin dispatch; each request gets one reply. */
class Readers {
  private readonly threads: Worker[] = [];
  private readonly pending = new Map<number, (r: ReadReply) => void>();
  private nextId = 1;
  private turn = 0;

  constructor(handle: unknown, n: number) {
    for (let i = 0; i < n; i++) {
      const w = new Worker(new URL('./reader.js', import.meta.url), { workerData: { handle } });
      w.on('message', (r: ReadReply) => {
        const done = this.pending.get(r.id);
        this.pending.delete(r.id);
        done?.(r);
      });
      w.on('error', (e) => this.failAll(e));
      this.threads.push(w);
    }
  }

  read(key: string, lsn: number, timeoutMs: number): Promise<ReadReply> {
    const id = this.nextId++;
    const req: ReadRequest = { id, table: TABLE, key, lsn, timeoutMs };
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      this.threads[this.turn++ % this.threads.length]!.postMessage(req);
    });
  }

  private failAll(e: Error): void {
    for (const [id, done] of this.pending) done({ id, error: { code: 'WS_INTERNAL', message: `reader thread failed: ${e.message}` } });
    this.pending.clear();
  }

  async close(): Promise<void> {
    await Promise.all(this.threads.map((w) => w.terminate()));
    this.failAll(new Error('service closing'));
  }
}

function lsnOf(req: http.IncomingMessage): number {
  let text = req.headers[LSN_HEADER];
  if (Array.isArray(text)) text = text[0];
  if (text === undefined) {
    for (const part of (req.headers.cookie ?? '').split(';')) {
      const [name, value] = part.trim().split('=');
      if (name === LSN_COOKIE && value !== undefined) text = decodeURIComponent(value);
    }
  }
  if (text === undefined) return 0;
  try {
    return parseLsn(text);
  } catch {
    throw new HttpError(400, 'WS_SYNTAX_ERROR', `invalid LSN "${text}" (expected %X/%X, as X-Commit-LSN returns it)`);
  }
}

function waitMsOf(req: http.IncomingMessage, dflt: number): number {
  const text = req.headers[WAIT_HEADER];
  if (text === undefined) return dflt;
  const ms = Number(text);
  if (typeof text !== 'string' || !/^\d+$/.test(text) || ms > MAX_READ_WAIT_MS) {
    throw new HttpError(400, 'WS_INVALID_OPTION', `invalid X-Wait-Ms "${String(text)}" (an integer from 0 to ${MAX_READ_WAIT_MS})`);
  }
  return ms;
}

function readBody(req: http.IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let n = 0;
    req.on('data', (c: Buffer) => {
      n += c.length;
      if (n > MAX_BODY_BYTES) {
        reject(new HttpError(413, 'WS_VALUE_TOO_LARGE', `body over ${MAX_BODY_BYTES} bytes`));
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => {
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      } catch {
        reject(new HttpError(400, 'WS_INVALID_JSON', 'the body is not JSON'));
      }
    });
    req.on('error', reject);
  });
}

function send(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

export async function startService(o: ServiceOptions): Promise<Service> {
  const readerThreads = o.readerThreads ?? DEFAULT_READER_THREADS;
  const readWaitMs = o.readWaitMs ?? DEFAULT_READ_WAIT_MS;
  const primary = await Primary.open({ dataDir: path.join(o.dataDir, 'primary'), port: 0 });
  let standby: Standby | null = null;
  let readers: Readers | null = null;
  try {
    standby = await Standby.open({ dataDir: path.join(o.dataDir, 'standby'), primaryConninfo: { inProcess: primary, applicationName: 'reads' }, readerThreads: 0 });
    readers = new Readers(standby.readerHandle(), readerThreads);
  } catch (e) {
    await standby?.close();
    await primary.close();
    throw e;
  }
  const r = readers;

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    const m = /^\/kv\/([^/?]+)$/.exec(req.url ?? '');
    if (m === null) throw new HttpError(404, 'WS_UNDEFINED_OBJECT', 'no such path (use /kv/<key>)');
    const key = decodeURIComponent(m[1]!);
    if (req.method === 'PUT') {
      const value = await readBody(req);
      const lsn = lsnToString(await primary.transaction((tx) => tx.put(TABLE, key, value)));
      send(res, 200, { lsn }, { [LSN_HEADER]: lsn, 'set-cookie': `${LSN_COOKIE}=${lsn}; Path=/; SameSite=Strict; HttpOnly` });
    } else if (req.method === 'GET') {
      const reply = await r.read(key, lsnOf(req), waitMsOf(req, readWaitMs));
      if ('error' in reply) {
        const status = reply.error.code === 'WS_WAIT_TIMEOUT' ? 504 : reply.error.code === 'WS_CLOSED' ? 503 : 500;
        throw new HttpError(status, reply.error.code, reply.error.message);
      }
      const headers = { [REPLAY_HEADER]: lsnToString(reply.replayLsn) };
      if (reply.found) send(res, 200, reply.value, headers);
      else send(res, 404, { error: 'WS_NOT_FOUND', message: `no key "${key}"` }, headers);
    } else {
      throw new HttpError(405, 'WS_METHOD_NOT_ALLOWED', 'use GET or PUT');
    }
  };

  const server = http.createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      if (res.headersSent) return void res.destroy();
      if (e instanceof HttpError) send(res, e.status, { error: e.code, message: e.message });
      else send(res, 500, { error: (e as { code?: string }).code ?? 'WS_INTERNAL', message: (e as Error).message });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port ?? 0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as { port: number }).port;
  const s = standby;
  let closing: Promise<void> | null = null;
  return {
    port, primary, standby: s,
    close: () => (closing ??= (async () => {
      await new Promise((resolve) => {
        server.close(resolve);
        server.closeAllConnections();
      });
      await r.close();
      await s.close();
      await primary.close();
    })()),
  };
}

// From the command line: node dist/examples/read-your-writes/service.js --data DIR [--port P]
if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const usage = (why: string): never => {
    process.stderr.write(`read-your-writes: ${why}\n`);
    process.exit(2);
  };
  let values: { data?: string; port: string; readers: string } = { port: '8080', readers: String(DEFAULT_READER_THREADS) };
  try {
    values = parseArgs({ options: { data: { type: 'string' }, port: { type: 'string', default: '8080' }, readers: { type: 'string', default: String(DEFAULT_READER_THREADS) } } }).values as typeof values;
  } catch (e) {
    usage(`${(e as Error).message} (accepted: --data DIR, --port P, --readers N)`);
  }
  const port = Number(values.port);
  const readers = Number(values.readers);
  if (values.data === undefined) usage('--data DIR is required (it holds primary/ and standby/)');
  if (!/^\d+$/.test(values.port) || port > 65535) usage(`invalid value for option "--port": must be an integer from 0 to 65535, got ${values.port}`);
  if (!/^\d+$/.test(values.readers) || readers < 1 || readers > 64) usage(`invalid value for option "--readers": must be an integer from 1 to 64, got ${values.readers}`);
  const svc = await startService({ dataDir: values.data!, port, readerThreads: readers }).catch((e: unknown) => {
    process.stderr.write(`read-your-writes: ${(e as Error).message}\n`);
    return process.exit(1);
  });
  process.stdout.write(`read-your-writes: listening on http://127.0.0.1:${svc.port}/kv/<key>\n`);
  const stop = () => void svc.close().then(() => process.exit(0));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}
