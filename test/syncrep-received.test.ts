// remote_receive with its own position: a client asks with the startup parameter
// `walstream.received_report`, walstream's walsender agrees with a ParameterStatus, then the client
// may send StandbyReceivedUpdate `R`; without the request the handshake is PostgreSQL's and `R` is
// an unexpected message type (sans-I/O core, in memory); WalSndCtl stores the received position (sanitised) and
// syncedPositions uses it for remote_receive; end to end, our walreceiver reports it to a walstream
// primary (receive_lsn in replicationStatus, remote_receive commits confirmed) and never to a REAL
// PostgreSQL 15 primary, which keeps streaming to it and releasing its synchronous commits.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import path from 'node:path';
import { Primary } from '../src/primary/primary.js';
import { ReplicationClientConn, type ClientConnEvent } from '../src/replication/protocol/client-conn.js';
import {
  decodeCopyBothMessage,
  encodeCopyData,
  encodeStandbyReceivedUpdate,
  RECEIVED_REPORT_PARAMETER,
} from '../src/replication/protocol/messages.js';
import { ReplicationServerConn, type ServerConnEvent } from '../src/replication/protocol/server-conn.js';
import { syncedPositions, parseSynchronousStandbyNames } from '../src/replication/syncrep.js';
import { WalSndCtl, WalSndState } from '../src/replication/walsndctl.js';
import { APPLY_REPORT_MAX_DELAY_MS } from '../src/standby/startup.js';
import { Standby } from '../src/standby/standby.js';
import { TcpTransport } from '../src/standby/transport.js';
import { startPgCluster } from './helpers/pgcluster.js';
import { waitFor } from './helpers/rawpg.js';
import { rmrf, tmpDir } from './helpers/tmp.js';

/** A server and a client conn wired in memory (trust), the fake walsender entering COPY BOTH on START_REPLICATION. */
function link(requestReceivedReport = true) {
  const serverEvents: ServerConnEvent[] = [];
  const clientEvents: ClientConnEvent[] = [];
  const toServer: Buffer[] = [];
  const toClient: Buffer[] = [];
  const server: ReplicationServerConn = new ReplicationServerConn({
    send: (b) => toClient.push(Buffer.from(b)),
    onEvent: (ev) => {
      serverEvents.push(ev);
      if (ev.type === 'command' && ev.command.kind === 'START_REPLICATION') server.enterCopyBoth();
    },
    hba: [{ type: 'host', database: 'replication', user: 'all', address: '127.0.0.1/32', method: 'trust' }],
    lookupUser: () => ({ password: null }),
    remoteAddress: '127.0.0.1',
  });
  const client = new ReplicationClientConn({ send: (b) => toServer.push(Buffer.from(b)), onEvent: (ev) => clientEvents.push(ev), user: 'u', applicationName: 's1', requestReceivedReport });
  const run = () => {
    while (toServer.length + toClient.length > 0) {
      if (toServer.length > 0) server.feed(Buffer.concat(toServer.splice(0)));
      if (toClient.length > 0) client.feed(Buffer.concat(toClient.splice(0)));
    }
  };
  return { server, client, serverEvents, clientEvents, toServer, run };
}

test('protocol: the walsender advertises R, the client sends it only then, the server decodes it; a short R aborts the stream', () => {
  const l = link();
  l.client.start();
  l.run();
  assert.equal(l.client.state, 'idle');
  assert.equal(l.client.parameters.get(RECEIVED_REPORT_PARAMETER), 'on');
  assert.equal(l.client.peerAcceptsReceivedReport, true);
  l.client.query('START_REPLICATION 0/1000000 TIMELINE 1');
  l.run();
  assert.equal(l.client.state, 'copyBoth');
  l.client.sendStandbyReceived({ received: 0x1002064, clientTime: 4242 });
  l.client.sendStandbyStatus({ write: 0x1002000, flush: 0x1001000, apply: 0, clientTime: 4243, replyRequested: false });
  l.run();
  assert.deepEqual(l.serverEvents.filter((e) => e.type === 'copyData'), [
    { type: 'copyData', message: { kind: 'R', received: 0x1002064, clientTime: 4242 } },
    { type: 'copyData', message: { kind: 'r', write: 0x1002000, flush: 0x1001000, apply: 0, clientTime: 4243, replyRequested: false } },
  ]);
  assert.equal(l.server.state, 'copyBoth');
  // Wire format: Byte1('R') Int64 received Int64 clientTime, in a CopyData.
  const wire = encodeStandbyReceivedUpdate({ received: 0x1_0000_0010, clientTime: 7 });
  assert.equal(wire.length, 22);
  assert.equal(wire[0], 0x64);
  assert.deepEqual(decodeCopyBothMessage(wire.subarray(5)), { kind: 'R', received: 0x1_0000_0010, clientTime: 7 });
  // Short: PostgreSQL's pqformat error, streaming ends with ERROR + ReadyForQuery (connection stays).
  l.toServer.push(encodeCopyData(Buffer.from([0x52, 0, 0, 0, 1])));
  l.run();
  const aborted = l.serverEvents.find((e) => e.type === 'streamAborted');
  assert.ok(aborted?.type === 'streamAborted' && /insufficient data left in message/.test(aborted.error.message));
  assert.equal(l.server.state, 'ready');

  // Not asked: PostgreSQL's handshake (no such ParameterStatus), the client refuses to send R, and
  // an R anyway ends the connection as PostgreSQL's walsender does ("unexpected message type").
  const m = link(false);
  m.client.start();
  m.run();
  assert.equal(m.client.parameters.has(RECEIVED_REPORT_PARAMETER), false);
  assert.equal(m.client.parameters.size, 13);
  m.client.query('START_REPLICATION 0/1000000 TIMELINE 1');
  m.run();
  assert.equal(m.client.peerAcceptsReceivedReport, false);
  assert.throws(() => m.client.sendStandbyReceived({ received: 1, clientTime: 1 }), /did not agree/);
  m.toServer.push(encodeStandbyReceivedUpdate({ received: 1, clientTime: 1 }));
  m.run();
  assert.equal(m.server.state, 'closed');
  const err = m.serverEvents.at(-1);
  assert.ok(err?.type === 'error' && /unexpected message type "R"/.test(err.error.message) && !err.sentToClient);
});

test('WalSndCtl: received position sanitised (0 keeps, clamped to sent, monotonic, reset per stream); syncedPositions uses it for remote_receive', () => {
  const w = WalSndCtl.create(2);
  const { slot } = w.claim({ applicationName: 's1', clientAddr: '127.0.0.1', clientPort: 1, backendStartMs: 0 });
  w.startStreaming(slot, 0x1000, WalSndState.STREAMING);
  w.setSent(slot, 0x5000);
  assert.equal(w.read(slot)!.receive, 0);
  assert.equal(w.reportReceived(slot, 0x4000), 0x4000);
  assert.equal(w.reportReceived(slot, 0), 0x4000, '0 keeps the previous value');
  assert.equal(w.reportReceived(slot, 0x3000), 0x4000, 'never backwards');
  assert.equal(w.reportReceived(slot, 0x9000), 0x5000, 'clamped to sent');
  w.reportReply(slot, { write: 0x2000, flush: 0x1800, apply: 0x1000, replyTime: 1 });
  const config = parseSynchronousStandbyNames('s1');
  const p = syncedPositions(config, w.all());
  assert.deepEqual(p, { receive: 0x5000, write: 0x2000, flush: 0x1800, apply: 0x1000 });
  w.startStreaming(slot, 0x1000, WalSndState.STREAMING);
  assert.equal(w.read(slot)!.receive, 0, 'a new stream starts with nothing reported');
});

test('end to end: our walreceiver reports R to a walstream primary (receive_lsn, remote_receive confirmed) and never to a real PostgreSQL 15 primary', async (t) => {
  const dir = tmpDir('walstream-recv-');
  const p = await Primary.open({ dataDir: path.join(dir, 'p'), walSegmentSize: 1 << 20, checkpointTimeoutMs: 0, port: 0, synchronousStandbyNames: 's1' });
  let s: Standby | null = null;
  let pg: Awaited<ReturnType<typeof startPgCluster>> | null = null;
  let ours: Standby | null = null;
  t.after(async () => {
    await ours?.close().catch(() => undefined);
    await pg?.stop();
    await s?.close().catch(() => undefined);
    await p.close();
    rmrf(dir);
  });
  // Our walreceiver's transport asks; a walstream primary agrees.
  const topts = { connectTimeoutMs: 5000, commandTimeoutMs: 5000, maxMessageBytes: 1 << 26, maxBufferedBytes: 1 << 25 };
  const probe = await new TcpTransport({ host: '127.0.0.1', port: p.port!, user: 'u', password: null, passfile: null, applicationName: 'probe' }, topts).connect();
  assert.equal(probe.acceptsReceivedReport, true);
  probe.disconnect();

  s = await Standby.open({ dataDir: path.join(dir, 's1'), primaryConninfo: { host: '127.0.0.1', port: p.port!, user: 'u', applicationName: 's1' }, readerThreads: 0, checkpointTimeoutMs: 0 });
  await waitFor(() => p.replicationStatus()[0]?.sync_state === 'sync', 10_000, 's1 synchronous');

  for (let i = 0; i < 20; i++) {
    const r = await p.commit((tx) => tx.put('t', `k${i}`, i), { synchronousCommit: 'remote_receive' });
    assert.equal(r.sync?.outcome, 'confirmed');

  }
  const row = () => p.replicationStatus()[0]!;
  await waitFor(() => row().receive_lsn !== null && row().receive_lsn === row().sent_lsn, 10_000, 'receive_lsn reaches sent_lsn');
  await s.close();
  s = null;

  // A real PostgreSQL primary accepts the request silently (a custom placeholder) and never agrees, so no R; it keeps streaming to us and our flush
  // reports release its synchronous commits on the same walsender (no reconnect).
  pg = await startPgCluster({ hbaLines: ['host replication all 127.0.0.1/32 scram-sha-256'], settings: { synchronous_standby_names: 'ours', wal_receiver_status_interval: '1s' } });
  const pgInfo = { host: pg.host, port: pg.port, user: 'postgres', password: pg.superuserPassword, passfile: null, applicationName: 'ours' };
  const pgProbe = await new TcpTransport(pgInfo, topts).connect();
  assert.equal(pgProbe.acceptsReceivedReport, false);
  pgProbe.disconnect();
  ours = await Standby.open({ dataDir: path.join(dir, 'ours'), mode: 'wal-only', primaryConninfo: pgInfo, walRetrieveRetryIntervalMs: 200 });
  const rows = () => pg!.psql("select pid || '|' || sync_state from pg_stat_replication where application_name = 'ours'").trim();
  await waitFor(() => rows().endsWith('|sync'), 15_000, 'PostgreSQL reports us as synchronous');
  const pid = rows();
  for (let i = 0; i < 5; i++) {
    const r: SpawnSyncReturns<string> = spawnSync(pg.bin('psql'), ['-X', '-q', '-h', pg.socketDir, '-p', String(pg.port), '-U', 'postgres', '-d', 'postgres', '-c', `create table if not exists t${i} (a int); insert into t${i} values (${i})`], {
      env: pg.clientEnv({ PGOPTIONS: '-c synchronous_commit=on' }), encoding: 'utf8', timeout: 15_000,
    });
    assert.equal(r.status, 0, `commit at synchronous_commit=on released: ${r.stderr}`);
  }
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(rows(), pid, 'the same walsender still streams to us');
});

test('R and prompt apply reports only while synchronous standbys are named: none by default, asked for when names are set at run time, dropped again when cleared', async (t) => {
  const dir = tmpDir('walstream-recv-mode-');
  const p = await Primary.open({ dataDir: path.join(dir, 'p'), walSegmentSize: 1 << 20, checkpointTimeoutMs: 0, port: 0 });
  let s: Standby | null = null;
  t.after(async () => {
    await s?.close().catch(() => undefined);
    await p.close();
    rmrf(dir);
  });
  // No periodic replies during the test: every reply follows a flush, a request, or an apply wake.
  s = await Standby.open({ dataDir: path.join(dir, 's1'), primaryConninfo: { host: '127.0.0.1', port: p.port!, user: 'u', applicationName: 's1' }, readerThreads: 0, checkpointTimeoutMs: 0, walReceiverStatusIntervalMs: 600_000 });
  const standby = s;
  const row = () => p.replicationStatus()[0]!;
  await waitFor(() => row()?.state === 'streaming' && row().replay_lsn !== null, 10_000, 's1 streaming');
  /** n commits one after the other, each replayed before the next; how many replies, fsyncs and put-off apply reports the standby made meanwhile. */
  const run = async (n: number, level: 'local' | 'remote_receive' | 'remote_apply') => {
    const before = standby.receiverStatus();
    const t0 = performance.now();
    const commitMs: number[] = [];
    for (let i = 0; i < n; i++) {
      const c0 = performance.now();
      const r = await p.commit((tx) => tx.put('t', `k${i}`, i), { synchronousCommit: level });
      commitMs.push(performance.now() - c0);
      if (level !== 'local') assert.equal(r.sync?.outcome, 'confirmed', `commit ${i} at ${level}`);
      await standby.waitForReplay(r.lsn, 10_000);
    }
    const after = standby.receiverStatus();
    // Apply-only replies allowed without prompt reports: one per APPLY_REPORT_MAX_DELAY_MS, and a few more.
    const applyWakes = Math.ceil((performance.now() - t0) / APPLY_REPORT_MAX_DELAY_MS) + 5;
    commitMs.sort((x, y) => x - y);
    return { replies: after.replies_sent - before.replies_sent, fsyncs: after.fsyncs - before.fsyncs, applyWakes, putOff: after.apply_reports_put_off - before.apply_reports_put_off, medianCommitMs: commitMs[n >> 1]! };
  };

  // Asynchronous standby: no `R` at all, and apply rides on the reply after each flush (plus at
  // most one startup wake per APPLY_REPORT_MAX_DELAY_MS), not one more reply per replay.
  const a = await run(60, 'local');
  // Each commit is replayed before the next is made, so each was flushed on its own.
  assert.ok(a.fsyncs >= 60, `one fsync per commit (${a.fsyncs})`);
  assert.ok(a.replies <= a.fsyncs + a.applyWakes, `replies ${a.replies} for ${a.fsyncs} fsyncs (${a.applyWakes} apply wakes allowed): apply reports are not prompt`);
  assert.equal(row().receive_lsn, null, 'no R from an asynchronous standby');
  // The last apply position still reaches the primary soon, though the status interval is 10 minutes.
  await waitFor(() => row().replay_lsn === row().flush_lsn && row().flush_lsn === row().sent_lsn, 5_000, 'replay_lsn reported without a status interval');

  // Names set at run time: the walsender asks for R and prompt apply reports before the WAL that follows.
  p.setSynchronousStandbyNames('s1');
  await waitFor(() => row().sync_state === 'sync', 10_000, 's1 synchronous');
  // Prompt apply reports: a remote_apply commit is released as soon as the standby replays it. (Without
  // them each would wait for the next trailing report, up to APPLY_REPORT_MAX_DELAY_MS: nothing else
  // flushes while its committer waits.) The startup worker counts every report it puts off: none
  // now. One commit first, so that the mode has reached the standby with the WAL that follows it.
  await run(1, 'remote_apply');
  const b = await run(40, 'remote_apply');
  t.diagnostic(`median remote_apply commit ${b.medianCommitMs.toFixed(2)} ms`);
  assert.equal(b.putOff, 0, 'apply reports put off while the primary asks for prompt ones');
  await run(10, 'remote_receive');
  await waitFor(() => row().receive_lsn !== null && row().receive_lsn === row().sent_lsn, 10_000, 'R reports reach sent_lsn');

  // Cleared again: R and prompt reports stop.
  p.setSynchronousStandbyNames('');
  await waitFor(() => row().sync_state === 'async', 10_000, 's1 asynchronous');
  const receivedThen = row().receive_lsn;
  const c = await run(60, 'local');
  assert.ok(c.replies <= c.fsyncs + c.applyWakes, `replies ${c.replies} for ${c.fsyncs} fsyncs (${c.applyWakes} apply wakes allowed) once names are cleared`);
  assert.equal(row().receive_lsn, receivedThen, 'no R once names are cleared');
});
