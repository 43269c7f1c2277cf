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

import zlib from 'node:zlib';
import { Errors } from '../errors.js';
import type { ReplicationServerConn } from './protocol/server-conn.js';
import type { ByteSocket } from './ring-socket.js';

/** Bytes per CopyData of a base backup (PostgreSQL's bbsink buffer is 32 kB). */
export const BACKUP_CHUNK_BYTES = 64 * 1024;
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

  constructor(private readonly host: BackupCopySinkHost, private readonly opts: BackupCopySinkOptions) {
    this.throttleSampleBytes = opts.maxRateKBps > 0 ? (opts.maxRateKBps * 1024) / THROTTLING_FREQUENCY : 0;
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
        const gz = this.gzip;
        await new Promise<void>((resolve) => gz.write(part, () => resolve()));
        await this.sendGzipOutput();
      } else {
        await this.sendData(part);
      }
      this.maybeReportProgress(false);
    }
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
      if (socket.writableLength >= this.host.maxQueuedBytes) {
        await new Promise<void>((resolve) => {
          const done = () => {
            socket.off('drain', done);
            socket.off('close', done);
            resolve();
          };
          socket.on('drain', done);
          socket.on('close', done);
        });
      }
    }
  }
}
