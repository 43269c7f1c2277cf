// Standby against walstream's own primary: base backup into an empty directory, streaming,
// replay, hot-standby reads (main thread and reader pool), read-your-writes, restart; the primary
// going away and coming back (retry every walRetrieveRetryIntervalMs); wal_receiver_timeout
// against a primary stopped with SIGSTOP; clear errors (system identifier mismatch, a primary's
// data directory, bad options, conninfo); `walstream standby` on the command line; XLogData
// crossing segment boundaries; validation of base backup archives.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { WalstreamError } from '../src/errors.js';
import { Primary } from '../src/primary/primary.js';
import { parseConninfo } from '../src/standby/options.js';
import { Standby } from '../src/standby/standby.js';
import { segmentFileName } from '../src/wal/segment.js';
import { TarExtractor } from '../src/standby/basebackup-client.js';
import { tarHeader, tarPadding, tarTrailer } from '../src/replication/tar.js';
import { waitFor } from './helpers/rawpg.js';
import { rmrf, tmpDir } from './helpers/tmp.js';

const SEG = 1 << 20;
const BIN = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'walstream.js');
const dirs: string[] = [];
const children: ChildProcess[] = [];
after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  dirs.forEach(rmrf);
});
function newDir(): string {
  const d = tmpDir('walstream-sb-');
  dirs.push(d);
  return d;
}

async function fill(p: Primary, from: number, n: number): Promise<number> {
  let lsn = 0;
  for (let i = from; i < from + n; i++) lsn = await p.transaction((tx) => tx.put('t', `k${i}`, { i, pad: 'z'.repeat(i % 5 === 0 ? 9000 : 100) }), { synchronousCommit: 'off' });
  return lsn;
}

test('base backup, streaming, replay, reads on both paths, read-your-writes, restart', async () => {
  const dir = newDir();
  const p = await Primary.open({ dataDir: path.join(dir, 'p'), walSegmentSize: SEG, port: 0, users: { rep: 'secret' } });
  const sdir = path.join(dir, 's');
  const conninfo = `host=127.0.0.1 port=${p.port} user=rep password='secret' application_name=s1`;
  try {
    await fill(p, 0, 200);
    let s = await Standby.open({ dataDir: sdir, primaryConninfo: conninfo, walReceiverStatusIntervalMs: 100 });
    try {
      assert.ok(s.baseBackup, 'an empty directory gets a base backup');
      assert.ok(s.baseBackup.files.includes('walstream.control') && s.baseBackup.files.some((f) => f.startsWith('checkpoints/')));
      assert.equal(s.systemIdentifier, p.systemIdentifier);
      // the standby has everything committed before the backup
      assert.deepEqual(s.get('t', 'k199'), { i: 199, pad: 'z'.repeat(100) });
      for (let round = 0; round < 5; round++) {
        const lsn = await p.transaction((tx) => tx.put('t', 'last', round).delete('t', `k${round}`));
        await s.waitForReplay(lsn, 10_000);
        // read-your-writes: once waitForReplay resolved, every read path sees the commit
        assert.equal(s.get('t', 'last'), round);
        assert.equal(s.get('t', `k${round}`), undefined);
        assert.equal(await s.pool!.get('t', 'last'), round);
        assert.deepEqual(await s.pool!.multiGet('t', ['last', `k${round}`]), [round, undefined]);
      }
      await fill(p, 1000, 300);
      const end = await p.flush();
      await s.waitForReplay(end, 10_000);
      assert.equal(s.store!.digest(), p.store.digest());
      assert.deepEqual(s.scan('t', { gte: 'k1000', lt: 'k1003' }).map((e) => e.key), ['k1000', 'k1001', 'k1002']);
      assert.equal((await s.pool!.scan('t', { gte: 'k1000', lt: 'k1003' })).length, 3);
      const st = s.receiverStatus();
      assert.equal(st.status, 'streaming');
      assert.equal(st.sender_port, p.port);
      assert.equal(st.flushed_lsn >= end, true);
      assert.equal(st.replay_lsn! >= end, true);
      assert.equal(st.receive_start_tli, 1);
      assert.equal(st.receive_start_lsn % SEG, 0, 'streaming starts at a segment start');
      assert.ok(st.last_xact_replay_timestamp instanceof Date);
      assert.match(st.conninfo, /user=rep password=\*{8} .*application_name=s1/);
      // the primary sees our write/flush/apply replies
      await waitFor(() => {
        const row = p.replicationStatus().find((r) => r.application_name === 's1');
        return row !== undefined && row.replay_lsn !== null && row.replay_lsn >= end;
      }, 5_000, 'the primary to see our apply position');
      // fsyncs are batched: far fewer than the messages received
      assert.ok(st.fsyncs <= st.messages, `fsyncs ${st.fsyncs}, messages ${st.messages}`);
      // a waitForReplay that cannot be satisfied times out with a clear error
      await assert.rejects(s.waitForReplay(p.insertLsn + 1_000_000, 50), (e: unknown) => e instanceof WalstreamError && e.code === 'WS_WAIT_TIMEOUT');
    } finally {
      await s.close();
    }
    // restart: no second base backup, consistent at once from local WAL, then streams on
    const missed = await fill(p, 2000, 100);
    s = await Standby.open({ dataDir: sdir, primaryConninfo: conninfo });
    try {
      assert.equal(s.baseBackup, null);
      await s.waitForReplay(missed, 10_000);
      assert.equal(s.store!.digest(), p.store.digest());
      // a second standby process cannot open the same directory
      await assert.rejects(Standby.open({ dataDir: sdir, primaryConninfo: conninfo }), (e: unknown) => e instanceof WalstreamError && e.code === 'WS_DATA_DIR_IN_USE');
    } finally {
      await s.close();
    }
  } finally {
    await p.close();
  }
});

test('the primary goes away and comes back: the walreceiver retries and streams on', async () => {
  const dir = newDir();
  const pdir = path.join(dir, 'p');
  let p = await Primary.open({ dataDir: pdir, walSegmentSize: SEG, port: 0, users: { rep: 'pw' } });
  const port = p.port!;
  const s = await Standby.open({ dataDir: path.join(dir, 's'), primaryConninfo: { host: '127.0.0.1', port, user: 'rep', password: 'pw' }, walRetrieveRetryIntervalMs: 100 });
  const warnings: string[] = [];
  s.on('warning', (e: Error) => warnings.push(e.message));
  try {
    await fill(p, 0, 50);
    // Shutdown: the walsender streams everything up to the shutdown checkpoint, then "COPY 0".
    await p.close();
    const shutdownEnd = p.flushLsn;
    await waitFor(() => s.flushLsn >= shutdownEnd, 5_000, 'the standby to receive up to the shutdown checkpoint');
    await waitFor(() => s.receiverStatus().status !== 'streaming', 5_000, 'the walreceiver to notice the end of the stream');
    await waitFor(() => warnings.some((w) => /could not connect|ECONNREFUSED/.test(w)), 5_000, 'a failed reconnection attempt');
    assert.ok(warnings.some((w) => /replication terminated by primary server/.test(w)), warnings.join('\n'));
    p = await Primary.open({ dataDir: pdir, port, users: { rep: 'pw' } });
    const lsn = await fill(p, 100, 50);
    await s.waitForReplay(lsn, 10_000);
    assert.equal(s.store!.digest(), p.store.digest());
    assert.ok(s.receiverStatus().connects >= 2);
  } finally {
    await s.close();
    await p.close();
  }
});

/** `walstream primary` as a child process (so it can be stopped with SIGSTOP); resolves its port. */
async function primaryChild(dataDir: string): Promise<{ proc: ChildProcess; port: number; sysid: string }> {
  const proc = spawn(process.execPath, [BIN, 'primary', '--data', dataDir, '--port', '0', '--auth', 'scram-sha-256', '--user', 'rep', '--password', 'pw', '--wal-segment-size', String(SEG)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(proc);
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', () => undefined);
  await waitFor(() => out.includes('\n'), 20_000, 'the primary to listen');
  const j = JSON.parse(out.split('\n')[0]!) as { listening: { port: number }; systemIdentifier: string };
  return { proc, port: j.listening.port, sysid: j.systemIdentifier };
}

test('wal_receiver_timeout: a silent primary (SIGSTOP) is given up; streaming resumes after SIGCONT', async () => {
  const dir = newDir();
  const prim = await primaryChild(path.join(dir, 'p'));
  const open = (connectTimeoutMs: number) => Standby.open({
    dataDir: path.join(dir, 's'), primaryConninfo: { host: '127.0.0.1', port: prim.port, user: 'rep', password: 'pw' },
    walReceiverTimeoutMs: 600, walRetrieveRetryIntervalMs: 100, connectTimeoutMs, walReceiverStatusIntervalMs: 10_000,
  });
  let s = await open(3000);
  const warnings: string[] = [];
  s.on('warning', (e: Error) => warnings.push(e.message));
  try {
    await waitFor(() => s.receiverStatus().status === 'streaming', 5_000, 'streaming');
    const repliesBefore = s.receiverStatus().replies_sent;
    prim.proc.kill('SIGSTOP');
    await waitFor(() => warnings.some((w) => w.includes('terminating walreceiver due to replication timeout')), 5_000, `the timeout (${warnings.join('; ')})`);
    // at half the timeout it asked the silent primary for a reply (an `r` with replyRequested)
    assert.ok(s.receiverStatus().replies_sent > repliesBefore);
    await waitFor(() => warnings.some((w) => /timeout expired/.test(w)), 10_000, 'a connection attempt to time out');
    const connects = s.receiverStatus().connects;
    prim.proc.kill('SIGCONT');
    await waitFor(() => s.receiverStatus().connects > connects && s.receiverStatus().status === 'streaming', 10_000, 'streaming again');
    // Stopping while a connection attempt hangs on a silent primary does not wait for
    // connect_timeout: with a connect_timeout of 10 minutes, close() returns (the watchdog turns a
    // wait for the timeout into a failure; it bounds a hang, it does not measure speed).
    await s.close();
    s = await open(600_000);
    await waitFor(() => s.receiverStatus().status === 'streaming', 10_000, 'streaming after the reopen');
    prim.proc.kill('SIGSTOP');
    await waitFor(() => s.receiverStatus().status === 'starting', 10_000, 'a connection attempt');
    const HANG_MS = 60_000;
    let watchdog: NodeJS.Timeout | undefined;
    await Promise.race([
      s.close(),
      new Promise<never>((_, reject) => {
        watchdog = setTimeout(() => reject(new Error('close() waited for connect_timeout')), HANG_MS);
      }),
    ]).finally(() => clearTimeout(watchdog));
  } finally {
    prim.proc.kill('SIGCONT');
    await s.close();
    prim.proc.kill('SIGTERM');
    await once(prim.proc, 'exit');
  }
});

test('clear errors: system identifier mismatch, a primary data directory, bad options and conninfo', async () => {
  const dir = newDir();
  const p1 = await Primary.open({ dataDir: path.join(dir, 'p1'), walSegmentSize: SEG, port: 0 });
  const p2 = await Primary.open({ dataDir: path.join(dir, 'p2'), walSegmentSize: SEG, port: 0 });
  try {
    const sdir = path.join(dir, 's');
    const s1 = await Standby.open({ dataDir: sdir, primaryConninfo: { host: '127.0.0.1', port: p1.port!, user: 'u' }, readerThreads: 0 });
    await s1.close();
    // The same standby pointed at another primary: PostgreSQL's error, with both identifiers.
    const s2 = await Standby.open({ dataDir: sdir, primaryConninfo: { host: '127.0.0.1', port: p2.port!, user: 'u' }, readerThreads: 0 });
    try {
      const err = s2.failed ?? ((await once(s2, 'error'))[0] as WalstreamError);
      assert.equal(err.message, 'database system identifier differs between the primary and standby');
      assert.equal(err.detail, `The primary's identifier is ${p2.systemIdentifier}, the standby's identifier is ${p1.systemIdentifier}.`);
      assert.equal(err.sqlstate, 'XX000');
      assert.equal(s2.receiverStatus().status, 'stopped');
    } finally {
      await s2.close();
    }
    // A running primary's directory: in use (a stopped one could rejoin as a standby: rejoin.test).
    await assert.rejects(
      Standby.open({ dataDir: path.join(dir, 'p1'), primaryConninfo: { host: '127.0.0.1', port: p2.port!, user: 'u' } }),
      (e: unknown) => e instanceof WalstreamError && e.code === 'WS_DATA_DIR_IN_USE',
    );
    fs.mkdirSync(path.join(dir, 'junk'));
    fs.writeFileSync(path.join(dir, 'junk', 'x'), 'x');
    await assert.rejects(Standby.open({ dataDir: path.join(dir, 'junk'), primaryConninfo: 'host=127.0.0.1 port=1 user=u' }), (e: unknown) => e instanceof WalstreamError && e.code === 'WS_NOT_A_DATA_DIR');
    const bad = async (opts: object, re: RegExp) =>
      assert.rejects(Standby.open(opts as never), (e: unknown) => e instanceof WalstreamError && e.code === 'WS_INVALID_OPTION' && re.test(e.message));
    const ci = { host: '127.0.0.1', port: 5432, user: 'u' };
    await bad({ primaryConninfo: ci }, /"dataDir"/);
    await bad({ dataDir: dir, primaryConninfo: ci, mode: 'hot' }, /"mode": must be 'replica' or 'wal-only'/);
    await bad({ dataDir: dir, primaryConninfo: ci, walReceiverTimeoutMs: -1 }, /"walReceiverTimeoutMs": must be an integer from 0/);
    await bad({ dataDir: dir, primaryConninfo: ci, walRetrieveRetryIntervalMs: 0 }, /"walRetrieveRetryIntervalMs"/);
    await bad({ dataDir: dir, primaryConninfo: ci, readerThreads: 1.5 }, /"readerThreads"/);
    await bad({ dataDir: dir, primaryConninfo: ci, walInitZero: 'yes' }, /"walInitZero": must be true or false/);
    await bad({ dataDir: dir, primaryConninfo: ci, walReceiverStatusIntervalMs: 'x' }, /"walReceiverStatusIntervalMs"/);
    await bad({ dataDir: dir, primaryConninfo: ci, primarySlotName: 'Bad-Slot' }, /"primarySlotName"/);
    await bad({ dataDir: dir, primaryConninfo: ci, wal_receiver_timeout: 5 }, /"wal_receiver_timeout": unknown option/);
    await bad({ dataDir: dir, primaryConninfo: { ...ci, port: 70000 } }, /port must be an integer from 1 to 65535/);
    await bad({ dataDir: dir, primaryConninfo: 'host=x port=5432 user=u sslmode=require' }, /sslmode "require" needs TLS/);
    await bad({ dataDir: dir, primaryConninfo: 'host=x prot=5432' }, /invalid connection option "prot"/);
    await bad({ dataDir: dir, primaryConninfo: "host=x password='abc" }, /unterminated quoted string/);
    assert.deepEqual(parseConninfo(" host = 10.0.0.1  port=5433 user=rep password='a b\\'c' application_name=s1 dbname=replication "), {
      host: '10.0.0.1', port: 5433, user: 'rep', password: "a b'c", applicationName: 's1',
    });
    assert.equal(parseConninfo('host=h').port, 5432);
  } finally {
    await p1.close();
    await p2.close();
  }
});

test('walstream standby runs until SIGTERM and leaves a directory it can reopen', async () => {
  const dir = newDir();
  const p = await Primary.open({ dataDir: path.join(dir, 'p'), walSegmentSize: SEG, port: 0 });
  try {
    await fill(p, 0, 20);
    const sdir = path.join(dir, 's');
    const run = async () => {
      const proc = spawn(process.execPath, [BIN, 'standby', '--data', sdir, '--primary', `host=127.0.0.1 port=${p.port} user=u`, '--status-every-ms', '100', '--reader-threads', '1'], { stdio: ['ignore', 'pipe', 'pipe'] });
      children.push(proc);
      let out = '';
      let err = '';
      proc.stdout!.on('data', (d) => (out += d));
      proc.stderr!.on('data', (d) => (err += d));
      // status lines: the header, then one per interval with status "streaming" after the timestamp
      await waitFor(() => out.includes('\n') && /^\S+Z +streaming +/m.test(err), 20_000, 'the standby to stream');
      assert.match(err, /^time +status +latest_end_lsn +written_lsn +flushed_lsn +replay_lsn +write_lag_bytes +write_lag_ms /m);
      const j = JSON.parse(out.split('\n')[0]!) as { standby: { systemIdentifier: string; mode: string } };
      assert.equal(j.standby.systemIdentifier, p.systemIdentifier);
      assert.equal(j.standby.mode, 'replica');
      proc.kill('SIGTERM');
      const [code] = (await once(proc, 'exit')) as [number | null];
      assert.equal(code, 0, err);
      assert.match(err, /shut down/);
    };
    await run();
    await fill(p, 100, 20);
    await run();
    assert.equal(fs.existsSync(path.join(sdir, 'walstream.pid')), false);
  } finally {
    await p.close();
  }
});

test('XLogData crossing segment boundaries: the standby writes segments byte-identical to the primary', async () => {
  const dir = newDir();
  // 4 MiB messages on 1 MiB segments: every message spans several segments.
  const p = await Primary.open({ dataDir: path.join(dir, 'p'), walSegmentSize: SEG, walBuffersBytes: 256 * 1024, checkpointTimeoutMs: 0, maxSendBytes: 4 * SEG, walSenderMaxQueuedBytes: 8 * SEG, port: 0 });
  try {
    const conninfo = { host: '127.0.0.1', port: p.port!, user: 'u' };
    const s0 = await Standby.open({ dataDir: path.join(dir, 's'), primaryConninfo: conninfo, readerThreads: 0 });
    await s0.close();
    const pin = s0.flushLsn;
    const unpin = p.pinWal(() => pin);
    const lsn = await fill(p, 0, 2500); // ~5 MiB while the standby is away: catch-up in big messages
    // walInitZero off (PostgreSQL's wal_init_zero = off): new segments are sparse, same bytes in the end
    const s = await Standby.open({ dataDir: path.join(dir, 's'), primaryConninfo: conninfo, readerThreads: 0, walInitZero: false });
    try {
      await s.waitForReplay(lsn, 30_000);
      assert.equal(s.store!.digest(), p.store.digest());
      const complete = Math.floor(lsn / SEG);
      let compared = 0;
      for (let seg = Math.floor(pin / SEG); seg < complete; seg++) {
        const name = segmentFileName(1, seg, SEG);
        const a = fs.readFileSync(path.join(dir, 'p', 'pg_wal', name));
        const b = fs.readFileSync(path.join(dir, 's', 'pg_wal', name));
        assert.ok(a.equals(b), `${name} is byte-identical on the standby`);
        compared++;
      }
      assert.ok(compared >= 4, `compared ${compared} segments`);
    } finally {
      await s.close();
      unpin();
    }
  } finally {
    await p.close();
  }
});

test('base backup archives are validated before anything is written from them', () => {
  const dir = newDir();
  const member = (name: string, data: Buffer, type: '0' | '5' = '0') => Buffer.concat([tarHeader({ name, size: data.length, type }), data, tarPadding(data.length)]);
  const extract = (archive: Buffer, max = 1 << 20, chunk = 100) => {
    const d = fs.mkdtempSync(path.join(dir, 'x-'));
    const t = new TarExtractor(d, max);
    try {
      for (let i = 0; i < archive.length; i += chunk) t.push(archive.subarray(i, i + chunk));
      t.finish();
    } finally {
      t.abort();
    }
    return { dir: d, files: t.files };
  };
  const ok = Buffer.concat([member('checkpoints', Buffer.alloc(0), '5'), member('WALSTREAM_VERSION', Buffer.from('15\n')), member('checkpoints/0000000001000028.snap', Buffer.alloc(3000, 7)), tarTrailer()]);
  const r = extract(ok, 1 << 20, 77);
  assert.deepEqual(r.files, ['WALSTREAM_VERSION', 'checkpoints/0000000001000028.snap']);
  assert.equal(fs.readFileSync(path.join(r.dir, 'checkpoints/0000000001000028.snap')).length, 3000);
  const rejects = (archive: Buffer, re: RegExp, max?: number) =>
    assert.throws(() => extract(archive, max), (e: unknown) => e instanceof WalstreamError && e.sqlstate === '08P01' && re.test(e.detail ?? ''));
  const corrupt = Buffer.from(ok);
  corrupt[10] ^= 1; // name byte of the first header: checksum no longer matches
  rejects(corrupt, /checksum mismatch/);
  rejects(Buffer.concat([member('../etc/passwd', Buffer.from('x')), tarTrailer()]), /unexpected file "\.\.\/etc\/passwd"/);
  rejects(Buffer.concat([member('pg_hba.conf', Buffer.from('x')), tarTrailer()]), /unexpected file/);
  rejects(Buffer.concat([member('walstream.control', Buffer.alloc(5000)), tarTrailer()]), /too large/);
  rejects(Buffer.concat([member('checkpoints/a.snap', Buffer.alloc(4000)), tarTrailer()]), /exceeds maxBaseBackupBytes/, 2048);
  rejects(member('WALSTREAM_VERSION', Buffer.alloc(2000)).subarray(0, 1000), /ends in the middle of a member/);
  const hugeSize = tarHeader({ name: 'checkpoints/b.snap', size: 0 });
  hugeSize.write('77777777777\0', 124, 'latin1'); // 8 GiB claimed: refused before any allocation
  let sum = 0;
  hugeSize.fill(0x20, 148, 156);
  for (const b of hugeSize) sum += b;
  hugeSize.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
  rejects(Buffer.concat([hugeSize, tarTrailer()]), /exceeds maxBaseBackupBytes/);
});

test('a standby whose WAL the primary has removed keeps retrying and reports why', async () => {
  const dir = newDir();
  const p = await Primary.open({ dataDir: path.join(dir, 'p'), walSegmentSize: SEG, checkpointTimeoutMs: 0, port: 0 });
  try {
    const conninfo = { host: '127.0.0.1', port: p.port!, user: 'u' };
    const s0 = await Standby.open({ dataDir: path.join(dir, 's'), primaryConninfo: conninfo, readerThreads: 0 });
    await s0.close();
    await fill(p, 0, 2000); // several segments, then checkpoints remove them (nothing pins them)
    await p.checkpoint();
    await p.checkpoint();
    // Local WAL reaches the backup's end: consistent without the primary, then streaming fails.
    const s = await Standby.open({ dataDir: path.join(dir, 's'), primaryConninfo: conninfo, readerThreads: 0, walRetrieveRetryIntervalMs: 100 });
    const flushedAtOpen = s.flushLsn;
    const warnings: string[] = [];
    s.on('warning', (e: WalstreamError) => warnings.push(`${e.sqlstate} ${e.message}`));
    try {
      await waitFor(() => warnings.filter((w) => /^58P01 requested WAL segment [0-9A-F]{24} has already been removed$/.test(w)).length >= 2, 10_000, `the error, twice (${warnings.join('; ')})`);
      // (each attempt enters COPY BOTH before the error, as PostgreSQL's walsender does, but no WAL comes)
      assert.equal(s.flushLsn, flushedAtOpen);
      assert.ok(s.receiverStatus().connects >= 2);
      assert.equal(s.failed, null, 'not fatal: a slot or wal_keep_size on the primary would cure it');
      assert.equal(s.get('t', 'k0'), undefined, 'reads still work');
    } finally {
      await s.close();
    }
  } finally {
    await p.close();
  }
});

test('restartpoints recycle old segments (min_wal_size); the walreceiver overwrites them; a restart stops at the end of valid WAL', async () => {
  const dir = newDir();
  const p = await Primary.open({ dataDir: path.join(dir, 'p'), walSegmentSize: SEG, checkpointTimeoutMs: 0, port: 0 });
  const conninfo = { host: '127.0.0.1', port: p.port!, user: 'u' };
  const opts = { dataDir: path.join(dir, 's'), primaryConninfo: conninfo, readerThreads: 0, checkpointTimeoutMs: 0, maxWalSizeBytes: SEG, minWalSizeBytes: 64 * SEG };
  let s = await Standby.open(opts);
  try {
    let recycled = 0;
    let removed = 0;
    let lastRestartpoint = 0;
    const count = (info: { segmentsRecycled: number; segmentsRemoved: number; checkpointLsn: number }) => {
      recycled += info.segmentsRecycled;
      removed += info.segmentsRemoved;
      lastRestartpoint = Math.max(lastRestartpoint, info.checkpointLsn);
    };
    s.on('restartpoint', count);
    let n = 0;
    for (let round = 0; round < 4; round++) {
      await fill(p, n, 2200); // ~4 MiB: each restartpoint recycles 3 or more segments
      n += 2200;
      const ckptFrom = p.insertLsn; // the checkpoint record comes at or after this
      await p.checkpoint();
      await s.waitForReplay(p.flushLsn, 30_000);
      // every replayed checkpoint makes a restartpoint here (checkpointTimeoutMs 0, maxWalSizeBytes one segment)
      const deadline = Date.now() + 10_000;
      while (lastRestartpoint < ckptFrom && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      assert.ok(lastRestartpoint >= ckptFrom, `round ${round}: the restartpoint of its checkpoint`);
    }
    assert.ok(recycled >= 3, `restartpoints recycled segments (${recycled} recycled, ${removed} removed)`);
    assert.equal(removed, 0, 'under min_wal_size nothing is removed');
    // Recycled files sit past the end of WAL under future names, full of old WAL (not zeros).
    const endSeg = Math.floor(s.flushLsn / SEG);
    const walDir = path.join(dir, 's', 'pg_wal');
    const future = fs.readdirSync(walDir).filter((f) => /^[0-9A-F]{24}$/.test(f) && parseInt(f.slice(16), 16) > endSeg + 1);
    assert.ok(future.length >= 3, `future segments exist: ${future.join(' ')} (end of WAL in ${endSeg}; pg_wal: ${fs.readdirSync(walDir).join(' ')})`);
    const first = fs.readFileSync(path.join(walDir, future[0]!)).subarray(0, 16);
    assert.notEqual(first.readUInt16LE(0), 0, 'a recycled segment still holds its old pages');

    // The walreceiver writes into the recycled files; replay and bytes match the primary.
    const before = s.flushLsn;
    const lsn = await fill(p, n, 3000); // ~6 MiB: into several recycled segments
    n += 3000;
    await s.waitForReplay(lsn, 30_000);
    assert.equal(s.store!.digest(), p.store.digest());
    let compared = 0;
    for (let seg = Math.floor(before / SEG) + 1; seg < Math.floor(lsn / SEG); seg++) {
      const name = segmentFileName(1, seg, SEG);
      assert.ok(fs.readFileSync(path.join(dir, 'p', 'pg_wal', name)).equals(fs.readFileSync(path.join(walDir, name))), `${name} byte-identical`);
      compared++;
    }
    assert.ok(compared >= 3, `compared ${compared} overwritten segments`);

    // Restart: recovery stops at the end of valid WAL (the old bytes after it are not WAL) and streams on.
    const replayed = s.replayLsn;
    await s.close();
    s = await Standby.open(opts);
    assert.equal(s.replayLsn >= replayed, true, 'the restart replays up to where it was');
    const last = await fill(p, n, 1000);
    await s.waitForReplay(last, 30_000);
    assert.equal(s.store!.digest(), p.store.digest(), 'after restart the standby matches the primary');
  } finally {
    await s.close();
    await p.close();
  }
});
