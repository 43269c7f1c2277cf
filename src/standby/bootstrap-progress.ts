// Progress of a base backup as the client receives it (pg_basebackup's progress_report): bytes
// of the archive received so far against the total the primary announced with PROGRESS, with the
// average rate and the time left at that rate. Fed by the base backup client (basebackup-client.ts)
// on the thread that receives the backup; calls one callback, at most every
// PROGRESS_EVENT_INTERVAL_MS and once more at the end. Holds no resources.
//
// The total: BASE_BACKUP ... PROGRESS announces the archive's size in kB (rounded down) before it
// is sent, without the WAL that WAL adds afterwards (as PostgreSQL does). Once the segment size is
// known the client adds the one WAL segment a backup always holds; if more arrives, the total grows
// to what was received (pg_basebackup: "totaldone > totalsize: totalsize = totaldone"). The last
// event has bytesDone === bytesTotal === the archive's exact size. bytesDone never decreases,
// bytesTotal never decreases and is never below bytesDone.

/** One progress event. */
export interface BaseBackupProgress {
  /** Archive bytes received so far. */
  bytesDone: number;
  /** Archive bytes expected in all (see the module header); equals bytesDone in the last event. */
  bytesTotal: number;
  /** Average receive rate since the backup started, bytes per second (0 before the first byte). */
  rateBytesPerSec: number;
  /** Time left at that rate, ms; null while the rate is unknown; 0 in the last event. */
  etaMs: number | null;
  /** True for the last event only (the archive is complete). */
  done: boolean;
}

export type BaseBackupProgressListener = (p: BaseBackupProgress) => void;

/** Fewest milliseconds between two progress events (the last one is always sent). */
export const PROGRESS_EVENT_INTERVAL_MS = 100;

export class BaseBackupProgressTracker {
  private bytesDone = 0;
  private bytesTotal = 0;
  private readonly startedAt = performance.now();
  private lastEventAt = -Infinity;
  private finished = false;
  /** Whether a total is known (announced or estimated); no event before, but the last. */
  private estimated = false;

  constructor(private readonly listener: BaseBackupProgressListener | null, private readonly intervalMs = PROGRESS_EVENT_INTERVAL_MS) {}

  /** The primary's announced size (PROGRESS), in bytes. */
  announce(totalBytes: number): void {
    this.raiseTotal(totalBytes);
  }

  /** The total is at least this many bytes (e.g. the announced size plus one WAL segment). */
  raiseTotal(bytes: number): void {
    this.estimated = true;
    if (bytes > this.bytesTotal) this.bytesTotal = bytes;
  }

  get done(): number {
    return this.bytesDone;
  }

  get total(): number {
    return this.bytesTotal;
  }

  /** `n` more archive bytes received. */
  add(n: number): void {
    this.bytesDone += n;
    if (this.bytesDone > this.bytesTotal) this.bytesTotal = this.bytesDone;
    if (this.listener === null || !this.estimated) return;
    const now = performance.now();
    if (now - this.lastEventAt < this.intervalMs) return;
    this.lastEventAt = now;
    this.emit(now, false);
  }

  /** The archive is complete: the last event, with the total set to what was received. */
  finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.bytesTotal = this.bytesDone;
    this.emit(performance.now(), true);
  }

  private emit(now: number, done: boolean): void {
    if (this.listener === null) return;
    const secs = (now - this.startedAt) / 1000;
    const rate = secs > 0 ? this.bytesDone / secs : 0;
    const left = this.bytesTotal - this.bytesDone;
    const etaMs = done ? 0 : rate > 0 ? Math.round((left / rate) * 1000) : null;
    this.listener({ bytesDone: this.bytesDone, bytesTotal: this.bytesTotal, rateBytesPerSec: rate, etaMs, done });
  }
}
