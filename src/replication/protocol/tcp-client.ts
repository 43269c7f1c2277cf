// A thin node:net adapter around ReplicationClientConn, for tests and for the walreceiver:
// connect + authenticate, run replication commands as promises, and stream WAL as an async
// iterator with backpressure (the socket is paused while more than `maxQueuedStreamBytes` of
// received messages wait for the consumer). One command at a time per connection; concurrent
// calls are queued in order.
// Stops: close() sends Terminate and destroys the socket; a FATAL or socket error rejects the
// pending operation and ends any stream with that error.

import { connect as netConnect, type Socket } from 'node:net';
import { Errors, WalstreamError } from '../../errors.js';
import { parseLsn, type Lsn } from '../../wal/lsn.js';
import { ReplicationClientConn, type ClientConnEvent, type QueryResult } from './client-conn.js';
import { formatStartReplication } from './commands.js';
import { pgTimestampNow, type HotStandbyFeedback, type PrimaryKeepalive, type XLogData } from './messages.js';

export interface ConnectReplicationOptions {
  host: string;
  port: number;
  user: string;
  password?: string | null;
  applicationName?: string;
  /** Default 'replication'. */
  database?: string;
  /** Whole connect + authenticate phase, in ms. Default 10 000. */
  connectTimeoutMs?: number;
  /** Send SSLRequest first (libpq's default behaviour); the server must answer 'N'. Default false. */
  sslRequest?: boolean;
  /** Limit of one server message, in bytes. Default 1 GiB. */
  maxMessageBytes?: number;
  /** Received stream bytes queued for the consumer before the socket is paused. Default 8 MiB. */
  maxQueuedStreamBytes?: number;
}

export interface IdentifySystemResult {
  /** uint64: can exceed 2^53. */
  systemId: bigint;
  timeline: number;
  xlogpos: Lsn;
  dbname: string | null;
}

export type StreamMessage =
  | ({ kind: 'xlogData' } & XLogData)
  | ({ kind: 'keepalive' } & PrimaryKeepalive)
  /** CommandComplete inside the stream (`COPY 0`: the primary shuts down and closes the connection). */
  | { kind: 'commandComplete'; tag: string };

export interface StreamEnd {
  /** Set when the server ended a historic timeline: the timeline that follows and where it starts. */
  nextTimeline: { timeline: number; startLsn: Lsn } | null;
  commandTags: string[];
}

export interface ReplicationStream extends AsyncIterable<StreamMessage> {
  /** StandbyStatusUpdate with the client clock. */
  sendStatus(write: Lsn, flush: Lsn, apply: Lsn, replyRequested: boolean): void;
  sendHotStandbyFeedback(h: Omit<HotStandbyFeedback, 'clientTime'>): void;
  /** True once the server has sent CopyDone (end of a historic timeline): call end(). */
  readonly serverEnded: boolean;
  /** Sends CopyDone (if not sent) and waits for the server's answer after the stream. */
  end(): Promise<StreamEnd>;
}

export interface ReplicationConnection {
  readonly parameters: ReadonlyMap<string, string>;
  /** libpq's PQserverVersion(). */
  readonly serverVersionNum: number;
  readonly processId: number;
  identifySystem(): Promise<IdentifySystemResult>;
  /** SHOW name → the value (text). */
  show(name: string): Promise<string>;
  /** Any replication command; rejects with the server's ERROR as a WalstreamError (code WS_REMOTE, its SQLSTATE). */
  command(text: string): Promise<QueryResult>;
  /** START_REPLICATION [SLOT s] X/X TIMELINE n; resolves once streaming has started (CopyBothResponse). */
  startReplication(startLsn: Lsn, timeline: number, slot?: string | null): Promise<ReplicationStream>;
  close(): Promise<void>;
}

type Waiter = {
  onEvent(ev: ClientConnEvent): void;
  onFail(err: WalstreamError): void;
};

export function connectReplication(opts: ConnectReplicationOptions): Promise<ReplicationConnection> {
  return new Promise((resolve, reject) => {
    let socket: Socket;
    let waiter: Waiter | null = null;
    let failure: WalstreamError | null = null;
    let settled = false;
    let chain: Promise<unknown> = Promise.resolve();

    const failAll = (err: WalstreamError) => {
      if (failure === null) failure = err;
      const w = waiter;
      waiter = null;
      w?.onFail(err);
      if (!settled) {
        settled = true;
        clearTimeout(timer);
        reject(err);
      }
    };

    const conn = new ReplicationClientConn({
      user: opts.user,
      password: opts.password ?? null,
      database: opts.database ?? 'replication',
      applicationName: opts.applicationName ?? 'walstream',
      sslRequest: opts.sslRequest ?? false,
      ...(opts.maxMessageBytes === undefined ? {} : { maxMessageBytes: opts.maxMessageBytes }),
      send: (b) => {
        if (!socket.destroyed) socket.write(b);
      },
      onEvent: (ev) => {
        if (ev.type === 'error') {
          failAll(ev.error);
          socket.destroy();
          return;
        }
        if (ev.type === 'closed') {
          failAll(failure ?? Errors.connectionFailure('server closed the connection'));
          return;
        }
        if (!settled && ev.type === 'ready') {
          settled = true;
          clearTimeout(timer);
          resolve(api);
          return;
        }
        waiter?.onEvent(ev);
      },
    });

    const timer = setTimeout(() => {
      failAll(Errors.connectionFailure(`timeout expired after ${opts.connectTimeoutMs ?? 10_000} ms connecting to ${opts.host}:${opts.port}`));
      socket.destroy();
    }, opts.connectTimeoutMs ?? 10_000);

    socket = netConnect({ host: opts.host, port: opts.port });
    socket.setNoDelay(true);
    socket.on('connect', () => conn.start());
    socket.on('data', (d: Buffer) => conn.feed(d));
    socket.on('error', (e) => failAll(Errors.connectionFailure(`connection to ${opts.host}:${opts.port} failed: ${e.message}`)));
    socket.on('close', () => {
      conn.end();
      failAll(failure ?? Errors.connectionFailure('server closed the connection'));
    });

    /** Runs `fn` when previous operations are done. */
    const serial = <R>(fn: () => Promise<R>): Promise<R> => {
      const p = chain.then(fn, fn);
      chain = p.catch(() => undefined);
      return p;
    };

    const runQuery = (text: string): Promise<QueryResult> =>
      new Promise<QueryResult>((res, rej) => {
        if (failure) return rej(failure);
        waiter = {
          onEvent: (ev) => {
            if (ev.type === 'result') {
              waiter = null;
              if (ev.result.error) rej(ev.result.error);
              else res(ev.result);
            } else if (ev.type === 'copyBothStart' || ev.type === 'copyOutStart') {
              waiter = null;
              rej(Errors.protocolViolation(`command "${text}" started a COPY; use startReplication() for streaming`));
              socket.destroy();
            }
          },
          onFail: rej,
        };
        conn.query(text);
      });

    const api: ReplicationConnection = {
      get parameters() {
        return conn.parameters;
      },
      get serverVersionNum() {
        return conn.serverVersionNum;
      },
      get processId() {
        return conn.processId;
      },
      command: (text) => serial(() => runQuery(text)),
      async identifySystem() {
        const r = await serial(() => runQuery('IDENTIFY_SYSTEM'));
        const row = r.resultSets[0]?.rows[0];
        if (!row || row.length < 3) throw Errors.protocolViolation('could not identify system: unexpected result shape');
        return { systemId: BigInt(row[0]!), timeline: Number(row[1]), xlogpos: parseLsn(row[2]!), dbname: row[3] ?? null };
      },
      async show(name) {
        const r = await serial(() => runQuery(`SHOW ${name}`));
        const v = r.resultSets[0]?.rows[0]?.[0];
        if (v === undefined || v === null) throw Errors.protocolViolation(`SHOW ${name}: no value`);
        return v;
      },
      startReplication(startLsn, timeline, slot) {
        // The connection stays busy until the stream is over, not just until it starts.
        let release!: () => void;
        const released = new Promise<void>((r) => (release = r));
        const started = chain.then(
          () =>
            new Promise<ReplicationStream>((res0, rej0) => {
              const res = res0;
              const rej = (e: WalstreamError) => {
                release();
                rej0(e);
              };
              if (failure) return rej(failure);
              const stream = new StreamImpl(conn, socket, opts.maxQueuedStreamBytes ?? 8 << 20);
              let streaming = false;
              let endWaiter: { res: (e: StreamEnd) => void; rej: (e: WalstreamError) => void } | null = null;
              let finalResult: QueryResult | null = null;
              let finalError: WalstreamError | null = null;
              stream.onEnd = () =>
                new Promise<StreamEnd>((eres, erej) => {
                  if (finalResult) return eres(streamEnd(finalResult));
                  if (finalError) return erej(finalError);
                  endWaiter = { res: eres, rej: erej };
                });
              waiter = {
                onEvent: (ev) => {
                  switch (ev.type) {
                    case 'copyBothStart':
                      streaming = true;
                      res(stream);
                      return;
                    case 'xlogData':
                      stream.push({ kind: 'xlogData', ...ev.message }, ev.message.data.length + 30);
                      return;
                    case 'keepalive':
                      stream.push({ kind: 'keepalive', ...ev.message }, 23);
                      return;
                    case 'commandComplete':
                      stream.push({ kind: 'commandComplete', tag: ev.tag }, 16);
                      return;
                    case 'copyDone':
                      stream.serverDone();
                      return;
                    case 'result':
                      waiter = null;
                      if (!streaming) {
                        // No COPY: an ERROR before CopyBothResponse, or a historic timeline with nothing to stream.
                        if (ev.result.error) return rej(ev.result.error);
                        release();
                        finalResult = ev.result;
                        stream.serverDone();
                        streaming = true;
                        return res(stream);
                      }
                      release();
                      if (ev.result.error) {
                        finalError = ev.result.error;
                        stream.fail(ev.result.error);
                        endWaiter?.rej(ev.result.error);
                        return;
                      }
                      finalResult = ev.result;
                      stream.finish();
                      endWaiter?.res(streamEnd(ev.result));
                      return;
                    default:
                      return;
                  }
                },
                onFail: (err) => {
                  finalError = err;
                  release();
                  if (!streaming) rej(err);
                  stream.fail(err);
                  endWaiter?.rej(err);
                },
              };
              conn.query(formatStartReplication(startLsn, timeline, slot ?? null));
            }),
        );
        chain = started.then(() => released).catch(() => undefined);
        return started;
      },
      async close() {
        if (!socket.destroyed) {
          conn.terminate();
          await new Promise<void>((r) => {
            socket.end(() => r());
            setTimeout(r, 1000).unref();
          });
          socket.destroy();
        }
      },
    };
  });
}

function streamEnd(r: QueryResult): StreamEnd {
  let nextTimeline: StreamEnd['nextTimeline'] = null;
  const set = r.resultSets.find((s) => s.columns[0]?.name === 'next_tli');
  const row = set?.rows[0];
  if (row && row[0] !== null && row[1] !== null) nextTimeline = { timeline: Number(row[0]), startLsn: parseLsn(row[1]!) };
  return { nextTimeline, commandTags: r.commandTags };
}

/** Async-iterable queue of stream messages with socket backpressure. */
class StreamImpl implements ReplicationStream {
  private queue: StreamMessage[] = [];
  private sizes: number[] = [];
  private queuedBytes = 0;
  private paused = false;
  private done = false;
  private error: WalstreamError | null = null;
  private wake: (() => void) | null = null;
  private _serverEnded = false;
  onEnd: () => Promise<StreamEnd> = () => Promise.reject(Errors.closed('stream'));

  constructor(
    private readonly conn: ReplicationClientConn,
    private readonly socket: Socket,
    private readonly maxQueuedBytes: number,
  ) {}

  get serverEnded(): boolean {
    return this._serverEnded;
  }

  push(m: StreamMessage, bytes: number): void {
    this.queue.push(m);
    this.sizes.push(bytes);
    this.queuedBytes += bytes;
    if (!this.paused && this.queuedBytes > this.maxQueuedBytes) {
      this.paused = true;
      this.socket.pause();
    }
    this.notify();
  }
  serverDone(): void {
    this._serverEnded = true;
    this.done = true;
    this.notify();
  }
  finish(): void {
    this.done = true;
    this.notify();
  }
  fail(err: WalstreamError): void {
    this.error ??= err;
    this.done = true;
    this.notify();
  }
  private notify(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  sendStatus(write: Lsn, flush: Lsn, apply: Lsn, replyRequested: boolean): void {
    if (this.conn.state !== 'copyBoth') return;
    this.conn.sendStandbyStatus({ write, flush, apply, clientTime: pgTimestampNow(), replyRequested });
  }
  sendHotStandbyFeedback(h: Omit<HotStandbyFeedback, 'clientTime'>): void {
    if (this.conn.state !== 'copyBoth') return;
    this.conn.sendHotStandbyFeedback({ ...h, clientTime: pgTimestampNow() });
  }
  end(): Promise<StreamEnd> {
    if (this.conn.state === 'copyBoth') this.conn.sendCopyDone();
    return this.onEnd();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<StreamMessage> {
    for (;;) {
      if (this.queue.length > 0) {
        const m = this.queue.shift()!;
        this.queuedBytes -= this.sizes.shift()!;
        if (this.paused && this.queuedBytes <= this.maxQueuedBytes / 2) {
          this.paused = false;
          this.socket.resume();
        }
        yield m;
        continue;
      }
      if (this.error) throw this.error;
      if (this.done) return;
      await new Promise<void>((r) => (this.wake = r));
    }
  }
}

