// Framing of the v3 protocol (src/replication/protocol/frames.ts): every way of cutting a byte
// stream into chunks gives the same messages, whole-in-one-chunk bodies come back as views (no
// copy), every length limit is enforced before allocating, and startup packets are parsed with
// PostgreSQL's exact FATAL errors. In-process only: no sockets, files or threads.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  BackendDecoder,
  FrameDecoder,
  FrontendDecoder,
  MAX_AUTH_MESSAGE_BYTES,
  SMALL_MESSAGE_LIMIT_BYTES,
  SPLIT_MIN_BODY_BYTES,
  UNTYPED,
  type Frame,
} from '../src/replication/protocol/frames.js';
import { WalstreamError } from '../src/errors.js';
import {
  encodeCancelRequest,
  encodeCommandComplete,
  encodeCopyData,
  encodeDataRow,
  encodeGSSENCRequest,
  encodeQuery,
  encodeReadyForQuery,
  encodeSSLRequest,
  encodeStartupMessage,
  encodeTerminate,
} from '../src/replication/protocol/messages.js';

function msg(type: string, body: Uint8Array | string): Buffer {
  const b = typeof body === 'string' ? Buffer.from(body, 'latin1') : Buffer.from(body);
  const out = Buffer.alloc(5 + b.length);
  out.write(type, 0, 'latin1');
  out.writeInt32BE(4 + b.length, 1);
  b.copy(out, 5);
  return out;
}

function drain(d: { next(): Frame | null }): Frame[] {
  const out: Frame[] = [];
  for (let f = d.next(); f !== null; f = d.next()) out.push({ type: f.type, body: Buffer.from(f.body) });
  return out;
}

function expectErr(fn: () => unknown, sqlstate: string, message: RegExp | string): WalstreamError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof WalstreamError, `expected a WalstreamError, got ${String(caught)}`);
  assert.equal(caught.sqlstate, sqlstate);
  if (typeof message === 'string') assert.equal(caught.message, message);
  else assert.match(caught.message, message);
  return caught;
}

const stream = Buffer.concat([
  msg('T', Buffer.alloc(0)),
  encodeDataRow(['abc', null, 'x'.repeat(300)]),
  encodeCopyData(Buffer.alloc(1000, 7)),
  encodeCommandComplete('IDENTIFY_SYSTEM'),
  encodeReadyForQuery('I'),
]);

test('backend decoder: same messages for every split into two and three chunks', () => {
  const whole = new BackendDecoder();
  whole.push(stream);
  const expected = drain(whole);
  assert.equal(expected.length, 5);
  assert.deepEqual(expected.map((f) => String.fromCharCode(f.type)), ['T', 'D', 'd', 'C', 'Z']);
  for (let i = 0; i <= stream.length; i++) {
    const d = new BackendDecoder();
    const got: Frame[] = [];
    d.push(stream.subarray(0, i));
    got.push(...drain(d));
    d.push(stream.subarray(i));
    got.push(...drain(d));
    assert.deepEqual(got, expected, `split at ${i}`);
    assert.equal(d.bufferedBytes, 0);
    assert.equal(d.finish(), null);
  }
  // three chunks, with a stride to keep this quick
  for (let i = 0; i <= stream.length; i += 7) {
    for (let j = i; j <= stream.length; j += 13) {
      const d = new BackendDecoder();
      const got: Frame[] = [];
      for (const part of [stream.subarray(0, i), stream.subarray(i, j), stream.subarray(j)]) {
        d.push(part);
        got.push(...drain(d));
      }
      assert.deepEqual(got, expected, `split at ${i}, ${j}`);
    }
  }
});

test('backend decoder: one byte at a time', () => {
  const d = new BackendDecoder();
  const got: Frame[] = [];
  for (const b of stream) {
    d.push(Uint8Array.of(b));
    got.push(...drain(d));
  }
  const whole = new BackendDecoder();
  whole.push(stream);
  assert.deepEqual(got, drain(whole));
});

test('a body wholly inside one chunk is a view of that chunk, a split one is a fresh copy', () => {
  const d = new BackendDecoder();
  const chunk = Buffer.concat([encodeCopyData(Buffer.from('hello')), encodeCopyData(Buffer.from('world'))]);
  d.push(chunk);
  const f1 = d.next()!;
  assert.equal(f1.body.buffer, chunk.buffer, 'zero-copy view');
  assert.equal(Buffer.from(f1.body).toString(), 'hello');
  const f2 = d.next()!;
  assert.equal(f2.body.buffer, chunk.buffer);
  // split across chunks: assembled into an exact-size buffer
  const m = encodeCopyData(Buffer.alloc(100, 1));
  d.push(m.subarray(0, 50));
  assert.equal(d.next(), null);
  d.push(m.subarray(50));
  const f3 = d.next()!;
  assert.equal(f3.body.length, 100);
  assert.notEqual(f3.body.buffer, m.buffer);
  assert.equal(f3.body.buffer.byteLength, 100, 'allocated exactly the validated length');
});

test('COPY OUT split: a large CopyData spanning chunks comes in parts (views, never empty, first/last marked), everything else whole', () => {
  const big = Buffer.alloc(SPLIT_MIN_BODY_BYTES * 3 + 17);
  for (let i = 0; i < big.length; i++) big[i] = (i * 131) & 0xff;
  const small = Buffer.alloc(SPLIT_MIN_BODY_BYTES - 1, 3); // below the split size: assembled whole
  const wire = Buffer.concat([encodeCopyData(big), encodeCopyData(small), msg('c', ''), encodeCopyData(big)]);
  for (const cut of [1, 5, 6, 4096, SPLIT_MIN_BODY_BYTES + 3, 65536]) {
    const d = new BackendDecoder();
    d.splitCopyData(true);
    const frames: Frame[] = [];
    for (let off = 0; off < wire.length; off += cut) {
      const chunk = wire.subarray(off, off + cut);
      d.push(chunk);
      for (let f = d.next(); f !== null; f = d.next()) {
        if (f.part) assert.equal(f.body.buffer, chunk.buffer, 'a part is a view of the chunk');
        frames.push({ type: f.type, body: Buffer.from(f.body), ...(f.part ? { part: f.part } : {}) });
      }
    }
    assert.equal(d.finish(), null);
    // Rebuild the messages from their parts.
    const msgs: { type: number; body: Buffer; parts: number }[] = [];
    let open: { type: number; chunks: Buffer[] } | null = null;
    for (const f of frames) {
      if (!f.part) {
        assert.equal(open, null, 'a whole frame inside a split one');
        msgs.push({ type: f.type, body: f.body as Buffer, parts: 0 });
        continue;
      }
      assert.ok(f.body.length > 0, 'no empty part');
      assert.equal(f.part.first, open === null, `cut ${cut}: first marks the first part only`);
      if (open === null) open = { type: f.type, chunks: [] };
      open.chunks.push(f.body as Buffer);
      if (f.part.last) {
        msgs.push({ type: open.type, body: Buffer.concat(open.chunks), parts: open.chunks.length });
        open = null;
      }
    }
    assert.equal(open, null);
    assert.deepEqual(msgs.map((m) => String.fromCharCode(m.type)), ['d', 'd', 'c', 'd']);
    assert.ok(msgs[0]!.body.equals(big) && msgs[3]!.body.equals(big), `cut ${cut}: the parts are the body`);
    // Spanning chunks: in parts; wholly inside one chunk: one whole view as always.
    if (cut < big.length) assert.ok(msgs[0]!.parts >= 2, `cut ${cut}: split`);
    else assert.equal(msgs[0]!.parts, 0, `cut ${cut}: whole`);
    assert.ok(msgs[1]!.body.equals(small) && msgs[1]!.parts === 0, `cut ${cut}: a small body is whole`);
  }
  // Off (the default, and COPY BOTH's XLogData): whole messages only.
  const d = new BackendDecoder();
  for (let off = 0; off < wire.length; off += 4096) d.push(wire.subarray(off, off + 4096));
  const whole = drain(d);
  assert.deepEqual(whole.map((f) => f.body.length), [big.length, small.length, 0, big.length]);
  // A stream that ends inside a split body is truncated.
  const t = new BackendDecoder();
  t.splitCopyData(true);
  t.push(encodeCopyData(big).subarray(0, 20_000));
  assert.ok(t.next()!.part!.first);
  assert.equal(t.next(), null);
  assert.ok(t.finish() instanceof WalstreamError);
});

test('length word below 4 is a protocol violation, and it poisons the decoder', () => {
  const d = new BackendDecoder();
  d.push(Buffer.from([0x44, 0, 0, 0, 3]));
  expectErr(() => d.next(), '08P01', /invalid message length 3/);
  d.push(encodeReadyForQuery('I'));
  expectErr(() => d.next(), '08P01', /invalid message length 3/);
});

test('oversized length word is rejected before anything is allocated', () => {
  const d = new BackendDecoder({ maxMessageBytes: 1000 });
  d.push(Buffer.from([0x64, 0x7f, 0xff, 0xff, 0xff])); // claims 2 GiB
  expectErr(() => d.next(), '08P01', /exceeds maxMessageBytes \(1000\)/);
  const ok = new BackendDecoder({ maxMessageBytes: 1000 });
  ok.push(encodeCopyData(Buffer.alloc(996)));
  assert.equal(ok.next()!.body.length, 996);
  const over = new BackendDecoder({ maxMessageBytes: 1000 });
  over.push(encodeCopyData(Buffer.alloc(997)).subarray(0, 5));
  expectErr(() => over.next(), '08P01', /length 1001 exceeds/);
  assert.throws(() => new BackendDecoder({ maxMessageBytes: 3 }), /maxMessageBytes/);
});

test('a length that lies (longer than what follows) waits, and the end of input reports truncation', () => {
  const d = new BackendDecoder();
  const m = msg('C', 'IDENTIFY_SYSTEM\0');
  m.writeInt32BE(200, 1); // claims more bytes than will ever come
  d.push(m);
  assert.equal(d.next(), null);
  const err = d.finish();
  assert.ok(err instanceof WalstreamError);
  assert.equal(err.sqlstate, '08P01');
  // truncated header
  const h = new BackendDecoder();
  h.push(Buffer.from([0x5a, 0, 0]));
  assert.equal(h.next(), null);
  assert.ok(h.finish() instanceof WalstreamError);
  // a length that is too short splits the stream at the wrong place: the next "type" is garbage
  const s = new FrontendDecoder();
  s.phase = 'normal';
  const q = encodeQuery('IDENTIFY_SYSTEM');
  q.writeInt32BE(8, 1);
  s.push(q);
  const f = s.next()!;
  assert.equal(Buffer.from(f.body).toString('latin1'), 'IDEN');
  expectErr(() => s.next(), '08P01', 'invalid message length'); // "TIFY" read as a huge length
});

test('frontend decoder: per-phase limits like PostgreSQL (auth 65535, small messages 10000, others maxMessageBytes)', () => {
  const auth = new FrontendDecoder();
  auth.phase = 'auth';
  auth.push(msg('p', Buffer.alloc(MAX_AUTH_MESSAGE_BYTES - 4)));
  assert.equal(auth.next()!.body.length, MAX_AUTH_MESSAGE_BYTES - 4);
  auth.push(msg('p', Buffer.alloc(MAX_AUTH_MESSAGE_BYTES - 3)).subarray(0, 5));
  expectErr(() => auth.next(), '08P01', 'invalid message length');

  const normal = new FrontendDecoder({ maxMessageBytes: 1 << 20 });
  normal.phase = 'normal';
  normal.push(Buffer.from([0x58, 0, 0, (SMALL_MESSAGE_LIMIT_BYTES + 1) >> 8, (SMALL_MESSAGE_LIMIT_BYTES + 1) & 0xff])); // X with a big length
  expectErr(() => normal.next(), '08P01', 'invalid message length');
  const q = new FrontendDecoder({ maxMessageBytes: 1 << 20 });
  q.phase = 'normal';
  q.push(encodeQuery('x'.repeat(50_000)));
  assert.equal(q.next()!.body.length, 50_001);
  q.push(Buffer.from([0x51, 0, 0x10, 0, 1])); // Q of 1 MiB + 1
  expectErr(() => q.next(), '08P01', 'invalid message length');

  const copy = new FrontendDecoder({ maxMessageBytes: 1 << 20 });
  copy.phase = 'copy';
  copy.push(encodeCopyData(Buffer.alloc(20_000)));
  assert.equal(copy.next()!.body.length, 20_000);
  copy.push(Buffer.from([0x63, 0, 0, 0x27, 0x11])); // CopyDone claiming 10001 bytes
  expectErr(() => copy.next(), '08P01', 'invalid message length');
  assert.throws(() => new FrontendDecoder({ maxMessageBytes: 2 ** 31 }), /maxMessageBytes/);
});

test('startup packets: SSLRequest, GSSENCRequest, CancelRequest, StartupMessage, chunked arbitrarily', () => {
  const bytes = Buffer.concat([
    encodeSSLRequest(),
    encodeGSSENCRequest(),
    encodeStartupMessage({ user: 'postgres', database: 'replication', replication: 'true', application_name: 'walreceiver' }),
    encodeQuery('IDENTIFY_SYSTEM'),
    encodeTerminate(),
  ]);
  assert.deepEqual([...encodeSSLRequest()], [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);
  for (const chunkSize of [1, 2, 3, 5, 8, 13, 64, bytes.length]) {
    const d = new FrontendDecoder();
    const kinds: string[] = [];
    const frames: string[] = [];
    for (let i = 0; i < bytes.length; i += chunkSize) {
      d.push(bytes.subarray(i, i + chunkSize));
      for (;;) {
        if (d.phase === 'startup') {
          const p = d.nextStartupPacket();
          if (p === null) break;
          kinds.push(p.kind);
          if (p.kind === 'StartupMessage') {
            assert.equal(p.user, 'postgres');
            assert.equal(p.database, '', 'physical walsender: database ignored');
            assert.equal(p.replication, 'physical');
            assert.equal(p.params.get('application_name'), 'walreceiver');
            assert.equal(p.needsNegotiation, false);
            assert.equal(d.phase, 'auth');
          }
        } else {
          const f = d.next();
          if (f === null) break;
          frames.push(String.fromCharCode(f.type));
        }
      }
    }
    assert.deepEqual(kinds, ['SSLRequest', 'GSSENCRequest', 'StartupMessage'], `chunk ${chunkSize}`);
    assert.deepEqual(frames, ['Q', 'X'], `chunk ${chunkSize}`);
  }
  const c = new FrontendDecoder();
  c.push(encodeCancelRequest(3422, -866083920));
  assert.deepEqual(c.nextStartupPacket(), { kind: 'CancelRequest', processId: 3422, secretKey: -866083920 });
});

test('startup packets: exact FATAL errors', () => {
  const parse = (b: Buffer) => {
    const d = new FrontendDecoder();
    d.push(b);
    return d.nextStartupPacket();
  };
  // no user
  expectErr(() => parse(encodeStartupMessage({ database: 'x', replication: 'true' })), '28000', 'no PostgreSQL user name specified in startup packet');
  expectErr(() => parse(encodeStartupMessage({ user: '', replication: 'true' })), '28000', 'no PostgreSQL user name specified in startup packet');
  // no final terminator
  const noTerm = encodeStartupMessage({ user: 'u', replication: 'true' });
  const cut = Buffer.from(noTerm.subarray(0, noTerm.length - 1));
  cut.writeInt32BE(cut.length, 0);
  expectErr(() => parse(cut), '08P01', 'invalid startup packet layout: expected terminator as last byte');
  // bad replication value
  const e = expectErr(() => parse(encodeStartupMessage({ user: 'u', replication: 'maybe' })), '22023', 'invalid value for parameter "replication": "maybe"');
  assert.equal(e.hint, 'Valid values are: "false", 0, "true", 1, "database".');
  // lengths: below 8 or above 10004
  expectErr(() => parse(Buffer.from([0, 0, 0, 4, 0, 0, 0, 0])), '08P01', 'invalid length of startup packet');
  expectErr(() => parse(Buffer.from('hello world garbage\r\n')), '08P01', 'invalid length of startup packet');
  const big = Buffer.alloc(8);
  big.writeInt32BE(10_005, 0);
  expectErr(() => parse(big), '08P01', 'invalid length of startup packet');
  // replication values and database defaulting
  for (const [v, want] of [['on', 'physical'], ['1', 'physical'], ['yes', 'physical'], ['false', 'none'], ['database', 'logical']] as const) {
    const p = parse(encodeStartupMessage({ user: 'u', replication: v }));
    assert.ok(p && p.kind === 'StartupMessage');
    assert.equal(p.replication, want);
    if (want !== 'physical') assert.equal(p.database, 'u', 'database defaults to the user');
  }
  // names longer than 63 bytes are truncated
  const long = parse(encodeStartupMessage({ user: 'x'.repeat(80), replication: 'true' }));
  assert.ok(long && long.kind === 'StartupMessage');
  assert.equal(long.user, 'x'.repeat(63));
});

test('startup packets: protocol versions', () => {
  const withVersion = (v: number, params: Record<string, string>) => {
    const b = encodeStartupMessage(params);
    b.writeInt32BE(v, 4);
    const d = new FrontendDecoder();
    d.push(b);
    return d.nextStartupPacket();
  };
  const v2 = withVersion(0x0002_0000, { user: 'u' });
  assert.ok(v2 && v2.kind === 'UnsupportedProtocol');
  assert.equal(v2.error.message, 'unsupported frontend protocol 2.0: server supports 3.0 to 3.0');
  assert.equal(v2.error.sqlstate, '0A000');
  const v31 = withVersion(0x0003_0001, { user: 'u', replication: 'true', '_pq_.bar': 'y' });
  assert.ok(v31 && v31.kind === 'StartupMessage');
  assert.equal(v31.needsNegotiation, true);
  assert.deepEqual(v31.unrecognizedProtocolOptions, ['_pq_.bar']);
  // a second SSLRequest is not a special packet any more: protocol 1234.5679
  const d = new FrontendDecoder();
  d.push(Buffer.concat([encodeSSLRequest(), encodeSSLRequest()]));
  assert.equal(d.nextStartupPacket()!.kind, 'SSLRequest');
  const again = d.nextStartupPacket();
  assert.ok(again && again.kind === 'UnsupportedProtocol');
  assert.equal(again.error.message, 'unsupported frontend protocol 1234.5679: server supports 3.0 to 3.0');
});

test('FrameDecoder untyped mode and nextByte', () => {
  const d = new FrameDecoder({ typed: false, checkLength: () => undefined });
  d.push(Buffer.from([0, 0, 0, 6, 0xab]));
  assert.equal(d.next(), null);
  d.push(Buffer.from([0xcd, 0x4e]));
  const f = d.next()!;
  assert.equal(f.type, UNTYPED);
  assert.deepEqual([...f.body], [0xab, 0xcd]);
  assert.equal(d.nextByte(), 0x4e);
  assert.equal(d.nextByte(), null);
  assert.ok(d.idle);
});

test('hundreds of thousands of 1-byte chunks held, then drained in linear time', () => {
  const one = encodeCopyData(Buffer.alloc(995, 1)); // 1000 bytes
  const all = Buffer.concat(Array.from({ length: 300 }, () => one));
  const d = new BackendDecoder();
  const t0 = performance.now();
  for (let i = 0; i < all.length; i++) d.push(all.subarray(i, i + 1));
  assert.equal(d.bufferedBytes, 300_000);
  let n = 0;
  for (let f = d.next(); f !== null; f = d.next()) {
    assert.equal(f.body.length, 995);
    n++;
  }
  assert.equal(n, 300);
  assert.equal(d.bufferedBytes, 0);
  assert.ok(performance.now() - t0 < 5000, 'no quadratic behaviour');
});
