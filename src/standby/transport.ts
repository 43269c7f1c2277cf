// The walreceiver's transport: one small interface (connect, then receive / send / disconnect,
// plus the few replication commands a standby runs), modelled on PostgreSQL's pluggable
// walreceiver API (libpqwalreceiver: walrcv_connect, walrcv_identify_system,
// walrcv_startstreaming, walrcv_receive, walrcv_send, walrcv_endstreaming, walrcv_disconnect).
// Two implementations share one connection class (StreamConnection, stream-connection.ts: the
// sans-I/O ReplicationClientConn of src/replication/protocol/client-conn.ts over a byte socket):
// `TcpTransport` over node:net, and `RingTransport` for a standby in the primary's process, over a
// RingSocket (src/replication/ring-socket.ts: two SharedArrayBuffer rings) connected through the
// primary's in-process listener port (no authentication: trusted as a local socket).
//
// Who runs it: the walreceiver worker (streaming) and Standby.open (base backup), one connection
// each. What it owns: the socket. How it stops: disconnect() (Terminate, then the socket is
// destroyed); the server closing or a FATAL error ends it too and is reported through receive().
//
// Receiving is pull-based: socket chunks are framed and decoded as they arrive and queued as
// StreamMessages (WAL payloads stay zero-copy views of the socket's chunks, or of the ring's
// records); waitReadable() resolves in the event loop's check phase (setImmediate), after
// everything the socket had was read, so the walreceiver handles a whole burst before it fsyncs.
// Above `maxBufferedBytes` of unconsumed WAL the socket is paused (back-pressure on the primary).
// Over a ring, a record's bytes go back to the primary only once no queued or returned message
// points into it (the message receive() returned last stays valid until the next receive() or
// waitReadable(); the walreceiver writes it to its segment file before asking for the next).

import net from 'node:net';
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { Errors, WalstreamError } from '../errors.js';
import type { EndOfStreamingResult, QueryResult, ResultSet } from '../replication/protocol/client-conn.js';

export type { EndOfStreamingResult };
import type { StandbyStatusUpdate } from '../replication/protocol/messages.js';
import { createRingPair } from '../replication/ring.js';
import { RingSocket } from '../replication/ring-socket.js';
import type { InProcessConnectRequest } from '../replication/in-process-connect.js';
import { StreamConnection } from './stream-connection.js';
import type { Lsn } from '../wal/lsn.js';
import { IN_PROCESS_HOST, type PrimaryConninfo } from './options.js';
import { passwordFromPassFile, REPLICATION_DBNAME } from './libpq-env.js';

/** Which part of a COPY OUT payload split across received chunks a callback holds. */
export interface CopyDataPart {
  first: boolean;
  last: boolean;
}

export interface IdentifySystemResult {
  /** Decimal text: it may exceed 2^53. */
  systemId: string;
  timeline: number;
  xlogpos: Lsn;
  dbname: string | null;
}

export type StreamMessage =
  /** XLogData: `data` is a view valid until the next receive() or waitReadable() call. */
  | { kind: 'xlogData'; dataStart: Lsn; walEnd: Lsn; sendTime: number; data: Uint8Array }
  | { kind: 'keepalive'; walEnd: Lsn; sendTime: number; replyRequested: boolean }
  /**
   * The primary ended the stream: CopyDone (`endOfTimeline`: the end of a historic timeline, the
   * next timeline follows from endStreaming()) or `COPY 0` (shutting down).
   */
  | { kind: 'endOfStream'; reason: string; endOfTimeline: boolean }
  /** The connection failed or the server reported an error: nothing more will arrive. */
  | { kind: 'error'; error: WalstreamError };

/** One replication connection, as the walreceiver sees it. */
export interface WalRcvConnection {
  readonly senderHost: string;
  readonly senderPort: number;
  /** Bytes of protocol received so far. */
  readonly bytesReceived: number;
  /** The server's ParameterStatus value for `name` (libpq's PQparameterStatus), if it sent one. */
  parameterStatus(name: string): string | undefined;
  /** The server's version as libpq's PQserverVersion() gives it (15.4 → 150004; 0 if unknown). */
  readonly serverVersion: number;
  /** The server process's id from BackendKeyData (walrcv_get_backend_pid); 0 if none was sent. */
  readonly backendPid: number;
  identifySystem(): Promise<IdentifySystemResult>;
  show(name: string): Promise<string>;
  /**
   * Run one replication command outside streaming (walrcv_exec) and return its result sets; an
   * ErrorResponse rejects with that error and leaves the connection usable.
   */
  exec(command: string): Promise<QueryResult>;
  /** START_REPLICATION; resolves once the server entered COPY BOTH (CopyBothResponse). */
  startStreaming(start: Lsn, tli: number, slotName: string | null): Promise<void>;
  /** Next message already received, or null if none is buffered. Never blocks. */
  receive(): StreamMessage | null;
  /**
   * Resolves true when receive() has something, false after timeoutMs or interrupt(). Resolution
   * happens after the event loop's poll phase, so everything the socket had is queued by then.
   */
  waitReadable(timeoutMs: number): Promise<boolean>;
  /** True if the last socket read filled its buffer: more bytes are probably in flight. */
  readonly moreDataLikely: boolean;
  /** Wake a pending waitReadable (it resolves false). */
  interrupt(): void;
  send(update: StandbyStatusUpdate): void;
  /** End of the newest XLogData received on this stream (in hand, maybe not yet taken by receive()); 0 before any. */
  readonly receivedUpTo: Lsn;
  /** The primary agreed to StandbyReceivedUpdate `R` when we asked at startup (walstream's walsender; never PostgreSQL's). */
  readonly acceptsReceivedReport: boolean;
  /** `R` (remote_receive): WAL up to `received` is in hand. Only when acceptsReceivedReport. */
  sendReceived(received: Lsn, clientTime: number): void;
  /** The primary agreed to StandbyFlushRequest `F` when we asked at startup (walstream's walsender; never PostgreSQL's). */
  readonly acceptsFlushRequest: boolean;
  /** `F`: ask the primary to flush its WAL up to `lsn` now (waitForReplay). Only while streaming, and only when acceptsFlushRequest; else nothing. */
  sendFlushRequest(lsn: Lsn): void;
  /**
   * Our CopyDone (walrcv_endstreaming); waits (up to timeoutMs) for the server's end of the
   * command. After the server's CopyDone at the end of a historic timeline: resolves with the next
   * timeline and where it starts (the connection is then idle again, ready for TIMELINE_HISTORY
   * and START_REPLICATION); otherwise null.
   */
  endStreaming(timeoutMs: number): Promise<EndOfStreamingResult | null>;
  /** TIMELINE_HISTORY tli: the file's name and its bytes. */
  timelineHistory(tli: number): Promise<{ fileName: string; content: Uint8Array }>;
  /**
   * BASE_BACKUP: `onCopyData` gets each COPY OUT payload (kind byte first), a view valid during the
   * call, and the result sets received before it (the start position and, with PROGRESS, the
   * announced size arrive before the archive). A large payload may come in parts (`part` set:
   * only the first part starts with the kind byte; the parts in order are the payload).
   */
  baseBackup(command: string, onCopyData: (payload: Uint8Array, headerSets: readonly ResultSet[], part: CopyDataPart | null) => void): Promise<QueryResult>;
  disconnect(): void;
}

export interface WalRcvTransport {
  /** Connect and authenticate; `signal` abandons the attempt (stop requested). */
  connect(signal?: AbortSignal): Promise<WalRcvConnection>;
}

export interface TcpTransportOptions {
  /** connect_timeout: TCP connect + authentication, in ms. */
  connectTimeoutMs: number;
  /** A replication command (not the stream) that gets no answer within this many ms fails the connection. */
  commandTimeoutMs: number;
  maxMessageBytes: number;
  maxBufferedBytes: number;
  /** Ask for TLS first and go on in clear text when the server declines (libpq's sslmode=prefer without TLS support). Default false. */
  sslRequest?: boolean;
}

export class TcpTransport implements WalRcvTransport {
  constructor(private readonly info: Required<PrimaryConninfo>, private readonly opts: TcpTransportOptions) {}

  connect(signal?: AbortSignal): Promise<WalRcvConnection> {
    // libpq reads the password file at each connection attempt (a password changed in it is used
    // at the next reconnect); the password found when the conninfo was parsed stays otherwise.
    const base = this.info;
    const fromFile = base.passfile === null ? null : passwordFromPassFile(base.passfile, { host: base.host, port: String(base.port), dbname: REPLICATION_DBNAME, user: base.user });
    const info = fromFile === null ? base : { ...base, password: fromFile };
    const socket = new net.Socket();
    return StreamConnection.open(socket, info.host, info.port, info, this.opts, signal, (c) => {
      socket.setNoDelay(true);
      socket.on('error', (e: NodeJS.ErrnoException) => {
        c.fail(Errors.connectionFailure(`could not connect to the primary server: connection to server at "${info.host}", port ${info.port} failed: ${e.message}`));
      });
      socket.connect({ host: info.host, port: info.port }, () => c.start());
    });
  }
}

export interface RingTransportOptions extends TcpTransportOptions {
  /** Capacity of the primary → standby ring in bytes (a power of two): WAL in flight. */
  ringBytes: number;
  /** HEAD checks before the walreceiver sleeps on an empty ring. */
  spinIterations: number;
}

/**
 * Connections to a primary in this process through its in-process listener port (which may be
 * transferred to the walreceiver's thread). Each connect() makes a new pair of rings and a
 * MessageChannel; the primary starts a walsender for them. A closed listener (the primary stopped
 * listening) fails connect() at once, like a refused TCP connection.
 */
export class RingTransport implements WalRcvTransport {
  private listenerClosed = false;

  constructor(private readonly listener: MessagePort, private readonly info: Required<PrimaryConninfo>, private readonly opts: RingTransportOptions) {
    listener.on('close', () => (this.listenerClosed = true));
    listener.unref();
  }

  connect(signal?: AbortSignal): Promise<WalRcvConnection> {
    if (this.listenerClosed) return Promise.reject(Errors.connectionFailure('could not connect to the primary server: the in-process primary is not accepting connections'));
    const rings = createRingPair(this.opts.ringBytes);
    const { port1, port2 } = new MessageChannel();
    const req: InProcessConnectRequest = { type: 'connect', rings, peer: port2 };
    this.listener.postMessage(req, [port2]);
    // The client end keeps this thread alive while connected (as a socket would).
    const socket = new RingSocket({ side: 'client', rings, peer: port1, zeroCopy: true, spinIterations: this.opts.spinIterations, keepAlive: true });
    return StreamConnection.open(socket, IN_PROCESS_HOST, 0, this.info, this.opts, signal, (c) => {
      socket.on('error', (e: Error) => c.fail(e instanceof WalstreamError ? e : Errors.connectionFailure(`in-process replication connection failed: ${e.message}`)));
      c.start();
    });
  }
}
