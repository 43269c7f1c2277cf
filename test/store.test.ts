// SharedStore correctness: a random workload checked against a plain in-memory model (gets,
// scans with every bound combination, reverse, limit), digests, value decoding, validation,
// memory reuse and all-or-nothing storeFull.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Packr, unpack } from 'msgpackr';
import { SharedStore, type ScanOptions, type StoreOp } from '../src/storage/store.js';
import { WalstreamError } from '../src/errors.js';
import { prng as rng } from './helpers/prng.js';

const packr = new Packr({ useRecords: false });
const enc = new TextEncoder();


interface ModelEntry {
  key: Uint8Array;
  isString: boolean;
  value: Uint8Array;
}
type Model = Map<string, Map<string, ModelEntry>>;

/** msgpackr caches a DataView on the array it decodes: decode a copy to keep model bytes clean. */
const dec = (b: Uint8Array) => unpack(b.slice());
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const cmp = (a: Uint8Array, b: Uint8Array) => Buffer.compare(a, b);

function applyModel(model: Model, ops: StoreOp[]): void {
  for (const op of ops) {
    let t = model.get(op.table);
    if (t !== undefined) sortedCache.delete(t);
    if (op.kind === 'put') {
      if (t === undefined) model.set(op.table, (t = new Map()));
      t.set(hex(op.key), { key: op.key, isString: op.keyIsString, value: new Uint8Array(op.value!) });
    } else if (t !== undefined) {
      t.delete(hex(op.key));
      if (t.size === 0) model.delete(op.table);
    }
  }
}

const sortedCache = new WeakMap<Map<string, ModelEntry>, ModelEntry[]>();
function sorted(model: Model, table: string): ModelEntry[] {
  const t = model.get(table);
  if (t === undefined) return [];
  let rows = sortedCache.get(t);
  if (rows === undefined) sortedCache.set(t, (rows = [...t.values()].sort((a, b) => cmp(a.key, b.key))));
  return rows;
}

function keyOut(e: ModelEntry): string | Uint8Array {
  return e.isString ? Buffer.from(e.key).toString('utf8') : e.key;
}

function expectScan(model: Model, table: string, o: ScanOptions): Array<{ key: string | Uint8Array; value: unknown }> {
  const b = (v: string | Uint8Array | undefined) => (v === undefined ? undefined : typeof v === 'string' ? enc.encode(v) : v);
  const gt = b(o.gt), gte = b(o.gte), lt = b(o.lt), lte = b(o.lte);
  let rows = sorted(model, table).filter(
    (e) =>
      (gt === undefined || cmp(e.key, gt) > 0) &&
      (gte === undefined || cmp(e.key, gte) >= 0) &&
      (lt === undefined || cmp(e.key, lt) < 0) &&
      (lte === undefined || cmp(e.key, lte) <= 0),
  );
  if (o.reverse) rows = [...rows].reverse();
  if (o.limit !== undefined) rows = rows.slice(0, o.limit);
  return rows.map((e) => ({ key: keyOut(e), value: dec(e.value) }));
}

function randomKey(r: () => number): { key: Uint8Array; isString: boolean } {
  const kind = r();
  if (kind < 0.45) {
    // strings with shared prefixes, some non-ASCII
    const n = Math.floor(r() * 2000);
    const s = `user:${(n % 7).toString()}:${n}${r() < 0.1 ? 'é€' : ''}`;
    return { key: enc.encode(s), isString: true };
  }
  if (kind < 0.9) {
    // short binary keys with 0x00/0xff bytes, including prefixes of each other
    const len = Math.floor(r() * 7);
    const k = new Uint8Array(len);
    for (let i = 0; i < len; i++) k[i] = r() < 0.3 ? 0 : r() < 0.3 ? 255 : Math.floor(r() * 4);
    return { key: k, isString: false };
  }
  // long keys equal in their first 4 bytes (comparison past the prefix, a word at a time):
  // few distinct byte values, high bytes included, so keys share long prefixes
  const len = 4 + Math.floor(r() * 300);
  const k = new Uint8Array(len);
  k.set([1, 2, 3, 4]);
  const bytes = [0, 1, 0x7f, 0x80, 0xff];
  for (let i = 4; i < len; i++) k[i] = r() < 0.8 ? bytes[i % 5]! : bytes[Math.floor(r() * 5)]!;
  return { key: k, isString: false };
}

function randomValue(r: () => number, i: number): Uint8Array {
  const x = r();
  let v: unknown;
  if (x < 0.002) v = { big: 'z'.repeat(1 << 20), i }; // > 1 MiB
  else if (x < 0.05) v = { s: 'long string '.repeat(20 + Math.floor(r() * 200)), i };
  else if (x < 0.1) v = { bin: new Uint8Array(Math.floor(r() * 300)).fill(i & 255), nested: { a: [1, 'two', { three: 3 }] } };
  else v = { i, n: Math.floor(r() * 1e9), s: 'v'.repeat(Math.floor(r() * 40)) };
  return new Uint8Array(packr.pack(v)); // plain Uint8Array so decoded binaries compare equal
}

function randomBound(r: () => number, model: Model, table: string): string | Uint8Array {
  const rows = sorted(model, table);
  if (rows.length > 0 && r() < 0.6) {
    const e = rows[Math.floor(r() * rows.length)]!;
    return r() < 0.5 ? keyOut(e) : e.key;
  }
  return randomKey(r).key;
}

test('random workload matches an in-memory model (gets, scans, digests)', () => {
  const r = rng(Number(process.env.STORE_TEST_SEED ?? 12345)); // STORE_TEST_SEED=n to explore
  const store = SharedStore.create({ initialBytes: 1 << 16, maxStoreBytes: 256 << 20 });
  const twin = SharedStore.create();
  const model: Model = new Map();
  const tables = ['alpha', 'beta', 'gamma', 'δέλτα'];
  let seq = 0;
  for (let round = 0; round < 400; round++) {
    const ops: StoreOp[] = [];
    const nops = 1 + Math.floor(r() * (round % 10 === 0 ? 200 : 12));
    for (let i = 0; i < nops; i++) {
      const table = tables[Math.floor(r() * tables.length)]!;
      const { key, isString } = randomKey(r);
      if (r() < 0.7) ops.push({ kind: 'put', table, key, keyIsString: isString, value: randomValue(r, seq++) });
      else {
        // delete mostly existing keys
        const rows = sorted(model, table);
        const k = rows.length > 0 && r() < 0.8 ? rows[Math.floor(r() * rows.length)]!.key : key;
        ops.push({ kind: 'delete', table, key: k, keyIsString: false });
      }
    }
    store.applyTransaction(ops);
    twin.applyTransaction(ops);
    applyModel(model, ops);

    if (round % 20 === 0) store.checkInvariants();
    // point reads
    for (const table of tables) {
      const rows = sorted(model, table);
      assert.equal(store.count(table), rows.length);
      for (let i = 0; i < 5 && rows.length > 0; i++) {
        const e = rows[Math.floor(r() * rows.length)]!;
        assert.deepEqual(store.getRaw(table, e.key), e.value);
        assert.deepEqual(store.get(table, keyOut(e)), dec(e.value));
      }
      const missing = randomKey(r).key;
      assert.deepEqual(store.get(table, missing), model.get(table)?.get(hex(missing)) === undefined ? undefined : dec(model.get(table)!.get(hex(missing))!.value));
    }
    // scans with every bound combination
    const table = tables[round % tables.length]!;
    for (const lo of ['none', 'gt', 'gte'] as const) {
      for (const hi of ['none', 'lt', 'lte'] as const) {
        const o: ScanOptions = {};
        if (lo !== 'none') o[lo] = randomBound(r, model, table);
        if (hi !== 'none') o[hi] = randomBound(r, model, table);
        if (r() < 0.5) o.reverse = true;
        if (r() < 0.3) o.limit = Math.floor(r() * 20);
        assert.deepEqual(store.scan(table, o), expectScan(model, table, o), `scan ${JSON.stringify(o)}`);
      }
    }
  }
  store.checkInvariants();
  const expectTables = [...model.keys()].sort((a, b) => cmp(enc.encode(a), enc.encode(b)));
  assert.deepEqual(store.tables(), expectTables);
  assert.equal(store.count(), [...model.values()].reduce((s, t) => s + t.size, 0));
  for (const t of tables) assert.deepEqual(store.scan(t), expectScan(model, t, {}));
  // readConsistent sees the same thing
  store.readConsistent((v) => {
    for (const t of tables) {
      assert.equal(v.count(t), model.get(t)?.size ?? 0);
      assert.deepEqual(v.scan(t, { reverse: true, limit: 5 }), expectScan(model, t, { reverse: true, limit: 5 }));
    }
  });

  // equal stores => equal digests; one differing op => different digest
  assert.equal(store.digest(), twin.digest());
  const some = sorted(model, 'alpha')[0]!;
  twin.applyTransaction([{ kind: 'put', table: 'alpha', key: some.key, keyIsString: !some.isString, value: some.value }]);
  assert.notEqual(store.digest(), twin.digest(), 'key-is-string flag is part of the digest');
  twin.applyTransaction([{ kind: 'put', table: 'alpha', key: some.key, keyIsString: some.isString, value: some.value }]);
  assert.equal(store.digest(), twin.digest());
  twin.applyTransaction([{ kind: 'put', table: 'alpha', key: some.key, keyIsString: some.isString, value: packr.pack('other') }]);
  assert.notEqual(store.digest(), twin.digest());
});

test('digest is independent of history and of buffer layout', () => {
  const a = SharedStore.create({ initialBytes: 1 << 16 });
  const b = SharedStore.create();
  const ops: StoreOp[] = [];
  for (let i = 0; i < 3000; i++) ops.push({ kind: 'put', table: `t${i % 3}`, key: enc.encode(`k${i}`), keyIsString: true, value: packr.pack(i) });
  a.applyTransaction(ops);
  // b gets the same final state through a different history
  for (let i = ops.length - 1; i >= 0; i--) b.applyTransaction([{ ...ops[i]!, value: packr.pack('tmp') }]);
  b.applyTransaction([{ kind: 'put', table: 'gone', key: enc.encode('x'), keyIsString: true, value: packr.pack(1) }]);
  b.applyTransaction([{ kind: 'delete', table: 'gone', key: enc.encode('x'), keyIsString: true }]);
  b.applyTransaction(ops);
  assert.equal(a.digest(), b.digest());
  assert.deepEqual(b.tables(), ['t0', 't1', 't2'], 'a table whose last entry is deleted is dropped');
  assert.equal(SharedStore.create().digest(), '' + 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
});

test('values decode from shared memory: long strings, binary, nested, big', () => {
  const store = SharedStore.create();
  const values: unknown[] = [
    'x'.repeat(100_000),
    'ünïcødé '.repeat(5000),
    new Uint8Array(70_000).map((_, i) => i & 255),
    { a: { b: { c: [1, 2, { d: 'e'.repeat(300) }] } }, bin: new Uint8Array([1, 2, 3]), n: null, f: 1.5, big: -(2 ** 40) },
    [true, false, null, 'short'],
    { blob: 'q'.repeat(3 << 20) },
  ];
  store.applyTransaction(values.map((v, i) => ({ kind: 'put', table: 'v', key: enc.encode(`k${i}`), keyIsString: true, value: packr.pack(v) })));
  values.forEach((v, i) => assert.deepEqual(store.get('v', `k${i}`), v));
  // binary results are copies, not views into the store's memory
  const bin = store.get('v', 'k2') as Uint8Array;
  assert.ok(!(bin.buffer instanceof SharedArrayBuffer));
  store.applyTransaction([{ kind: 'put', table: 'v', key: enc.encode('k2'), keyIsString: true, value: packr.pack('replaced') }]);
  assert.equal(bin[5], 5);
  const raw = store.getRaw('v', 'k3')!;
  assert.ok(!(raw.buffer instanceof SharedArrayBuffer));
  assert.deepEqual(unpack(raw), values[3]);
  // empty value bytes are allowed: getRaw gives them back, get gives undefined
  store.applyTransaction([{ kind: 'put', table: 'v', key: new Uint8Array(0), keyIsString: false, value: new Uint8Array(0) }]);
  assert.deepEqual(store.getRaw('v', new Uint8Array(0)), new Uint8Array(0));
  assert.equal(store.get('v', new Uint8Array(0)), undefined);
  assert.deepEqual(store.scan('v', { limit: 1 }), [{ key: new Uint8Array(0), value: undefined }]);
});

test('options, table names, keys, values and ops are validated precisely', () => {
  const bad = (f: () => unknown, code: string, re?: RegExp) =>
    assert.throws(f, (e: unknown) => e instanceof WalstreamError && e.code === code && (re === undefined || re.test(e.message)));
  bad(() => SharedStore.create({ maxStoreBytes: 2 ** 33 }), 'WS_INVALID_OPTION', /maxStoreBytes/);
  bad(() => SharedStore.create({ maxStoreBytes: 1000 }), 'WS_INVALID_OPTION', /maxStoreBytes/);
  bad(() => SharedStore.create({ initialBytes: 2 << 20, maxStoreBytes: 1 << 20 }), 'WS_INVALID_OPTION', /initialBytes/);
  bad(() => SharedStore.create({ maxValueBytes: 0 }), 'WS_INVALID_OPTION', /maxValueBytes/);
  bad(() => SharedStore.create({ maxValueBytes: 1.5 }), 'WS_INVALID_OPTION', /maxValueBytes/);
  const big = SharedStore.create({ initialBytes: 1 << 16, maxStoreBytes: 2 ** 32 });
  assert.equal(big.maxStoreBytes, 2 ** 32);
  assert.equal(big.stats().bytesReserved, 1 << 16);

  const s = SharedStore.create({ maxValueBytes: 1000 });
  const put = (table: string, key: Uint8Array, value: Uint8Array): StoreOp => ({ kind: 'put', table, key, keyIsString: false, value });
  bad(() => s.applyTransaction([put('', new Uint8Array(1), new Uint8Array(1))]), 'WS_INVALID_TABLE');
  bad(() => s.applyTransaction([put('t'.repeat(64), new Uint8Array(1), new Uint8Array(1))]), 'WS_INVALID_TABLE');
  bad(() => s.applyTransaction([put('é'.repeat(32), new Uint8Array(1), new Uint8Array(1))]), 'WS_INVALID_TABLE');
  s.applyTransaction([put('t'.repeat(63), new Uint8Array(1), new Uint8Array(1))]);
  bad(() => s.applyTransaction([put('t', new Uint8Array(4097), new Uint8Array(1))]), 'WS_INVALID_KEY');
  bad(() => s.applyTransaction([put('t', 'str' as unknown as Uint8Array, new Uint8Array(1))]), 'WS_INVALID_KEY');
  bad(() => s.applyTransaction([put('t', new Uint8Array(1), new Uint8Array(1001))]), 'WS_VALUE_TOO_LARGE');
  bad(() => s.applyTransaction([{ kind: 'put', table: 't', key: new Uint8Array(1), keyIsString: false }]), 'WS_INVALID_OPTION', /value/);
  bad(() => s.applyTransaction([{ kind: 'upsert' as 'put', table: 't', key: new Uint8Array(1), keyIsString: false }]), 'WS_INVALID_OPTION', /kind/);
  // a bad op anywhere rejects the whole transaction before anything is applied
  const before = s.digest();
  bad(() => s.applyTransaction([put('t', new Uint8Array([1]), new Uint8Array(1)), put('t', new Uint8Array(1), new Uint8Array(5000))]), 'WS_VALUE_TOO_LARGE');
  assert.equal(s.digest(), before);
  bad(() => s.get('', 'k'), 'WS_INVALID_TABLE');
  bad(() => s.get('t', 'k'.repeat(5000)), 'WS_INVALID_KEY');
  bad(() => s.scan('t', { gt: 'a', gte: 'b' }), 'WS_INVALID_OPTION', /gt/);
  bad(() => s.scan('t', { lt: 'a', lte: 'b' }), 'WS_INVALID_OPTION', /lt/);
  bad(() => s.scan('t', { limit: -1 }), 'WS_INVALID_OPTION', /limit/);
  assert.equal(s.get('nosuchtable', 'k'), undefined);
  assert.deepEqual(s.scan('nosuchtable'), []);
  assert.equal(s.count('nosuchtable'), 0);
  bad(() => SharedStore.attach({ buffer: new SharedArrayBuffer(4096), id: 1, layoutVersion: 1 }), 'WS_INVALID_OPTION');
  bad(() => SharedStore.attach({ ...s.handle, id: s.handle.id + 1 }), 'WS_INVALID_OPTION');
  // reads nest inside readConsistent (no second latch); writes there are refused
  s.applyTransaction([put('t', enc.encode('x'), packr.pack(1))]);
  assert.deepEqual(
    s.readConsistent((v) => s.readConsistent((w) => [v.get('t', 'x'), w.count('t'), s.get('t', 'x'), s.scan('t').length])),
    [1, 1, 1, 1],
  );
  bad(() => s.readConsistent(() => s.applyTransaction([put('t', enc.encode('y'), packr.pack(2))])), 'WS_OBJECT_IN_USE');
  bad(() => s.readConsistent(() => s.clear()), 'WS_OBJECT_IN_USE');
  assert.equal(s.get('t', 'y'), undefined);
  s.applyTransaction([put('t', enc.encode('y'), packr.pack(2))]); // the latch was released
  // a view escaping its readConsistent callback is refused
  let escaped: { get(t: string, k: string): unknown } | undefined;
  s.readConsistent((v) => (escaped = v));
  bad(() => escaped!.get('t', 'x'), 'WS_CLOSED');
});

test('attached stores see later tables and a grown buffer', () => {
  const s = SharedStore.create({ initialBytes: 1 << 16, maxStoreBytes: 64 << 20 });
  const other = SharedStore.attach(structuredClone(s.handle));
  assert.equal(other.count(), 0);
  const ops: StoreOp[] = [];
  for (let i = 0; i < 2000; i++) ops.push({ kind: 'put', table: `t${i % 5}`, key: enc.encode(`k${i}`), keyIsString: true, value: packr.pack({ i, pad: 'p'.repeat(500) }) });
  s.applyTransaction(ops);
  assert.ok(s.stats().bytesReserved > 1 << 16);
  assert.deepEqual(other.tables(), ['t0', 't1', 't2', 't3', 't4']);
  assert.deepEqual(other.get('t3', 'k1998'), { i: 1998, pad: 'p'.repeat(500) });
  assert.equal(other.digest(), s.digest());
  s.clear();
  assert.equal(other.count(), 0);
  assert.deepEqual(other.tables(), []);
  assert.equal(other.get('t3', 'k1998'), undefined);
});

test('memory is reused: overwrite/delete cycles keep bytesUsed bounded', () => {
  const s = SharedStore.create({ initialBytes: 1 << 20, maxStoreBytes: 64 << 20 });
  const base = s.stats().bytesUsed;
  const r = rng(7);
  let maxUsed = 0;
  let reservedAfterFirst = 0;
  for (let cycle = 0; cycle < 30; cycle++) {
    for (let step = 0; step < 5; step++) {
      const ops: StoreOp[] = [];
      for (let i = 0; i < 200; i++) {
        ops.push({ kind: 'put', table: 'reuse', key: enc.encode(`k${i}`), keyIsString: true, value: new Uint8Array(100 + Math.floor(r() * 20_000)) });
      }
      s.applyTransaction(ops);
    }
    maxUsed = Math.max(maxUsed, s.stats().bytesUsed);
    const del: StoreOp[] = [];
    for (let i = 0; i < 200; i++) del.push({ kind: 'delete', table: 'reuse', key: enc.encode(`k${i}`), keyIsString: true });
    s.applyTransaction(del);
    assert.equal(s.stats().bytesUsed, base, `cycle ${cycle}: everything freed`);
    if (cycle === 0) reservedAfterFirst = s.stats().bytesReserved;
  }
  // 200 live values of at most ~20 KiB (+25 % class rounding) plus old versions being replaced
  assert.ok(maxUsed < 200 * 25_000 * 1.1, `bytesUsed ${maxUsed}`);
  assert.ok(s.stats().bytesReserved <= reservedAfterFirst * 2, `buffer kept growing: ${s.stats().bytesReserved} vs ${reservedAfterFirst}`);
  s.checkInvariants();
});

test('storeFull leaves the store unchanged, and freed space is usable again', () => {
  const s = SharedStore.create({ initialBytes: 1 << 16, maxStoreBytes: 2 << 20, maxValueBytes: 1 << 20 });
  let i = 0;
  let full: unknown;
  for (;;) {
    const before = { digest: s.digest(), stats: s.stats(), commits: s.commits() };
    const ops: StoreOp[] = [];
    for (let j = 0; j < 5; j++, i++) ops.push({ kind: 'put', table: `t${i % 2}`, key: enc.encode(`key${i}`), keyIsString: true, value: packr.pack(new Uint8Array(30_000).fill(i & 255)) });
    ops.push({ kind: 'delete', table: 't0', key: enc.encode('key0'), keyIsString: true });
    try {
      s.applyTransaction(ops);
    } catch (e) {
      full = e;
      assert.equal(s.digest(), before.digest);
      assert.deepEqual(s.stats(), before.stats);
      assert.equal(s.commits(), before.commits);
      break;
    }
  }
  assert.ok(full instanceof WalstreamError && full.code === 'WS_STORE_FULL' && full.sqlstate === '53200', String(full));
  s.checkInvariants();
  const n = s.count();
  assert.ok(n > 40, `only ${n} entries fit`);
  // a single value too big for what is left also fails cleanly
  const d = s.digest();
  assert.throws(() => s.applyTransaction([{ kind: 'put', table: 'x', key: enc.encode('big'), keyIsString: true, value: new Uint8Array(900_000) }]), /store is full/);
  assert.equal(s.digest(), d);
  assert.deepEqual(s.tables(), ['t0', 't1']);
  // delete half; the freed blocks take new entries (bump space is exhausted)
  const rows = s.scan('t1');
  s.applyTransaction(rows.map((e) => ({ kind: 'delete' as const, table: 't1', key: enc.encode(e.key as string), keyIsString: true })));
  const ops: StoreOp[] = [];
  for (let j = 0; j < rows.length; j++) ops.push({ kind: 'put', table: 'again', key: enc.encode(`n${j}`), keyIsString: true, value: packr.pack(new Uint8Array(30_000)) });
  s.applyTransaction(ops);
  assert.equal(s.count('again'), rows.length);
  assert.ok(s.stats().bytesReserved <= 2 << 20);
  s.checkInvariants();
});

test('large tables: sequential and reverse-order loads, deletes down to empty', () => {
  const s = SharedStore.create();
  const N = 40_000;
  const key = (i: number) => {
    const k = new Uint8Array(4);
    new DataView(k.buffer).setUint32(0, i);
    return k;
  };
  for (let start = 0; start < N; start += 5000) {
    const ops: StoreOp[] = [];
    for (let i = start; i < start + 5000; i++) ops.push({ kind: 'put', table: 'seq', key: key(i), keyIsString: false, value: packr.pack(i) });
    s.applyTransaction(ops);
  }
  for (let i = N - 1; i >= 0; i -= 1000) {
    const ops: StoreOp[] = [];
    for (let j = i; j > i - 1000; j--) ops.push({ kind: 'put', table: 'rev', key: key(j), keyIsString: false, value: packr.pack(j) });
    s.applyTransaction(ops);
  }
  s.checkInvariants();
  assert.equal(s.count('seq'), N);
  assert.deepEqual(s.scan('seq', { gte: key(12345), limit: 3 }).map((e) => e.value), [12345, 12346, 12347]);
  assert.deepEqual(s.scan('rev', { lt: key(12345), limit: 3, reverse: true }).map((e) => e.value), [12344, 12343, 12342]);
  const all = s.scan('rev', { reverse: true });
  assert.equal(all.length, N);
  assert.equal(all[0]!.value, N - 1);
  // delete every other key, then the rest
  for (const parity of [0, 1]) {
    for (let start = 0; start < N; start += 4000) {
      const ops: StoreOp[] = [];
      for (let i = start + parity; i < start + 4000; i += 2) ops.push({ kind: 'delete', table: 'seq', key: key(i), keyIsString: false });
      s.applyTransaction(ops);
    }
    s.checkInvariants();
  }
  assert.equal(s.count('seq'), 0);
  assert.deepEqual(s.tables(), ['rev']);
  // sparse deletes: underfull leaves merge, so memory follows the live entries
  const before = s.stats().bytesUsed;
  for (let start = 0; start < N; start += 8000) {
    const ops: StoreOp[] = [];
    for (let i = start; i < start + 8000; i++) if (i % 20 !== 0) ops.push({ kind: 'delete', table: 'rev', key: key(i), keyIsString: false });
    s.applyTransaction(ops);
  }
  s.checkInvariants();
  assert.equal(s.count('rev'), N / 20);
  assert.ok(s.stats().bytesUsed < before * 0.25, `bytesUsed ${s.stats().bytesUsed} of ${before} after deleting 95 %`);
  assert.deepEqual(s.scan('rev', { gt: key(100), limit: 3 }).map((e) => e.value), [120, 140, 160]);
  assert.deepEqual(s.scan('rev', { lt: key(100), reverse: true }).map((e) => e.value), [80, 60, 40, 20, 0]);
});
