// The walstream command's errors for bad input: one line on stderr naming the option (or command)
// and what it accepts, nothing on stdout, a non-zero exit, no stack trace; a port in use is
// refused before the data directory is touched; --version prints package.json's version.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { ROOT, STACK_FRAME, walstream } from './helpers/bench-report.js';
import { rmrf, tmpDir } from './helpers/tmp.js';

function assertOneLineError(r: { code: number | null; stdout: string; stderr: string }, ...mustMatch: RegExp[]): void {
  assert.notEqual(r.code, 0, 'non-zero exit');
  assert.equal(r.stdout, '', 'nothing on stdout');
  const lines = r.stderr.replace(/\n$/, '').split('\n');
  assert.equal(lines.length, 1, `one line on stderr: ${JSON.stringify(r.stderr)}`);
  assert.match(lines[0]!, /^walstream: /);
  assert.doesNotMatch(r.stderr, STACK_FRAME, 'no stack frames');
  for (const re of mustMatch) assert.match(lines[0]!, re);
}

test('--version prints the version in package.json', async () => {
  const { version } = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };
  for (const flag of ['--version', '-V']) {
    const r = await walstream([flag]);
    assert.equal(r.code, 0);
    assert.equal(r.stdout.trim(), version);
    assert.equal(r.stderr, '');
  }
});

test('bad option values: one line naming the option and what it accepts', async (t) => {
  const tmp = tmpDir('walstream-cli-errors-');
  t.after(() => rmrf(tmp));
  const data = path.join(tmp, 'data');
  const cases: Array<[string[], ...RegExp[]]> = [
    [['primary', '--data', data, '--port', 'abc'], /'--port <port>'/, /'abc'/, /integer from 0 to 65535/],
    [['primary', '--data', data, '--port', '70000'], /'--port <port>'/, /integer from 0 to 65535/],
    [['primary', '--data', data, '--port', '0', '--auth', 'md5'], /'--auth <method>'/, /trust, scram-sha-256/],
    [['bench', 'stream', '--transports', 'foo'], /'--transports <list>'/, /tcp, ring/, /not: foo/],
    [['bench', 'standby', '--transports', 'tcp,udp'], /'--transports <list>'/, /tcp, ring/],
    [['bench', 'stream', '--mib', '1.5'], /'--mib <n>'/, /integer >= 16/],
    [['bench', 'stream', '--standbys', '1,x'], /'--standbys <list>'/, /integers from 1 to 16/],
    [['bench', 'commit', '--seconds', 'abc'], /'--seconds <s>'/, /number > 0/],
    [['bench', 'commit', '--seconds', '0'], /'--seconds <s>'/, /number > 0/],
    [['bench', 'commit', '--committers', '0,8'], /'--committers <list>'/, /integers >= 1/],
    [['bench', 'commit', '--html', path.join(tmp, 'missing', 'r.html')], /'--html <file>'/, /existing directory/],
    [['bench', 'sync', '--levels', 'on,bogus'], /'--levels <list>'/, /remote_apply/, /not: bogus/],
    [['bench', 'gc-tail', '--transport', 'udp'], /'--transport <t>'/, /tcp, ring/],
    [['bench', 'reads', '--threads', '0,2'], /'--threads <list>'/, /integers from 1 to 64/],
    [['bench', 'gc-tail', '--rate', '-5'], /'--rate <n>'/, /integer >= 1/],
    [['waldump', tmp, '--limit', 'x'], /'-n, --limit <n>'/, /integer >= 1/],
    [['standby', '--data', data, '--primary', 'host=x', '--mode', 'hot'], /'--mode <mode>'/, /replica, wal-only/],
    [['status', '--url', 'nope'], /'--url <url>'/, /URL/],
    [['standby', '--data', data, '--primary', 'host=127.0.0.1 port=1 user=x', '--mode', 'wal-only', '--port', '0'], /port/, /wal-only standby does not serve replication/],
    [['standby', '--data', data, '--primary', 'bogus'], /'--primary <conninfo>'/, /key=value/, /missing "=" after "bogus"/],
    [['standby', '--data', data, '--primary', 'host=x port=abc'], /'--primary <conninfo>'/, /invalid port number/],
    [['bench', 'commit', '--bogus'], /unknown option '--bogus'/],
    [['primary', '--data', data, '--port', '0', '--load', '0'], /'--load <rate>'/, /integer from 1 to 1000000/],
    [['primary', '--data', data, '--port', '0', '--load', '10', '--load-clients', 'x'], /'--load-clients <n>'/, /integer from 1 to 1024/],
    [['primary', '--data', data, '--port', '0', '--load', '10', '--load-value-bytes', '-1'], /'--load-value-bytes <bytes>'/, /integer from 0 to 1048576/],
    [['primary', '--data', data, '--port', '0', '--status-every-ms', '1.5'], /'--status-every-ms <ms>'/, /integer >= 0/],
    [['demo', '--dir', data, '--load', 'fast'], /'--load <rate>'/, /integer from 1 to 1000000/],
    [['demo', '--dir', data, '--load-clients', '0'], /'--load-clients <n>'/, /integer from 1 to 1024/],
    [['basebackup', '--data', data, '--primary', 'host=x passfile'], /'--primary <conninfo>'/, /missing "=" after "passfile"/],
  ];
  for (const [args, ...res] of cases) {
    await t.test(args.join(' '), async () => assertOneLineError(await walstream(args), ...res));
  }
  assert.equal(fs.existsSync(data), false, 'no data directory was created');
});

test('unknown commands: one line naming the accepted ones', async () => {
  assertOneLineError(await walstream(['frob']), /unknown command 'frob'/, /expected one of: .*bench.*primary/);
  assertOneLineError(await walstream(['bench', 'frob']), /unknown command 'frob'/, /expected one of: commit, stream, standby, gc-tail, cascade, reads, sync, basebackup, failover, report/);
});

test('bench report: a file that is not a bench result is one line', async (t) => {
  const tmp = tmpDir('walstream-cli-errors-report-');
  t.after(() => rmrf(tmp));
  const f = path.join(tmp, 'x.json');
  fs.writeFileSync(f, '{"bench":"nope"}');
  assertOneLineError(await walstream(['bench', 'report', f]), /not a result of walstream bench/);
  assertOneLineError(await walstream(['bench', 'report', path.join(tmp, 'missing.json')]), /cannot read a JSON result/);
});

test('a port in use is refused before the data directory is initialised', async (t) => {
  const tmp = tmpDir('walstream-cli-errors-port-');
  t.after(() => rmrf(tmp));
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  t.after(() => srv.close());
  const port = (srv.address() as net.AddressInfo).port;
  const data = path.join(tmp, 'data');
  assertOneLineError(await walstream(['primary', '--data', data, '--port', String(port)]), /"--port"/, new RegExp(`127\\.0\\.0\\.1:${port} is already in use`));
  assert.equal(fs.existsSync(data), false, 'no data directory was created');
  assertOneLineError(await walstream(['primary', '--data', data, '--port', '0', '--metrics-port', String(port)]), /"--metrics-port"/, /already in use/);
  assert.equal(fs.existsSync(data), false, 'no data directory was created');
});
