// `walstream basebackup`: fill an empty directory with a checked base backup from a primary (the
// BASE_BACKUP pg_basebackup 15 takes, verified against its manifest as pg_verifybackup does; see
// src/standby/basebackup-client.ts), leaving a directory `walstream standby --data DIR --primary ...`
// starts from. Prints one JSON line on stdout at the end. With --progress, progress on stderr: a
// cli-progress bar on a terminal, one plain line every PLAIN_PROGRESS_INTERVAL_MS (and one at the
// end) otherwise; --quiet prints nothing but errors. Owns the progress display only; it stops with
// the backup.

import cliProgress from 'cli-progress';
import type { BaseBackupProgress, BaseBackupProgressListener } from '../standby/bootstrap-progress.js';
import { takeBaseBackup } from '../standby/basebackup-client.js';
import { lsnToString } from '../wal/lsn.js';

/** Without a terminal: one progress line this often, ms. */
export const PLAIN_PROGRESS_INTERVAL_MS = 2000;
const MIB = 1024 * 1024;

export interface BaseBackupCliOptions {
  primary: string;
  data: string;
  progress?: boolean;
  quiet?: boolean;
  maxRate?: number;
  checkpoint: 'fast' | 'spread';
  wal: 'fetch' | 'none';
}


const mib = (b: number) => (b / MIB).toFixed(1);
const eta = (ms: number | null) => (ms === null ? '?' : `${Math.ceil(ms / 1000)} s`);

/** The progress display for `stream`: a bar on a terminal, plain lines otherwise. */
export function progressDisplay(stream: NodeJS.WriteStream): { listener: BaseBackupProgressListener; stop(): void } {
  if (stream.isTTY) {
    const bar = new cliProgress.SingleBar({
      stream,
      format: 'basebackup [{bar}] {percentage}% | {doneMiB}/{totalMiB} MiB | {rate} MiB/s | ETA {etaText}',
      hideCursor: true,
      fps: 10,
      etaBuffer: 10,
    }, cliProgress.Presets.shades_classic);
    let started = false;
    const payload = (p: BaseBackupProgress) => ({ doneMiB: mib(p.bytesDone), totalMiB: mib(p.bytesTotal), rate: mib(p.rateBytesPerSec), etaText: eta(p.etaMs) });
    return {
      listener(p) {
        if (!started) {
          bar.start(Math.max(p.bytesTotal, 1), p.bytesDone, payload(p));
          started = true;
        } else {
          bar.setTotal(Math.max(p.bytesTotal, 1));
          bar.update(p.bytesDone, payload(p));
        }
      },
      stop() {
        if (started) bar.stop();
      },
    };
  }
  let last = -Infinity;
  return {
    listener(p) {
      const now = performance.now();
      if (!p.done && now - last < PLAIN_PROGRESS_INTERVAL_MS) return;
      last = now;
      const pct = p.bytesTotal > 0 ? Math.floor((p.bytesDone * 100) / p.bytesTotal) : 0;
      stream.write(`walstream basebackup: ${mib(p.bytesDone)}/${mib(p.bytesTotal)} MiB (${pct}%), ${mib(p.rateBytesPerSec)} MiB/s, ${p.done ? 'done' : `ETA ${eta(p.etaMs)}`}\n`);
    },
    stop() {},
  };
}

export async function runBaseBackupCommand(o: BaseBackupCliOptions): Promise<void> {
  const display = o.progress && !o.quiet ? progressDisplay(process.stderr) : null;
  try {
    const r = await takeBaseBackup({
      primaryConninfo: o.primary,
      dataDir: o.data,
      checkpoint: o.checkpoint,
      wal: o.wal,
      ...(o.maxRate !== undefined ? { maxRateKBps: o.maxRate } : {}),
      onProgress: display?.listener ?? null,
    });
    display?.stop();
    if (!o.quiet) {
      console.log(JSON.stringify({
        basebackup: {
          dataDir: o.data, startLsn: lsnToString(r.startLsn), endLsn: lsnToString(r.endLsn), timeline: r.startTli, archiveBytes: r.archiveBytes, filesVerified: r.filesVerified,
          walSegments: r.files.filter((f) => /^pg_wal\/[0-9A-F]{24}$/.test(f)).length,
        },
      }));
    }
  } catch (e) {
    display?.stop();
    throw e;
  }
}
