// Status lines of the long-running commands (`walstream primary`, `walstream standby`, `walstream
// demo`) on stderr: a header line naming the columns, then one line per standby (primary, demo)
// or per interval (standby), each starting with an ISO 8601 timestamp, in fixed-width columns that
// stay where they are from line to line (a value wider than its column pushes the rest right on
// that line only; no value ever contains a blank). Byte lag sits beside time lag for each level
// with PostgreSQL's pg_stat_replication meaning: write_lag / flush_lag / replay_lag, the time since
// the oldest WAL not yet written / flushed / replayed by the standby was flushed on the primary
// ("-" while unknown). LSN columns take the API's `Lsn` numbers and print PostgreSQL's X/X text
// (formatRow is the one place they are formatted). Pure formatting plus the standby's lag
// tracker; the caller owns the timer.

import type { ReplicationStatusRow } from '../replication/server.js';
import type { WalReceiverStatus } from '../standby/wal-receiver-status.js';
import { type Lsn, lsnToString } from '../wal/lsn.js';

export interface Column {
  name: string;
  /** Characters the column takes (values are padded to it). */
  width: number;
  /** Numbers right-aligned, text left-aligned. */
  align: 'left' | 'right';
  /** An LSN column: its number is printed as X/X. */
  lsn?: true;
}

const col = (name: string, width: number, align: 'left' | 'right' = 'left'): Column => ({ name, width: Math.max(width, name.length), align });

/** `2026-12-07T21:54:29.123Z`. */
const TIME = col('time', 24);
/** Characters of an LSN column (`1F/ABCDEF01` and one to spare). */
const LSN_WIDTH = 12;
const lsnCol = (name: string): Column => ({ ...col(name, LSN_WIDTH), lsn: true });

/** Write, flush and replay lag: bytes beside ms, for each level. */
const LAG_COLUMNS = ['write', 'flush', 'replay'].flatMap((level) => [col(`${level}_lag_bytes`, 10, 'right'), col(`${level}_lag_ms`, 9, 'right')]);

/** One line per standby on a primary (pg_stat_replication), with the primary's rate and flush position. */
export const PRIMARY_COLUMNS: readonly Column[] = [
  TIME,
  col('commits_per_s', 9, 'right'),
  lsnCol('primary_flush_lsn'),
  col('application_name', 16),
  col('state', 9),
  lsnCol('sent_lsn'),
  lsnCol('write_lsn'),
  lsnCol('flush_lsn'),
  lsnCol('replay_lsn'),
  ...LAG_COLUMNS,
  col('sync_state', 9),
];

/** One line per interval on a standby (pg_stat_wal_receiver, replay position). */
export const STANDBY_COLUMNS: readonly Column[] = [
  TIME,
  col('status', 9),
  lsnCol('latest_end_lsn'),
  lsnCol('written_lsn'),
  lsnCol('flushed_lsn'),
  lsnCol('replay_lsn'),
  ...LAG_COLUMNS,
];

/** A value as it appears in a cell: null is "-", blanks become "_" so every line splits on white space. */
function cell(v: string | number | null | undefined): string {
  if (v === null || v === undefined || v === '') return '-';
  return String(v).replace(/\s/g, '_');
}

function formatRow(cols: readonly Column[], values: ReadonlyArray<string | number | null | undefined>): string {
  return cols
    .map((c, i) => {
      const v = values[i];
      const text = cell(c.lsn && typeof v === 'number' ? lsnToString(v) : v);
      return c.align === 'right' ? text.padStart(c.width) : text.padEnd(c.width);
    })
    .join('  ')
    .trimEnd();
}

/** The header line for `cols`. */
export function statusHeader(cols: readonly Column[]): string {
  return formatRow(cols, cols.map((c) => c.name));
}

const ms = (v: number | null): number | null => (v === null ? null : Math.round(v));

/**
 * A primary's status lines at `now`: one per standby, or one with "-" standby columns when none
 * is connected (so every interval prints at least one line).
 */
export function primaryStatusLines(now: Date, commitsPerSec: number, primaryFlushLsn: Lsn, rows: readonly ReplicationStatusRow[]): string[] {
  const head = [now.toISOString(), Math.round(commitsPerSec), primaryFlushLsn];
  if (rows.length === 0) return [formatRow(PRIMARY_COLUMNS, head)];
  return rows.map((r) =>
    formatRow(PRIMARY_COLUMNS, [
      ...head,
      r.application_name,
      r.state,
      r.sent_lsn,
      r.write_lsn,
      r.flush_lsn,
      r.replay_lsn,
      r.write_lag_bytes,
      ms(r.write_lag_ms),
      r.flush_lag_bytes,
      ms(r.flush_lag_ms),
      r.replay_lag_bytes,
      ms(r.replay_lag_ms),
      r.sync_state,
    ]),
  );
}

/** How often the standby's lag tracker samples pg_stat_wal_receiver between status lines, ms. */
export const STANDBY_LAG_SAMPLE_MS = 100;
/** Most samples the tracker keeps (older ones are merged into the oldest kept). */
const MAX_LAG_SAMPLES = 10_000;

/**
 * Time lag as seen from a standby: for each level, the age of the oldest WAL the primary reported
 * flushed (latest_end_lsn, with its latest_end_time) that is not yet written / flushed / replayed
 * here: pg_stat_replication's write_lag / flush_lag / replay_lag measured at the other end, to the
 * precision of the samples (STANDBY_LAG_SAMPLE_MS). 0 when caught up.
 */
export class StandbyLagTracker {
  /** (end of WAL the primary had flushed, when the primary reported it), increasing in both. */
  private samples: Array<{ lsn: Lsn; at: number }> = [];

  sample(s: WalReceiverStatus, nowMs: number): void {
    const lsn = s.latest_end_lsn;
    const last = this.samples[this.samples.length - 1];
    if (lsn === 0 || (last !== undefined && lsn <= last.lsn)) return;
    this.samples.push({ lsn, at: s.latest_end_time?.getTime() ?? nowMs });
    if (this.samples.length > MAX_LAG_SAMPLES) this.samples.splice(1, 1);
  }

  /** The age in ms of the oldest reported WAL past `doneLsn` (null when unknown, 0 when caught up). */
  private lagMs(done: Lsn | null, nowMs: number): number | null {
    if (done === null) return null;
    const oldest = this.samples.find((x) => x.lsn > done);
    return oldest === undefined ? 0 : Math.max(0, nowMs - oldest.at);
  }

  /** The status line for `s` at `now`; forgets the samples every level has passed. */
  line(s: WalReceiverStatus, now: Date): string {
    const t = now.getTime();
    this.sample(s, t);
    const line = formatRow(STANDBY_COLUMNS, [
      now.toISOString(),
      s.status,
      s.latest_end_lsn,
      s.written_lsn,
      s.flushed_lsn,
      s.replay_lsn,
      s.write_lag_bytes,
      ms(this.lagMs(s.written_lsn, t)),
      s.flush_lag_bytes,
      ms(this.lagMs(s.flushed_lsn, t)),
      s.replay_lsn === null ? null : s.replay_lag_bytes,
      ms(this.lagMs(s.replay_lsn, t)),
    ]);
    const slowest = s.replay_lsn ?? s.flushed_lsn;
    const keep = this.samples.findIndex((x) => x.lsn > slowest);
    this.samples = keep < 0 ? this.samples.slice(-1) : this.samples.slice(Math.max(0, keep - 1));
    return line;
  }
}

/**
 * A standby's status lines on stderr every `everyMs`: the header once, then one line per interval;
 * the lag tracker samples pg_stat_wal_receiver every STANDBY_LAG_SAMPLE_MS in between (timers
 * unref'd: they never keep the process up). Returns the stop function.
 */
export function startStandbyStatusLines(s: { receiverStatus(): WalReceiverStatus }, everyMs: number, write: (line: string) => void = (l) => console.error(l)): () => void {
  const lag = new StandbyLagTracker();
  let headerDone = false;
  const sampler = setInterval(() => lag.sample(s.receiverStatus(), Date.now()), Math.min(STANDBY_LAG_SAMPLE_MS, everyMs));
  const timer = setInterval(() => {
    if (!headerDone) {
      write(statusHeader(STANDBY_COLUMNS));
      headerDone = true;
    }
    write(lag.line(s.receiverStatus(), new Date()));
  }, everyMs);
  sampler.unref();
  timer.unref();
  return () => {
    clearInterval(sampler);
    clearInterval(timer);
  };
}
