// pg_hba-style rules (src/replication/protocol/hba.ts): first match wins, the `replication`
// keyword and only it matches physical replication connections, CIDR matching for IPv4/IPv6,
// PostgreSQL's exact 28000 messages, and parsing of the pg_hba.conf text format. In-process only.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WalstreamError } from '../src/errors.js';
import { checkHba, compileHba, matchHba, parseHbaConf, type HbaConnection } from '../src/replication/protocol/hba.js';

const repl = (user: string, address: string): HbaConnection => ({ type: 'host', address, user, database: '', physicalReplication: true });

test('first match wins; replication keyword; CIDR', () => {
  const rules = compileHba([
    { type: 'host', database: 'replication', user: 'bad', address: '0.0.0.0/0', method: 'reject' },
    { type: 'host', database: 'replication', user: 'all', address: '127.0.0.1/32', method: 'scram-sha-256' },
    { type: 'host', database: 'replication', user: 'alice,bob', address: '10.1.0.0/16', method: 'md5' },
    { type: 'host', database: 'all', user: 'all', address: '0.0.0.0/0', method: 'trust' },
    { type: 'host', database: 'replication', user: 'all', address: '::1/128', method: 'password' },
    { type: 'host', database: 'replication', user: 'all', address: 'fd00::/8', method: 'trust' },
    { type: 'local', database: 'replication', user: 'all', method: 'trust' },
  ]);
  assert.equal(matchHba(rules, repl('x', '127.0.0.1'))?.method, 'scram-sha-256');
  assert.equal(matchHba(rules, repl('x', '::ffff:127.0.0.1'))?.method, 'scram-sha-256', 'IPv4-mapped IPv6 is IPv4');
  assert.equal(matchHba(rules, repl('bad', '127.0.0.1'))?.method, 'reject');
  assert.equal(matchHba(rules, repl('alice', '10.1.200.3'))?.method, 'md5');
  assert.equal(matchHba(rules, repl('carol', '10.1.200.3')), undefined, '`all` in the database column does not match replication');
  assert.equal(matchHba(rules, repl('carol', '::1'))?.method, 'password');
  assert.equal(matchHba(rules, repl('carol', 'fd12:3456::1'))?.method, 'trust');
  assert.equal(matchHba(rules, repl('carol', 'fe80::1')), undefined);
  assert.equal(matchHba(rules, { type: 'local', address: '', user: 'x', database: '', physicalReplication: true })?.method, 'trust');
  // a normal connection: `replication` never matches it, `all` does
  assert.equal(matchHba(rules, { type: 'host', address: '10.9.9.9', user: 'carol', database: 'postgres', physicalReplication: false })?.method, 'trust');
  assert.equal(matchHba(rules, { type: 'host', address: '127.0.0.1', user: 'carol', database: 'replication', physicalReplication: false })?.method, 'trust');
});

test('checkHba: PostgreSQL 15 messages', () => {
  const rules = compileHba([
    { type: 'host', database: 'replication', user: 'nope', address: '127.0.0.1/32', method: 'reject' },
    { type: 'host', database: 'replication', user: 'all', address: '127.0.0.1/32', method: 'trust' },
  ]);
  assert.equal(checkHba(rules, repl('u', '127.0.0.1')), 'trust');
  const err = (conn: HbaConnection, msg: string) =>
    assert.throws(() => checkHba(rules, conn), (e: unknown) => e instanceof WalstreamError && e.sqlstate === '28000' && e.message === msg);
  err(repl('u', '10.0.0.1'), 'no pg_hba.conf entry for replication connection from host "10.0.0.1", user "u", no encryption');
  err(repl('u', '::ffff:10.0.0.1'), 'no pg_hba.conf entry for replication connection from host "10.0.0.1", user "u", no encryption');
  err(repl('nope', '127.0.0.1'), 'pg_hba.conf rejects replication connection for host "127.0.0.1", user "nope", no encryption');
  err({ type: 'host', address: '127.0.0.1', user: 'u', database: 'db', physicalReplication: false }, 'no pg_hba.conf entry for host "127.0.0.1", user "u", database "db", no encryption');
  err({ type: 'local', address: '', user: 'u', database: '', physicalReplication: true }, 'no pg_hba.conf entry for replication connection from host "[local]", user "u", no encryption');
});

test('pg_hba.conf text format', () => {
  const rules = parseHbaConf(`
# TYPE  DATABASE        USER            ADDRESS                 METHOD
local   all             all                                     trust
host    replication     all             127.0.0.1/32            scram-sha-256   # trailing comment
host    replication     repl1,repl2     192.168.0.0  255.255.0.0  md5
hostnossl replication   "all"           ::1/128                 password
hostssl replication     all             0.0.0.0/0               trust
host    "replication"   all             10.0.0.0/8              trust
host    replication     all             all                     reject
`);
  assert.equal(rules.length, 6, 'hostssl never matches without TLS and is dropped');
  assert.equal(rules[1]!.line, 4);
  assert.equal(matchHba(rules, repl('x', '127.0.0.1'))?.method, 'scram-sha-256');
  assert.equal(matchHba(rules, repl('repl2', '192.168.7.7'))?.method, 'md5');
  assert.equal(matchHba(rules, repl('repl3', '192.168.7.7'))?.method, 'reject');
  assert.equal(matchHba(rules, repl('all', '::1'))?.method, 'password', 'a quoted "all" is a user named all');
  assert.equal(matchHba(rules, repl('bob', '::1'))?.method, 'reject');
  assert.equal(matchHba(rules, repl('bob', '10.2.3.4'))?.method, 'reject', 'a quoted "replication" is a database name');
  assert.equal(matchHba(rules, { type: 'host', address: '10.2.3.4', user: 'bob', database: 'replication', physicalReplication: false })?.method, 'trust');
  const bad = (text: string, re: RegExp) => assert.throws(() => parseHbaConf(text), (e: unknown) => e instanceof WalstreamError && re.test(e.message));
  bad('host replication all 127.0.0.1/33 trust', /invalid CIDR mask/);
  bad('host replication all 300.0.0.1/32 trust', /invalid IP address/);
  bad('host replication all 127.0.0.1/32 ident', /invalid authentication method "ident"/);
  bad('hostx replication all 127.0.0.1/32 trust', /invalid connection type/);
  bad('host replication all 127.0.0.1/32 trust clientcert=1', /options are not supported/);
  bad('host replication +group 127.0.0.1/32 trust', /not supported/);
  bad('host replication all 10.0.0.0 255.0.255.0 trust', /invalid IP mask/);
  bad('host replication all', /missing address/);
  bad('host replication "all 127.0.0.1/32 trust', /unterminated quote/);
});
