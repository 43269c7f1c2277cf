// ReplicationServerConn: the server side of one physical replication connection, sans I/O.
// The walsender's network adapter owns one per accepted socket: it feeds received bytes in,
// writes out whatever the `send` callback hands it, reacts to events, and answers commands
// through the send* methods. Deterministic: no timers, no sockets, randomness injectable.
//
// Owns: the startup conversation (SSLRequest/GSSENCRequest → 'N', CancelRequest, StartupMessage,
// NegotiateProtocolVersion), authentication (pg_hba-style rules; trust, password, md5, SCRAM: the
// exchange itself is ClientAuth, server-auth.ts), the session parameters (session-params.ts), the simple-query loop (replication grammar, 0A000 for SQL, 08P01 for the
// extended protocol until Sync), and the COPY BOTH/COPY OUT sub-protocols. Byte-for-byte as
// PostgreSQL 15 answers, except that a startup packet with an impossible length or a message whose
// length word breaks a limit gets a FATAL ErrorResponse before the close (PostgreSQL only logs it).
// Bounded: input is only buffered while a command runs, up to `maxPendingInputBytes`.
// Stops: after a FATAL, Terminate, CancelRequest or end of input its state is 'closed' and an
// `error`, `terminate` or `cancel` event says so; the owner then closes the socket. The owner can
// also end it itself with sendFatal() or close() (no event then).

import { randomBytes as nodeRandomBytes } from 'node:crypto';
import { Errors, WalstreamError } from '../../errors.js';
import { assert } from '../../util/assert.js';
import type { Lsn } from '../../wal/lsn.js';
import { parseReplicationCommand } from './commands.js';
import { FrontendDecoder, PROTOCOL_3_0, type Frame, type StartupPacket } from './frames.js';
import { compileHba, type CompiledHbaRule, type HbaRule } from './hba.js';
import {
  decodeHotStandbyFeedback,
  decodeQuery,
  decodeStandbyFlushRequest,
  decodeStandbyReceivedUpdate,
  decodeStandbyStatusUpdate,
  encodeAuthenticationOk,
  encodeBackendKeyData,
  encodeCommandComplete,
  encodeCopyBothResponse,
  encodeCopyData,
  encodeCopyDone,
  encodeCopyOutResponse,
  encodeDataRow,
  encodeErrorResponseV2,
  encodeNegotiateProtocolVersion,
  encodeParameterStatus,
  encodePrimaryKeepalive,
  encodeReadyForQuery,
  encodeResultSet,
  encodeRowDescription,
  errorResponseFrom,
  noticeResponseFrom,
  pgTimestampNow,
  writeXLogDataFrameHeader,
  XLOGDATA_FRAME_HEADER_BYTES,
  COPY_DATA_HEADER_BYTES,
  type CellValue,
  type ColumnSpec,
  type XLogDataHeader,
  FLUSH_REQUEST_PARAMETER,
  RECEIVED_REPORT_PARAMETER,
} from './messages.js';
import type { RandomBytes } from './scram.js';
import { ClientAuth } from './server-auth.js';
import type { ServerConnEvent, ServerConnOptions, ServerConnState } from './server-conn-types.js';
import { sessionParameterStatus, WALSTREAM_SERVER_VERSION } from './session-params.js';

export { WALSTREAM_SERVER_VERSION } from './session-params.js';

export type { UserAuthInfo, UserLookup } from './server-auth.js';

export type { ServerConnEvent, ServerConnOptions, ServerConnState } from './server-conn-types.js';

const T = (c: string) => c.charCodeAt(0);
const EXTENDED = new Set([T('P'), T('B'), T('E'), T('D'), T('C')]);
/** Types PostgreSQL's SocketBackend() accepts after startup. */
const FRONTEND_TYPES = new Set([T('Q'), T('F'), T('X'), T('B'), T('C'), T('D'), T('E'), T('H'), T('P'), T('S'), T('d'), T('c'), T('f')]);

function checkFrontendType(t: number): void {
  if (!FRONTEND_TYPES.has(t)) throw Errors.protocolViolation(`invalid frontend message type ${t}`);
}
function checkStandbyType(t: number): void {
  if (t !== T('d') && t !== T('c') && t !== T('X')) throw Errors.protocolViolation(`invalid standby message type "${String.fromCharCode(t)}"`);
}

export class ReplicationServerConn {
  private readonly opts: ServerConnOptions;
  private readonly hba: CompiledHbaRule[];
  private readonly decoder: FrontendDecoder;
  private readonly random: RandomBytes;
  private readonly maxPendingInputBytes: number;
  private readonly pauseInputAtBytes: number;
  private _state: ServerConnState = 'startup';
  private pumping = false;
  private ignoreTillSync = false;
  // COPY BOTH bookkeeping
  private serverCopyDone = false;
  private clientCopyDone = false;
  /** The authentication exchange, from the StartupMessage until it passed. */
  private auth: ClientAuth | null = null;
  private _user = '';
  private _database = '';
  private _applicationName = '';
  private _params: ReadonlyMap<string, string> = new Map();
  /** The client asked for StandbyReceivedUpdate `R` (startup parameter) and we agreed. */
  private _receivedReportAgreed = false;
  private _flushRequestAgreed = false;
  readonly processId: number;
  readonly secretKey: number;

  constructor(opts: ServerConnOptions) {
    this.opts = opts;
    this.hba = opts.hba.length > 0 && 'databases' in opts.hba[0]! ? (opts.hba as CompiledHbaRule[]) : compileHba(opts.hba as HbaRule[]);
    this.random = opts.randomBytes ?? ((n) => nodeRandomBytes(n));
    this.decoder = new FrontendDecoder(opts.maxMessageBytes === undefined ? {} : { maxMessageBytes: opts.maxMessageBytes });
    this.maxPendingInputBytes = opts.maxPendingInputBytes ?? this.decoder.maxMessageBytes + (1 << 20);
    this.pauseInputAtBytes = opts.pauseInputAtBytes ?? 1 << 20;
    this.processId = opts.processId ?? this.random(4).readUInt32BE(0) >>> 1;
    this.secretKey = opts.secretKey ?? this.random(4).readInt32BE(0);
  }

  get state(): ServerConnState {
    return this._state;
  }
  get user(): string {
    return this._user;
  }
  get database(): string {
    return this._database;
  }
  get applicationName(): string {
    return this._applicationName;
  }
  get params(): ReadonlyMap<string, string> {
    return this._params;
  }
  get closed(): boolean {
    return this._state === 'closed';
  }
  /** Received bytes not processed yet (held while a command runs). */
  get bufferedInputBytes(): number {
    return this.decoder.bufferedBytes;
  }
  /**
   * False when the owner should stop reading the socket: input is being held while a command runs
   * and more than `pauseInputAtBytes` have piled up. Check it again after sendReadyForQuery() /
   * enterCopyBoth() (they process held input) and resume reading when it is true.
   */
  get wantsInput(): boolean {
    if (this._state === 'closed') return false;
    if (this._state !== 'busy' && this._state !== 'copyOut') return true; // input is consumed as it comes
    return this.decoder.bufferedBytes < this.pauseInputAtBytes;
  }

  // -------------------------------------------------------------------------------------------
  // Input

  feed(chunk: Uint8Array): void {
    if (this._state === 'closed') return;
    this.decoder.push(chunk);
    if (this.decoder.bufferedBytes > this.maxPendingInputBytes) {
      this.fatal(Errors.protocolViolation(`client sent more than ${this.maxPendingInputBytes} bytes while a command was running`));
      return;
    }
    this.pump();
  }

  /** The socket's read side ended. */
  end(): void {
    if (this._state === 'closed') return;
    const err = this.decoder.finish();
    this._state = 'closed';
    if (err) this.emit({ type: 'error', error: err, sentToClient: false });
    else this.emit({ type: 'terminate', graceful: false });
  }

  /** The owner is closing the socket (timeout, shutdown): no more input or output. */
  close(): void {
    this._state = 'closed';
  }

  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.step()) {
        /* keep going */
      }
    } catch (e) {
      if (!(e instanceof WalstreamError)) throw e;
      // Framing errors (bad lengths) and FATAL protocol errors end the connection.
      if (this._state !== 'closed') this.fatal(e);
    } finally {
      this.pumping = false;
    }
  }

  /** Processes one packet if the state allows; false when waiting (for bytes or for the owner). */
  private step(): boolean {
    switch (this._state) {
      case 'startup': {
        const p = this.decoder.nextStartupPacket();
        if (p === null) return false;
        this.onStartupPacket(p);
        return true;
      }
      case 'auth': {
        const auth = this.auth!;
        this.decoder.checkType = (t) => {
          if (t !== T('p')) throw Errors.protocolViolation(`expected ${auth.expecting} response, got message type ${t}`);
        };
        const f = this.decoder.next();
        if (f === null) return false;
        if (auth.onPasswordMessage(f)) this.authenticated();
        return true;
      }
      case 'ready': {
        this.decoder.phase = 'normal';
        this.decoder.checkType = checkFrontendType;
        const f = this.decoder.next();
        if (f === null) return false;
        this.onReadyMessage(f);
        return true;
      }
      case 'copyBoth': {
        this.decoder.phase = 'copy';
        this.decoder.checkType = checkStandbyType;
        const f = this.decoder.next();
        if (f === null) return false;
        this.onCopyBothMessage(f);
        return true;
      }
      default:
        return false; // busy/copyOut: input waits; closed: dropped
    }
  }

  // -------------------------------------------------------------------------------------------
  // Startup and authentication

  private onStartupPacket(p: StartupPacket): void {
    switch (p.kind) {
      case 'SSLRequest':
      case 'GSSENCRequest':
        this.out(Buffer.from('N'));
        if (this.decoder.bufferedBytes > 0) {
          const what = p.kind === 'SSLRequest' ? 'SSL request' : 'GSSAPI encryption request';
          this.fatal(
            Errors.protocolViolationDetail(`received unencrypted data after ${what}`, 'This could be either a client-software bug or evidence of an attempted man-in-the-middle attack.'),
          );
        }
        return;
      case 'CancelRequest':
        this._state = 'closed';
        this.emit({ type: 'cancel', processId: p.processId, secretKey: p.secretKey });
        return;
      case 'UnsupportedProtocol':
        if (p.major < 3) {
          this.out(encodeErrorResponseV2(p.error.message));
          this._state = 'closed';
          this.emit({ type: 'error', error: p.error, sentToClient: true });
        } else this.fatal(p.error);
        return;
      case 'StartupMessage':
        break;
    }
    this._state = 'auth';
    this._user = p.user;
    this._database = p.database;
    this._params = p.params;
    this._applicationName = p.params.get('application_name') ?? '';
    if (p.needsNegotiation) this.out(encodeNegotiateProtocolVersion(PROTOCOL_3_0, p.unrecognizedProtocolOptions));
    if (p.replication !== 'physical') {
      this.fatal(
        Errors.featureNotSupported(
          p.replication === 'logical' ? 'walstream does not support logical replication connections' : 'walstream accepts only physical replication connections (replication=true)',
        ),
      );
      return;
    }
    this.emit({ type: 'startup', user: p.user, database: p.database, applicationName: this._applicationName, params: p.params });
    if (this._state !== 'auth') return; // the handler refused the connection
    this.auth = new ClientAuth(
      {
        out: (b) => this.out(b),
        hba: this.hba,
        lookupUser: this.opts.lookupUser,
        connType: this.opts.connType ?? 'host',
        remoteAddress: this.opts.remoteAddress,
        passwordEncryption: this.opts.passwordEncryption ?? 'scram-sha-256',
        mockSaltKey: this.opts.mockSaltKey ?? null,
        random: this.random,
      },
      p.user,
      p.database,
    );
    if (this.auth.start()) this.authenticated();
  }

  /** Authentication passed: AuthenticationOk, then the role checks PostgreSQL makes after it. */
  private authenticated(): void {
    const auth = this.auth!;
    this.auth = null;
    this.out(encodeAuthenticationOk());
    const u = auth.userInfo;
    if (u === undefined) throw Errors.invalidAuthorization(`role "${this._user}" does not exist`);
    if (u.canLogin === false) throw Errors.invalidAuthorization(`role "${this._user}" is not permitted to log in`);
    if (u.replication === false && u.superuser !== true) throw Errors.insufficientPrivilege('must be superuser or replication role to start walsender');
    this.emit({ type: 'authenticated', user: this._user, applicationName: this._applicationName, method: auth.method });
    if (this._state !== 'auth') return; // refused by the handler (e.g. too many walsenders)
    const status = sessionParameterStatus({
      applicationName: this._applicationName,
      clientEncoding: this._params.get('client_encoding'),
      inHotStandby: this.opts.inHotStandby ?? false,
      superuser: u.superuser ?? false,
      serverVersion: this.opts.serverVersion ?? WALSTREAM_SERVER_VERSION,
      user: this._user,
      timeZone: this.opts.timeZone ?? 'UTC',
    });
    // walstream extension, only when the client asked: this walsender accepts `R` replies.
    if (this._params.get(RECEIVED_REPORT_PARAMETER) === 'on') {
      this._receivedReportAgreed = true;
      status.push([RECEIVED_REPORT_PARAMETER, 'on']);
    }
    // walstream extension, only when the client asked: this walsender accepts `F` flush requests.
    if (this._params.get(FLUSH_REQUEST_PARAMETER) === 'on') {
      this._flushRequestAgreed = true;
      status.push([FLUSH_REQUEST_PARAMETER, 'on']);
    }
    this.out(Buffer.concat([...status.map(([k, v]) => encodeParameterStatus(k, v)), encodeBackendKeyData(this.processId, this.secretKey), encodeReadyForQuery('I')]));
    this._state = 'ready';
    this.decoder.phase = 'normal';
  }

  // -------------------------------------------------------------------------------------------
  // Command loop

  private onReadyMessage(f: Frame): void {
    const t = f.type;
    if (t === T('X')) {
      this._state = 'closed';
      this.emit({ type: 'terminate', graceful: true });
      return;
    }
    if (t === T('S')) {
      this.ignoreTillSync = false;
      this.out(encodeReadyForQuery('I'));
      return;
    }
    checkFrontendType(t);
    if (this.ignoreTillSync) return;
    if (EXTENDED.has(t)) {
      this.out(errorResponseFrom(Errors.protocolViolation('extended query protocol not supported in a replication connection'), 'ERROR'));
      this.ignoreTillSync = true; // no ReadyForQuery until Sync
      return;
    }
    if (t === T('F')) {
      this.out(errorResponseFrom(Errors.protocolViolation('fastpath function calls not supported in a replication connection'), 'ERROR'));
      this.out(encodeReadyForQuery('I'));
      return;
    }
    if (t !== T('Q')) return; // Flush: nothing buffered; CopyData/CopyDone/CopyFail outside COPY: ignored
    let text: string;
    let parsed;
    try {
      text = decodeQuery(f.body);
      parsed = parseReplicationCommand(text);
    } catch (e) {
      if (!(e instanceof WalstreamError)) throw e;
      this.out(errorResponseFrom(e, 'ERROR'));
      this.out(encodeReadyForQuery('I'));
      return;
    }
    for (const n of parsed.notices) this.out(noticeResponseFrom(n));
    this._state = 'busy';
    this.emit({ type: 'command', command: parsed.command, text });
  }

  private onCopyBothMessage(f: Frame): void {
    const t = f.type;
    if (t === T('d')) {
      const body = f.body;
      if (body.length === 0) {
        this.abortStream(Errors.protocolViolation('no data left in message'));
        return;
      }
      const kind = body[0]!;
      try {
        if (kind === T('r')) this.emit({ type: 'copyData', message: { kind: 'r', ...decodeStandbyStatusUpdate(body) } });
        else if (kind === T('h')) this.emit({ type: 'copyData', message: { kind: 'h', ...decodeHotStandbyFeedback(body) } });
        else if (kind === T('R') && this._receivedReportAgreed) this.emit({ type: 'copyData', message: { kind: 'R', ...decodeStandbyReceivedUpdate(body) } });
        else if (kind === T('F') && this._flushRequestAgreed) this.emit({ type: 'copyData', message: { kind: 'F', ...decodeStandbyFlushRequest(body) } });
        else {
          // PostgreSQL logs "unexpected message type" and exits without telling the client.
          this._state = 'closed';
          this.emit({ type: 'error', error: Errors.protocolViolation(`unexpected message type "${String.fromCharCode(kind)}"`), sentToClient: false });
        }
      } catch (e) {
        if (!(e instanceof WalstreamError)) throw e;
        this.abortStream(e);
      }
      return;
    }
    if (t === T('c')) {
      if (!this.serverCopyDone) {
        this.out(encodeCopyDone());
        this.serverCopyDone = true;
      }
      this.clientCopyDone = true;
      this._state = 'busy';
      this.emit({ type: 'copyDone' });
      return;
    }
    if (t === T('X')) {
      this._state = 'closed';
      this.emit({ type: 'terminate', graceful: true });
      return;
    }
    checkStandbyType(t);
    assert(false, 'unreachable: standby message type already checked');
  }

  private abortStream(err: WalstreamError): void {
    this.out(errorResponseFrom(err, 'ERROR'));
    this.out(encodeReadyForQuery('I'));
    this._state = 'ready';
    this.emit({ type: 'streamAborted', error: err });
  }

  // -------------------------------------------------------------------------------------------
  // Output (called by the owner)

  private requireState(...states: ServerConnState[]): void {
    assert(states.includes(this._state), `ReplicationServerConn: not allowed in state ${this._state} (needs ${states.join('/')})`);
  }

  /** RowDescription + DataRows + CommandComplete. */
  sendResultSet(columns: readonly ColumnSpec[], rows: readonly (readonly CellValue[])[], tag: string): void {
    this.requireState('busy');
    this.out(encodeResultSet(columns, rows, tag));
  }
  sendRowDescription(columns: readonly ColumnSpec[]): void {
    this.requireState('busy');
    this.out(encodeRowDescription(columns));
  }
  sendDataRow(values: readonly CellValue[]): void {
    this.requireState('busy');
    this.out(encodeDataRow(values));
  }
  /** CommandComplete; also allowed in COPY BOTH for the shutdown case (`COPY 0`, then close). */
  sendCommandComplete(tag: string): void {
    this.requireState('busy', 'copyBoth');
    this.out(encodeCommandComplete(tag));
  }
  sendNotice(err: WalstreamError): void {
    this.requireState('busy', 'copyBoth', 'copyOut', 'ready');
    this.out(noticeResponseFrom(err));
  }
  /** ERROR for the running command. In COPY BOTH/OUT it ends the copy (no CopyDone), as PostgreSQL does. Follow with sendReadyForQuery(). */
  sendError(err: WalstreamError): void {
    this.requireState('busy', 'copyBoth', 'copyOut');
    this.out(errorResponseFrom(err, 'ERROR'));
    this._state = 'busy';
  }
  /** FATAL ErrorResponse, then the connection is closed (the owner closes the socket). Any state. */
  sendFatal(err: WalstreamError): void {
    if (this._state === 'closed') return;
    this.out(errorResponseFrom(err, 'FATAL'));
    this._state = 'closed';
  }
  /** Ends the command; held input is processed (events may fire from inside this call). */
  sendReadyForQuery(): void {
    this.requireState('busy');
    this.out(encodeReadyForQuery('I'));
    this._state = 'ready';
    this.pump();
  }

  /** Server-side CopyDone in COPY BOTH (the end of a historic timeline); the client's CopyDone then ends the copy. */
  sendCopyDone(): void {
    this.requireState('copyBoth');
    if (this.serverCopyDone) return;
    this.out(encodeCopyDone());
    this.serverCopyDone = true;
  }

  /** True once this side sent CopyDone in the current COPY BOTH (nothing else may follow but CopyData replies from the client). */
  get copyDoneSent(): boolean {
    return this.serverCopyDone;
  }

  /** CopyBothResponse: streaming starts. */
  enterCopyBoth(): void {
    this.requireState('busy');
    this.out(encodeCopyBothResponse());
    this._state = 'copyBoth';
    this.serverCopyDone = false;
    this.clientCopyDone = false;
    this.decoder.phase = 'copy';
    this.pump(); // replies the client pipelined after the command
  }
  private requireStreaming(): void {
    assert(this._state === 'copyBoth' && !this.serverCopyDone, `ReplicationServerConn: not streaming (state ${this._state})`);
  }
  /** XLogData: header and WAL go out as two chunks, the WAL bytes without a copy. */
  sendXLogData(h: XLogDataHeader, wal: Uint8Array): void {
    this.requireStreaming();
    const hdr = Buffer.allocUnsafe(XLOGDATA_FRAME_HEADER_BYTES);
    writeXLogDataFrameHeader(hdr, 0, h, wal.length);
    this.out(hdr);
    if (wal.length > 0) this.out(wal);
  }
  /** A whole XLogData CopyData message built with writeXLogDataFrameHeader() at frame[0]. */
  sendXLogDataFrame(frame: Uint8Array): void {
    this.requireStreaming();
    assert(frame.length >= XLOGDATA_FRAME_HEADER_BYTES && frame[0] === 0x64 && frame[5] === 0x77, 'not an XLogData frame');
    assert(new DataView(frame.buffer, frame.byteOffset, 5).getUint32(1) === frame.length - 1, 'XLogData frame length word does not match');
    this.out(frame);
  }
  /** PrimaryKeepalive `k`. */
  sendKeepalive(walEnd: Lsn, replyRequested: boolean, sendTime: number = pgTimestampNow()): void {
    this.requireStreaming();
    this.out(encodePrimaryKeepalive({ walEnd, sendTime, replyRequested }));
  }

  /** The client asked for StandbyReceivedUpdate `R` at startup and we agreed (walstream clients). */
  get receivedReportAgreed(): boolean {
    return this._receivedReportAgreed;
  }

  /**
   * ParameterStatus `walstream.received_report` while streaming (a backend may send ParameterStatus
   * at any time, between CopyData messages too): `on` asks the walreceiver for `R` before each
   * write and for an apply report as soon as it replays; `off` for neither (its apply position then
   * rides on its next reply). Only to a client that asked for it at startup.
   */
  sendReceivedReportMode(on: boolean): void {
    this.requireStreaming();
    assert(this._receivedReportAgreed, 'sendReceivedReportMode() to a client that did not ask for R');
    this.out(encodeParameterStatus(RECEIVED_REPORT_PARAMETER, on ? 'on' : 'off'));
  }
  /**
   * Server-side CopyDone (end of a historic timeline). If the client already sent its CopyDone the
   * copy is over (state 'busy'); otherwise the `copyDone` event follows when it does.
   */
  endCopy(): void {
    this.requireState('copyBoth');
    if (!this.serverCopyDone) {
      this.out(encodeCopyDone());
      this.serverCopyDone = true;
    }
    if (this.clientCopyDone) this._state = 'busy';
  }
  /** True once the client has sent CopyDone in the current COPY BOTH. */
  get clientEndedCopy(): boolean {
    return this.clientCopyDone;
  }

  /** CopyOutResponse (BASE_BACKUP). */
  enterCopyOut(): void {
    this.requireState('busy');
    this.out(encodeCopyOutResponse());
    this._state = 'copyOut';
  }
  sendCopyData(payload: Uint8Array): void {
    this.requireState('copyOut', 'copyBoth');
    this.out(encodeCopyData(payload));
  }
  /**
   * A whole CopyData message the caller built in place (writeCopyDataHeader + payload), sent as
   * it is: BASE_BACKUP's archive chunks, read straight into the outgoing ring.
   */
  sendCopyDataFrame(frame: Uint8Array): void {
    this.requireState('copyOut', 'copyBoth');
    assert(frame.length >= COPY_DATA_HEADER_BYTES && frame[0] === 0x64, 'not a CopyData frame');
    assert(new DataView(frame.buffer, frame.byteOffset, COPY_DATA_HEADER_BYTES).getUint32(1) === frame.length - 1, 'CopyData frame length word does not match');
    this.out(frame);
  }
  endCopyOut(): void {
    this.requireState('copyOut');
    this.out(encodeCopyDone());
    this._state = 'busy';
  }

  // -------------------------------------------------------------------------------------------

  private fatal(err: WalstreamError): void {
    if (this._state === 'closed') return;
    this.out(errorResponseFrom(err, 'FATAL'));
    this._state = 'closed';
    this.emit({ type: 'error', error: err, sentToClient: true });
  }

  private out(b: Uint8Array): void {
    if (this._state === 'closed') return;
    this.opts.send(b);
  }

  private emit(ev: ServerConnEvent): void {
    this.opts.onEvent(ev);
  }
}
