// `walstream profile live|replay`: the WAL apply-latency profiler as a command.
//
// live: attaches to a running primary as a temporary standby in a directory of its own (inside
// --dir or the temp directory; removed at the end, also on error or SIGINT/SIGTERM, unless
// --keep), profiles --seconds of its real traffic (src/profile/live.ts) and closes the standby. A
// walstream primary is followed in replica mode (base backup, replay); a PostgreSQL primary in
// wal-only mode (walstream replays only its own records), and the hops that cannot be seen there
// are named with the reason. Which one it is: a walstream walsender answers the startup parameter
// walstream.received_report, PostgreSQL never does.
// replay: profiles an offline replay of a WAL range (src/profile/offline.ts).
//
// Output: the tables (bench/report/profile-report.ts) on stdout; --json the result
// (bench/schemas/bench.schema.json, #/$defs/profile) and nothing on stderr; --html FILE one
// self-contained file with the charts. Progress: a bar on stderr while on a TTY, else nothing.
// The renderers are loaded from the package's dist/bench when output is written.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import cliProgress from 'cli-progress';
import { resolveConninfo, resolveStandbyOptions } from '../standby/options.js';
import { Standby } from '../standby/standby.js';
import { TcpTransport } from '../standby/transport.js';
import type { Lsn } from '../wal/lsn.js';
import { RECEIVED_REPORT_PARAMETER } from '../replication/protocol/copy-messages.js';
import { liveProfileJson, type ProfileJson, type ProfileUpstream, replayProfileJson } from '../profile/result.js';

export interface ProfileOutputOptions {
  json?: boolean;
  html?: string;
}

export interface ProfileLiveCliOptions extends ProfileOutputOptions {
  primary: string;
  seconds: number;
  dir?: string;
  keep?: boolean;
}

export interface ProfileReplayCliOptions extends ProfileOutputOptions {
  from?: Lsn;
  to?: Lsn;
}

/** Trace entries per stage and second of window (XLogData messages or flushes per second it can hold without dropping). */
const TRACE_ENTRIES_PER_SECOND = 20_000;
/** Trace entries per stage beyond the window's share (the drain after it, bursts), entries. */
const TRACE_ENTRIES_SLACK = 10_000;
/** Trace entries per stage at most (8 stages × 16 bytes each: 128 MiB). */
const MAX_TRACE_ENTRIES = 1 << 20;
/** The temporary standby's application_name (pg_stat_replication on the primary). */
const PROFILE_APPLICATION_NAME = 'walstream_profile';

/** Why PostgreSQL's hops cannot be seen from a wal-only standby. */
const POSTGRES_WHY = {
  send: "PostgreSQL's walsender stamps each XLogData with its send time; its commit flush time stays inside the server",
  replay: "a PostgreSQL primary's WAL is received wal-only: walstream replays only its own records, so there is no replay",
  visible: 'nothing is replayed, so nothing becomes visible on this standby',
} as const;

type Bar = { tick(value: number, total: number, label: string): void; stop(): void };

function progressBar(name: string, quiet: boolean): Bar {
  if (quiet || process.stderr.isTTY !== true) return { tick: () => undefined, stop: () => undefined };
  const bar = new cliProgress.SingleBar({ stream: process.stderr, format: `walstream profile ${name} [{bar}] {label}`, hideCursor: true, clearOnComplete: true, fps: 4 }, cliProgress.Presets.shades_classic);
  let started = false;
  return {
    tick(value, total, label) {
      if (!started) bar.start(total, 0, { label });
      started = true;
      bar.setTotal(total);
      bar.update(Math.min(value, total), { label });
    },
    stop() {
      if (started) bar.stop();
    },
  };
}

/** Load the report renderers (bench/report), which need chart.js only for --html. */
async function emit(result: ProfileJson, o: ProfileOutputOptions): Promise<void> {
  const { profileReport } = await import('../../bench/report/profile-report.js');
  const { renderText } = await import('../../bench/report/text.js');
  const report = profileReport(result);
  if (o.html !== undefined) {
    const { renderHtml } = await import('../../bench/report/html.js');
    fs.writeFileSync(o.html, renderHtml(report, result)); // (chart.js, a development dependency: one line if missing)
    if (!o.json) process.stderr.write(`${report.heading}: HTML report written to ${o.html}\n`);
  }
  if (o.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  else process.stdout.write(`${renderText(report, process.stdout.isTTY === true)}\n`);
}

/** Which server `conninfo` names: a walstream walsender answers walstream.received_report, PostgreSQL does not. */
async function identifyUpstream(conninfo: string): Promise<ProfileUpstream> {
  const o = resolveStandbyOptions({ dataDir: os.tmpdir(), primaryConninfo: conninfo });
  const transport = new TcpTransport(o.primaryConninfo, { connectTimeoutMs: o.connectTimeoutMs, commandTimeoutMs: o.connectTimeoutMs, maxMessageBytes: o.maxMessageBytes, maxBufferedBytes: o.walReceiverMaxBufferedBytes });
  const conn = await transport.connect();
  try {
    const serverVersion = conn.parameterStatus('server_version') ?? 'unknown';
    return { kind: conn.parameterStatus(RECEIVED_REPORT_PARAMETER) !== undefined ? 'walstream' : 'postgresql', serverVersion };
  } finally {
    conn.disconnect();
  }
}

export async function runProfileLive(o: ProfileLiveCliOptions): Promise<void> {
  const upstream = await identifyUpstream(o.primary);
  const parent = o.dir ?? os.tmpdir();
  fs.mkdirSync(parent, { recursive: true });
  const root = fs.mkdtempSync(path.join(parent, 'walstream-profile-'));
  let removed = false;
  const cleanup = () => {
    if (removed) return;
    removed = true;
    if (o.keep) process.stderr.write(`walstream profile live: data kept in ${root}\n`);
    else fs.rmSync(root, { recursive: true, force: true, maxRetries: 10, retryDelay: 20 });
  };
  const onSignal = (code: number) => () => {
    cleanup();
    process.exit(code);
  };
  const sigint = onSignal(130);
  const sigterm = onSignal(143);
  process.once('SIGINT', sigint);
  process.once('SIGTERM', sigterm);
  const bar = progressBar('live', o.json === true);
  let standby: Standby | null = null;
  try {
    const { profileTrace } = await import('../profile/trace.js');
    const entries = Math.min(MAX_TRACE_ENTRIES, Math.ceil(o.seconds * TRACE_ENTRIES_PER_SECOND) + TRACE_ENTRIES_SLACK);
    const info = resolveConninfo(o.primary);
    bar.tick(0, o.seconds, upstream.kind === 'walstream' ? 'base backup' : 'connecting');
    standby = await Standby.open({
      dataDir: path.join(root, 'standby'),
      primaryConninfo: { ...info, applicationName: info.applicationName !== '' ? info.applicationName : PROFILE_APPLICATION_NAME },
      mode: upstream.kind === 'walstream' ? 'replica' : 'wal-only',
      readerThreads: 0,
      stageTrace: profileTrace(entries),
    });
    const res = await standby.profile({ seconds: o.seconds, onProgress: (p) => bar.tick(p.elapsedMs / 1000, o.seconds, `${(p.elapsedMs / 1000).toFixed(1)}/${o.seconds} s`) });
    bar.stop();
    if (upstream.kind === 'postgresql') {
      for (const h of res.hops) if (h.source === 'not visible' && h.hop in POSTGRES_WHY) h.why = POSTGRES_WHY[h.hop as keyof typeof POSTGRES_WHY];
    }
    await standby.close();
    standby = null;
    await emit(liveProfileJson(res, upstream), o);
  } finally {
    bar.stop();
    if (standby !== null) await standby.close().catch(() => undefined);
    cleanup();
    process.removeListener('SIGINT', sigint);
    process.removeListener('SIGTERM', sigterm);
  }
}

export async function runProfileReplay(target: string, o: ProfileReplayCliOptions): Promise<void> {
  const { profileReplay } = await import('../profile/offline.js');
  const bar = progressBar('replay', o.json === true);
  let res;
  try {
    res = profileReplay(target, {
      ...(o.from !== undefined ? { from: o.from } : {}),
      ...(o.to !== undefined ? { to: o.to } : {}),
      onProgress: (p) => bar.tick(p.bytesDone, p.bytesTotal, `${p.records} records`),
    });
  } finally {
    bar.stop();
  }
  await emit(replayProfileJson(res), o);
}
