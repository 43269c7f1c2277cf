// One replication connection of a walreceiver (PostgreSQL's libpqwalreceiver connection): the
// sans-I/O ReplicationClientConn (src/replication/protocol/client-conn.ts) over a byte socket — a
// node:net socket (TcpTransport) or a RingSocket (RingTransport), both in transport.ts, which
// open it. Implements WalRcvConnection: the startup and authentication exchange, the replication
// commands a standby runs (IDENTIFY_SYSTEM, SHOW, TIMELINE_HISTORY, START_REPLICATION,
// BASE_BACKUP), pull-based receiving with back-pressure, status updates, and the end of a
// timeline's stream. Owns the socket from open() to disconnect(); see transport.ts's header for
// the receiving rules (zero-copy views, when a ring record goes back to the primary).

import { Errors, WalstreamError } from '../errors.js';
import {
  type ClientConnEvent, type EndOfStreamingResult, parseEndOfStreamingResult, type QueryResult, ReplicationClientConn, type ResultSet,
} from '../replication/protocol/client-conn.js';

import { formatStartReplication } from '../replication/protocol/commands.js';
import type { StandbyStatusUpdate } from '../replication/protocol/messages.js';
import { type ByteSocket, RingSocket } from '../replication/ring-socket.js';
import { type Lsn, parseLsn } from '../wal/lsn.js';
import type { PrimaryConninfo } from './options.js';
import type { CopyDataPart, IdentifySystemResult, StreamMessage, TcpTransportOptions, WalRcvConnection } from './transport.js';

/** Node's socket read size: a chunk this long means the kernel may hold more. */
const SOCKET_READ_BYTES = 64 * 1024;

/** What a zero-copy socket (RingSocket) adds: its 'data' chunks stay valid until released. */
interface ZeroCopySocket {
  readonly recordStart: number;
  readonly readPosition: number;
  readonly moreDataLikely: boolean;
  release(pos: number): void;
}

export class StreamConnection implements WalRcvConnection {
  readonly senderHost: string;
  readonly senderPort: number;
  bytesReceived = 0;
  receivedUpTo: Lsn = 0;
  private lastChunkFull = false;
  private readonly socket: ByteSocket;
  /** The socket, when its chunks are views to release (RingSocket). */
  private readonly zc: ZeroCopySocket | null;
  private readonly conn: ReplicationClientConn;
  private readonly queue: StreamMessage[] = [];
  /** Zero-copy: per queued message, the record it points into (release stops there). */
  private readonly tokens: number[] = [];
  /** Zero-copy: the record of the message receive() returned last (in use until the next call). */
  private inUse: number | null = null;
  private qHead = 0;
  private queuedBytes = 0;
  private paused = false;
  private streaming = false;
  private failure: WalstreamError | null = null;
  private pending: { resolve: (r: QueryResult) => void; reject: (e: Error) => void } | null = null;
  private copyBothWaiter: { resolve: () => void; reject: (e: Error) => void } | null = null;
  private readyWaiter: { resolve: () => void; reject: (e: Error) => void } | null = null;
  private readableWaiter: ((v: boolean) => void) | null = null;
  private readableTimer: NodeJS.Timeout | null = null;
  private immediate: NodeJS.Immediate | null = null;
  private copySink: ((payload: Uint8Array, part: CopyDataPart | null) => void) | null = null;
  private endWaiter: (() => void) | null = null;
  /** The START_REPLICATION command's result, once its ReadyForQuery came (after both CopyDones). */
  private endResult: QueryResult | null = null;
  /** An endOfStream message was queued for the current stream. */
  private endQueued = false;
  /** We sent CopyDone first (endStreaming): the server's CopyDone is its answer, not an end of timeline. */
  private clientEnded = false;

  private constructor(socket: ByteSocket, senderHost: string, senderPort: number, info: Required<PrimaryConninfo>, private readonly opts: TcpTransportOptions) {
    this.senderHost = senderHost;
    this.senderPort = senderPort;
    this.socket = socket;
    this.zc = socket instanceof RingSocket ? socket : null;
    this.conn = new ReplicationClientConn({
      send: (b) => {
        if (!this.socket.destroyed) this.socket.write(b);
      },
      onEvent: (ev) => this.onEvent(ev),
      user: info.user,
      password: info.password,
      applicationName: info.applicationName,
      maxMessageBytes: opts.maxMessageBytes,
      requestReceivedReport: true, // remote_receive: `R` to a walstream primary (PostgreSQL ignores the request)
      requestFlushRequest: true, // waitForReplay: `F` to a walstream primary (PostgreSQL ignores the request)
      sslRequest: opts.sslRequest === true,
    });
  }

  get moreDataLikely(): boolean {
    return this.zc !== null ? this.zc.moreDataLikely : this.lastChunkFull;
  }

  /** Send the startup message (once the byte pipe is up). */
  start(): void {
    this.conn.start();
  }

  /**
   * Open a connection over `socket`: `begin` wires the socket's connect and errors and calls
   * start(); resolves after authentication (ReadyForQuery).
   */
  static open(
    socket: ByteSocket, senderHost: string, senderPort: number, info: Required<PrimaryConninfo>, opts: TcpTransportOptions,
    signal: AbortSignal | undefined, begin: (c: StreamConnection) => void,
  ): Promise<WalRcvConnection> {
    const c = new StreamConnection(socket, senderHost, senderPort, info, opts);
    return new Promise<WalRcvConnection>((resolve, reject) => {
      const timer = setTimeout(() => {
        c.fail(Errors.connectionFailure(`could not connect to the primary server: timeout expired after ${opts.connectTimeoutMs} ms`));
      }, opts.connectTimeoutMs);
      const onAbort = () => c.fail(Errors.closed('connection attempt'));
      signal?.addEventListener('abort', onAbort, { once: true });
      c.readyWaiter = {
        resolve: () => {
          clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
          resolve(c);
        },
        reject: (e) => {
          clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
          c.socket.destroy();
          reject(e);
        },
      };
      if (signal?.aborted) {
        onAbort();
        return;
      }
      const s = c.socket;
      s.on('data', (chunk: Uint8Array) => c.onData(chunk));
      s.on('close', () => {
        c.conn.end();
        c.fail(Errors.connectionFailure('server closed the connection unexpectedly'));
      });
      begin(c);
    });
  }

  private onData(chunk: Uint8Array): void {
    this.bytesReceived += chunk.length;
    this.lastChunkFull = chunk.length >= SOCKET_READ_BYTES;
    this.conn.feed(chunk);
    this.releaseFree();
    if (this.queue.length > this.qHead) this.wakeSoon();
  }

  /** Zero-copy: give back every record no queued or in-use message points into. */
  private releaseFree(): void {
    const zc = this.zc;
    if (zc === null) return;
    let pos = zc.readPosition;
    if (this.inUse !== null) pos = this.inUse;
    else if (this.qHead < this.queue.length) pos = this.tokens[this.qHead]!;
    zc.release(pos);
  }

  private wakeSoon(): void {
    if (this.readableWaiter === null || this.immediate !== null) return;
    this.immediate = setImmediate(() => {
      this.immediate = null;
      this.settleReadable(true);
    });
  }

  private settleReadable(v: boolean): void {
    const w = this.readableWaiter;
    if (w === null) return;
    this.readableWaiter = null;
    if (this.readableTimer !== null) clearTimeout(this.readableTimer);
    this.readableTimer = null;
    w(v);
  }

  private push(m: StreamMessage): void {
    this.queue.push(m);
    if (this.zc !== null) this.tokens.push(this.zc.recordStart);
    if (m.kind === 'xlogData') {
      const end = m.dataStart + m.data.length;
      if (end > this.receivedUpTo) this.receivedUpTo = end;
      this.queuedBytes += m.data.length;
      if (!this.paused && this.queuedBytes > this.opts.maxBufferedBytes) {
        this.paused = true;
        this.socket.pause();
      }
    }
  }

  private onEvent(ev: ClientConnEvent): void {
    switch (ev.type) {
      case 'ready':
        this.readyWaiter?.resolve();
        this.readyWaiter = null;
        return;
      case 'result': {
        const r = ev.result;
        if (this.pending !== null) {
          const p = this.pending;
          this.pending = null;
          if (r.error !== null) p.reject(r.error);
          else p.resolve(r);
          return;
        }
        if (this.copyBothWaiter !== null) {
          // START_REPLICATION answered without COPY BOTH: an error, or nothing to stream.
          const w = this.copyBothWaiter;
          this.copyBothWaiter = null;
          w.reject(r.error ?? Errors.protocolViolation('START_REPLICATION ended without streaming (timeline switch is not supported)'));
          return;
        }
        if (this.streaming) {
          this.streaming = false;
          this.endResult = r;
          if (r.error !== null) this.push({ kind: 'error', error: r.error });
          else if (!this.endQueued) this.push({ kind: 'endOfStream', reason: `stream ended: ${r.commandTags.join(', ')}`, endOfTimeline: false });
          this.endQueued = true;
          this.endWaiter?.();
          this.endWaiter = null;
          this.wakeSoon();
        }
        return;
      }
      case 'copyBothStart':
        this.streaming = true;
        this.receivedUpTo = 0;
        this.endResult = null;
        this.endQueued = false;
        this.clientEnded = false;
        this.copyBothWaiter?.resolve();
        this.copyBothWaiter = null;
        return;
      case 'xlogData':
        this.push({ kind: 'xlogData', dataStart: ev.message.dataStart, walEnd: ev.message.walEnd, sendTime: ev.message.sendTime, data: ev.message.data });
        return;
      case 'keepalive':
        this.push({ kind: 'keepalive', walEnd: ev.message.walEnd, sendTime: ev.message.sendTime, replyRequested: ev.message.replyRequested });
        return;
      case 'copyDone':
        if (this.streaming && !this.endQueued && !this.clientEnded) {
          this.endQueued = true;
          this.push({ kind: 'endOfStream', reason: 'primary ended the COPY stream', endOfTimeline: true });
        }
        return;
      case 'commandComplete':
        // `COPY 0` inside COPY BOTH: the primary is shutting down and will close the connection.
        if (this.streaming) {
          this.streaming = false;
          this.endQueued = true;
          this.push({ kind: 'endOfStream', reason: `primary is shutting down (${ev.tag})`, endOfTimeline: false });
          this.endWaiter?.();
          this.endWaiter = null;
        }
        return;
      case 'copyData':
        this.copySink?.(ev.data, ev.part);
        return;
      case 'error':
        this.fail(ev.error);
        return;
      case 'closed':
        this.fail(Errors.connectionFailure('server closed the connection unexpectedly'));
        return;
      default:
        return;
    }
  }

  /** The connection is over: reject whatever waits, queue the error for receive(). */
  fail(e: WalstreamError): void {
    if (this.failure !== null) return;
    this.failure = e;
    this.readyWaiter?.reject(e);
    this.readyWaiter = null;
    this.pending?.reject(e);
    this.pending = null;
    this.copyBothWaiter?.reject(e);
    this.copyBothWaiter = null;
    this.endWaiter?.();
    this.endWaiter = null;
    this.push({ kind: 'error', error: e });
    this.wakeSoon();
    if (!this.socket.destroyed) this.socket.destroy();
  }

  private query(text: string, timeoutMs = this.opts.commandTimeoutMs): Promise<QueryResult> {
    if (this.failure !== null) return Promise.reject(this.failure);
    return new Promise<QueryResult>((resolve, reject) => {
      const timer = setTimeout(() => this.fail(Errors.connectionFailure(`no answer to "${text.split(' ')[0]}" within ${timeoutMs} ms`)), timeoutMs);
      this.pending = {
        resolve: (r) => {
          clearTimeout(timer);
          resolve(r);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      this.conn.query(text);
    });
  }

  parameterStatus(name: string): string | undefined {
    return this.conn.parameters.get(name);
  }

  get serverVersion(): number {
    return this.conn.serverVersionNum;
  }

  get backendPid(): number {
    return this.conn.processId;
  }

  exec(command: string): Promise<QueryResult> {
    return this.query(command);
  }

  async identifySystem(): Promise<IdentifySystemResult> {
    const r = await this.query('IDENTIFY_SYSTEM');
    const set = r.resultSets[0];
    if (set === undefined || set.rows.length !== 1 || set.columns.length < 3) {
      throw Errors.protocolViolation(`could not identify system: got ${set?.rows.length ?? 0} rows and ${set?.columns.length ?? 0} fields, expected 1 row and 3 or more fields`);
    }
    const row = set.rows[0]!;
    const [systemId, tli, pos] = [row[0], row[1], row[2]];
    if (systemId == null || !/^\d{1,20}$/.test(systemId) || tli == null || !/^\d{1,10}$/.test(tli) || pos == null) {
      throw Errors.protocolViolation('could not identify system: malformed IDENTIFY_SYSTEM row');
    }
    return { systemId, timeline: Number(tli), xlogpos: parseLsn(pos), dbname: row[3] ?? null };
  }

  async show(name: string): Promise<string> {
    const r = await this.query(`SHOW ${name}`);
    const v = r.resultSets[0]?.rows[0]?.[0];
    if (v === undefined || v === null) throw Errors.protocolViolation(`SHOW ${name} returned no value`);
    return v;
  }

  startStreaming(start: Lsn, tli: number, slotName: string | null): Promise<void> {
    if (this.failure !== null) return Promise.reject(this.failure);
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => this.fail(Errors.connectionFailure(`no answer to START_REPLICATION within ${this.opts.commandTimeoutMs} ms`)), this.opts.commandTimeoutMs);
      this.copyBothWaiter = {
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      this.conn.query(formatStartReplication(start, tli, slotName));
    });
  }

  receive(): StreamMessage | null {
    if (this.qHead >= this.queue.length) {
      this.inUse = null;
      this.releaseFree();
      return null;
    }
    const m = this.queue[this.qHead]!;
    if (this.zc !== null) this.inUse = this.tokens[this.qHead]!;
    this.queue[this.qHead++] = undefined as unknown as StreamMessage;
    if (this.qHead === this.queue.length) {
      this.queue.length = 0;
      this.tokens.length = 0;
      this.qHead = 0;
    }
    this.releaseFree();
    if (m.kind === 'xlogData') {
      this.queuedBytes -= m.data.length;
      if (this.paused && this.queuedBytes <= this.opts.maxBufferedBytes / 2 && this.failure === null) {
        this.paused = false;
        this.socket.resume();
      }
    }
    return m;
  }

  waitReadable(timeoutMs: number): Promise<boolean> {
    this.inUse = null;
    this.releaseFree();
    if (this.qHead < this.queue.length) return Promise.resolve(true);
    this.settleReadable(false);
    return new Promise<boolean>((resolve) => {
      this.readableWaiter = resolve;
      if (Number.isFinite(timeoutMs)) this.readableTimer = setTimeout(() => this.settleReadable(false), Math.max(0, timeoutMs));
    });
  }

  interrupt(): void {
    this.settleReadable(false);
  }

  send(update: StandbyStatusUpdate): void {
    if (this.failure !== null || !this.streaming) return;
    this.conn.sendStandbyStatus(update);
  }

  get acceptsReceivedReport(): boolean {
    return this.conn.peerAcceptsReceivedReport;
  }

  sendReceived(received: Lsn, clientTime: number): void {
    if (this.failure !== null || !this.streaming || !this.conn.peerAcceptsReceivedReport) return;
    this.conn.sendStandbyReceived({ received, clientTime });
  }

  get acceptsFlushRequest(): boolean {
    return this.conn.peerAcceptsFlushRequest;
  }

  sendFlushRequest(lsn: Lsn): void {
    // (Asked from the walreceiver's message port at any moment: also after our CopyDone, when
    // nothing may be sent in the COPY any more; the request is then dropped.)
    if (this.failure !== null || !this.streaming || !this.conn.peerAcceptsFlushRequest || !this.conn.canSendCopyData) return;
    this.conn.sendStandbyFlushRequest(lsn);
  }

  endStreaming(timeoutMs: number): Promise<EndOfStreamingResult | null> {
    const parsed = (): EndOfStreamingResult | null => (this.endResult === null ? null : parseEndOfStreamingResult(this.endResult));
    if (this.failure !== null || !this.streaming || this.conn.state !== 'copyBoth') return Promise.resolve().then(parsed);
    return new Promise<EndOfStreamingResult | null>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.endWaiter = null;
        resolve(null);
      }, timeoutMs);
      this.endWaiter = () => {
        clearTimeout(timer);
        try {
          resolve(this.failure === null ? parsed() : null);
        } catch (e) {
          reject(e);
        }
      };
      if (!this.conn.serverEndedCopy) this.clientEnded = true;
      this.conn.sendCopyDone();
    });
  }

  async timelineHistory(tli: number): Promise<{ fileName: string; content: Uint8Array }> {
    const r = await this.query(`TIMELINE_HISTORY ${tli}`);
    const set = r.resultSets[0];
    if (set === undefined || set.rows.length !== 1 || set.columns.length !== 2) {
      throw Errors.protocolViolation(`could not receive timeline history file from the primary server: Expected 1 tuple with 2 fields, got ${set?.rows.length ?? 0} tuples with ${set?.columns.length ?? 0} fields.`);
    }
    const row = set.rows[0]!;
    return { fileName: row[0] ?? '', content: set.rawRows[0]![1] ?? new Uint8Array(0) };
  }

  async baseBackup(command: string, onCopyData: (payload: Uint8Array, headerSets: readonly ResultSet[], part: CopyDataPart | null) => void): Promise<QueryResult> {
    this.copySink = (payload, part) => onCopyData(payload, this.conn.partialResultSets, part);
    try {
      // The archive may take long: no answer timeout (the socket's failure ends it).
      return await this.query(command, 2_147_483_647);
    } finally {
      this.copySink = null;
    }
  }

  disconnect(): void {
    if (this.failure === null) {
      this.failure = Errors.closed('replication connection');
      this.conn.terminate();
    }
    this.settleReadable(false);
    if (this.immediate !== null) clearImmediate(this.immediate);
    this.immediate = null;
    if (!this.socket.destroyed) this.socket.end(() => this.socket.destroy());
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }
}
