// BackupCopySink: where a BASE_BACKUP's bytes go, PostgreSQL 15's bbsink chain for TARGET 'client'
// (basebackup_throttle.c → basebackup_progress.c → basebackup_gzip.c → basebackup_copy.c): the
// archive and the manifest as CopyData messages of PostgreSQL 15's "new" COPY format —
//   'n' archive name NUL, tablespace location NUL   a new archive ("base.tar", "base.tar.gz")
//   'd' bytes                                       archive (or manifest) contents
//   'p' int64 bytes done                            progress (PROGRESS: about once a second, and
//                                                   at the end of each archive)
//   'm'                                             the manifest follows (its 'd's)
// MAX_RATE throttles the uncompressed bytes (archive and manifest); COMPRESSION 'gzip' compresses
// the archive with node:zlib (one gzip stream per archive; the manifest goes uncompressed, as
// PostgreSQL sends it). Owned by one BASE_BACKUP run (BaseBackupSender); stops when the run ends:
// close() ends a gzip stream left open by an error.
//
// DEV DOCS — the bulk path (threads: this walsender worker; the replication I/O thread or an
// in-process walreceiver at the other end of the outgoing ring). A file's bytes are not copied on
// their way out: archiveFill() reserves one CopyData record in the outgoing ring (a RingSocket's
// allocFrame: its 'd' header, the 'd' kind byte, then the data 8-aligned), the caller reads the
// file straight into it and checksums it there, and the record is published as it is (the I/O
// thread writes it to the socket from the ring and releases it when the kernel has it). Each read
// covers `chunkBytes` (BACKUP_CHUNK_BYTES, bounded by the ring's largest frame; under MAX_RATE
// PostgreSQL's 32 kB, so the throttle's sleeps stay fine-grained): one read, one CRC pass, one
// record, one I/O-thread write per chunk, and no allocation. Memory stays the ring's: when a
// reservation finds no room (the ring is at its high-water mark), the sink waits for 'drain'.
// With gzip (or a socket without frames) the bytes are read into a buffer and go the copying way.

import zlib from 'node:zlib';
import { Errors } from '../errors.js';
import { assert } from '../util/assert.js';
import { COPY_DATA_HEADER_BYTES, writeCopyDataHeader } from './protocol/messages.js';
import type { ReplicationServerConn } from './protocol/server-conn.js';
import type { ByteSocket } from './ring-socket.js';

/**
 * Bytes of a file read (and sent as one 'd' CopyData) at a time, unthrottled. PostgreSQL's bbsink
 * buffer is 32 kB; bigger chunks cost fewer reads, records and socket writes per byte.
 */
export const BACKUP_CHUNK_BYTES = 256 * 1024;
/** Bytes per chunk under MAX_RATE (PostgreSQL's SINK_BUFFER_LENGTH, 32 kB): the throttle sleeps per chunk. */
export const BACKUP_THROTTLED_CHUNK_BYTES = 32 * 1024;
/** CopyData header + the 'd' kind byte before a chunk's bytes. */
const DATA_FRAME_HEADER_BYTES = COPY_DATA_HEADER_BYTES + 1;
/** Pad before a data frame so that the chunk's bytes start 8-aligned in the ring (V8 copies shared memory fastest then). */
const DATA_FRAME_PAD = (8 - (DATA_FRAME_HEADER_BYTES % 8)) % 8;
/** THROTTLING_FREQUENCY: MAX_RATE is enforced over slices of 1/8 s. */
const THROTTLING_FREQUENCY = 8;
/** USECS_PER_SEC / THROTTLING_FREQUENCY, in ms. */
const THROTTLING_UNIT_MS = 1000 / THROTTLING_FREQUENCY;
/** PROGRESS_REPORT_MILLISECOND_THRESHOLD: at most one 'p' message per second. */
const PROGRESS_REPORT_INTERVAL_MS = 1000;

const KIND_NEW_ARCHIVE = 0x6e; // 'n'
const KIND_DATA = 0x64; // 'd'
const KIND_PROGRESS = 0x70; // 'p'
const KIND_MANIFEST = 0x6d; // 'm'

export interface BackupCopySinkOptions {
  /** MAX_RATE in kB/s (1024 bytes), 0 = unthrottled. */
  maxRateKBps: number;
  compression: 'none' | 'gzip';
  /** gzip level 1..9, or null for zlib's default. */
  gzipLevel: number | null;
  progress: boolean;
}

export interface BackupCopySinkHost {
  readonly conn: ReplicationServerConn;
  readonly socket: ByteSocket;
  /** Bytes queued in the socket before sending waits for 'drain'. */
  readonly maxQueuedBytes: number;
}

export class BackupCopySink {
  /** Uncompressed archive bytes passed in so far (what 'p' reports). */
  bytesDone = 0;
  /** Bytes sent as 'd' contents (compressed when compressing). */
  bytesSent = 0;
  private gzip: zlib.Gzip | null = null;
  private gzipOut: Buffer[] = [];
  private gzipError: Error | null = null;
  private throttleCount = 0;
  private throttleSince = performance.now();
  private lastProgressAt = performance.now();
  private readonly throttleSampleBytes: number;
  /** Bytes per archiveFill() call (see BACKUP_CHUNK_BYTES). */
  readonly chunkBytes: number;

  constructor(private readonly host: BackupCopySinkHost, private readonly opts: BackupCopySinkOptions) {
    this.throttleSampleBytes = opts.maxRateKBps > 0 ? (opts.maxRateKBps * 1024) / THROTTLING_FREQUENCY : 0;
    const frameMax = host.socket.maxFrameBytes;
    const chunk = opts.maxRateKBps > 0 ? BACKUP_THROTTLED_CHUNK_BYTES : BACKUP_CHUNK_BYTES;
    this.chunkBytes = frameMax === undefined ? chunk : Math.max(1, Math.min(chunk, frameMax - DATA_FRAME_PAD - DATA_FRAME_HEADER_BYTES));
  }

  /** The archive name for a tablespace's tar ("base.tar", "base.tar.gz"). */
  archiveName(base: string): string {
    return this.opts.compression === 'gzip' ? `${base}.gz` : base;
  }

  /** 'n': a new archive (the main data directory has no location: ""). */
  beginArchive(name: string, location = ''): void {
    const payload = Buffer.from(`n${name}\0${location}\0`, 'utf8');
    payload[0] = KIND_NEW_ARCHIVE;
    this.send(payload);
    if (this.opts.compression === 'gzip') {
      const level = this.opts.gzipLevel ?? zlib.constants.Z_DEFAULT_COMPRESSION;
      const gz = zlib.createGzip({ level, chunkSize: BACKUP_CHUNK_BYTES });
      gz.on('data', (b: Buffer) => this.gzipOut.push(b));
      gz.on('error', (e: Error) => (this.gzipError = e));
      this.gzip = gz;
    }
  }

  /** Archive bytes: throttled, counted for progress, compressed or sent as they are. */
  async archiveContents(b: Uint8Array): Promise<void> {
    for (let p = 0; p < b.length; p += BACKUP_CHUNK_BYTES) {
      const part = b.subarray(p, Math.min(b.length, p + BACKUP_CHUNK_BYTES));
      await this.throttle(part.length);
      this.bytesDone += part.length;
      if (this.gzip !== null) {
        await this.gzipWrite(part);
      } else {
        await this.sendData(part);
      }
      this.maybeReportProgress(false);
    }
  }

  /**
   * `n` (≤ chunkBytes) archive bytes that `fill` writes into the view it is given (all of it, or it
   * throws): throttled, counted, then sent. Uncompressed over a RingSocket the view is the CopyData
   * record's own data in the outgoing ring, published as filled (no copy); else a new buffer.
   */
  async archiveFill(n: number, fill: (dst: Uint8Array) => void): Promise<void> {
    assert(n > 0 && n <= this.chunkBytes, `archive chunk of ${n} bytes (at most ${this.chunkBytes})`);
    await this.throttle(n);
    const socket = this.host.socket;
    if (this.gzip !== null || socket.allocFrame === undefined) {
      const buf = Buffer.allocUnsafe(n);
      fill(buf);
      this.bytesDone += n;
      if (this.gzip !== null) await this.gzipWrite(buf);
      else await this.sendData(buf);
    } else {
      let frame = socket.allocFrame(DATA_FRAME_HEADER_BYTES + n, DATA_FRAME_PAD);
      while (frame === null) {
        this.checkOpen();
        await this.waitDrain(true);
        frame = socket.allocFrame(DATA_FRAME_HEADER_BYTES + n, DATA_FRAME_PAD);
      }
      const msg = frame.subarray(DATA_FRAME_PAD, DATA_FRAME_PAD + DATA_FRAME_HEADER_BYTES + n);
      fill(msg.subarray(DATA_FRAME_HEADER_BYTES));
      writeCopyDataHeader(msg, 0, 1 + n);
      msg[COPY_DATA_HEADER_BYTES] = KIND_DATA;
      this.bytesDone += n;
      this.checkOpen();
      this.host.conn.sendCopyDataFrame(msg);
      this.bytesSent += n;
      if (socket.writableLength >= this.host.maxQueuedBytes) await this.waitDrain(false);
    }
    this.maybeReportProgress(false);
  }

  /** End of an archive: the gzip trailer, then the final progress report. */
  async endArchive(): Promise<void> {
    if (this.gzip !== null) {
      const gz = this.gzip;
      await new Promise<void>((resolve) => {
        gz.once('end', resolve);
        gz.end();
        gz.resume();
      });
      this.gzip = null;
      await this.sendGzipOutput();
    }
    this.maybeReportProgress(true);
  }

  /** 'm' then the manifest as 'd's (uncompressed, throttled). */
  async manifest(bytes: Uint8Array): Promise<void> {
    this.send(Buffer.from([KIND_MANIFEST]));
    for (let p = 0; p < bytes.length; p += BACKUP_CHUNK_BYTES) {
      const part = bytes.subarray(p, Math.min(bytes.length, p + BACKUP_CHUNK_BYTES));
      await this.throttle(part.length);
      await this.sendData(part);
    }
  }

  /** After a failure: drop a gzip stream still open. */
  close(): void {
    this.gzip?.destroy();
    this.gzip = null;
    this.gzipOut = [];
  }

  private async gzipWrite(b: Uint8Array): Promise<void> {
    const gz = this.gzip!;
    await new Promise<void>((resolve) => gz.write(b, () => resolve()));
    await this.sendGzipOutput();
  }

  private async sendGzipOutput(): Promise<void> {
    if (this.gzipError !== null) throw Errors.internal(`could not compress data: ${this.gzipError.message}`);
    const out = this.gzipOut;
    this.gzipOut = [];
    for (const b of out) await this.sendData(b);
  }

  private maybeReportProgress(final: boolean): void {
    if (!this.opts.progress) return;
    const now = performance.now();
    if (!final && now - this.lastProgressAt < PROGRESS_REPORT_INTERVAL_MS) return;
    this.lastProgressAt = now;
    const payload = Buffer.alloc(9);
    payload[0] = KIND_PROGRESS;
    payload.writeBigInt64BE(BigInt(this.bytesDone), 1);
    this.send(payload);
  }

  /**
   * throttle(): after each MAX_RATE sample's worth of bytes, sleep until the slices those bytes
   * are entitled to have passed (PostgreSQL sleeps at most one slice per call; with our larger
   * chunks that would let low rates run faster than asked).
   */
  private async throttle(n: number): Promise<void> {
    if (this.throttleSampleBytes === 0) return;
    this.throttleCount += n;
    if (this.throttleCount < this.throttleSampleBytes) return;
    const slices = Math.floor(this.throttleCount / this.throttleSampleBytes);
    const waitMs = slices * THROTTLING_UNIT_MS - (performance.now() - this.throttleSince);
    if (waitMs > 0) {
      this.checkOpen();
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          this.host.socket.off('close', done);
          resolve();
        };
        const timer = setTimeout(done, waitMs);
        this.host.socket.on('close', done);
      });
      this.checkOpen(); // the client went away while this slept
    }
    this.throttleCount -= slices * this.throttleSampleBytes;
    this.throttleSince = performance.now();
  }

  private checkOpen(): void {
    const { conn, socket } = this.host;
    if (conn.closed || conn.state !== 'copyOut' || socket.destroyed) throw Errors.connectionFailure('base backup connection closed');
  }

  private send(payload: Buffer): void {
    this.checkOpen();
    this.host.conn.sendCopyData(payload);
  }

  /** 'd' messages of at most BACKUP_CHUNK_BYTES; waits for 'drain' above maxQueuedBytes. */
  private async sendData(b: Uint8Array): Promise<void> {
    const { socket } = this.host;
    for (let p = 0; p < b.length; p += BACKUP_CHUNK_BYTES) {
      const part = b.subarray(p, Math.min(b.length, p + BACKUP_CHUNK_BYTES));
      const payload = Buffer.allocUnsafe(1 + part.length);
      payload[0] = KIND_DATA;
      payload.set(part, 1);
      this.send(payload);
      this.bytesSent += part.length;
      if (socket.writableLength >= this.host.maxQueuedBytes) await this.waitDrain(false);
    }
  }

  /** Until the socket's 'drain' (or its close); `ask`: the ring refused a frame, so ask it for one. */
  private waitDrain(ask: boolean): Promise<void> {
    const { socket } = this.host;
    return new Promise<void>((resolve) => {
      const done = () => {
        socket.off('drain', done);
        socket.off('close', done);
        resolve();
      };
      socket.on('drain', done);
      socket.on('close', done);
      if (ask) socket.requestDrain?.();
    });
  }
}
