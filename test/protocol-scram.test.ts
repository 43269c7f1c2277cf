// Password authentication (src/replication/protocol/scram.ts): the SCRAM-SHA-256 transcript
// captured between psql and PostgreSQL 15 is recomputed from the password, salt and nonces; the MD5
// example likewise; the server exchange rejects what PostgreSQL's auth-scram.c rejects, with the
// same messages. In-process only.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WalstreamError } from '../src/errors.js';
import {
  ScramClientExchange,
  ScramServerExchange,
  makeScramSecret,
  makeScramVerifier,
  md5ClientResponse,
  md5PasswordHash,
  parseScramVerifier,
  passwordType,
  saslPrep,
  scramMockSalt,
  verifyCleartextPassword,
  verifyMd5Response,
} from '../src/replication/protocol/scram.js';

// Captured exchange, user scramu / password scrampass.
const CLIENT_NONCE = 'Cj0W/eGyfibb8RJEkOClMFUf';
const SERVER_NONCE = 'KTqt6S6+Djn8k1AZAJDcDbS9';
const SALT = 'YuC1fqcm1gsGc+GacUEUPA==';
const CLIENT_FIRST = `n,,n=,r=${CLIENT_NONCE}`;
const SERVER_FIRST = `r=${CLIENT_NONCE}${SERVER_NONCE},s=${SALT},i=4096`;
const CLIENT_FINAL = `c=biws,r=${CLIENT_NONCE}${SERVER_NONCE},p=EgTpqNO7ZUQ0kKe58ZHFShnujoRhbPQ8nnjEu2J9VDs=`;
const SERVER_FINAL = 'v=+MFyQWZKO/Y6GBcK+3FKaTdjTJiFocYXw6AjBD/b5Nc=';

const fixedRandom = (bytes: Buffer) => (n: number) => {
  assert.equal(n, bytes.length);
  return Buffer.from(bytes);
};

test('client side reproduces the captured transcript byte for byte', () => {
  const c = new ScramClientExchange({ password: 'scrampass', nonce: CLIENT_NONCE });
  assert.equal(c.clientFirstMessage().toString(), CLIENT_FIRST);
  assert.equal(c.handleServerFirst(Buffer.from(SERVER_FIRST)).toString(), CLIENT_FINAL);
  c.verifyServerFinal(Buffer.from(SERVER_FINAL));
  assert.ok(c.done);
});

test('server side reproduces the captured transcript from the stored verifier', () => {
  const verifier = makeScramVerifier('scrampass', { salt: Buffer.from(SALT, 'base64') });
  const secret = parseScramVerifier(verifier);
  assert.ok(secret);
  assert.equal(secret.iterations, 4096);
  assert.equal(secret.salt.toString('base64'), SALT);
  const s = new ScramServerExchange({ secret, randomBytes: fixedRandom(Buffer.from(SERVER_NONCE, 'base64')) });
  const first = s.step(Buffer.from(CLIENT_FIRST));
  assert.equal(first.kind, 'continue');
  assert.equal(first.kind === 'continue' && first.output.toString(), SERVER_FIRST);
  const fin = s.step(Buffer.from(CLIENT_FINAL));
  assert.equal(fin.kind, 'success');
  assert.equal(fin.kind === 'success' && fin.output.toString(), SERVER_FINAL);
  assert.ok(s.finished);
});

test('verifier format and parsing', () => {
  const v = makeScramVerifier('pw', { iterations: 4096, salt: Buffer.alloc(16, 1) });
  assert.match(v, /^SCRAM-SHA-256\$4096:AQEBAQEBAQEBAQEBAQEBAQ==\$[A-Za-z0-9+/]{43}=:[A-Za-z0-9+/]{43}=$/);
  assert.equal(passwordType(v), 'scram-sha-256');
  assert.equal(passwordType('md52f659ec838195dc2c71b05b333d58325'), 'md5');
  assert.equal(passwordType('hunter2'), 'plaintext');
  assert.equal(parseScramVerifier('SCRAM-SHA-256$0:AA==$AA==:AA=='), null);
  assert.equal(parseScramVerifier('SCRAM-SHA-256$4096:!!$x:y'), null);
  const random = makeScramVerifier('pw');
  assert.notEqual(random, makeScramVerifier('pw'), 'random salt each time');
  assert.ok(verifyCleartextPassword(random, 'u', 'pw'));
  assert.ok(!verifyCleartextPassword(random, 'u', 'pW'));
  assert.equal(makeScramSecret('pw', { iterations: 10, salt: Buffer.alloc(16) }).iterations, 10);
  assert.throws(() => makeScramSecret('pw', { iterations: 0 }), /iterations/);
});

test('MD5: the captured example', () => {
  const stored = md5PasswordHash('md5pass', 'md5u');
  assert.equal(stored, 'md52f659ec838195dc2c71b05b333d58325');
  const salt = Buffer.from('b4196e5b', 'hex');
  assert.equal(md5ClientResponse('md5pass', 'md5u', salt), 'md5c2711da65990aedde10846b0d1d3d123');
  assert.ok(verifyMd5Response(stored, 'md5c2711da65990aedde10846b0d1d3d123', salt));
  assert.ok(!verifyMd5Response(stored, 'md5c2711da65990aedde10846b0d1d3d124', salt));
  assert.ok(!verifyMd5Response(makeScramVerifier('md5pass'), 'md5c2711da65990aedde10846b0d1d3d123', salt), 'MD5 cannot pass against a SCRAM secret');
  assert.ok(verifyCleartextPassword(stored, 'md5u', 'md5pass'));
  assert.ok(!verifyCleartextPassword(stored, 'other', 'md5pass'));
  assert.ok(!verifyCleartextPassword('md5pass', 'md5u', 'md5pass'), 'plaintext stored passwords never match (as in PostgreSQL)');
});

function run(secret: ReturnType<typeof parseScramVerifier>, password: string): 'success' | 'failure' {
  const c = new ScramClientExchange({ password });
  const s = new ScramServerExchange({ secret });
  const first = s.step(c.clientFirstMessage());
  assert.equal(first.kind, 'continue');
  const fin = s.step(c.handleServerFirst((first as { output: Buffer }).output));
  if (fin.kind === 'success') c.verifyServerFinal(fin.output);
  return fin.kind === 'continue' ? 'failure' : fin.kind;
}

test('round trips: right password succeeds, wrong one fails, unknown user fails only at the end', () => {
  const secret = makeScramSecret('right');
  assert.equal(run(secret, 'right'), 'success');
  assert.equal(run(secret, 'wrong'), 'failure');
  // unknown user: a made-up, stable salt; the exchange runs to the end and fails even with any password
  const key = Buffer.alloc(32, 9);
  const salt1 = scramMockSalt('ghost', key);
  assert.deepEqual(salt1, scramMockSalt('ghost', key));
  assert.notDeepEqual(salt1, scramMockSalt('ghost2', key));
  const s = new ScramServerExchange({ secret: null, mockSalt: salt1 });
  const c = new ScramClientExchange({ password: 'anything' });
  const first = s.step(c.clientFirstMessage());
  assert.ok(first.kind === 'continue');
  assert.match(first.output.toString(), new RegExp(`,s=${salt1.toString('base64').replace(/[+/]/g, '\\$&')},i=4096$`));
  const failed = s.step(c.handleServerFirst(first.output));
  assert.equal(failed.kind, 'failure');
  assert.equal(failed.kind === 'failure' && failed.error.sqlstate, '28P01');
  const named = new ScramServerExchange({ secret, user: 'scramu' });
  const c2 = new ScramClientExchange({ password: 'wrong' });
  const f2 = named.step(c2.clientFirstMessage());
  assert.ok(f2.kind === 'continue');
  const r2 = named.step(c2.handleServerFirst(f2.output));
  assert.ok(r2.kind === 'failure' && r2.error.message === 'password authentication failed for user "scramu"' && r2.error.code === 'WS_INVALID_PASSWORD');
  // an empty initial response: the server sends an empty challenge first
  const s2 = new ScramServerExchange({ secret });
  const empty = s2.step(null);
  assert.ok(empty.kind === 'continue' && empty.output.length === 0);
});

function serverErr(client: string | Buffer, sqlstate: string, message: string, detail?: string, final?: string): void {
  const s = new ScramServerExchange({ secret: makeScramSecret('pw'), randomBytes: (n) => Buffer.alloc(n, 1) });
  let caught: unknown;
  try {
    const r = s.step(typeof client === 'string' ? Buffer.from(client) : client);
    if (final !== undefined) {
      assert.equal(r.kind, 'continue');
      s.step(Buffer.from(final));
    }
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof WalstreamError, `expected an error for ${String(client)} / ${final}`);
  assert.equal(caught.sqlstate, sqlstate);
  assert.equal(caught.message, message);
  if (detail !== undefined) assert.equal(caught.detail, detail);
}

test('server rejects what PostgreSQL rejects, with the same words', () => {
  const M = 'malformed SCRAM message';
  serverErr('p=tls-server-end-point,,n=,r=abc', '08P01', M, 'The client selected SCRAM-SHA-256 without channel binding, but the SCRAM message includes channel binding data.');
  serverErr('n,a=someone,n=,r=abc', '0A000', 'client uses authorization identity, but it is not supported');
  serverErr('x,,n=,r=abc', '08P01', M, 'Unexpected channel-binding flag "\'x\'".');
  serverErr('n;,n=,r=abc', '08P01', M, 'Comma expected, but found character "\';\'".');
  serverErr('n,b,n=,r=abc', '08P01', M, 'Unexpected attribute "\'b\'" in client-first-message.');
  serverErr('n,,m=ext,n=,r=abc', '0A000', 'client requires an unsupported SCRAM extension');
  serverErr('n,,r=abc', '08P01', M, 'Expected attribute "n" but found "\'r\'".');
  serverErr('n,,n=,x=abc', '08P01', M, 'Expected attribute "r" but found "\'x\'".');
  serverErr('n,,n=,rabc', '08P01', M, 'Expected character "=" for attribute "r".');
  serverErr('n,,n=,r=a b', '08P01', 'non-printable characters in SCRAM nonce');
  serverErr('n,,n=,r=abc,1=x', '08P01', M, 'Attribute expected, but found invalid character "\'1\'".');
  serverErr('', '08P01', M, 'The message is empty.');
  serverErr(Buffer.from('n,,n=,r=a\0b'), '08P01', M, 'Message length does not match input length.');
  const nonce = 'abc' + Buffer.alloc(18, 1).toString('base64');
  serverErr('n,,n=,r=abc', '08P01', 'unexpected SCRAM channel-binding attribute in client-final-message', undefined, `c=eSws,r=${nonce},p=AAAA`);
  serverErr('y,,n=,r=abc', '08P01', 'unexpected SCRAM channel-binding attribute in client-final-message', undefined, `c=biws,r=${nonce},p=AAAA`);
  serverErr('n,,n=,r=abc', '08P01', 'invalid SCRAM response', 'Nonce does not match.', `c=biws,r=abcX,p=${Buffer.alloc(32).toString('base64')}`);
  serverErr('n,,n=,r=abc', '08P01', M, 'Malformed proof in client-final-message.', `c=biws,r=${nonce},p=AAAA`);
  serverErr('n,,n=,r=abc', '08P01', M, 'Garbage found at the end of client-final-message.', `c=biws,r=${nonce},p=${Buffer.alloc(32).toString('base64')},x=1`);
  serverErr('n,,n=,r=abc', '08P01', M, 'Attribute expected, but found end of string.', `c=biws,r=${nonce}`);
  assert.throws(() => new ScramServerExchange({ secret: null, mechanism: 'SCRAM-SHA-1' }), /client selected an invalid SASL authentication mechanism/);
  // y,, is fine without TLS, and extensions after the nonce are ignored; c=eSws must then be used
  const c = new ScramServerExchange({ secret: makeScramSecret('pw') });
  assert.equal(c.step(Buffer.from('y,,n=ignored,r=abc,x=ext')).kind, 'continue');
});

test('client refuses a server that cannot prove the password', () => {
  const c = new ScramClientExchange({ password: 'scrampass', nonce: CLIENT_NONCE });
  c.clientFirstMessage();
  c.handleServerFirst(Buffer.from(SERVER_FIRST));
  assert.throws(() => c.verifyServerFinal(Buffer.from('v=' + Buffer.alloc(32).toString('base64'))), /incorrect server signature/);
  const c2 = new ScramClientExchange({ password: 'x', nonce: CLIENT_NONCE });
  c2.clientFirstMessage();
  assert.throws(() => c2.handleServerFirst(Buffer.from(`r=OTHER,s=${SALT},i=4096`)), /nonce mismatch/);
  const c3 = new ScramClientExchange({ password: 'x', nonce: CLIENT_NONCE });
  c3.clientFirstMessage();
  assert.throws(() => c3.handleServerFirst(Buffer.from(`r=${CLIENT_NONCE}X,s=${SALT},i=0`)), /iteration count/);
  const c4 = new ScramClientExchange({ password: 'x', nonce: CLIENT_NONCE });
  c4.clientFirstMessage();
  c4.handleServerFirst(Buffer.from(`r=${CLIENT_NONCE}X,s=${SALT},i=1`));
  assert.throws(() => c4.verifyServerFinal(Buffer.from('e=invalid-proof')), /error received from server in SCRAM exchange: invalid-proof/);
});

test('SASLprep: ASCII untouched, non-ASCII spaces mapped, soft hyphen dropped, NFKC applied', () => {
  assert.equal(saslPrep('plain pass\t'), 'plain pass\t');
  assert.equal(saslPrep('a\u00A0b'), 'a b');
  assert.equal(saslPrep('a\u00ADb'), 'ab');
  assert.equal(saslPrep('\u2168'), 'IX');
  assert.equal(saslPrep('\u0007ü'), '\u0007ü', 'prohibited output: raw password used');
  // SASLprep equivalence makes both spellings authenticate
  const secret = makeScramSecret('ma\u00A0pass');
  assert.equal(run(secret, 'ma pass'), 'success');
});
