// ReplicationClientConn: the client side of one physical replication connection, sans I/O —
// what walstream's walreceiver (and the tests) use to talk to a real PostgreSQL 15 primary or to
// walstream's own walsender. The owner feeds received bytes, writes what `send` hands it, and
// reacts to events; src/standby/transport.ts wraps it around a node:net socket or an in-process ring.
//
// Owns: the StartupMessage (user, database=replication, replication=true, application_name),
// authentication (SCRAM-SHA-256 with server-signature check, MD5, cleartext, trust), the
// ParameterStatus set and BackendKeyData, one simple query at a time with its result sets,
// CommandCompletes and error, and the COPY BOTH stream (XLogData/keepalive in, `r`/`h`/CopyDone
// out) plus COPY OUT (BASE_BACKUP). Server messages are limited to `maxMessageBytes` (1 GiB).
// Stops: state 'closed' after a FATAL, a protocol violation, terminate() or end of input; an
// `error` or `closed` event says so.

import { Errors, WalstreamError } from '../../errors.js';
import { assert } from '../../util/assert.js';
import { BackendDecoder, printableType, type Frame } from './frames.js';
import {
  decodeAuthentication,
  decodeBackendKeyData,
  decodeCommandComplete,
  decodeDataRow,
  decodeErrorFields,
  decodeParameterStatus,
  decodePrimaryKeepalive,
  decodeReadyForQuery,
  decodeRowDescription,
  decodeXLogData,
  encodeCopyDone,
  encodeHotStandbyFeedback,
  encodePasswordMessage,
  encodeQuery,
  encodeSASLInitialResponse,
  encodeSASLResponse,
  encodeSSLRequest,
  encodeStandbyFlushRequest,
  encodeStandbyReceivedUpdate,
  encodeStandbyStatusUpdate,
  encodeStartupMessage,
  encodeTerminate,
  errorFromFields,
  textCell,
  type ColumnSpec,
  type ErrorFields,
  type HotStandbyFeedback,
  type PrimaryKeepalive,
  type StandbyReceivedUpdate,
  type StandbyStatusUpdate,
  type XLogData,
  FLUSH_REQUEST_PARAMETER,
  RECEIVED_REPORT_PARAMETER,
} from './messages.js';
import { type Lsn, parseLsn } from '../../wal/lsn.js';
import { md5ClientResponse, SCRAM_SHA_256, ScramClientExchange, type RandomBytes } from './scram.js';

export interface ClientConnOptions {
  send: (bytes: Uint8Array) => void;
  onEvent: (ev: ClientConnEvent) => void;
  user: string;
  /** Needed unless the server trusts the connection. */
  password?: string | null;
  /** Default 'replication' (what pg_receivewal and the walreceiver send). */
  database?: string;
  /** Default 'walstream'. */
  applicationName?: string;
  /** Further startup parameters. */
  extraParams?: Record<string, string>;
  /**
   * Ask the server for StandbyReceivedUpdate `R` (startup parameter RECEIVED_REPORT_PARAMETER);
   * only a walstream walsender agrees (see peerAcceptsReceivedReport). Default false.
   */
  requestReceivedReport?: boolean;
  /**
   * Ask the server to accept StandbyFlushRequest `F` (startup parameter FLUSH_REQUEST_PARAMETER);
   * only a walstream walsender agrees (see peerAcceptsFlushRequest). Default false.
   */
  requestFlushRequest?: boolean;
  /** Send SSLRequest first and accept only the 'N' answer (as libpq's sslmode=prefer does without TLS). Default false. */
  sslRequest?: boolean;
  /** Limit of a server message's length word, in bytes. Default 1 GiB. */
  maxMessageBytes?: number;
  randomBytes?: RandomBytes;
}

export interface ResultSet {
  columns: ColumnSpec[];
  /** Cells as text (UTF-8), null for NULL. */
  rows: (string | null)[][];
  /** The same cells as received (copies), for binary-safe values (TIMELINE_HISTORY's content). */
  rawRows: (Uint8Array | null)[][];
}

export interface QueryResult {
  /** Result sets in order (BASE_BACKUP sends several). */
  resultSets: ResultSet[];
  /** CommandComplete tags in order (START_REPLICATION sends two). */
  commandTags: string[];
  /** The ERROR that ended the command, if any. */
  error: WalstreamError | null;
  errorFields: ErrorFields | null;
  notices: ErrorFields[];
}

export type ClientConnEvent =
  /** Authentication done, parameters collected, first ReadyForQuery received. */
  | { type: 'ready' }
  | { type: 'parameterStatus'; name: string; value: string }
  | { type: 'notice'; fields: ErrorFields }
  /** The running query finished (ReadyForQuery). */
  | { type: 'result'; result: QueryResult }
  | { type: 'copyBothStart' }
  | { type: 'copyOutStart' }
  | { type: 'xlogData'; message: XLogData }
  | { type: 'keepalive'; message: PrimaryKeepalive }
  /**
   * COPY OUT payload (BASE_BACKUP): a view valid until the next feed(). A large one that spans
   * received chunks comes in parts (`part`; only the first holds the payload's first byte).
   */
  | { type: 'copyData'; data: Uint8Array; part: { first: boolean; last: boolean } | null }
  /** The server sent CopyDone. */
  | { type: 'copyDone' }
  /** CommandComplete inside COPY BOTH (`COPY 0`: the primary is shutting down and will close). */
  | { type: 'commandComplete'; tag: string }
  /** Connection-level failure (FATAL, authentication, protocol violation): the connection is closed. */
  | { type: 'error'; error: WalstreamError; fields: ErrorFields | null }
  | { type: 'closed' };

export type ClientConnState = 'initial' | 'ssl' | 'auth' | 'params' | 'idle' | 'query' | 'copyBoth' | 'copyOut' | 'closed';

const T = (c: string) => c.charCodeAt(0);

export class ReplicationClientConn {
  private readonly opts: ClientConnOptions;
  private readonly decoder: BackendDecoder;
  private _state: ClientConnState = 'initial';
  private scram: ScramClientExchange | null = null;
  private authDone = false;
  private result: QueryResult | null = null;
  private currentSet: ResultSet | null = null;
  private serverCopyDone = false;
  private clientCopyDone = false;

  /** The result sets of the query in progress received so far (BASE_BACKUP's header rows arrive before its COPY). */
  get partialResultSets(): readonly ResultSet[] {
    return this.result?.resultSets ?? [];
  }
  private pumping = false;
  readonly parameters = new Map<string, string>();
  processId = 0;
  secretKey = 0;

  constructor(opts: ClientConnOptions) {
    this.opts = opts;
    this.decoder = new BackendDecoder(opts.maxMessageBytes === undefined ? {} : { maxMessageBytes: opts.maxMessageBytes });
  }

  get state(): ClientConnState {
    return this._state;
  }
  get closed(): boolean {
    return this._state === 'closed';
  }
  /** libpq's PQserverVersion(): 15.4 → 150004; 0 if unknown. */
  get serverVersionNum(): number {
    const v = this.parameters.get('server_version');
    const m = v ? /^(\d+)(?:\.(\d+))?/.exec(v) : null;
    if (!m) return 0;
    const major = Number(m[1]);
    const minor = Number(m[2] ?? 0);
    return major >= 10 ? major * 10000 + minor : major * 10000 + minor * 100;
  }

  /** Sends SSLRequest or the StartupMessage. */
  start(): void {
    assert(this._state === 'initial', 'start() called twice');
    if (this.opts.sslRequest) {
      this._state = 'ssl';
      this.opts.send(encodeSSLRequest());
      return;
    }
    this.sendStartup();
  }

  private sendStartup(): void {
    const params: Record<string, string> = {
      user: this.opts.user,
      database: this.opts.database ?? 'replication',
      replication: 'true',
      application_name: this.opts.applicationName ?? 'walstream',
      ...this.opts.extraParams,
      ...(this.opts.requestReceivedReport ? { [RECEIVED_REPORT_PARAMETER]: 'on' } : {}),
      ...(this.opts.requestFlushRequest ? { [FLUSH_REQUEST_PARAMETER]: 'on' } : {}),
    };
    this._state = 'auth';
    this.opts.send(encodeStartupMessage(params));
  }

  feed(chunk: Uint8Array): void {
    if (this._state === 'closed') return;
    this.decoder.push(chunk);
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (!this.closed) {
        if (this._state === 'ssl') {
          const b = this.decoder.nextSslAnswer();
          if (b === null) break;
          if (b !== T('N')) throw Errors.protocolViolation(`server answered SSLRequest with "${printableType(b)}"; TLS is not supported by walstream`);
          this.sendStartup();
          continue;
        }
        const f = this.decoder.next();
        if (f === null) break;
        this.onMessage(f);
      }
    } catch (e) {
      if (!(e instanceof WalstreamError)) throw e;
      this.fail(e, null);
    } finally {
      this.pumping = false;
    }
  }

  /** The socket closed. */
  end(): void {
    if (this._state === 'closed') return;
    const truncated = this.decoder.finish();
    this._state = 'closed';
    if (truncated) this.opts.onEvent({ type: 'error', error: truncated, fields: null });
    this.opts.onEvent({ type: 'closed' });
  }

  // -------------------------------------------------------------------------------------------
  // Requests

  /** Runs one simple query; a `result` event (or copyBothStart/copyOutStart first) follows. */
  query(text: string): void {
    assert(this._state === 'idle', `query() in state ${this._state}`);
    this.result = { resultSets: [], commandTags: [], error: null, errorFields: null, notices: [] };
    this.currentSet = null;
    this._state = 'query';
    this.opts.send(encodeQuery(text));
  }

  /** StandbyStatusUpdate `r` (COPY BOTH). */
  sendStandbyStatus(s: StandbyStatusUpdate): void {
    assert(this._state === 'copyBoth' && !this.clientCopyDone, `sendStandbyStatus() in state ${this._state}`);
    this.opts.send(encodeStandbyStatusUpdate(s));
  }
  /**
   * True when we asked for StandbyReceivedUpdate `R` and the server agreed (walstream's walsender
   * answers RECEIVED_REPORT_PARAMETER = 'on'). PostgreSQL's walsender never does and would end the
   * connection on an `R`.
   */
  get peerAcceptsReceivedReport(): boolean {
    return this.opts.requestReceivedReport === true && this.parameters.get(RECEIVED_REPORT_PARAMETER) === 'on';
  }
  /** StandbyReceivedUpdate `R` (COPY BOTH), only to a server that accepts it (peerAcceptsReceivedReport). */
  sendStandbyReceived(u: StandbyReceivedUpdate): void {
    assert(this._state === 'copyBoth' && !this.clientCopyDone, `sendStandbyReceived() in state ${this._state}`);
    assert(this.peerAcceptsReceivedReport, 'sendStandbyReceived() to a server that did not agree to it (PostgreSQL would end the connection)');
    this.opts.send(encodeStandbyReceivedUpdate(u));
  }
  /** True when we asked to send StandbyFlushRequest `F` and the server agreed (walstream's walsender; never PostgreSQL's). */
  get peerAcceptsFlushRequest(): boolean {
    return this.opts.requestFlushRequest === true && this.parameters.get(FLUSH_REQUEST_PARAMETER) === 'on';
  }
  /** True while we may still send CopyData in COPY BOTH (our CopyDone not sent yet). */
  get canSendCopyData(): boolean {
    return this._state === 'copyBoth' && !this.clientCopyDone;
  }
  /** StandbyFlushRequest `F` (COPY BOTH), only to a server that accepts it (peerAcceptsFlushRequest). */
  sendStandbyFlushRequest(lsn: Lsn): void {
    assert(this._state === 'copyBoth' && !this.clientCopyDone, `sendStandbyFlushRequest() in state ${this._state}`);
    assert(this.peerAcceptsFlushRequest, 'sendStandbyFlushRequest() to a server that did not agree to it (PostgreSQL would end the connection)');
    this.opts.send(encodeStandbyFlushRequest({ lsn }));
  }
  /** HotStandbyFeedback `h` (COPY BOTH). */
  sendHotStandbyFeedback(h: HotStandbyFeedback): void {
    assert(this._state === 'copyBoth' && !this.clientCopyDone, `sendHotStandbyFeedback() in state ${this._state}`);
    this.opts.send(encodeHotStandbyFeedback(h));
  }
  /** Ends our side of COPY BOTH; the server answers CopyDone and the command's CommandCompletes. */
  sendCopyDone(): void {
    assert(this._state === 'copyBoth' && !this.clientCopyDone, `sendCopyDone() in state ${this._state}`);
    this.clientCopyDone = true;
    this.opts.send(encodeCopyDone());
    if (this.serverCopyDone) this._state = 'query';
  }
  /** Terminate `X`, then closed. */
  terminate(): void {
    if (this._state === 'closed') return;
    if (this._state !== 'initial' && this._state !== 'ssl') this.opts.send(encodeTerminate());
    this._state = 'closed';
    this.opts.onEvent({ type: 'closed' });
  }

  // -------------------------------------------------------------------------------------------
  // Server messages

  private onMessage(f: Frame): void {
    const t = f.type;
    // Messages that may come at any time.
    if (t === T('N')) {
      const fields = decodeErrorFields(f.body);
      this.result?.notices.push(fields);
      this.opts.onEvent({ type: 'notice', fields });
      return;
    }
    if (t === T('S')) {
      const { name, value } = decodeParameterStatus(f.body);
      this.parameters.set(name, value);
      this.opts.onEvent({ type: 'parameterStatus', name, value });
      return;
    }
    if (t === T('E')) {
      const fields = decodeErrorFields(f.body);
      const err = errorFromFields(fields);
      const sev = fields.severityV ?? fields.severity;
      if (sev === 'FATAL' || sev === 'PANIC' || this._state === 'auth' || this._state === 'params' || this.result === null) {
        this.fail(err, fields);
        return;
      }
      // ERROR: ends the command (and any COPY); ReadyForQuery follows.
      this.result.error = err;
      this.result.errorFields = fields;
      this._state = 'query';
      this.decoder.splitCopyData(false);
      return;
    }
    if (t === T('v')) return; // NegotiateProtocolVersion: we ask for 3.0 without options, nothing to adjust
    switch (this._state) {
      case 'auth':
        this.onAuth(f);
        return;
      case 'params':
        if (t === T('K')) {
          const k = decodeBackendKeyData(f.body);
          this.processId = k.processId;
          this.secretKey = k.secretKey;
          return;
        }
        if (t === T('Z')) {
          decodeReadyForQuery(f.body);
          this._state = 'idle';
          this.opts.onEvent({ type: 'ready' });
          return;
        }
        break;
      case 'query':
        this.onQueryMessage(f);
        return;
      case 'copyBoth':
        this.onCopyBoth(f);
        return;
      case 'copyOut':
        if (t === T('d')) {
          this.opts.onEvent({ type: 'copyData', data: f.body, part: f.part ?? null });
          return;
        }
        if (t === T('c')) {
          this.decoder.splitCopyData(false);
          this._state = 'query';
          this.opts.onEvent({ type: 'copyDone' });
          return;
        }
        break;
      default:
        break;
    }
    throw Errors.protocolViolation(`unexpected message type "${printableType(t)}" from server in state ${this._state}`);
  }

  private onAuth(f: Frame): void {
    if (f.type !== T('R')) throw Errors.protocolViolation(`expected authentication request from server, but received "${printableType(f.type)}"`);
    const req = decodeAuthentication(f.body);
    const password = () => {
      const pw = this.opts.password;
      if (pw === undefined || pw === null) throw Errors.invalidAuthorization('server requested a password, but none was supplied');
      return pw;
    };
    switch (req.code) {
      case 0:
        if (this.scram !== null && !this.scram.done) throw Errors.invalidAuthorization('server sent AuthenticationOk before completing the SCRAM exchange');
        this.authDone = true;
        this._state = 'params';
        return;
      case 3:
        this.opts.send(encodePasswordMessage(password()));
        return;
      case 5:
        if ('salt' in req) this.opts.send(encodePasswordMessage(md5ClientResponse(password(), this.opts.user, req.salt)));
        return;
      case 10:
        if ('mechanisms' in req) {
          if (!req.mechanisms.includes(SCRAM_SHA_256)) {
            throw Errors.invalidAuthorization(`none of the server's SASL authentication mechanisms are supported (${req.mechanisms.join(', ')})`);
          }
          const cfg: { password: string; randomBytes?: RandomBytes } = { password: password() };
          if (this.opts.randomBytes) cfg.randomBytes = this.opts.randomBytes;
          this.scram = new ScramClientExchange(cfg);
          this.opts.send(encodeSASLInitialResponse(SCRAM_SHA_256, this.scram.clientFirstMessage()));
        }
        return;
      case 11:
        if (this.scram === null) throw Errors.protocolViolation('SASLContinue without a SASL exchange');
        if ('data' in req) this.opts.send(encodeSASLResponse(this.scram.handleServerFirst(req.data)));
        return;
      case 12:
        if (this.scram === null) throw Errors.protocolViolation('SASLFinal without a SASL exchange');
        if ('data' in req) this.scram.verifyServerFinal(req.data);
        return;
      default:
        throw Errors.invalidAuthorization(`authentication method ${req.code} not supported`);
    }
  }

  private onQueryMessage(f: Frame): void {
    const r = this.result!;
    const t = f.type;
    if (t === T('T')) {
      this.currentSet = { columns: decodeRowDescription(f.body), rows: [], rawRows: [] };
      r.resultSets.push(this.currentSet);
      return;
    }
    if (t === T('D')) {
      if (this.currentSet === null) throw Errors.protocolViolation('DataRow without RowDescription');
      const cells = decodeDataRow(f.body);
      this.currentSet.rows.push(cells.map(textCell));
      this.currentSet.rawRows.push(cells.map((c) => (c === null ? null : c.slice())));
      return;
    }
    if (t === T('C')) {
      r.commandTags.push(decodeCommandComplete(f.body));
      this.currentSet = null;
      return;
    }
    if (t === T('I')) {
      r.commandTags.push('');
      return;
    }
    if (t === T('W')) {
      this.decoder.splitCopyData(false); // XLogData is decoded whole
      this._state = 'copyBoth';
      this.serverCopyDone = false;
      this.clientCopyDone = false;
      this.opts.onEvent({ type: 'copyBothStart' });
      return;
    }
    if (t === T('H')) {
      // The archive's CopyData is written out as it arrives: no need to copy a message together.
      this.decoder.splitCopyData(true);
      this._state = 'copyOut';
      this.opts.onEvent({ type: 'copyOutStart' });
      return;
    }
    if (t === T('Z')) {
      decodeReadyForQuery(f.body);
      this.result = null;
      this.currentSet = null;
      this._state = 'idle';
      this.opts.onEvent({ type: 'result', result: r });
      return;
    }
    throw Errors.protocolViolation(`unexpected message type "${printableType(t)}" from server during a query`);
  }

  private onCopyBoth(f: Frame): void {
    const t = f.type;
    if (t === T('d')) {
      const kind = f.body.length > 0 ? f.body[0]! : -1;
      if (kind === T('w')) this.opts.onEvent({ type: 'xlogData', message: decodeXLogData(f.body) });
      else if (kind === T('k')) this.opts.onEvent({ type: 'keepalive', message: decodePrimaryKeepalive(f.body) });
      else throw Errors.protocolViolation(`unrecognized streaming header: "${printableType(kind)}"`);
      return;
    }
    if (t === T('c')) {
      this.serverCopyDone = true;
      if (this.clientCopyDone) this._state = 'query';
      this.opts.onEvent({ type: 'copyDone' });
      return;
    }
    if (t === T('C')) {
      this.result?.commandTags.push(decodeCommandComplete(f.body));
      this.opts.onEvent({ type: 'commandComplete', tag: decodeCommandComplete(f.body) });
      return;
    }
    throw Errors.protocolViolation(`unexpected message type "${printableType(t)}" from server during COPY BOTH`);
  }

  /** True once the server has sent CopyDone in the current COPY BOTH. */
  get serverEndedCopy(): boolean {
    return this.serverCopyDone;
  }
  /** True after AuthenticationOk. */
  get authenticated(): boolean {
    return this.authDone;
  }

  private fail(err: WalstreamError, fields: ErrorFields | null): void {
    if (this._state === 'closed') return;
    this._state = 'closed';
    this.opts.onEvent({ type: 'error', error: err, fields });
    this.opts.onEvent({ type: 'closed' });
  }
}

/**
 * What follows the end of a historic timeline's stream (walsender's result set after CopyDone:
 * next_tli int8, next_tli_startpos text; receivelog.c ReadEndOfStreamingResult).
 */
export interface EndOfStreamingResult {
  nextTli: number;
  nextTliStart: Lsn;
}

/**
 * The result of START_REPLICATION after both CopyDones: the next timeline (end of a historic
 * timeline), or null (no result set: the stream ended without a timeline switch). Texts as
 * libpqwalreceiver's and receivelog.c's.
 */
export function parseEndOfStreamingResult(r: QueryResult): EndOfStreamingResult | null {
  if (r.error !== null) throw Errors.protocolViolation(`error reading result of streaming command: ${r.error.message}`);
  const set = r.resultSets[0];
  if (set === undefined) return null;
  if (set.columns.length < 2 || set.rows.length !== 1) {
    throw Errors.protocolViolation(`unexpected result set after end-of-timeline: got ${set.rows.length} rows and ${set.columns.length} fields, expected 1 rows and 2 fields`);
  }
  const [tliText, startText] = [set.rows[0]![0], set.rows[0]![1]];
  if (tliText == null || !/^\d{1,10}$/.test(tliText)) throw Errors.protocolViolation(`unexpected result set after end-of-streaming: next timeline "${String(tliText)}"`);
  let nextTliStart: Lsn;
  try {
    nextTliStart = parseLsn(startText ?? '');
  } catch {
    throw Errors.protocolViolation(`could not parse next timeline's starting point "${String(startText)}"`);
  }
  return { nextTli: Number(tliText), nextTliStart };
}
