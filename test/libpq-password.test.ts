// Password sources as libpq has them (src/standby/libpq-env.ts): the password file's format
// (fields, `*`, `\` escapes, the first matching line), its permission check, the precedence
// conninfo password > PGPASSWORD > password file (passfile > PGPASSFILE > ~/.pgpass) and the
// PGHOST/PGPORT/PGUSER/PGAPPNAME defaults; then `walstream basebackup` against a primary with
// SCRAM-SHA-256 under each source, with the real psql 15 given the same connection string and
// environment as the oracle (with dbname=replication, the database a walreceiver and pg_basebackup
// name, which the password file matches): both log in, or both are refused, and both print the
// same warning. A walreceiver's connection reads the password file again at each attempt.

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { Primary } from '../src/primary/primary.js';
import { libpqTarget, passwordFromPassFile } from '../src/standby/libpq-env.js';
import { parseConninfo, resolveConninfo } from '../src/standby/options.js';
import { TcpTransport } from '../src/standby/transport.js';
import { WalstreamError } from '../src/errors.js';
import { PG_BIN, rmrf, tmpDir } from './helpers/tmp.js';

const run = promisify(execFile);
const BIN = path.resolve('bin/walstream.js');
const PASSWORD = 's3cr:t\\pw';

/** A password file with `lines`, mode 0600 unless told. */
function passFile(dir: string, name: string, lines: string[], mode = 0o600): string {
  const f = path.join(dir, name);
  fs.writeFileSync(f, lines.join('\n') + '\n');
  fs.chmodSync(f, mode);
  return f;
}

/** The environment without any PG* variable. */
function cleanEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PG') && v !== undefined) env[k] = v;
  return { ...env, ...extra };
}

/** A password file field with ':' and '\' escaped. */
const esc = (s: string) => s.replace(/[\\:]/g, (c) => `\\${c}`);

/** A primary in a temp directory whose one role `rep` logs in with SCRAM-SHA-256 and PASSWORD; closed and removed after the test. */
async function scramPrimary(t: TestContext, prefix: string): Promise<{ dir: string; p: Primary }> {
  const dir = tmpDir(prefix);
  const p = await Primary.open({
    dataDir: path.join(dir, 'p'),
    port: 0,
    users: { rep: PASSWORD },
    hba: [{ type: 'host', database: 'replication', user: 'rep', address: 'all', method: 'scram-sha-256' }],
  });
  t.after(async () => {
    await p.close();
    rmrf(dir);
  });
  return { dir, p };
}

test('password file: fields, wildcards, escapes, first match, permissions', (t) => {
  const dir = tmpDir('walstream-pgpass-');
  t.after(() => rmrf(dir));
  const want = { host: 'db.example', port: '5433', dbname: 'replication', user: 'rep' };
  const warnings: string[] = [];
  const warn = (m: string) => warnings.push(m);
  const f = passFile(dir, 'a', [
    '# db.example:5433:replication:rep:comment',
    'db.example:5432:replication:rep:wrong-port',
    'db.example:5433:postgres:rep:wrong-db',
    '\\*:5433:replication:rep:literal-star-host', // an escaped '*' is a literal '*'
    `db.example:*:replication:rep:${esc(PASSWORD)}:trailing`, // the password ends at an unescaped ':'
    '*:*:*:*:later',
  ]);
  assert.equal(passwordFromPassFile(f, want, warn), PASSWORD);
  assert.equal(passwordFromPassFile(f, { ...want, host: '*' }, warn), 'literal-star-host');
  assert.equal(passwordFromPassFile(f, { ...want, user: 'other' }, warn), 'later');
  // An empty host is libpq's default host for the lookup; CRLF line ends are stripped.
  const crlf = passFile(dir, 'crlf', ['localhost:5432:replication:rep:crlf\r']);
  assert.equal(passwordFromPassFile(crlf, { ...want, host: '', port: '5432' }, warn), 'crlf');
  // Fewer than five fields: not a line that matches.
  assert.equal(passwordFromPassFile(passFile(dir, 'short', ['db.example:5433:replication:rep']), want, warn), null);
  assert.deepEqual(warnings, []);
  // Group or world access: ignored with libpq's warning; so is a directory; a missing file is silent.
  const open = passFile(dir, 'open', ['*:*:*:*:x'], 0o644);
  assert.equal(passwordFromPassFile(open, want, warn), null);
  assert.equal(passwordFromPassFile(dir, want, warn), null);
  assert.equal(passwordFromPassFile(path.join(dir, 'missing'), want, warn), null);
  assert.deepEqual(warnings, [
    `password file "${open}" has group or world access; permissions should be u=rw (0600) or less`,
    `password file "${dir}" is not a plain file`,
  ]);
});

test('precedence: conninfo password > PGPASSWORD > passfile > PGPASSFILE > ~/.pgpass (the passwd entry\'s home, as libpq 15); PG* defaults', (t) => {
  const home = tmpDir('walstream-pghome-');
  t.after(() => rmrf(home));
  const noWarn = (m: string) => assert.fail(m);
  passFile(home, '.pgpass', ['*:*:*:*:from-home']);
  const envFile = passFile(home, 'env-pgpass', ['*:*:*:*:from-pgpassfile']);
  const kwFile = passFile(home, 'kw-pgpass', ['*:*:*:*:from-passfile-keyword']);
  const kv = (s: string) => new Map(s.split(' ').filter(Boolean).map((p) => p.split('=') as [string, string]));
  // HOME is not where libpq 15 looks (getpwuid's home directory is): it changes nothing.
  const env = (extra: Record<string, string>) => ({ HOME: '/nonexistent', ...extra });
  const target = (s: string, e: Record<string, string>) => libpqTarget(kv(s), env(e), noWarn, home);
  assert.equal(target('host=h password=given', { PGPASSWORD: 'env' }).password, 'given');
  assert.equal(target('host=h', { PGPASSWORD: 'env', PGPASSFILE: envFile }).password, 'env');
  assert.equal(target(`host=h passfile=${kwFile}`, { PGPASSFILE: envFile }).password, 'from-passfile-keyword');
  assert.equal(target('host=h', { PGPASSFILE: envFile }).password, 'from-pgpassfile');
  assert.equal(target('host=h', {}).password, 'from-home');
  // An empty password keyword counts as none given (connectOptions2).
  assert.equal(target('host=h password=', { PGPASSWORD: 'env' }).password, 'env');
  // Environment defaults for keywords the string lacks; the string's own win.
  const e = env({ PGHOST: '10.1.1.1', PGPORT: '6543', PGUSER: 'envuser', PGAPPNAME: 'envapp', PGPASSWORD: 'pw' });
  assert.deepEqual(parseConninfo('', e, noWarn), { host: '10.1.1.1', port: 6543, user: 'envuser', password: 'pw', applicationName: 'envapp' });
  assert.deepEqual(parseConninfo('host=h port=5 user=u application_name=a', e, noWarn), { host: 'h', port: 5, user: 'u', password: 'pw', applicationName: 'a' });
  assert.throws(() => parseConninfo('host=h', env({ PGPORT: 'x', PGPASSWORD: 'pw' }), noWarn), /invalid port number: "x"/);
  // A socket directory (from PGHOST or the string) is refused by name: walstream speaks TCP only.
  assert.throws(() => parseConninfo('port=5432', env({ PGHOST: '/var/run/postgresql', PGPASSWORD: 'pw' }), noWarn), /host "\/var\/run\/postgresql" is a Unix-domain socket; walstream connects over TCP only/);
});

test('walstream basebackup and psql 15 agree on every password source against a SCRAM-SHA-256 primary', async (t) => {
  const { dir, p } = await scramPrimary(t, 'walstream-pgpass-cli-');
  await p.transaction((tx) => tx.put('t', 'k', 'v'));
  const hostPort = `host=127.0.0.1 port=${p.port}`;
  const right = `127.0.0.1:${p.port}:replication:rep:${esc(PASSWORD)}`;
  const wrong = `127.0.0.1:${p.port}:replication:rep:not-it`;
  // The password files go through PGPASSFILE and passfile: the user's own ~/.pgpass (libpq 15
  // finds it from the passwd entry, not $HOME) is never written by a test.
  const envPass = path.join(dir, 'env-pgpass');
  const kwPass = path.join(dir, 'kw-pgpass');
  let n = 0;
  /** Both clients with this conninfo and environment: their outcomes and stderr. */
  async function both(conninfo: string, env: Record<string, string>): Promise<{ ours: boolean; psql: boolean; ourErr: string; psqlErr: string }> {
    const e = cleanEnv(env);
    const ours = await run('node', [BIN, 'basebackup', '--primary', conninfo, '--data', path.join(dir, `b${n++}`), '--quiet'], { env: e }).then(
      (r) => ({ ok: true, err: r.stderr }),
      (x: { stderr?: string }) => ({ ok: false, err: x.stderr ?? '' }),
    );
    const theirs = await run(path.join(PG_BIN, 'psql'), ['-w', '-AtX', `${conninfo} dbname=replication replication=true`, '-c', 'IDENTIFY_SYSTEM'], { env: e }).then(
      (r) => ({ ok: /^\d+\|1\|/.test(r.stdout), err: r.stderr }),
      (x: { stderr?: string }) => ({ ok: false, err: x.stderr ?? '' }),
    );
    return { ours: ours.ok, psql: theirs.ok, ourErr: ours.err, psqlErr: theirs.err };
  }
  const user = `${hostPort} user=rep`;
  const cases: Array<{ name: string; conninfo: string; env?: Record<string, string>; files: () => void; ok: boolean; warn?: string }> = [
    { name: 'no password anywhere', conninfo: user, env: { PGPASSFILE: envPass }, files: () => rmrf(envPass), ok: false },
    { name: 'PGPASSWORD', conninfo: user, env: { PGPASSWORD: PASSWORD, PGPASSFILE: envPass }, files: () => rmrf(envPass), ok: true },
    { name: 'PGPASSFILE 0600', conninfo: user, env: { PGPASSFILE: envPass }, files: () => passFile(dir, 'env-pgpass', [wrong.replace('rep', 'other'), right]), ok: true },
    { name: 'PGPASSFILE 0644 is ignored with a warning', conninfo: user, env: { PGPASSFILE: envPass }, files: () => passFile(dir, 'env-pgpass', [right], 0o644), ok: false, warn: envPass },
    { name: 'passfile beats PGPASSFILE', conninfo: `${user} passfile=${kwPass}`, env: { PGPASSFILE: envPass }, files: () => (passFile(dir, 'env-pgpass', [wrong]), passFile(dir, 'kw-pgpass', ['*:*:*:rep:' + esc(PASSWORD)])), ok: true },
    { name: 'PGPASSWORD beats the password file', conninfo: user, env: { PGPASSWORD: 'not-it', PGPASSFILE: envPass }, files: () => passFile(dir, 'env-pgpass', [right]), ok: false },
    { name: 'the conninfo password beats PGPASSWORD', conninfo: `${user} password='${PASSWORD.replace(/\\/g, '\\\\')}'`, env: { PGPASSWORD: 'not-it' }, files: () => rmrf(envPass), ok: true },
    { name: 'PGHOST, PGPORT, PGUSER complete the string', conninfo: 'application_name=envtest', env: { PGHOST: '127.0.0.1', PGPORT: String(p.port), PGUSER: 'rep', PGPASSFILE: envPass }, files: () => passFile(dir, 'env-pgpass', [right]), ok: true },
  ];
  for (const c of cases) {
    c.files();
    const r = await both(c.conninfo, c.env ?? {});
    assert.equal(r.psql, c.ok, `${c.name}: psql (the oracle) ${r.psqlErr}`);
    assert.equal(r.ours, c.ok, `${c.name}: walstream basebackup ${r.ourErr}`);
    const warning = `WARNING: password file "${c.warn ?? envPass}" has group or world access; permissions should be u=rw (0600) or less`;
    assert.equal(r.psqlErr.includes(warning), c.warn !== undefined, `${c.name}: ${r.psqlErr}`);
    assert.equal(r.ourErr.includes(warning), c.warn !== undefined, `${c.name}: ${r.ourErr}`);
    if (!c.ok) assert.match(r.ourErr, /password/, c.name);
  }
});

test('the password file is read again at each connection attempt, as libpq reads it at each connect', async (t) => {
  const { dir, p } = await scramPrimary(t, 'walstream-pgpass-reconnect-');
  const file = passFile(dir, 'pgpass', [`127.0.0.1:${p.port}:replication:rep:not-it`]);
  const info = resolveConninfo(parseConninfo(`host=127.0.0.1 port=${p.port} user=rep passfile=${file}`, cleanEnv()));
  assert.equal(info.passfile, file);
  assert.equal(info.password, 'not-it', 'what the file held when the conninfo was parsed');
  const transport = new TcpTransport(info, { connectTimeoutMs: 10_000, commandTimeoutMs: 10_000, maxMessageBytes: 1 << 20, maxBufferedBytes: 1 << 20 });
  await assert.rejects(transport.connect(), (e: unknown) => e instanceof WalstreamError && e.sqlstate === '28P01');
  // The operator fixes the file: the same transport's next attempt (a walreceiver's reconnect) logs in.
  passFile(dir, 'pgpass', [`127.0.0.1:${p.port}:replication:rep:${esc(PASSWORD)}`]);
  const conn = await transport.connect();
  assert.equal((await conn.identifySystem()).timeline, 1);
  conn.disconnect();
  // A password in the conninfo string is used as given: no file is consulted.
  const given = resolveConninfo(parseConninfo(`host=127.0.0.1 port=${p.port} user=rep password=x passfile=${file}`, cleanEnv()));
  assert.equal(given.passfile, null);
});
