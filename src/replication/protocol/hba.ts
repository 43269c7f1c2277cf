// Host-based authentication rules in the spirit of pg_hba.conf: an ordered list, first match wins.
// Used by ReplicationServerConn right after the StartupMessage to pick the authentication method
// (or reject). Pure data + functions; rules are parsed once (from objects or pg_hba.conf text).
//
// Matching follows PostgreSQL 15's check_hba(): `host` lines match TCP connections (`local` lines
// unix-socket ones); in the database column the keyword `replication` matches physical
// replication connections only, and for those it is the *only* keyword that matches (`all` and
// database names do not); users match `all` or a name; the address is a CIDR of the same family
// (IPv4-mapped IPv6 client addresses are treated as IPv4).

import { isIPv4, isIPv6 } from 'node:net';
import { Errors, type WalstreamError } from '../../errors.js';

export type HbaMethod = 'trust' | 'scram-sha-256' | 'md5' | 'password' | 'reject';
export type HbaConnType = 'host' | 'local';

export interface HbaRule {
  type: HbaConnType;
  /** 'replication', 'all', 'sameuser', a name, or a comma-separated list of those. */
  database: string;
  /** 'all', a name, or a comma-separated list. */
  user: string;
  /** CIDR for `host` rules ('127.0.0.1/32', '::1/128', '0.0.0.0/0'), or 'all'. Ignored for `local`. */
  address?: string;
  method: HbaMethod;
}

export interface HbaConnection {
  type: HbaConnType;
  /** Remote IP address as the socket reports it (ignored for `local`). */
  address: string;
  user: string;
  /** Requested database (ignored for physical replication). */
  database: string;
  /** True for a physical replication connection (`replication=true`). */
  physicalReplication: boolean;
}

/** A rule with its address pre-parsed, ready for matching. */
export interface CompiledHbaRule extends HbaRule {
  databases: string[];
  users: string[];
  net: { family: 4 | 6; bytes: Uint8Array; prefix: number } | 'all' | null;
  /** 1-based line in the pg_hba.conf text, when parsed from text. */
  line?: number;
}

const METHODS = new Set<HbaMethod>(['trust', 'scram-sha-256', 'md5', 'password', 'reject']);

function ipBytes(addr: string): { family: 4 | 6; bytes: Uint8Array } | null {
  let a = addr;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(a);
  if (mapped) a = mapped[1]!;
  if (isIPv4(a)) return { family: 4, bytes: Uint8Array.from(a.split('.').map(Number)) };
  if (!isIPv6(a)) return null;
  // Expand '::' and an embedded IPv4 tail.
  let head = a;
  let tail4: number[] = [];
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  if (v4) {
    tail4 = v4[1]!.split('.').map(Number);
    head = a.slice(0, -v4[1]!.length) + '0:0';
  }
  const [l, r] = head.includes('::') ? head.split('::') : [head, undefined];
  const left = l ? l.split(':').filter((x) => x !== '') : [];
  const right = r !== undefined && r !== '' ? r.split(':') : [];
  const groups = r === undefined ? left : [...left, ...Array(8 - left.length - right.length).fill('0'), ...right];
  if (groups.length !== 8) return null;
  const bytes = new Uint8Array(16);
  groups.forEach((g, i) => {
    const v = parseInt(g, 16);
    bytes[i * 2] = v >> 8;
    bytes[i * 2 + 1] = v & 0xff;
  });
  if (tail4.length === 4) bytes.set(tail4, 12);
  return { family: 6, bytes };
}

function compileNet(address: string | undefined, where: string): CompiledHbaRule['net'] {
  if (address === undefined || address === 'all') return 'all';
  const slash = address.indexOf('/');
  const ip = ipBytes(slash < 0 ? address : address.slice(0, slash));
  if (!ip) throw Errors.invalidOption('pg_hba address', `invalid IP address "${address}"${where}`);
  const max = ip.family === 4 ? 32 : 128;
  const prefix = slash < 0 ? max : Number(address.slice(slash + 1));
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > max || (slash >= 0 && !/^\d+$/.test(address.slice(slash + 1)))) {
    throw Errors.invalidOption('pg_hba address', `invalid CIDR mask in address "${address}"${where}`);
  }
  return { family: ip.family, bytes: ip.bytes, prefix };
}

function splitList(field: string): string[] {
  return field.split(',').map((s) => s.trim()).filter((s) => s !== '');
}

export function compileHbaRule(rule: HbaRule, line?: number): CompiledHbaRule {
  const where = line === undefined ? '' : ` (pg_hba line ${line})`;
  if (rule.type !== 'host' && rule.type !== 'local') throw Errors.invalidOption('pg_hba type', `unsupported connection type "${String(rule.type)}"${where}`);
  if (!METHODS.has(rule.method)) throw Errors.invalidOption('pg_hba method', `invalid authentication method "${String(rule.method)}"${where}`);
  const databases = splitList(rule.database);
  const users = splitList(rule.user);
  if (databases.length === 0) throw Errors.invalidOption('pg_hba database', `empty database field${where}`);
  if (users.length === 0) throw Errors.invalidOption('pg_hba user', `empty user field${where}`);
  for (const u of users) if (u.startsWith('+') || u.startsWith('@')) throw Errors.invalidOption('pg_hba user', `group and file references ("${u}") are not supported${where}`);
  for (const d of databases) if (d.startsWith('@') || d === 'samerole' || d === 'samegroup') throw Errors.invalidOption('pg_hba database', `"${d}" is not supported${where}`);
  const compiled: CompiledHbaRule = { ...rule, databases, users, net: rule.type === 'host' ? compileNet(rule.address, where) : null };
  if (line !== undefined) compiled.line = line;
  return compiled;
}

export function compileHba(rules: readonly HbaRule[]): CompiledHbaRule[] {
  return rules.map((r) => compileHbaRule(r));
}

/**
 * Parses pg_hba.conf text: `#` comments, whitespace-separated fields, `"…"` quoting (quoted
 * keywords are plain names), comma lists, an address either as CIDR or as `addr mask`.
 * Supported types: local, host, hostnossl (= host here: there is no TLS); hostssl lines never match
 * and are dropped. Options after the method (`name=value`) are not supported.
 */
export function parseHbaConf(text: string): CompiledHbaRule[] {
  const out: CompiledHbaRule[] = [];
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, i) => {
    const lineNo = i + 1;
    const fields = tokenizeHbaLine(raw);
    if (fields.length === 0) return;
    const bad = (why: string) => Errors.invalidOption('pg_hba.conf', `${why} on line ${lineNo}: "${raw.trim()}"`);
    const [type, database, user] = fields;
    if (database === undefined || user === undefined) throw bad('missing fields');
    let rest = fields.slice(3);
    let connType: HbaConnType;
    let address: string | undefined;
    if (type === 'local') connType = 'local';
    else if (type === 'host' || type === 'hostnossl' || type === 'hostssl' || type === 'hostgssenc' || type === 'hostnogssenc') {
      connType = 'host';
      const a = rest[0];
      if (a === undefined) throw bad('missing address');
      rest = rest.slice(1);
      if (!a.includes('/') && a !== 'all' && rest.length >= 2 && (isIPv4(rest[0]!) || isIPv6(rest[0]!))) {
        address = `${a}/${maskToPrefix(rest[0]!, bad)}`;
        rest = rest.slice(1);
      } else address = a;
      if (a === 'samehost' || a === 'samenet') throw bad(`"${a}" is not supported`);
    } else throw bad(`invalid connection type "${type}"`);
    const method = rest[0];
    if (method === undefined) throw bad('missing authentication method');
    if (rest.length > 1) throw bad('authentication options are not supported');
    if (!METHODS.has(method as HbaMethod)) throw bad(`invalid authentication method "${method}"`);
    if (type === 'hostssl' || type === 'hostgssenc') return; // can never match without encryption
    const rule: HbaRule = { type: connType, database, user, method: method as HbaMethod };
    if (address !== undefined) rule.address = address;
    out.push(compileHbaRule(rule, lineNo));
  });
  return out;
}

function maskToPrefix(mask: string, bad: (why: string) => WalstreamError): number {
  const ip = ipBytes(mask);
  if (!ip) throw bad(`invalid IP mask "${mask}"`);
  let prefix = 0;
  let ended = false;
  for (const b of ip.bytes) {
    for (let bit = 7; bit >= 0; bit--) {
      const on = (b >> bit) & 1;
      if (on && ended) throw bad(`invalid IP mask "${mask}"`);
      if (on) prefix++;
      else ended = true;
    }
  }
  return prefix;
}

/** Splits one pg_hba.conf line into fields. Quoted text keeps its quotes off but marks keywords as names. */
function tokenizeHbaLine(line: string): string[] {
  const fields: string[] = [];
  let cur = '';
  let inQuote = false;
  let have = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (inQuote) {
      if (c === '"') inQuote = false;
      else cur += c;
      continue;
    }
    if (c === '#') break;
    if (c === '"') {
      inQuote = true;
      have = true;
      // A quoted keyword is a plain name: mark it so `"all"` does not mean every user.
      if (/^(all|replication|sameuser)$/.test(line.slice(i + 1).split('"')[0] ?? '')) cur += '\u0000';
      continue;
    }
    if (c === ' ' || c === '\t') {
      if (have) fields.push(cur);
      cur = '';
      have = false;
      continue;
    }
    cur += c;
    have = true;
  }
  if (inQuote) throw Errors.invalidOption('pg_hba.conf', `unterminated quote in line "${line.trim()}"`);
  if (have) fields.push(cur);
  return fields;
}

function ipInNet(addr: string, net: CompiledHbaRule['net']): boolean {
  if (net === 'all') return true;
  if (net === null) return false;
  const ip = ipBytes(addr);
  if (!ip || ip.family !== net.family) return false;
  let bits = net.prefix;
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((ip.bytes[i]! & mask) !== (net.bytes[i]! & mask)) return false;
  }
  return true;
}

function nameMatches(token: string, name: string): boolean {
  // A leading NUL marks a quoted keyword, which is compared as a plain name.
  return (token.startsWith('\u0000') ? token.slice(1) : token) === name;
}

function databaseMatches(rule: CompiledHbaRule, conn: HbaConnection): boolean {
  for (const tok of rule.databases) {
    if (conn.physicalReplication) {
      if (tok === 'replication') return true;
      continue;
    }
    if (tok === 'all') return true;
    if (tok === 'sameuser') {
      if (conn.database === conn.user) return true;
      continue;
    }
    if (tok === 'replication') continue;
    if (nameMatches(tok, conn.database)) return true;
  }
  return false;
}

function userMatches(rule: CompiledHbaRule, user: string): boolean {
  for (const tok of rule.users) {
    if (tok === 'all') return true;
    if (nameMatches(tok, user)) return true;
  }
  return false;
}

/** First rule matching the connection, or undefined. */
export function matchHba(rules: readonly CompiledHbaRule[], conn: HbaConnection): CompiledHbaRule | undefined {
  for (const r of rules) {
    if (r.type !== conn.type) continue;
    if (r.type === 'host' && !ipInNet(conn.address, r.net)) continue;
    if (!databaseMatches(r, conn)) continue;
    if (!userMatches(r, conn.user)) continue;
    return r;
  }
  return undefined;
}

/** How PostgreSQL names the client host in authentication errors. */
export function hbaHostInfo(conn: HbaConnection): string {
  if (conn.type === 'local') return '[local]';
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(conn.address);
  return m ? m[1]! : conn.address;
}

/**
 * The method to use for this connection, or the FATAL 28000 PostgreSQL sends:
 * no line → "no pg_hba.conf entry for …", a `reject` line → "pg_hba.conf rejects …".
 */
export function checkHba(rules: readonly CompiledHbaRule[], conn: HbaConnection): Exclude<HbaMethod, 'reject'> {
  const rule = matchHba(rules, conn);
  const host = hbaHostInfo(conn);
  if (rule === undefined) {
    if (conn.physicalReplication) throw Errors.invalidAuthorization(`no pg_hba.conf entry for replication connection from host "${host}", user "${conn.user}", no encryption`);
    throw Errors.invalidAuthorization(`no pg_hba.conf entry for host "${host}", user "${conn.user}", database "${conn.database}", no encryption`);
  }
  if (rule.method === 'reject') {
    if (conn.physicalReplication) throw Errors.invalidAuthorization(`pg_hba.conf rejects replication connection for host "${host}", user "${conn.user}", no encryption`);
    throw Errors.invalidAuthorization(`pg_hba.conf rejects connection for host "${host}", user "${conn.user}", database "${conn.database}", no encryption`);
  }
  return rule.method;
}
