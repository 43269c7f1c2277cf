// `walstream profile`: the live profile of an embedded primary + in-process standby sharing one
// stage trace (every hop measured; per-kind redo counts equal to the records committed and
// replayed), the CLI's live profile of a walstream primary from another process (the send hop
// named as not visible, the network hop derived from the sendTime), and the offline replay of a
// recorded pg_wal (per-kind counts equal to waldump's, CRC-32C over the same bytes, --from/--to).
// Reports: --json valid against bench/schemas/bench.schema.json, --html opened in headless
// Chromium with every chart drawn, text headings as in test/snapshots/. Counts, never latencies.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Primary } from '../src/primary/primary.js';
import { analyse } from '../src/profile/live.js';
import { profileTrace } from '../src/profile/trace.js';
import { StageTrace } from '../src/util/stage-trace.js';
import { recordKindSlot, SIZE_BANDS } from '../src/profile/record-kind.js';
import { RM_WALSTREAM_ID, WS_TXN } from '../src/wal/consts.js';
import type { LiveProfileJson, ReplayProfileJson } from '../src/profile/result.js';
import { Standby } from '../src/standby/standby.js';
import { type Lsn, lsnToString, parseLsn } from '../src/wal/lsn.js';
import { profileReplay } from '../src/profile/offline.js';
import { checkHtmlInChromium, declaredChartIds, headingLines, headingSnapshot, schemaErrors, STACK_FRAME, walstream } from './helpers/bench-report.js';
import { rmrf, tmpDir } from './helpers/tmp.js';

const dirs: string[] = [];
after(() => dirs.forEach(rmrf));
function tmp(prefix: string): string {
  const d = tmpDir(prefix);
  dirs.push(d);
  return d;
}

/** Value sizes that put TXN records in every size band (record overhead is well below the band gaps). */
const VALUE_BYTES = [40, 500, 5000, 30_000, 100_000];

async function commitMix(p: Primary, n: number, tag: string): Promise<Lsn> {
  let last = 0;
  for (let i = 0; i < n; i++) {
    last = await p.transaction((tx) => tx.put('t', `${tag}${i}`, 'x'.repeat(VALUE_BYTES[i % VALUE_BYTES.length]!)));
  }
  return last;
}

async function htmlChecked(html: string, shotDir: string): Promise<string[]> {
  const ids = declaredChartIds(html);
  const check = await checkHtmlInChromium(html, shotDir);
  assert.deepEqual(check.errors, [], 'no console errors, no page errors');
  assert.deepEqual(check.externalRequests, [], 'the report works offline (Chart.js inlined)');
  assert.equal(check.canvases, ids.length, 'one canvas per chart');
  for (const c of check.charts) assert.ok(c.chart && c.points > 0 && c.paintedPixels > 0, `chart ${c.id} drawn with data: ${JSON.stringify(c)}`);
  assert.ok(fs.statSync(check.screenshot).size > 0, 'screenshot saved');
  return ids;
}

test('analysis of a synthetic trace: each hop the time it was built with; a unit crossing a stage before the window is left out; hops a wal-only standby cannot see', () => {
  const trace = new StageTrace(profileTrace(1000));
  const t0 = 1_000_000;
  // Positions below the first unit, seen in the window (so that the first unit's crossings count).
  for (const s of ['flushed', 'sent', 'sendTime', 'received', 'written', 'standbyFlushed', 'replayed', 'visible'] as const) trace.recordAt(s, 100, t0 + 1);
  for (let i = 1; i <= 50; i++) {
    const lsn = 100 + i * 1000;
    const b = t0 + 10 * i;
    trace.recordAt('flushed', lsn, b);
    trace.recordAt('sent', lsn, b + 0.1);
    trace.recordAt('received', lsn, b + 0.3);
    trace.recordAt('written', lsn, b + 0.35);
    trace.recordAt('standbyFlushed', lsn, b + 1.35);
    trace.recordAt('replayed', lsn, b + 1.55);
    trace.recordAt('visible', lsn, b + 1.6);
  }
  const costs0 = trace.replayCosts();
  for (let i = 0; i < 50; i++) trace.noteReplay(recordKindSlot(RM_WALSTREAM_ID, WS_TXN), 100, 0.01);
  const facts = { t0, t1: t0 + 1000, seconds: 1, replica: true, inProcess: true, costs0, costs1: trace.replayCosts(), recordsReplayed: 50 };
  const r = analyse(trace, facts);
  assert.deepEqual(r.hops.map((h) => [h.hop, h.source, h.count, h.p50Ms, h.maxMs]), [
    ['send', 'measured', 50, 0.1, 0.1], ['network', 'measured', 50, 0.2, 0.2], ['write', 'measured', 50, 0.05, 0.05],
    ['fdatasync', 'measured', 50, 1, 1], ['replay', 'measured', 50, 0.2, 0.2], ['visible', 'measured', 50, 0.05, 0.05],
  ]);
  assert.deepEqual(r.replay.byKind.map((k) => [k.kind, k.sizeBand, k.records]), [['walstream/TXN', '≤ 128 B', 50]]);
  assert.equal(r.lagFrom, 'primary flush');
  assert.deepEqual(r.lag.map((x) => x.units), [24, 25, 1], 'every unit in the bucket of its flush time');

  // A window that starts after the first unit's flush: that unit is not timed for the send hop.
  const late = analyse(trace, { ...facts, t0: t0 + 5 });
  const send = late.hops.find((h) => h.hop === 'send')!;
  assert.equal(send.count + send.unitsMissing, late.window.units);
  assert.equal(send.unitsMissing, 1);

  // wal-only, no primary flushes: send, replay, visible not visible; network derived from sendTime.
  const w = new StageTrace(profileTrace(100));
  for (const [lsn, b] of [[100, t0 + 1], [1100, t0 + 10], [2100, t0 + 20]] as const) {
    w.recordAt('sendTime', lsn, b);
    w.recordAt('received', lsn, b + 0.5);
    w.recordAt('written', lsn, b + 0.6);
    w.recordAt('standbyFlushed', lsn, b + 1.6);
  }
  const wr = analyse(w, { ...facts, replica: false, inProcess: false, costs0: w.replayCosts(), costs1: w.replayCosts(), recordsReplayed: 0 });
  assert.deepEqual(wr.hops.map((h) => [h.hop, h.source, h.count]), [['send', 'not visible', 0], ['network', 'derived', 2], ['write', 'measured', 2], ['fdatasync', 'measured', 2], ['replay', 'not visible', 0], ['visible', 'not visible', 0]]);
  assert.equal(wr.hops[1]!.p50Ms, 0.5);
  assert.equal(wr.lagFrom, 'send time');
  assert.ok(wr.lag.every((x) => x.replayLagMs === null));
});

test('standby.profile() on an embedded primary + in-process standby: every hop measured, per-kind counts add up to the records replayed', async () => {
  const dir = tmp('walstream-profile-live-');
  const trace = profileTrace(1 << 16);
  const p = await Primary.open({ dataDir: path.join(dir, 'p'), port: 0, checkpointTimeoutMs: 0, stageTrace: trace });
  let s: Standby | null = null;
  try {
    s = await Standby.open({ dataDir: path.join(dir, 's'), primary: p, readerThreads: 0, stageTrace: trace, checkpointTimeoutMs: 0 });
    const stop = new AbortController();
    let started!: () => void;
    const windowStarted = new Promise<void>((r) => (started = r));
    const running = s.profile({ seconds: 600, signal: stop.signal, onProgress: (x) => x.elapsedMs === 0 && started() });
    await windowStarted;
    const N = 100;
    await commitMix(p, N / 2, 'a');
    await p.checkpoint(); // one CHECKPOINT_ONLINE record in the window
    const last = await commitMix(p, N / 2, 'b');
    await s.waitForReplay(last, 60_000);
    stop.abort();
    const r = await running;

    assert.equal(r.mode, 'replica');
    assert.equal(r.lagFrom, 'primary flush');
    assert.deepEqual(r.hops.map((h) => [h.hop, h.source]), [['send', 'measured'], ['network', 'measured'], ['write', 'measured'], ['fdatasync', 'measured'], ['replay', 'measured'], ['visible', 'measured']]);
    assert.ok(r.window.units > 0 && r.window.unitsIncomplete < r.window.units, JSON.stringify(r.window));
    assert.ok(r.window.startLsn < r.window.endLsn && r.window.endLsn <= last, 'the window is `Lsn` numbers, within the WAL committed');
    for (const h of r.hops) {
      assert.equal(h.count + h.unitsMissing, r.window.units, `${h.hop}: every unit counted or missing`);
      assert.ok(h.count > 0 && h.unitsMissing <= r.window.unitsIncomplete, `${h.hop}: ${h.count} units, ${h.unitsMissing} missing`);
      assert.equal(h.cdf.length > 0, true);
      assert.ok(h.p50Ms <= h.p90Ms && h.p90Ms <= h.p99Ms && h.p99Ms <= h.p999Ms && h.p999Ms <= h.maxMs, `${h.hop}: percentiles ordered`);
      assert.equal(h.negatives, 0, `${h.hop}: each stage reached a position after the stage before it`);
    }
    // Redo counts: exactly the records committed in the window, by kind and size band.
    const byKind = new Map<string, number>();
    for (const k of r.replay.byKind) byKind.set(k.kind, (byKind.get(k.kind) ?? 0) + k.records);
    assert.deepEqual(Object.fromEntries(byKind), { 'walstream/TXN': N, 'walstream/CHECKPOINT_ONLINE': 1 });
    assert.equal(r.replay.recordsByKind, N + 1);
    assert.equal(r.replay.recordsReplayed, N + 1, 'the per-kind rows add up to the records replayed');
    assert.deepEqual(new Set(r.replay.byKind.filter((k) => k.kind === 'walstream/TXN').map((k) => k.sizeBand)), new Set(SIZE_BANDS.map((b) => b.label)), 'TXN records in every size band');
    assert.ok(r.lag.length >= 1 && r.lag.every((x) => x.units >= 1 && x.replayLagMs !== null));
    const inLag = r.lag.reduce((a, x) => a + x.units, 0);
    assert.ok(inLag >= r.window.units - r.window.unitsIncomplete && inLag <= r.window.units, `each unit timed from flush to flush in one lag bucket: ${inLag}`);
    assert.equal(r.droppedEntries, 0);

    // One profile at a time; a standby without a trace says what it needs.
    const again = s.profile({ seconds: 0.2 });
    await assert.rejects(s.profile({ seconds: 0.2 }), (e: unknown) => (e as { code?: string }).code === 'WS_OBJECT_IN_USE');
    await again;
    await assert.rejects(s.profile({ seconds: 0 }), (e: unknown) => (e as { code?: string }).code === 'WS_INVALID_OPTION');
  } finally {
    await s?.close();
    await p.close();
  }
  const bare = await Primary.open({ dataDir: path.join(dir, 'p2'), port: 0 });
  try {
    const sb = await Standby.open({ dataDir: path.join(dir, 's2'), primary: bare, readerThreads: 0 });
    await assert.rejects(sb.profile({ seconds: 1 }), (e: unknown) => (e as { code?: string }).code === 'WS_NOT_SUPPORTED' && /stageTrace: profileTrace\(\)/.test((e as Error).message));
    await sb.close();
  } finally {
    await bare.close();
  }
});

test('walstream profile live against a walstream primary in another process: send not visible, network derived, the rest measured; --json, --html, headings', async () => {
  const dir = tmp('walstream-profile-cli-');
  const work = path.join(dir, 'work');
  fs.mkdirSync(work);
  const p = await Primary.open({ dataDir: path.join(dir, 'p'), port: 0, checkpointTimeoutMs: 0 });
  const html = path.join(dir, 'profile-live.html');
  let done = false;
  let committed = 0;
  try {
    const load = (async () => {
      while (!done) {
        await p.transaction((tx) => tx.put('t', `k${committed}`, 'v'.repeat(VALUE_BYTES[committed % 3]!)));
        committed++;
        await new Promise((r) => setTimeout(r, 2));
      }
    })();
    const run = await walstream(['profile', 'live', '--primary', `host=127.0.0.1 port=${p.port} user=rep`, '--seconds', '2', '--json', '--html', html, '--dir', work]);
    done = true;
    await load;
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stderr, '', 'quiet with --json');
    const r = JSON.parse(run.stdout) as LiveProfileJson;
    assert.deepEqual(schemaErrors('profile', r), [], 'valid against bench/schemas/bench.schema.json');
    assert.deepEqual(fs.readdirSync(work), [], 'the temporary standby is removed');
    assert.deepEqual(r.upstream.kind, 'walstream');
    assert.equal(r.mode, 'replica');
    assert.equal(r.lagFrom, 'send time');
    const by = Object.fromEntries(r.hops.map((h) => [h.hop, h]));
    assert.equal(by.send!.source, 'not visible');
    assert.match(by.send!.why!, /known only to the primary/);
    assert.equal(by.send!.count, 0);
    assert.equal(by.send!.unitsMissing, r.window.units);
    assert.equal(by.network!.source, 'derived');
    assert.match(by.network!.why!, /sendTime/);
    assert.ok(r.window.units > 0, `units in the window: ${JSON.stringify(r.window)}`);
    for (const h of ['network', 'write', 'fdatasync', 'replay', 'visible']) {
      assert.equal(by[h]!.count + by[h]!.unitsMissing, r.window.units, `${h}: every unit counted or missing`);
      assert.ok(by[h]!.count > 0 && by[h]!.unitsMissing <= r.window.unitsIncomplete, `${h}: ${by[h]!.count} units, ${by[h]!.unitsMissing} missing`);
    }
    assert.equal(r.replay.recordsByKind, r.replay.recordsReplayed, 'the per-kind rows add up to the records replayed');
    assert.ok(r.replay.recordsReplayed > 0 && r.replay.recordsReplayed <= committed + 2, `${r.replay.recordsReplayed} of ${committed} commits (and checkpoints)`);

    const saved = path.join(dir, 'profile-live.json');
    fs.writeFileSync(saved, run.stdout);
    const rep = await walstream(['bench', 'report', saved]);
    assert.equal(rep.code, 0, rep.stderr);
    const snap = headingSnapshot('profile-live', headingLines(rep.stdout));
    assert.deepEqual(snap.actual, snap.expected, 'text report headings as in the snapshot');
    assert.deepEqual(await htmlChecked(html, dir), ['profile-hop-cdf', 'profile-hop-percentiles', 'profile-kinds', 'profile-lag']);
  } finally {
    done = true;
    await p.close();
  }
});

test('walstream profile replay of a recorded pg_wal: per-kind counts equal waldump\'s, CRC-32C over the same bytes, --from/--to; --json, --html, headings', async () => {
  const dir = tmp('walstream-profile-replay-');
  const data = path.join(dir, 'data');
  const p = await Primary.open({ dataDir: data, checkpointTimeoutMs: 0 });
  const N = 120;
  await commitMix(p, N / 2, 'a');
  await p.checkpoint();
  await commitMix(p, N / 2, 'b');
  await p.close();

  const html = path.join(dir, 'profile-replay.html');
  const run = await walstream(['profile', 'replay', data, '--json', '--html', html]);
  assert.equal(run.code, 0, run.stderr);
  assert.equal(run.stderr, '', 'quiet with --json');
  const r = JSON.parse(run.stdout) as ReplayProfileJson;
  assert.deepEqual(schemaErrors('profile', r), [], 'valid against bench/schemas/bench.schema.json');

  const dump = await walstream(['waldump', data, '--json']);
  assert.equal(dump.code, 0, dump.stderr);
  const stats = JSON.parse(dump.stdout) as { records: number; bytes: number; byRecord: Record<string, { count: number }> };
  assert.equal(r.records, stats.records, 'every record replayed');
  assert.equal(r.bytes, stats.bytes);
  assert.equal(r.crc.bytes, r.bytes, 'the CRC-32C limit measured over the same bytes');
  const byKind: Record<string, number> = {};
  for (const k of r.byKind) byKind[k.kind] = (byKind[k.kind] ?? 0) + k.records;
  const expected = Object.fromEntries(Object.entries(stats.byRecord).map(([k, v]) => [k.replace(/^custom130\//, 'walstream/'), v.count]));
  assert.deepEqual(byKind, expected, 'per-kind counts as waldump --stats counts them');
  assert.equal(byKind['walstream/TXN'], N);
  assert.equal(r.kindLatency.reduce((a, k) => a + k.count, 0), r.records);
  assert.deepEqual(new Set(r.byKind.filter((k) => k.kind === 'walstream/TXN').map((k) => k.sizeBand)), new Set(SIZE_BANDS.map((b) => b.label)));

  // --from / --to: the records from the 10th to before the 30th (LSNs from waldump's listing).
  const listing = await walstream(['waldump', data]);
  const lsns = [...listing.stdout.matchAll(/lsn: ([0-9A-F]+\/[0-9A-F]+),/g)].map((m) => m[1]!);
  assert.equal(lsns.length, stats.records);
  const part = await walstream(['profile', 'replay', data, '--from', lsns[10]!, '--to', lsns[30]!, '--json']);
  assert.equal(part.code, 0, part.stderr);
  const pr = JSON.parse(part.stdout) as ReplayProfileJson;
  assert.equal(pr.records, 20);
  assert.equal(pr.startLsn, lsns[10]!.replace(/\/0+(?=[0-9A-F])/, '/'));
  assert.match(pr.endReason, /^--to /);
  // The library takes and reports `Lsn` numbers; the command prints them as X/X.
  const lib = profileReplay(data, { from: parseLsn(lsns[10]!), to: parseLsn(lsns[30]!) });
  assert.deepEqual([lib.records, lib.startLsn, lsnToString(lib.startLsn), lsnToString(lib.endLsn)], [20, parseLsn(lsns[10]!), pr.startLsn, pr.endLsn]);

  const saved = path.join(dir, 'profile-replay.json');
  fs.writeFileSync(saved, run.stdout);
  const rep = await walstream(['bench', 'report', saved]);
  assert.equal(rep.code, 0, rep.stderr);
  const snap = headingSnapshot('profile-replay', headingLines(rep.stdout));
  assert.deepEqual(snap.actual, snap.expected, 'text report headings as in the snapshot');
  assert.deepEqual(await htmlChecked(html, dir), ['replay-throughput', 'replay-kinds', 'replay-kind-cdf']);
});

test('walstream profile: bad options end with one line naming the option', async () => {
  const dir = tmp('walstream-profile-err-');
  const cases: Array<[string[], RegExp]> = [
    [['profile', 'replay', dir, '--from', 'zz'], /--from <lsn>.*'zz' is invalid\. Expected a WAL location X\/X/],
    [['profile', 'replay', dir, '--to', '1/2/3'], /--to <lsn>.*Expected a WAL location/],
    [['profile', 'replay', dir, '--to', '200000/0'], /--to <lsn>.*'200000\/0' is invalid\. Expected a WAL location X\/X in hexadecimal below 200000\/0 \(2\^53 bytes\)/],
    [['profile', 'live', '--seconds', '2'], /required option '--primary <conninfo>' not specified/],
    [['profile', 'live', '--primary', 'host=127.0.0.1 port=1', '--seconds', '0'], /--seconds <s>.*Expected a number > 0 and <= 3600/],
    [['profile', 'live', '--primary', 'bogus', '--seconds', '1'], /--primary <conninfo>.*Expected key=value pairs/],
    [['profile', 'replay', path.join(dir, 'missing')], /required WAL is missing/],
    [['profile', 'replay', dir, '--html', path.join(dir, 'no', 'such', 'x.html')], /--html <file>.*existing directory/],
  ];
  for (const [args, re] of cases) {
    const r = await walstream(args, 60_000);
    assert.notEqual(r.code, 0, `${args.join(' ')}: fails`);
    assert.equal(r.stdout, '');
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, `${args.join(' ')}: one line: ${r.stderr}`);
    assert.match(lines[0]!, re);
    assert.doesNotMatch(r.stderr, STACK_FRAME);
  }
});
