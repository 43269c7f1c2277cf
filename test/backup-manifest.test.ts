// The backup manifest (src/replication/backup-manifest.ts) against real PostgreSQL 15.
// (a) A real server, whose data directory also holds files with names that need JSON escapes,
//     that are not UTF-8, or that are UTF-8 beyond ASCII, is backed up with pg_basebackup 15 once
//     per --manifest-checksums (CRC32C, SHA224, SHA256, SHA384, SHA512, NONE) and with
//     --manifest-force-encode. Our builder, given the same files in the same order (paths, sizes
//     and Last-Modified read from the real manifest, checksums computed by our checksum objects
//     over the files pg_basebackup wrote) and the same WAL range, makes the same bytes; our reader
//     reads each real manifest.
// (b) For a directory we make ourselves (files of our own, those names again, and pg_wal from a
//     real `pg_basebackup -X fetch`), a manifest from our builder is accepted by pg_verifybackup 15
//     (with its WAL parsing and with --no-parse-wal), for every checksum type and with force-encode;
//     a damaged file, a grown, an extra or a missing file, a damaged manifest and damaged WAL in
//     the range make it fail and name the problem (the WAL only without --no-parse-wal), and our
//     reader rejects the damaged manifests with the same words.
// (a) also: a backup of a standby promoted to timeline 2 has the WAL range that
//     addWalRangesFromHistory computes from that timeline's history file.
// Every server is stopped and every directory removed in after().

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {
  BackupManifest, type ChecksumType, createFileChecksum, type FileChecksum, formatLastModified, parseBackupManifest,
  type ParsedBackupManifest, parseLastModified, pgTimeOf,
} from '../src/replication/backup-manifest.js';
import { crc32c } from '../src/wal/crc32c.js';
import { lsnToString, parseLsn } from '../src/wal/lsn.js';
import { readTimeLineHistory } from '../src/wal/timeline.js';
import { PG_BIN_DIR, startPgCluster, type PgCluster } from './helpers/pgcluster.js';
import { pgBaseBackup, pgTempRoot, startPgNode, type PgNode } from './helpers/pgnode.js';
import { prng } from './helpers/prng.js';
import { rmrf } from './helpers/tmp.js';

/** Bound on one PostgreSQL tool run, ms. */
const TOOL_TIMEOUT_MS = 120_000;

/** Names (relative to the data directory) that exercise the manifest's path rules. */
const ESCAPED_NAME = 'walstream-names/tab\tquote"back\\slash\u0001ctl\nnewline';
const UTF8_NAME = 'walstream-names/\u00e9t\u00e9-\u540d';
const NOT_UTF8_NAME = Buffer.concat([Buffer.from('walstream-names/latin1-'), Buffer.from([0xe9, 0x74, 0xe9, 0xff])]);

let pg: PgCluster;
let root: string;
let account: { uid: number; gid: number } | undefined;
const nodes: PgNode[] = [];

function postgresAccount(): { uid: number; gid: number } | undefined {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return undefined;
  const line = fs.readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith('postgres:'));
  if (!line) throw new Error('running as root but there is no "postgres" account to run PostgreSQL as');
  const f = line.split(':');
  return { uid: Number(f[2]), gid: Number(f[3]) };
}

/** Runs a PostgreSQL 15 tool as the PostgreSQL account with the cluster's password. */
function tool(name: string, args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(path.join(PG_BIN_DIR, name), args, {
    ...(account ?? {}),
    encoding: 'utf8',
    env: pg.clientEnv({ LC_ALL: 'C' }),
    timeout: TOOL_TIMEOUT_MS,
  } as SpawnSyncOptions);
  return { status: r.status, stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? '') };
}

function basebackup(dir: string, extra: string[]): Buffer {
  const r = tool('pg_basebackup', ['-h', '127.0.0.1', '-p', String(pg.port), '-U', 'postgres', '-D', dir, '-c', 'fast', '--no-sync', ...extra]);
  assert.equal(r.status, 0, `pg_basebackup ${extra.join(' ')}: ${r.stderr}`);
  return fs.readFileSync(path.join(dir, 'backup_manifest'));
}

function verify(dir: string, extra: string[] = []): { status: number | null; stdout: string; stderr: string } {
  return tool('pg_verifybackup', [...extra, dir]);
}

/** Feeds a file to a checksum in uneven pieces (a first piece of 100 bytes, then 64 KiB ones). */
function checksumFile(file: string | Buffer, sum: FileChecksum): void {
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.alloc(65536);
    let want = 100;
    for (;;) {
      const n = fs.readSync(fd, buf, 0, want, null);
      if (n === 0) break;
      sum.update(buf.subarray(0, n));
      want = buf.length;
    }
  } finally {
    fs.closeSync(fd);
  }
}

function joinBytes(dir: string | Buffer, rel: Buffer): Buffer {
  return Buffer.concat([Buffer.from(dir), Buffer.from('/'), rel]);
}

/** Rebuilds a real manifest from the files of the backup in `dir` (its WAL ranges by `walRanges`, else as the real ones). */
function rebuild(dir: string, real: ParsedBackupManifest, checksumType: ChecksumType, forceEncode: boolean, walRanges?: (m: BackupManifest) => void): Buffer {
  const m = new BackupManifest({ checksumType, forceEncode });
  for (const f of real.files) {
    const sum = m.createFileChecksum();
    checksumFile(joinBytes(dir, f.path), sum);
    const mtime = parseLastModified(f.lastModified);
    assert.notEqual(mtime, null, `Last-Modified "${f.lastModified}"`);
    m.addFile(f.path, f.size, mtime!, sum);
  }
  if (walRanges) walRanges(m);
  else for (const r of real.walRanges) m.addWalRange(r.tli, r.startLsn, r.endLsn);
  return m.finish();
}

before(async () => {
  account = postgresAccount();
  // trust from 127.0.0.1 for the standby made with pgBaseBackup (helpers/pgnode.ts) and its psql
  pg = await startPgCluster({ hbaLines: ['host replication all 127.0.0.1/32 trust', 'host all all 127.0.0.1/32 trust'] });
  root = pgTempRoot('walstream-manifest-');
  // Files in the data directory that pg_basebackup sends and lists like any other.
  const names = path.join(pg.dataDir, 'walstream-names');
  fs.mkdirSync(names);
  fs.writeFileSync(path.join(pg.dataDir, ESCAPED_NAME), 'escaped\n');
  fs.writeFileSync(path.join(pg.dataDir, UTF8_NAME), 'utf-8\n');
  fs.writeFileSync(joinBytes(pg.dataDir, NOT_UTF8_NAME), 'not utf-8\n');
  if (account) {
    for (const e of [names, path.join(pg.dataDir, ESCAPED_NAME), path.join(pg.dataDir, UTF8_NAME)]) fs.chownSync(e, account.uid, account.gid);
    fs.chownSync(joinBytes(pg.dataDir, NOT_UTF8_NAME), account.uid, account.gid);
  }
  pg.psql('CREATE TABLE t AS SELECT g, md5(g::text) FROM generate_series(1, 20000) g');
});

after(async () => {
  for (const n of nodes) await n.stop();
  if (pg) await pg.stop();
  if (root) rmrf(root);
});

const realRuns: Array<{ name: string; type: ChecksumType; forceEncode: boolean }> = [
  { name: 'crc32c', type: 'CRC32C', forceEncode: false },
  { name: 'sha224', type: 'SHA224', forceEncode: false },
  { name: 'sha256', type: 'SHA256', forceEncode: false },
  { name: 'sha384', type: 'SHA384', forceEncode: false },
  { name: 'sha512', type: 'SHA512', forceEncode: false },
  { name: 'none', type: 'NONE', forceEncode: false },
  { name: 'crc32c-force-encode', type: 'CRC32C', forceEncode: true },
];

for (const run of realRuns) {
  test(`(a) pg_basebackup --manifest-checksums=${run.type}${run.forceEncode ? ' --manifest-force-encode' : ''}: our builder makes the same bytes`, () => {
    const dir = path.join(root, `real-${run.name}`);
    const bytes = basebackup(dir, ['-X', 'none', `--manifest-checksums=${run.type}`, ...(run.forceEncode ? ['--manifest-force-encode'] : [])]);
    const real = parseBackupManifest(bytes);
    assert.ok(real.files.length > 900, `${real.files.length} files`);
    assert.equal(real.walRanges.length, 1);
    assert.equal(real.walRanges[0]!.tli, 1);
    for (const f of real.files) {
      assert.equal(f.checksumType, run.type);
      assert.equal(f.encoded, run.forceEncode || f.path.equals(NOT_UTF8_NAME), `Encoded-Path for ${f.path.toString('hex')}`);
    }
    const ours = rebuild(dir, real, run.type, run.forceEncode);
    assert.equal(ours.length, bytes.length);
    assert.ok(ours.equals(bytes), 'our manifest differs from pg_basebackup\'s');
    rmrf(dir);
  });
}

test('(a) the layout PostgreSQL writes: CRC-32C byte order, escapes, Encoded-Path, Last-Modified, newlines and commas', () => {
  const dir = path.join(root, 'real-layout');
  const bytes = basebackup(dir, ['-X', 'none', '--manifest-checksums=CRC32C']);
  const text = bytes.toString('utf8');
  // CRC-32C: the finished CRC's bytes, least significant first.
  const pgVersion = fs.readFileSync(path.join(dir, 'PG_VERSION'));
  assert.equal(pgVersion.toString(), '15\n');
  assert.equal(crc32c(pgVersion), 0x2247748a);
  assert.match(text, /\n\{ "Path": "PG_VERSION", "Size": 3, "Last-Modified": "\d{4}-\d\d-\d\d \d\d:\d\d:\d\d GMT", "Checksum-Algorithm": "CRC32C", "Checksum": "8a744722" \},\n/);
  // escape_json: \t \" \\ \n escaped, a control byte as \u00XX (lowercase), UTF-8 beyond ASCII as is.
  assert.ok(text.includes('{ "Path": "walstream-names/tab\\tquote\\"back\\\\slash\\u0001ctl\\nnewline", "Size": 8, '));
  assert.ok(text.includes(`{ "Path": "${UTF8_NAME}", "Size": 6, `));
  // Not UTF-8: the lowercase hex of the name's bytes.
  assert.ok(text.includes(`{ "Encoded-Path": "${NOT_UTF8_NAME.toString('hex')}", "Size": 10, `));
  // Head, the end of the file list, the WAL ranges and the last line.
  assert.ok(text.startsWith('{ "PostgreSQL-Backup-Manifest-Version": 1,\n"Files": [\n{ "Path": "'));
  assert.match(text, / \}\n\],\n"WAL-Ranges": \[\n\{ "Timeline": 1, "Start-LSN": "[0-9A-F]+\/[0-9A-F]+", "End-LSN": "[0-9A-F]+\/[0-9A-F]+" \}\n\],\n"Manifest-Checksum": "[0-9a-f]{64}"\}\n$/);
  // Every file line but the last ends with ",\n".
  const lines = text.split('\n');
  const fileLines = lines.filter((l) => l.startsWith('{ "Path"') || l.startsWith('{ "Encoded-Path"'));
  assert.ok(fileLines.slice(0, -1).every((l) => l.endsWith(' },')));
  assert.ok(fileLines[fileLines.length - 1]!.endsWith(' }'));
  // Last-Modified of a file pg_basebackup sent is its mtime in the data directory, in GMT.
  const st = fs.statSync(path.join(pg.dataDir, 'PG_VERSION'));
  assert.ok(text.includes(`"Path": "PG_VERSION", "Size": 3, "Last-Modified": "${formatLastModified(pgTimeOf(st))}"`));
  rmrf(dir);
});

test('(a) a backup of a promoted server (timeline 2): the WAL range from its history is PostgreSQL\'s', async () => {
  const standbyDir = path.join(root, 'standby');
  pgBaseBackup(pg.port, standbyDir);
  const node = await startPgNode(standbyDir, root);
  nodes.push(node);
  node.promote();
  node.psql('CREATE TABLE after_promotion AS SELECT 1 AS x');
  const dir = path.join(root, 'real-tli2');
  const r = tool('pg_basebackup', ['-h', '127.0.0.1', '-p', String(node.port), '-U', 'postgres', '-D', dir, '-c', 'fast', '--no-sync', '-X', 'none', '--manifest-checksums=CRC32C']);
  assert.equal(r.status, 0, r.stderr);
  const bytes = fs.readFileSync(path.join(dir, 'backup_manifest'));
  const real = parseBackupManifest(bytes);
  const label = fs.readFileSync(path.join(dir, 'backup_label'), 'utf8');
  const startLsn = parseLsn(/^START WAL LOCATION: (\S+) /m.exec(label)![1]!);
  assert.match(label, /^START TIMELINE: 2$/m);
  const history = readTimeLineHistory(path.join(standbyDir, 'pg_wal'), 2);
  assert.deepEqual(history.map((h) => h.tli), [2, 1]);
  assert.ok(history[0]!.begin < startLsn, 'the backup started after the switch point');
  // One range, on timeline 2, from the backup's start (not from where timeline 2 began).
  assert.equal(real.walRanges.length, 1);
  assert.deepEqual({ tli: real.walRanges[0]!.tli, startLsn: real.walRanges[0]!.startLsn }, { tli: 2, startLsn });
  const ours = rebuild(dir, real, 'CRC32C', false, (m) => m.addWalRangesFromHistory(history, startLsn, 2, real.walRanges[0]!.endLsn, 2));
  assert.ok(ours.equals(bytes), 'our manifest differs from pg_basebackup\'s');
  await node.stop();
  rmrf(dir);
  rmrf(standbyDir);
});

// ---- (b) our manifest for our own directory, checked by pg_verifybackup ----------------------------

interface OwnBackup {
  dir: string;
  files: Buffer[];
  tli: number;
  startLsn: number;
  endLsn: number;
}
let own: OwnBackup | undefined;

/** Lists the regular files under dir (as byte paths relative to it), pg_wal and backup_manifest left out, sorted. */
function listFiles(dir: string, rel: Buffer = Buffer.alloc(0)): Buffer[] {
  const out: Buffer[] = [];
  const abs = rel.length === 0 ? Buffer.from(dir) : joinBytes(dir, rel);
  for (const e of fs.readdirSync(abs, { withFileTypes: true, encoding: 'buffer' })) {
    const name = e.name as unknown as Buffer;
    const r = rel.length === 0 ? name : Buffer.concat([rel, Buffer.from('/'), name]);
    if (rel.length === 0 && (name.toString() === 'pg_wal' || name.toString() === 'backup_manifest')) continue;
    if (e.isDirectory()) out.push(...listFiles(dir, r));
    else out.push(r);
  }
  return out.sort(Buffer.compare);
}

/** Hands a tree we wrote to the PostgreSQL account (pg_verifybackup and pg_waldump run as it). */
function chownTree(p: string | Buffer): void {
  if (!account) return;
  fs.chownSync(p, account.uid, account.gid);
  if (fs.lstatSync(p).isDirectory()) {
    for (const name of fs.readdirSync(p, { encoding: 'buffer' })) chownTree(joinBytes(p, name));
  }
}

function ownBackup(): OwnBackup {
  if (own) return own;
  // The WAL: a real backup with -X fetch, whose WAL range we take over.
  const fetched = path.join(root, 'fetched');
  const real = parseBackupManifest(basebackup(fetched, ['-X', 'fetch']));
  const range = real.walRanges[0]!;
  const dir = path.join(root, 'own');
  fs.mkdirSync(dir);
  fs.cpSync(path.join(fetched, 'pg_wal'), path.join(dir, 'pg_wal'), { recursive: true });
  rmrf(fetched);
  fs.writeFileSync(path.join(dir, 'PG_VERSION'), '15\n');
  fs.mkdirSync(path.join(dir, 'base/1'), { recursive: true });
  const rnd = prng(20261207);
  const big = Buffer.alloc(3 * 1024 * 1024 + 123);
  for (let i = 0; i < big.length; i++) big[i] = (rnd() * 256) | 0;
  fs.writeFileSync(path.join(dir, 'base/1/16384'), big);
  fs.writeFileSync(path.join(dir, 'empty'), '');
  fs.mkdirSync(path.join(dir, 'walstream-names'));
  fs.writeFileSync(path.join(dir, ESCAPED_NAME), 'escaped\n');
  fs.writeFileSync(path.join(dir, UTF8_NAME), 'utf-8\n');
  fs.writeFileSync(joinBytes(dir, NOT_UTF8_NAME), 'not utf-8\n');
  fs.utimesSync(path.join(dir, 'PG_VERSION'), 86400 * 365, 86400 * 365 + 0.75);
  chownTree(dir);
  own = { dir, files: listFiles(dir), tli: range.tli, startLsn: range.startLsn, endLsn: range.endLsn };
  return own;
}

/** Our manifest for our directory, written to dir/backup_manifest. */
function writeOwnManifest(b: OwnBackup, checksumType: ChecksumType, forceEncode: boolean, endLsn = b.endLsn): Buffer {
  const m = new BackupManifest({ checksumType, forceEncode });
  for (const rel of b.files) {
    const abs = joinBytes(b.dir, rel);
    const st = fs.statSync(abs);
    const sum = createFileChecksum(checksumType);
    checksumFile(abs, sum);
    m.addFile(rel, st.size, pgTimeOf(st), sum);
  }
  m.addWalRange(b.tli, b.startLsn, endLsn);
  const bytes = m.finish();
  fs.writeFileSync(path.join(b.dir, 'backup_manifest'), bytes);
  return bytes;
}

const VERIFIED = 'backup successfully verified\n';

for (const type of ['CRC32C', 'SHA224', 'SHA256', 'SHA384', 'SHA512', 'NONE'] as const) {
  for (const forceEncode of [false, true]) {
    test(`(b) pg_verifybackup accepts our ${type}${forceEncode ? ' force-encode' : ''} manifest, WAL parsed and with --no-parse-wal`, () => {
      const b = ownBackup();
      const bytes = writeOwnManifest(b, type, forceEncode);
      const text = bytes.toString('latin1');
      assert.equal(text.includes('"Encoded-Path"'), true);
      assert.equal(text.includes('"Path"'), !forceEncode);
      assert.equal(parseBackupManifest(bytes).files.length, b.files.length);
      const full = verify(b.dir);
      assert.equal(full.stderr, '');
      assert.equal(full.stdout, VERIFIED);
      assert.equal(full.status, 0);
      const noWal = verify(b.dir, ['--no-parse-wal']);
      assert.equal(noWal.stdout, VERIFIED);
      assert.equal(noWal.status, 0);
    });
  }
}

test('(b) pg_verifybackup names a damaged, a grown, an extra and a missing file', () => {
  const b = ownBackup();
  writeOwnManifest(b, 'CRC32C', false);
  const bigPath = path.join(b.dir, 'base/1/16384');
  const big = fs.readFileSync(bigPath);

  // One byte changed in the middle: same size, another CRC.
  const damaged = Buffer.from(big);
  damaged[2 * 1024 * 1024 + 7] ^= 0x40;
  fs.writeFileSync(bigPath, damaged);
  let r = verify(b.dir, ['-n']);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /error: checksum mismatch for file "base\/1\/16384"/);
  fs.writeFileSync(bigPath, big);

  // A file that grew.
  fs.appendFileSync(path.join(b.dir, 'PG_VERSION'), 'x');
  r = verify(b.dir, ['-n']);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /error: "PG_VERSION" has size 4 on disk but size 3 in the manifest/);
  fs.writeFileSync(path.join(b.dir, 'PG_VERSION'), '15\n');

  // A file the manifest does not list, and one it lists that is gone.
  fs.writeFileSync(path.join(b.dir, 'extra'), 'x');
  fs.renameSync(path.join(b.dir, 'empty'), path.join(root, 'empty-aside'));
  r = verify(b.dir, ['-n']);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /error: "extra" is present on disk but not in the manifest/);
  assert.match(r.stderr, /error: "empty" is present in the manifest but not on disk/);
  fs.rmSync(path.join(b.dir, 'extra'));
  fs.renameSync(path.join(root, 'empty-aside'), path.join(b.dir, 'empty'));

  r = verify(b.dir, ['-n']);
  assert.equal(r.stdout, VERIFIED);
  assert.equal(r.status, 0);
});

test('(b) damaged manifests: pg_verifybackup and our reader refuse them with the same words', () => {
  const b = ownBackup();
  const bytes = writeOwnManifest(b, 'SHA256', false);
  const text = bytes.toString('latin1');
  const at = text.indexOf('"Size": 3, ');
  assert.ok(at > 0);
  const damaged = Buffer.from(bytes);
  damaged[at + '"Size": '.length] = 0x34; // 3 -> 4, still valid JSON
  fs.writeFileSync(path.join(b.dir, 'backup_manifest'), damaged);
  const r = verify(b.dir, ['-n']);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /error: manifest checksum mismatch/);
  assert.throws(() => parseBackupManifest(damaged), { message: 'manifest checksum mismatch' });

  // Without its last newline: PostgreSQL's parse error, ours too.
  const cut = bytes.subarray(0, bytes.length - 1);
  fs.writeFileSync(path.join(b.dir, 'backup_manifest'), cut);
  const r2 = verify(b.dir, ['-n']);
  assert.equal(r2.status, 1);
  assert.match(r2.stderr, /error: could not parse backup manifest: last line not newline-terminated/);
  assert.throws(() => parseBackupManifest(cut), { message: 'could not parse backup manifest: last line not newline-terminated' });

  // No "Manifest-Checksum" at all (the WAL ranges end the object).
  const tail = text.lastIndexOf('],\n"Manifest-Checksum"');
  assert.ok(tail > 0);
  const unsummed = Buffer.from(text.slice(0, tail) + ']\n}\n', 'latin1');
  fs.writeFileSync(path.join(b.dir, 'backup_manifest'), unsummed);
  const r3 = verify(b.dir, ['-n']);
  assert.equal(r3.status, 1);
  assert.match(r3.stderr, /error: could not parse backup manifest: unexpected object end/);
  assert.throws(() => parseBackupManifest(unsummed), { message: 'could not parse backup manifest: unexpected object end' });
  writeOwnManifest(b, 'SHA256', false);
});

test('(b) damaged WAL in the range fails WAL parsing, and passes with --no-parse-wal', () => {
  const b = ownBackup();
  writeOwnManifest(b, 'CRC32C', false);
  // The segment holding Start-LSN (16 MiB segments, initdb's default), one byte of the first record's data changed.
  const segBytes = 16 * 1024 * 1024;
  const segno = Math.floor(b.startLsn / segBytes);
  const name = b.tli.toString(16).toUpperCase().padStart(8, '0') + Math.floor(segno / 256).toString(16).toUpperCase().padStart(8, '0') + (segno % 256).toString(16).toUpperCase().padStart(8, '0');
  const seg = path.join(b.dir, 'pg_wal', name);
  const good = fs.readFileSync(seg);
  const bad = Buffer.from(good);
  bad[(b.startLsn % segBytes) + 30] ^= 0x01;
  fs.writeFileSync(seg, bad);
  const r = verify(b.dir);
  assert.equal(r.status, 1);
  assert.ok(r.stderr.includes(`pg_waldump: error: could not find a valid record after ${lsnToString(b.startLsn)}\n`), r.stderr);
  assert.match(r.stderr, /error: WAL parsing failed for timeline 1/);
  const n = verify(b.dir, ['-n']);
  assert.equal(n.stdout, VERIFIED);
  assert.equal(n.status, 0);
  fs.writeFileSync(seg, good);
  const again = verify(b.dir);
  assert.equal(again.stdout, VERIFIED);
  assert.equal(again.status, 0);
});

// ---- the builder alone ----------------------------------------------------------------------------

test('WAL ranges from a timeline history: one per timeline the backup spans, newest first', () => {
  const m = new BackupManifest({ checksumType: 'NONE', forceEncode: false });
  // Timeline 3's history: 3 began at 0/5000000, 2 at 0/3000000, 1 from the start.
  const history = [{ tli: 3, begin: 0x5000000, end: 0 }, { tli: 2, begin: 0x3000000, end: 0x5000000 }, { tli: 1, begin: 0, end: 0x3000000 }];
  m.addWalRangesFromHistory(history, 0x4000028, 2, 0x6000100, 3);
  const text = m.finish().toString('latin1');
  assert.ok(text.includes('"Files": [\n],\n"WAL-Ranges": [\n{ "Timeline": 3, "Start-LSN": "0/5000000", "End-LSN": "0/6000100" },\n{ "Timeline": 2, "Start-LSN": "0/4000028", "End-LSN": "0/5000000" }\n],\n"Manifest-Checksum": "'));
  assert.equal(parseBackupManifest(Buffer.from(text, 'latin1')).walRanges.length, 2);
  const bad = new BackupManifest({ checksumType: 'NONE', forceEncode: false });
  // Timeline 1 ended before the backup started: not in its WAL.
  assert.throws(() => bad.addWalRangesFromHistory(history, 0x4000028, 1, 0x6000100, 3), { message: 'start timeline 1 not found in history of timeline 3' });
  assert.throws(() => bad.addWalRangesFromHistory(history, 0x4000028, 2, 0x6000100, 2), { message: 'expected end timeline 2 but found timeline 3' });
});

test('Last-Modified: whole seconds in GMT, before and after the epoch; misuse is refused', () => {
  assert.equal(formatLastModified(0), '1970-01-01 00:00:00 GMT');
  assert.equal(formatLastModified(-1), '1969-12-31 23:59:59 GMT');
  assert.equal(formatLastModified(1_000_000_000), '2001-09-09 01:46:40 GMT');
  assert.equal(pgTimeOf({ mtimeMs: -0.5 }), -1);
  assert.equal(parseLastModified('2001-09-09 01:46:40 GMT'), 1_000_000_000);
  assert.equal(parseLastModified('2001-09-09 01:46:40 UTC'), null);
  const m = new BackupManifest({ checksumType: 'CRC32C', forceEncode: false });
  assert.throws(() => m.addFile('x', 1, 0, createFileChecksum('SHA256')), { message: 'file checksum is SHA256, the manifest\'s is CRC32C' });
  assert.throws(() => m.finish(), { message: 'a backup manifest needs its WAL ranges before it is finished' });
  m.addWalRange(1, 0x2000028, 0x2000100);
  assert.throws(() => m.addFile('x', 1, 0, createFileChecksum('CRC32C')), { message: 'cannot add a file to a backup manifest after its WAL ranges' });
});
