// synchronous_standby_names and standby selection against PostgreSQL 15's behaviour: the parser
// table was captured from a PostgreSQL 15 server (ALTER SYSTEM runs the same check hook), the
// scenario table is src/test/recovery/t/007_sync_rep.pl's, replayed over a real WalSndCtl (so the
// walsender array order — first free slot — is the one PostgreSQL's test depends on).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WalstreamError } from '../src/errors.js';
import {
  candidateStandbys, parseSynchronousStandbyNames, standbyPriority, syncedPositions, syncStates,
  type SyncRepConfig, type SyncSenderState, waitModeOf,
} from '../src/replication/syncrep.js';
import { WalSndCtl, WalSndState } from '../src/replication/walsndctl.js';

type Expect = [number, 'priority' | 'quorum', string[]] | null | { sqlstate: string; message: string; detail?: string };

const SSN = 'synchronous_standby_names';
const syntax = (v: string, detail: string) => ({ sqlstate: '42601', message: `invalid value for parameter "${SSN}": "${v}"`, detail });
const numSync = (n: number) => ({ sqlstate: '22023', message: `number of synchronous standbys (${n}) must be greater than zero` });

// [value, what PostgreSQL 15 does with it]
const PARSER_TABLE: Array<[string, Expect]> = [
  ['', null],
  ['standby1,standby2', [1, 'priority', ['standby1', 'standby2']]],
  ['*', [1, 'priority', ['*']]],
  ['2(standby1,standby2,standby3)', [2, 'priority', ['standby1', 'standby2', 'standby3']]],
  ['FIRST 2(standby1, standby2)', [2, 'priority', ['standby1', 'standby2']]],
  ['ANY 2(standby1, standby2)', [2, 'quorum', ['standby1', 'standby2']]],
  ['ANY 2(*)', [2, 'quorum', ['*']]],
  ['FiRsT 1 (a)', [1, 'priority', ['a']]],
  ['any 3 (a, b)', [3, 'quorum', ['a', 'b']]],
  ['FIRST 3 (a,b)', [3, 'priority', ['a', 'b']]], // k > names is accepted
  ['1', [1, 'priority', ['1']]],
  ['1, 2', [1, 'priority', ['1', '2']]],
  ['"a""b"', [1, 'priority', ['a"b']]],
  ['""', [1, 'priority', ['']]],
  ['"a b", c', [1, 'priority', ['a b', 'c']]],
  ['ANY 1 ("first")', [1, 'quorum', ['first']]],
  ['ANY 1 ("a",*)', [1, 'quorum', ['a', '*']]],
  ['a$', [1, 'priority', ['a$']]],
  ['é', [1, 'priority', ['é']]],
  ['Standby_1', [1, 'priority', ['Standby_1']]],
  ['99999999999 (a)', [1215752191, 'priority', ['a']]], // atoi truncation, as PostgreSQL
  ['007 (a)', [7, 'priority', ['a']]],
  [' \t\nFIRST\t1\n(\ta\n)\n', [1, 'priority', ['a']]],
  ['ANY 0 (a)', numSync(0)],
  ['0 (a)', numSync(0)],
  ['4294967296 (a)', numSync(0)],
  ['99999999999999999999 (a)', numSync(-1)],
  ['FIRST 1 (a, b', syntax('FIRST 1 (a, b', 'syntax error at end of input')],
  ['first', syntax('first', 'syntax error at end of input')],
  ['any', syntax('any', 'syntax error at end of input')],
  ['FIRST', syntax('FIRST', 'syntax error at end of input')],
  ['  ', syntax('  ', 'syntax error at end of input')],
  ['a,', syntax('a,', 'syntax error at end of input')],
  ['ANY 2', syntax('ANY 2', 'syntax error at end of input')],
  ['a b', syntax('a b', 'syntax error at or near "b"')],
  ['a,,b', syntax('a,,b', 'syntax error at or near ","')],
  ['(a)', syntax('(a)', 'syntax error at or near "("')],
  ['FIRST 1 a', syntax('FIRST 1 a', 'syntax error at or near "a"')],
  ['"abc', syntax('"abc', 'unterminated quoted identifier at end of input')],
  ['ANY (a)', syntax('ANY (a)', 'syntax error at or near "("')],
  ['a@b', syntax('a@b', 'syntax error at or near "@"')],
  ['FIRST 1 (a) b', syntax('FIRST 1 (a) b', 'syntax error at or near "b"')],
  ['a-b', syntax('a-b', 'syntax error at or near "-"')],
  ['1a', syntax('1a', 'syntax error at or near "a"')],
  ['$a', syntax('$a', 'syntax error at or near "$"')],
  ['ANY 1 (first)', syntax('ANY 1 (first)', 'syntax error at or near "first"')],
  ['-1 (a)', syntax('-1 (a)', 'syntax error at or near "-"')],
  ['1 (a,)', syntax('1 (a,)', 'syntax error at or near ")"')],
  ['a.b', syntax('a.b', 'syntax error at or near "."')],
  ['FIRST 2(a,b)extra', syntax('FIRST 2(a,b)extra', 'syntax error at or near "extra"')],
  ['ANY 1 (a) ,', syntax('ANY 1 (a) ,', 'syntax error at or near ","')],
  ['a "b"', syntax('a "b"', 'syntax error at or near """')],
  ['"a" "bc"', syntax('"a" "bc"', 'syntax error at or near """')],
  ['"a""b" c', syntax('"a""b" c', 'syntax error at or near "c"')],
  ['1 "a"', syntax('1 "a"', 'syntax error at or near """')],
  ['99 99', syntax('99 99', 'syntax error at or near "99"')],
  ['ANY 1 (a b)', syntax('ANY 1 (a b)', 'syntax error at or near "b"')],
  ['FIRST 1 ()', syntax('FIRST 1 ()', 'syntax error at or near ")"')],
  ['ANY 1 2', syntax('ANY 1 2', 'syntax error at or near "2"')],
  ['ANY 1 (a)(b)', syntax('ANY 1 (a)(b)', 'syntax error at or near "("')],
  ['*a', syntax('*a', 'syntax error at or near "a"')],
  ['a*', syntax('a*', 'syntax error at or near "*"')],
  [' "x"y', syntax(' "x"y', 'syntax error at or near "y"')],
];

test('synchronous_standby_names: parser agrees with PostgreSQL 15 (values and errors)', () => {
  for (const [value, want] of PARSER_TABLE) {
    if (want === null || Array.isArray(want)) {
      const got = parseSynchronousStandbyNames(value);
      const exp: SyncRepConfig | null = want === null ? null : { numSync: want[0], method: want[1], members: want[2] };
      assert.deepEqual(got, exp, `value ${JSON.stringify(value)}`);
    } else {
      assert.throws(
        () => parseSynchronousStandbyNames(value),
        (e: unknown) => {
          assert.ok(e instanceof WalstreamError, `value ${JSON.stringify(value)}: ${String(e)}`);
          assert.equal(e.sqlstate, want.sqlstate, `sqlstate for ${JSON.stringify(value)}`);
          assert.equal(e.message, want.message, `message for ${JSON.stringify(value)}`);
          assert.equal(e.detail, want.detail, `detail for ${JSON.stringify(value)}`);
          assert.equal(e.code, 'WS_INVALID_SYNC_STANDBY_NAMES');
          return true;
        },
      );
    }
  }
});

test('priorities: position in the list, case-insensitive names, * at its own position, ANY = 1', () => {
  const c = parseSynchronousStandbyNames('2(standby1,*,standby2)');
  assert.equal(standbyPriority(c, 'standby1'), 1);
  assert.equal(standbyPriority(c, 'STANDBY1'), 1);
  assert.equal(standbyPriority(c, 'standby2'), 2); // matches * first
  assert.equal(standbyPriority(c, 'other'), 2);
  const q = parseSynchronousStandbyNames('ANY 1 ("Standby_A", b)');
  assert.equal(standbyPriority(q, 'standby_a'), 1);
  assert.equal(standbyPriority(q, 'b'), 1);
  assert.equal(standbyPriority(q, 'c'), 0);
  assert.equal(standbyPriority(parseSynchronousStandbyNames('x, y, z'), 'Z'), 3);
  assert.equal(standbyPriority(null, 'x'), 0);
  // non-ASCII letters are not folded (pg_strcasecmp folds ASCII only)
  assert.equal(standbyPriority(parseSynchronousStandbyNames('é'), 'É'), 0);
  assert.equal(waitModeOf('on'), 'remote_flush');
  assert.equal(waitModeOf('local'), null);
  assert.equal(waitModeOf('remote_receive'), 'remote_receive');
});

/** A primary's walsender array with standbys that connect, stream and disconnect. */
class Sim {
  readonly ctl = WalSndCtl.create(10);
  private readonly held = new Map<string, { slot: number; id: number }>();
  config: SyncRepConfig | null = null;

  /** Connect and stream; reports a flush position unless `noFlush` (pg_receivewal without --slot). */
  start(name: string, opts: { stream?: boolean; flush?: number } = {}): void {
    const { slot, id } = this.ctl.claim({ applicationName: name, clientAddr: '127.0.0.1', clientPort: 5000, backendStartMs: Date.now() });
    this.held.set(name, { slot, id });
    this.ctl.startStreaming(slot, 0x1000000, WalSndState.CATCHUP);
    this.ctl.setSent(slot, 0x3000000);
    const flush = opts.flush ?? 0x3000000;
    this.ctl.reportReply(slot, { write: 0x3000000, flush, apply: flush, replyTime: 1 });
    if (opts.stream ?? true) this.ctl.setState(slot, WalSndState.STREAMING);
  }
  stream(name: string): void {
    this.ctl.setState(this.held.get(name)!.slot, WalSndState.STREAMING);
  }
  stop(name: string): void {
    const h = this.held.get(name)!;
    assert.ok(this.ctl.release(h.slot, h.id));
    this.held.delete(name);
  }
  set(value: string): void {
    this.config = parseSynchronousStandbyNames(value);
  }
  /** SELECT application_name, sync_priority, sync_state FROM pg_stat_replication ORDER BY application_name */
  rows(): string {
    const senders = this.ctl.all();
    return syncStates(this.config, senders)
      .map((r) => `${r.applicationName}|${r.syncPriority}|${r.syncState}`)
      .sort()
      .join('\n');
  }
}

test('007_sync_rep.pl: sync_priority and sync_state as PostgreSQL 15 reports them', () => {
  const pg = new Sim();
  const check = (expected: string, msg: string, setting?: string) => {
    if (setting !== undefined) pg.set(setting);
    assert.equal(pg.rows(), expected, msg);
  };
  pg.start('standby1');
  pg.start('standby2');
  pg.start('standby3');
  check('standby1|1|sync\nstandby2|2|potential\nstandby3|0|async', 'old syntax of synchronous_standby_names', 'standby1,standby2');
  check('standby1|1|sync\nstandby2|1|potential\nstandby3|1|potential', 'asterisk in synchronous_standby_names', '*');

  // Stop and start standbys to rearrange the order of standbys in the WalSnd array.
  pg.stop('standby1');
  pg.stop('standby2');
  pg.stop('standby3');
  pg.start('standby2');
  pg.start('standby3');
  check('standby2|2|sync\nstandby3|3|sync', '2 synchronous standbys', '2(standby1,standby2,standby3)');

  pg.start('standby1');
  pg.start('standby4');
  check('standby1|1|sync\nstandby2|2|sync\nstandby3|3|potential\nstandby4|0|async', '2 sync, 1 potential, and 1 async');
  check('standby1|0|async\nstandby2|4|sync\nstandby3|3|sync\nstandby4|1|sync', 'num_sync exceeds the num of potential sync standbys', '6(standby4,standby0,standby3,standby2)');
  check('standby1|1|sync\nstandby2|2|sync\nstandby3|2|potential\nstandby4|2|potential', 'asterisk before another standby name', '2(standby1,*,standby2)');
  check('standby1|1|potential\nstandby2|1|sync\nstandby3|1|sync\nstandby4|1|potential', 'multiple standbys having the same priority are chosen as sync', '2(*)');

  // Stop standby3, which is in 'sync' state: standby1 (earlier in the array than standby4) takes its place.
  pg.stop('standby3');
  check('standby1|1|sync\nstandby2|1|sync\nstandby4|1|potential', 'potential standby found earlier in array is promoted to sync');
  check('standby1|1|sync\nstandby2|2|sync\nstandby4|0|async', 'priority-based sync replication specified by FIRST keyword', 'FIRST 2(standby1, standby2)');
  check('standby1|1|quorum\nstandby2|1|quorum\nstandby4|0|async', '2 quorum and 1 async', 'ANY 2(standby1, standby2)');

  // standby3 comes back and is a quorum member.
  pg.start('standby3');
  check('standby1|1|quorum\nstandby2|1|quorum\nstandby3|1|quorum\nstandby4|1|quorum', 'all standbys are considered as candidates for quorum sync standbys', 'ANY 2(*)');
});

test('a returning synchronous standby is potential until it streams; a standby without a flush position is async', () => {
  const pg = new Sim();
  pg.set('FIRST 1 (s1, s2)');
  pg.start('s1');
  pg.start('s2');
  assert.equal(pg.rows(), 's1|1|sync\ns2|2|potential');
  // The synchronous standby fails: the next potential one takes its place.
  pg.stop('s1');
  assert.equal(pg.rows(), 's2|2|sync');
  // s1 reconnects: while catching up it is listed but not a candidate.
  pg.start('s1', { stream: false });
  assert.equal(pg.rows(), 's1|1|potential\ns2|2|sync');
  pg.stream('s1');
  assert.equal(pg.rows(), 's1|1|sync\ns2|2|potential');
  // A client that reports no flush position (pg_receivewal without --slot/--synchronous) is async.
  pg.start('s0', { flush: 0 });
  pg.set('s0, s1');
  assert.equal(pg.rows(), 's0|0|async\ns1|2|sync\ns2|0|async');
  // Empty setting: everyone async.
  pg.set('');
  assert.equal(pg.rows(), 's0|0|async\ns1|0|async\ns2|0|async');
});

test('synced positions: FIRST = minimum over the chosen, ANY = k-th largest per position', () => {
  const s = (slot: number, name: string, write: number, flush: number, apply: number, extra: Partial<SyncSenderState> = {}): SyncSenderState => ({
    slot, id: slot + 1, applicationName: name, stateName: 'streaming', write, flush, apply, ...extra,
  });
  const senders = [
    s(0, 'a', 500, 400, 300),
    s(1, 'b', 900, 800, 100),
    s(2, 'c', 700, 600, 650, { receive: 950 }),
    s(3, 'd', 1000, 1000, 1000, { stateName: 'catchup' }),
  ];
  // FIRST 2 (a, b, c): a and b chosen; minimum of each position.
  assert.deepEqual(syncedPositions(parseSynchronousStandbyNames('FIRST 2 (a, b, c)'), senders), { receive: 500, write: 500, flush: 400, apply: 100 });
  // FIRST 2 (c, b): c and b; c reports a receive position ahead of its write.
  assert.deepEqual(syncedPositions(parseSynchronousStandbyNames('FIRST 2 (c, b)'), senders), { receive: 900, write: 700, flush: 600, apply: 100 });
  // ANY 2 (a, b, c): second largest of each position separately.
  assert.deepEqual(syncedPositions(parseSynchronousStandbyNames('ANY 2 (a, b, c)'), senders), { receive: 900, write: 700, flush: 600, apply: 300 });
  // ANY 1 (*): the largest; d does not count while catching up.
  assert.deepEqual(syncedPositions(parseSynchronousStandbyNames('ANY 1 (*)'), senders), { receive: 950, write: 900, flush: 800, apply: 650 });
  // Not enough candidates: nothing is synced.
  assert.equal(syncedPositions(parseSynchronousStandbyNames('FIRST 2 (a, d)'), senders), null);
  assert.equal(syncedPositions(parseSynchronousStandbyNames('ANY 4 (*)'), senders), null);
  assert.equal(syncedPositions(null, senders), null);
  // am_sync: only a chosen walsender's reply releases waiters.
  const c = parseSynchronousStandbyNames('FIRST 1 (a, b)');
  assert.equal(syncedPositions(c, senders, 1), null);
  assert.deepEqual(syncedPositions(c, senders, 0), { receive: 500, write: 500, flush: 400, apply: 300 });
  assert.deepEqual(candidateStandbys(c, senders).map((x) => x.applicationName), ['a']);
  // stopping counts; free slots and flush 0 do not.
  const more = [s(0, 'a', 10, 10, 10, { stateName: 'stopping' }), s(1, 'b', 20, 0, 0), s(2, 'c', 30, 30, 30, { id: 0 })];
  assert.deepEqual(candidateStandbys(parseSynchronousStandbyNames('ANY 1 (*)'), more).map((x) => x.applicationName), ['a']);
});
