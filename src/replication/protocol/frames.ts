// Incremental framing of the PostgreSQL v3 wire protocol, sans I/O. Used by both ends of a
// replication connection (ReplicationServerConn, ReplicationClientConn): the owner pushes the byte
// chunks it read and pulls whole messages out. Nothing here touches a socket or a timer.
//
// Owns: the bytes pushed but not yet consumed, and at most one partly received message body.
// Every length field is checked against a limit before anything is allocated from it; a bad
// length is a WalstreamError (08P01), never a crash, and it poisons the decoder (the connection
// must be closed: message boundaries are lost). A message that lies wholly inside one pushed chunk
// is returned as a subarray view of that chunk (no copy): callers must not reuse pushed chunks.
// A large body of the `splitType` (a client in COPY OUT sets CopyData: BASE_BACKUP's archive) that
// spans chunks is returned in parts instead, each a view of one chunk, so it is never copied
// together (frames with `part`; the parts' bodies concatenated are the message's body).
// Stops: when its owner drops it; `finish()` tells whether the stream ended mid-message.

import { Errors, type WalstreamError } from '../../errors.js';
import { assert } from '../../util/assert.js';

/** Server→client messages may be large (XLogData is ≤ 128 KiB, but a DataRow can carry a whole file). */
export const DEFAULT_BACKEND_MAX_MESSAGE_BYTES = 1 << 30;
/** Client→server messages are small on a replication connection (queries, `r`/`h` replies). */
export const DEFAULT_FRONTEND_MAX_MESSAGE_BYTES = 16 << 20;
/** PostgreSQL's MAX_STARTUP_PACKET_LENGTH: the packet without its length word. */
export const MAX_STARTUP_PACKET_BYTES = 10_000;
/** PostgreSQL's PG_MAX_AUTH_TOKEN_LENGTH: limit of the length word of `p` messages during authentication. */
export const MAX_AUTH_MESSAGE_BYTES = 65_535;
/** PostgreSQL's PQ_SMALL_MESSAGE_LIMIT: limit of the length word of messages that carry no payload. */
export const SMALL_MESSAGE_LIMIT_BYTES = 10_000;

export const SSL_REQUEST_CODE = 80877103;
export const GSSENC_REQUEST_CODE = 80877104;
export const CANCEL_REQUEST_CODE = 80877102;
export const PROTOCOL_3_0 = 0x0003_0000;

/** Frame type of an untyped packet (startup phase: Int32 length, then body). */
export const UNTYPED = -1;

export interface Frame {
  /** Message type byte (e.g. 0x51 for 'Q'), or UNTYPED for startup-phase packets. */
  type: number;
  /** Body after the length word: a view into a pushed chunk when possible, else a fresh copy. */
  body: Uint8Array;
  /** Set on the parts of a split body (see FrameDecoder.splitType): which part this is. */
  part?: { first: boolean; last: boolean };
}

/** Bodies of the split type at least this long that span chunks are returned in parts (bytes). */
export const SPLIT_MIN_BODY_BYTES = 8 * 1024;

/**
 * Returns the largest acceptable value of the length word (which counts itself) for a message of
 * this type, or throws the error to report. For UNTYPED packets the limit applies to the length word too.
 */
export type LengthLimit = (type: number, lengthWord: number) => void;

const EMPTY = new Uint8Array(0);

/**
 * The framing state machine. `typed` selects how the *next* header is read; switch it only between
 * frames (after `next()` returned a frame and before calling it again).
 */
export class FrameDecoder {
  typed: boolean;
  private readonly checkLength: LengthLimit;
  private chunks: Uint8Array[] = [];
  private head = 0; // index of the current chunk (consumed ones are dropped in batches)
  private off = 0; // read offset in chunks[head]
  private pending = 0; // unconsumed bytes in `chunks`
  private readonly hdr = new Uint8Array(5);
  private hdrFill = 0;
  private body: Uint8Array | null = null;
  private bodyFill = 0;
  private bodyType = 0;
  private poisoned: WalstreamError | null = null;
  /** Bytes of the split body still to return as parts (0: not inside a split body). */
  private splitLeft = 0;
  private splitFirst = false;
  /**
   * Message type whose large bodies spanning chunks come back in parts (-1: none). Change it
   * only between frames; a body already being split is finished either way.
   */
  splitType = -1;

  /** Called with the type byte as soon as it arrives (before the length word), may throw. */
  checkType: ((type: number) => void) | null = null;

  constructor(opts: { typed: boolean; checkLength: LengthLimit }) {
    this.typed = opts.typed;
    this.checkLength = opts.checkLength;
  }

  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.pending += chunk.length;
  }

  /** Bytes pushed and not yet consumed, including those of a partly read header or body. */
  get bufferedBytes(): number {
    return this.pending + this.hdrFill + this.bodyFill;
  }

  /** True when no partial message is held and nothing unconsumed is pending. */
  get idle(): boolean {
    return this.bufferedBytes === 0 && this.body === null && this.splitLeft === 0;
  }

  /** Reads one raw byte (the unframed answer to SSLRequest/GSSENCRequest). */
  nextByte(): number | null {
    assert(this.hdrFill === 0 && this.body === null && this.splitLeft === 0, 'nextByte() inside a frame');
    if (this.pending === 0) return null;
    const c = this.chunks[this.head]!;
    const b = c[this.off]!;
    this.consume(1);
    return b;
  }

  /** Next whole message, or null when more bytes are needed. Throws (and stays failed) on a bad length. */
  next(): Frame | null {
    if (this.poisoned) throw this.poisoned;
    if (this.splitLeft > 0) return this.nextPart();
    if (this.body === null) {
      const hdrLen = this.typed ? 5 : 4;
      // Fast path: the whole header (and maybe the body) is in the current chunk.
      while (this.hdrFill < hdrLen) {
        if (this.pending === 0) return null;
        const c = this.chunks[this.head]!;
        const n = Math.min(hdrLen - this.hdrFill, c.length - this.off);
        const first = this.hdrFill === 0;
        this.hdr.set(c.subarray(this.off, this.off + n), this.hdrFill);
        this.hdrFill += n;
        this.consume(n);
        if (first && this.typed && this.checkType !== null) {
          try {
            this.checkType(this.hdr[0]!);
          } catch (e) {
            this.poisoned = e as WalstreamError;
            throw e;
          }
        }
      }
      const type = this.typed ? this.hdr[0]! : UNTYPED;
      const at = this.typed ? 1 : 0;
      const lengthWord = ((this.hdr[at]! << 24) | (this.hdr[at + 1]! << 16) | (this.hdr[at + 2]! << 8) | this.hdr[at + 3]!) >>> 0;
      try {
        this.checkLength(type, lengthWord);
      } catch (e) {
        this.poisoned = e as WalstreamError;
        throw e;
      }
      assert(lengthWord >= 4, 'length check let a length below 4 through');
      this.hdrFill = 0;
      const bodyLen = lengthWord - 4;
      if (bodyLen === 0) return { type, body: EMPTY };
      // Zero-copy when the body lies wholly inside the current chunk.
      if (this.pending > 0) {
        const c = this.chunks[this.head]!;
        if (c.length - this.off >= bodyLen) {
          const body = c.subarray(this.off, this.off + bodyLen);
          this.consume(bodyLen);
          return { type, body };
        }
      }
      this.bodyType = type;
      if (type === this.splitType && bodyLen >= SPLIT_MIN_BODY_BYTES) {
        this.splitLeft = bodyLen;
        this.splitFirst = true;
        return this.nextPart();
      }
      this.body = new Uint8Array(bodyLen);
      this.bodyFill = 0;
    }
    const body = this.body;
    while (this.bodyFill < body.length && this.pending > 0) {
      const c = this.chunks[this.head]!;
      const n = Math.min(body.length - this.bodyFill, c.length - this.off);
      body.set(c.subarray(this.off, this.off + n), this.bodyFill);
      this.bodyFill += n;
      this.consume(n);
    }
    if (this.bodyFill < body.length) return null;
    this.body = null;
    this.bodyFill = 0;
    return { type: this.bodyType, body };
  }

  /** The next part of a split body (never empty), or null when no byte of it is pushed yet. */
  private nextPart(): Frame | null {
    if (this.pending === 0) return null;
    const c = this.chunks[this.head]!;
    const n = Math.min(this.splitLeft, c.length - this.off);
    const body = c.subarray(this.off, this.off + n);
    this.consume(n);
    this.splitLeft -= n;
    const first = this.splitFirst;
    this.splitFirst = false;
    return { type: this.bodyType, body, part: { first, last: this.splitLeft === 0 } };
  }

  /** At end of stream: null if it ended on a message boundary, else the truncation error. */
  finish(what: string): WalstreamError | null {
    if (this.poisoned) return this.poisoned;
    if (this.hdrFill > 0 || this.body !== null || this.splitLeft > 0 || this.pending > 0) return Errors.protocolViolation(what);
    return null;
  }

  private consume(n: number): void {
    this.off += n;
    this.pending -= n;
    const c = this.chunks[this.head]!;
    if (this.off === c.length) {
      this.chunks[this.head] = EMPTY; // release the chunk now
      this.head++;
      this.off = 0;
      if (this.head === this.chunks.length) {
        this.chunks = [];
        this.head = 0;
      } else if (this.head >= 1024 && this.head * 2 >= this.chunks.length) {
        this.chunks = this.chunks.slice(this.head); // amortised O(1) per chunk, even for 1-byte chunks
        this.head = 0;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Server side: the client's messages.

export type StartupPacket =
  | { kind: 'SSLRequest' }
  /** Protocol major version other than 3: the owner sends `error` as FATAL (in the v2 format if major < 3) and closes. */
  | { kind: 'UnsupportedProtocol'; major: number; minor: number; error: WalstreamError }
  | { kind: 'GSSENCRequest' }
  | { kind: 'CancelRequest'; processId: number; secretKey: number }
  | {
      kind: 'StartupMessage';
      protocolVersion: number;
      /** Every (name, value) pair, in packet order (later duplicates overwrite earlier ones in `params`). */
      params: Map<string, string>;
      /** `_pq_.*` options, which no server version defines: reported back in NegotiateProtocolVersion. */
      unrecognizedProtocolOptions: string[];
      /** The client asked for 3.x with x > 0, or sent `_pq_.` options: answer NegotiateProtocolVersion. */
      needsNegotiation: boolean;
      /** `replication` parameter: 'physical' (true/on/yes/1), 'logical' (database), or 'none'. */
      replication: 'physical' | 'logical' | 'none';
      /** `user`, truncated to 63 bytes like PostgreSQL's NAMEDATALEN. */
      user: string;
      /** `database` (defaults to the user; empty for a physical walsender). */
      database: string;
    };

/** Where the server side is in the conversation; selects the limits applied to length words. */
export type FrontendPhase = 'startup' | 'auth' | 'normal' | 'copy';

export interface FrontendDecoderOptions {
  /** Cap on any client message's length word, in bytes. Default 16 MiB. */
  maxMessageBytes?: number;
}

/** Types PostgreSQL accepts with a small length limit (PQ_SMALL_MESSAGE_LIMIT) in the main loop. */
const SMALL_TYPES = new Set(['X', 'C', 'D', 'E', 'H', 'S', 'c', 'f'].map((c) => c.charCodeAt(0)));

/**
 * Decoder for what a client sends to a server: the untyped startup packets, then typed messages.
 * The owner sets `phase` as the conversation advances (startup → auth → normal ⇄ copy).
 */
export class FrontendDecoder {
  phase: FrontendPhase = 'startup';
  readonly maxMessageBytes: number;
  private readonly frames: FrameDecoder;
  private sslDone = false;
  private gssDone = false;

  constructor(opts: FrontendDecoderOptions = {}) {
    const max = opts.maxMessageBytes ?? DEFAULT_FRONTEND_MAX_MESSAGE_BYTES;
    if (!Number.isInteger(max) || max < 5 || max > 0x7fff_ffff) throw Errors.invalidOption('maxMessageBytes', 'must be an integer from 5 to 2^31-1');
    this.maxMessageBytes = max;
    this.frames = new FrameDecoder({
      typed: false,
      checkLength: (type, len) => {
        if (type === UNTYPED) {
          // PostgreSQL: len - 4 must lie in [4, MAX_STARTUP_PACKET_LENGTH].
          if (len < 8 || len - 4 > MAX_STARTUP_PACKET_BYTES) throw Errors.protocolViolation('invalid length of startup packet');
          return;
        }
        let limit = this.maxMessageBytes;
        if (this.phase === 'auth') limit = Math.min(limit, MAX_AUTH_MESSAGE_BYTES);
        else if (this.phase === 'normal' && SMALL_TYPES.has(type)) limit = Math.min(limit, SMALL_MESSAGE_LIMIT_BYTES);
        else if (this.phase === 'copy' && (type === 0x63 /* c */ || type === 0x58) /* X */) limit = Math.min(limit, SMALL_MESSAGE_LIMIT_BYTES);
        if (len < 4 || len > limit) throw Errors.protocolViolation('invalid message length');
      },
    });
  }

  push(chunk: Uint8Array): void {
    this.frames.push(chunk);
  }

  /**
   * Validates each message type byte as soon as it arrives, before its length word (PostgreSQL
   * rejects an unexpected type first). The owner sets it per phase; null accepts any type.
   */
  set checkType(fn: ((type: number) => void) | null) {
    this.frames.checkType = fn;
  }

  get bufferedBytes(): number {
    return this.frames.bufferedBytes;
  }

  finish(): WalstreamError | null {
    return this.frames.finish(this.phase === 'startup' ? 'incomplete startup packet' : 'incomplete message from client');
  }

  /**
   * Next startup-phase packet (phase must be 'startup'). SSLRequest/GSSENCRequest leave the phase
   * at 'startup' (answer 'N', then read the next packet); a StartupMessage moves it to 'auth'.
   * Throws the exact FATAL PostgreSQL sends for a malformed packet.
   */
  nextStartupPacket(): StartupPacket | null {
    assert(this.phase === 'startup', 'nextStartupPacket() outside the startup phase');
    this.frames.typed = false;
    const f = this.frames.next();
    if (f === null) return null;
    const body = f.body;
    const dv = new DataView(body.buffer, body.byteOffset, body.byteLength);
    const code = dv.getUint32(0);
    if (code === CANCEL_REQUEST_CODE) {
      if (body.length !== 12) throw Errors.protocolViolation('invalid length of cancel request packet');
      return { kind: 'CancelRequest', processId: dv.getInt32(4), secretKey: dv.getInt32(8) };
    }
    if (code === SSL_REQUEST_CODE && !this.sslDone) {
      this.sslDone = true;
      return { kind: 'SSLRequest' };
    }
    if (code === GSSENC_REQUEST_CODE && !this.gssDone) {
      this.gssDone = true;
      return { kind: 'GSSENCRequest' };
    }
    const major = code >>> 16;
    const minor = code & 0xffff;
    if (major !== 3) {
      const error = Errors.featureNotSupported(`unsupported frontend protocol ${major}.${minor}: server supports 3.0 to 3.0`);
      return { kind: 'UnsupportedProtocol', major, minor, error };
    }
    const pkt = parseStartupParams(body, code);
    this.phase = 'auth';
    this.frames.typed = true;
    return pkt;
  }

  /** Next typed message (phase 'auth', 'normal' or 'copy'). */
  next(): Frame | null {
    assert(this.phase !== 'startup', 'next() during the startup phase');
    this.frames.typed = true;
    return this.frames.next();
  }
}

const NAMEDATALEN = 64;
const utf8 = new TextDecoder('utf-8');

/** C-string at `off` (up to the next NUL or the end), decoded as UTF-8. */
function cstring(body: Uint8Array, off: number): { s: string; end: number } {
  let end = body.indexOf(0, off);
  if (end < 0) end = body.length;
  return { s: utf8.decode(body.subarray(off, end)), end };
}

/** Truncates to at most NAMEDATALEN-1 bytes of UTF-8 without splitting a character. */
export function truncateName(s: string): string {
  const b = Buffer.from(s, 'utf8');
  if (b.length < NAMEDATALEN) return s;
  let n = NAMEDATALEN - 1;
  while (n > 0 && (b[n]! & 0xc0) === 0x80) n--;
  return b.subarray(0, n).toString('utf8');
}

function parseBool(v: string): boolean | null {
  // PostgreSQL's parse_bool: case-insensitive prefixes of true/false/yes/no, on/off (≥2 chars), 1/0.
  const s = v.toLowerCase();
  if (s.length === 0) return null;
  const prefixOf = (word: string, min = 1) => s.length >= min && word.startsWith(s);
  if (prefixOf('true') || prefixOf('yes') || s === '1' || prefixOf('on', 2)) return true;
  if (prefixOf('false') || prefixOf('no') || s === '0' || prefixOf('off', 2)) return false;
  return null;
}

function parseStartupParams(body: Uint8Array, protocolVersion: number): StartupPacket {
  // Mirrors ProcessStartupPacket(): scan name/value pairs, stop at an empty name or a missing value.
  const len = body.length;
  let offset = 4;
  const params = new Map<string, string>();
  const unrecognizedProtocolOptions: string[] = [];
  let replication: 'physical' | 'logical' | 'none' = 'none';
  while (offset < len) {
    if (body[offset] === 0) break;
    const name = cstring(body, offset);
    const valOffset = name.end + 1;
    if (valOffset >= len) break;
    const value = cstring(body, valOffset);
    if (name.s === 'replication') {
      if (value.s === 'database') replication = 'logical';
      else {
        const b = parseBool(value.s);
        if (b === null) {
          throw Errors.invalidParameterValue(`invalid value for parameter "replication": "${value.s}"`, 'Valid values are: "false", 0, "true", 1, "database".');
        }
        replication = b ? 'physical' : 'none';
      }
      params.set(name.s, value.s);
    } else if (name.s.startsWith('_pq_.')) {
      unrecognizedProtocolOptions.push(name.s);
    } else {
      params.set(name.s, value.s);
    }
    offset = value.end + 1;
  }
  if (offset !== len - 1) {
    throw Errors.protocolViolation('invalid startup packet layout: expected terminator as last byte');
  }
  const rawUser = params.get('user');
  if (rawUser === undefined || rawUser === '') throw Errors.invalidAuthorization('no PostgreSQL user name specified in startup packet');
  const user = truncateName(rawUser);
  let database = params.get('database') || rawUser;
  database = truncateName(database);
  if (replication === 'physical') database = '';
  return {
    kind: 'StartupMessage',
    protocolVersion,
    params,
    unrecognizedProtocolOptions,
    needsNegotiation: (protocolVersion & 0xffff) > 0 || unrecognizedProtocolOptions.length > 0,
    replication,
    user,
    database,
  };
}

// ---------------------------------------------------------------------------------------------
// Client side: the server's messages.

export interface BackendDecoderOptions {
  /** Cap on any server message's length word, in bytes. Default 1 GiB. */
  maxMessageBytes?: number;
}

/** Decoder for what a server sends to a client: typed messages, plus the one-byte SSL answer. */
export class BackendDecoder {
  readonly maxMessageBytes: number;
  private readonly frames: FrameDecoder;

  constructor(opts: BackendDecoderOptions = {}) {
    const max = opts.maxMessageBytes ?? DEFAULT_BACKEND_MAX_MESSAGE_BYTES;
    if (!Number.isInteger(max) || max < 5 || max > 0x7fff_ffff) throw Errors.invalidOption('maxMessageBytes', 'must be an integer from 5 to 2^31-1');
    this.maxMessageBytes = max;
    this.frames = new FrameDecoder({
      typed: true,
      checkLength: (type, len) => {
        if (len < 4) throw Errors.protocolViolation(`invalid message length ${len} for message type "${printableType(type)}"`);
        if (len > this.maxMessageBytes) {
          throw Errors.protocolViolation(`message of type "${printableType(type)}" with length ${len} exceeds maxMessageBytes (${this.maxMessageBytes})`);
        }
      },
    });
  }

  push(chunk: Uint8Array): void {
    this.frames.push(chunk);
  }

  get bufferedBytes(): number {
    return this.frames.bufferedBytes;
  }

  /** The single unframed byte answering SSLRequest ('N' or 'S'). */
  nextSslAnswer(): number | null {
    return this.frames.nextByte();
  }

  next(): Frame | null {
    return this.frames.next();
  }

  /** Return large CopyData bodies that span chunks in parts (COPY OUT), or whole again. */
  splitCopyData(on: boolean): void {
    this.frames.splitType = on ? 0x64 : -1;
  }

  finish(): WalstreamError | null {
    return this.frames.finish('server closed the connection in the middle of a message');
  }
}

export function printableType(type: number): string {
  if (type === UNTYPED) return '(untyped)';
  return type >= 0x20 && type < 0x7f ? String.fromCharCode(type) : `0x${type.toString(16).padStart(2, '0')}`;
}

/** The type byte as a one-character string, for messages that name it ("invalid standby message type \"Q\""). */
export function typeChar(type: number): string {
  return String.fromCharCode(type);
}
