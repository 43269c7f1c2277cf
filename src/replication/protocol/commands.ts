// Lexer and parser for PostgreSQL 15's replication command grammar (repl_scanner.l, repl_gram.y),
// whose option lists are interpreted right after parsing, as PostgreSQL does (command-options.ts).
// Pure functions: ReplicationServerConn calls parseReplicationCommand() on
// every simple Query; the walsender executes the resulting ReplicationCommand.
//
// Behaviour checked against a real PostgreSQL 15.18 walsender:
// - keywords are case-sensitive upper case; a query whose first token is not a command keyword
//   is SQL → 0A000 "cannot execute SQL commands in WAL sender for physical replication";
// - unquoted identifiers are lower-cased (ASCII only) and, like quoted ones, truncated to 63 bytes
//   with a NOTICE 42622 (returned in `notices`, to be sent before the result);
// - `'…'` strings with `''`, `"…"` identifiers (no doubling: `"a""b"` is two identifiers),
//   digits → unsigned integer (taken modulo 2^32 like PostgreSQL's uint32), hex/hex → LSN;
// - one optional trailing `;`; anything else after the command → 42601 "syntax error".
// PostgreSQL 15 has no legacy (unparenthesised) BASE_BACKUP options: `BASE_BACKUP LABEL 'x'` is a
// syntax error there, and here.

import { Errors, type WalstreamError } from '../../errors.js';
import { lsnToString, type Lsn } from '../../wal/lsn.js';
import { finishCreateSlot, interpretBaseBackupOptions, NAMEDATALEN } from './command-options.js';

export { interpretBaseBackupOptions, validateSlotName } from './command-options.js';

// ---------------------------------------------------------------------------------------------
// Result types

export type OptionArg = { kind: 'string'; value: string } | { kind: 'integer'; value: number } | { kind: 'boolean'; value: boolean };

/** One `name [value]` of a parenthesised option list (PostgreSQL's DefElem). */
export interface GenericOption {
  name: string;
  arg: OptionArg | null;
}

export type SnapshotAction = 'export' | 'nothing' | 'use';

export interface BaseBackupOptions {
  label: string;
  progress: boolean;
  fastCheckpoint: boolean;
  /** false = NOWAIT: do not wait for the WAL to be archived. */
  wait: boolean;
  includeWal: boolean;
  /** KB/s, 0 = unlimited. */
  maxRateKBps: number;
  tablespaceMap: boolean;
  verifyChecksums: boolean;
  manifest: 'yes' | 'no' | 'force-encode';
  manifestChecksums: 'NONE' | 'CRC32C' | 'SHA224' | 'SHA256' | 'SHA384' | 'SHA512';
  /** null = send to the client (the PG14 behaviour). */
  target: string | null;
  targetDetail: string | null;
  compression: 'none' | 'gzip' | 'lz4' | 'zstd';
  compressionDetail: string | null;
}

export type ReplicationCommand =
  | { kind: 'IDENTIFY_SYSTEM' }
  | { kind: 'SHOW'; name: string }
  | { kind: 'TIMELINE_HISTORY'; timeline: number }
  | {
      kind: 'CREATE_REPLICATION_SLOT';
      slotName: string;
      temporary: boolean;
      replicationKind: 'physical';
      options: GenericOption[];
      reserveWal: boolean;
    }
  | {
      kind: 'CREATE_REPLICATION_SLOT';
      slotName: string;
      temporary: boolean;
      replicationKind: 'logical';
      plugin: string;
      options: GenericOption[];
      snapshot: SnapshotAction;
      twoPhase: boolean;
    }
  | { kind: 'DROP_REPLICATION_SLOT'; slotName: string; wait: boolean }
  | { kind: 'READ_REPLICATION_SLOT'; slotName: string }
  | {
      kind: 'START_REPLICATION';
      replicationKind: 'physical';
      slotName: string | null;
      startLsn: Lsn;
      /** null when TIMELINE was not given (= the server's current timeline). */
      timeline: number | null;
    }
  | {
      kind: 'START_REPLICATION';
      replicationKind: 'logical';
      slotName: string;
      startLsn: Lsn;
      pluginOptions: { name: string; value: string | null }[];
    }
  | { kind: 'BASE_BACKUP'; options: GenericOption[]; backup: BaseBackupOptions };

export interface ParsedCommand {
  command: ReplicationCommand;
  /** NOTICEs PostgreSQL would send before the result (identifier truncation, 42622). */
  notices: WalstreamError[];
}

// ---------------------------------------------------------------------------------------------
// Lexer

const KEYWORDS = new Set([
  'BASE_BACKUP',
  'IDENTIFY_SYSTEM',
  'READ_REPLICATION_SLOT',
  'SHOW',
  'TIMELINE',
  'START_REPLICATION',
  'CREATE_REPLICATION_SLOT',
  'DROP_REPLICATION_SLOT',
  'TIMELINE_HISTORY',
  'PHYSICAL',
  'RESERVE_WAL',
  'LOGICAL',
  'SLOT',
  'TEMPORARY',
  'TWO_PHASE',
  'EXPORT_SNAPSHOT',
  'NOEXPORT_SNAPSHOT',
  'USE_SNAPSHOT',
  'WAIT',
]);

/** First tokens that make a query a replication command (replication_scanner_is_replication_command). */
const COMMAND_KEYWORDS = new Set([
  'IDENTIFY_SYSTEM',
  'BASE_BACKUP',
  'START_REPLICATION',
  'CREATE_REPLICATION_SLOT',
  'DROP_REPLICATION_SLOT',
  'READ_REPLICATION_SLOT',
  'TIMELINE_HISTORY',
  'SHOW',
]);

/** Keywords usable as option names in generic option lists (ident_or_keyword). */
const OPTION_KEYWORDS = new Set([...KEYWORDS].filter((k) => k !== 'READ_REPLICATION_SLOT'));

type Token =
  | { t: 'KW'; v: string }
  | { t: 'IDENT'; v: string }
  | { t: 'SCONST'; v: string }
  | { t: 'UCONST'; v: number }
  | { t: 'RECPTR'; v: Lsn; text: string }
  | { t: 'CHAR'; v: string }
  | { t: 'EOF' };

const TWO32 = 0x1_0000_0000;

function isSpace(c: string): boolean {
  return c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === '\f' || c === '\v';
}
function isDigit(c: string): boolean {
  return c >= '0' && c <= '9';
}
function isHex(c: string): boolean {
  return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F') || (c >= 'a' && c <= 'f');
}
function isIdentStart(c: string): boolean {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c === '_' || c.charCodeAt(0) >= 0x80;
}
function isIdentCont(c: string): boolean {
  return isIdentStart(c) || isDigit(c) || c === '$';
}

/** strtoul() of a digit string stored into a uint32, as PostgreSQL's scanner does. */
function uint32FromDigits(digits: string, radix: 10 | 16): number {
  const v = BigInt(radix === 16 ? '0x' + digits : digits);
  if (v >= 1n << 64n) return 0xffff_ffff; // strtoul saturates at ULONG_MAX
  return Number(v & 0xffff_ffffn);
}

class Lexer {
  private pos = 0;
  private peeked: Token | null = null;
  constructor(
    private readonly src: string,
    private readonly notices: WalstreamError[],
  ) {}

  peek(): Token {
    if (this.peeked === null) this.peeked = this.lex();
    return this.peeked;
  }
  next(): Token {
    const t = this.peek();
    this.peeked = null;
    return t;
  }

  private truncate(ident: string): string {
    const b = Buffer.from(ident, 'utf8');
    if (b.length < NAMEDATALEN) return ident;
    let n = NAMEDATALEN - 1;
    while (n > 0 && (b[n]! & 0xc0) === 0x80) n--; // pg_mbcliplen: never split a character
    const t = b.subarray(0, n).toString('utf8');
    this.notices.push(Errors.nameTruncated(ident, t));
    return t;
  }

  private lex(): Token {
    const s = this.src;
    while (this.pos < s.length && isSpace(s[this.pos]!)) this.pos++;
    if (this.pos >= s.length) return { t: 'EOF' };
    const start = this.pos;
    const c = s[start]!;

    // Longest match among {digit}+, {hexdigit}+/{hexdigit}+, identifier/keyword (flex semantics).
    let hexEnd = start;
    while (hexEnd < s.length && isHex(s[hexEnd]!)) hexEnd++;
    if (hexEnd > start && s[hexEnd] === '/' && hexEnd + 1 < s.length && isHex(s[hexEnd + 1]!)) {
      let lowEnd = hexEnd + 1;
      while (lowEnd < s.length && isHex(s[lowEnd]!)) lowEnd++;
      let identEnd = start;
      if (isIdentStart(c)) {
        while (identEnd < s.length && isIdentCont(s[identEnd]!)) identEnd++;
      }
      if (lowEnd - start > identEnd - start) {
        this.pos = lowEnd;
        const text = s.slice(start, lowEnd);
        const hi = uint32FromDigits(s.slice(start, hexEnd), 16);
        const lo = uint32FromDigits(s.slice(hexEnd + 1, lowEnd), 16);
        if (hi >= 0x20_0000) throw Errors.featureNotSupported(`LSN ${hi.toString(16).toUpperCase()}/${lo.toString(16).toUpperCase()} is beyond 2^53 and not supported`);
        return { t: 'RECPTR', v: hi * TWO32 + lo, text };
      }
    }
    if (isDigit(c)) {
      let end = start;
      while (end < s.length && isDigit(s[end]!)) end++;
      this.pos = end;
      return { t: 'UCONST', v: uint32FromDigits(s.slice(start, end), 10) };
    }
    if (c === "'") {
      let out = '';
      let i = start + 1;
      for (;;) {
        if (i >= s.length) throw Errors.syntaxError('unterminated quoted string');
        const ch = s[i]!;
        if (ch === "'") {
          if (s[i + 1] === "'") {
            out += "'";
            i += 2;
            continue;
          }
          this.pos = i + 1;
          return { t: 'SCONST', v: out };
        }
        out += ch;
        i++;
      }
    }
    if (c === '"') {
      const end = s.indexOf('"', start + 1);
      if (end < 0) throw Errors.syntaxError('unterminated quoted string');
      this.pos = end + 1;
      return { t: 'IDENT', v: this.truncate(s.slice(start + 1, end)) };
    }
    if (isIdentStart(c)) {
      let end = start;
      while (end < s.length && isIdentCont(s[end]!)) end++;
      this.pos = end;
      const word = s.slice(start, end);
      if (KEYWORDS.has(word)) return { t: 'KW', v: word };
      return { t: 'IDENT', v: this.truncate(word.replace(/[A-Z]+/g, (m) => m.toLowerCase())) };
    }
    // Any other character is a token of its own (',', '(', ')', ';', '.', or garbage).
    const cp = s.codePointAt(start)!;
    const ch = String.fromCodePoint(cp);
    this.pos = start + ch.length;
    return { t: 'CHAR', v: ch };
  }
}

// ---------------------------------------------------------------------------------------------
// Parser

const syntaxError = () => Errors.syntaxError('syntax error');

class Parser {
  constructor(private readonly lx: Lexer) {}

  private isKw(kw: string): boolean {
    const t = this.lx.peek();
    return t.t === 'KW' && t.v === kw;
  }
  private isChar(ch: string): boolean {
    const t = this.lx.peek();
    return t.t === 'CHAR' && t.v === ch;
  }
  private expectChar(ch: string): void {
    if (!this.isChar(ch)) throw syntaxError();
    this.lx.next();
  }
  private ident(): string {
    const t = this.lx.next();
    if (t.t !== 'IDENT') throw syntaxError();
    return t.v;
  }
  private recptr(): Lsn {
    const t = this.lx.next();
    if (t.t !== 'RECPTR') throw syntaxError();
    return t.v;
  }
  private timelineConst(): number {
    const t = this.lx.next();
    if (t.t !== 'UCONST') throw syntaxError();
    if (t.v <= 0) throw Errors.syntaxError(`invalid timeline ${t.v}`);
    return t.v;
  }
  private varName(): string {
    let name = this.ident();
    while (this.isChar('.')) {
      this.lx.next();
      name += '.' + this.ident();
    }
    return name;
  }

  parse(): ReplicationCommand {
    const first = this.lx.next();
    if (first.t !== 'KW') throw syntaxError();
    let cmd: ReplicationCommand;
    switch (first.v) {
      case 'IDENTIFY_SYSTEM':
        cmd = { kind: 'IDENTIFY_SYSTEM' };
        break;
      case 'SHOW':
        cmd = { kind: 'SHOW', name: this.varName() };
        break;
      case 'READ_REPLICATION_SLOT':
        cmd = { kind: 'READ_REPLICATION_SLOT', slotName: this.varName() };
        break;
      case 'TIMELINE_HISTORY':
        cmd = { kind: 'TIMELINE_HISTORY', timeline: this.timelineConst() };
        break;
      case 'DROP_REPLICATION_SLOT': {
        const slotName = this.ident();
        let wait = false;
        if (this.isKw('WAIT')) {
          this.lx.next();
          wait = true;
        }
        cmd = { kind: 'DROP_REPLICATION_SLOT', slotName, wait };
        break;
      }
      case 'CREATE_REPLICATION_SLOT':
        cmd = this.createSlot();
        break;
      case 'START_REPLICATION':
        cmd = this.startReplication();
        break;
      case 'BASE_BACKUP': {
        let options: GenericOption[] = [];
        if (this.isChar('(')) {
          this.lx.next();
          options = this.genericOptionList();
          this.expectChar(')');
        }
        this.end();
        return { kind: 'BASE_BACKUP', options, backup: interpretBaseBackupOptions(options) };
      }
      default:
        throw syntaxError();
    }
    this.end();
    if (cmd.kind === 'CREATE_REPLICATION_SLOT') return finishCreateSlot(cmd);
    return cmd;
  }

  /** opt_semicolon, then end of input. */
  private end(): void {
    if (this.isChar(';')) this.lx.next();
    if (this.lx.peek().t !== 'EOF') throw syntaxError();
  }

  private createSlot(): ReplicationCommand {
    const slotName = this.ident();
    let temporary = false;
    if (this.isKw('TEMPORARY')) {
      this.lx.next();
      temporary = true;
    }
    if (this.isKw('PHYSICAL')) {
      this.lx.next();
      const options = this.createSlotOptions();
      return { kind: 'CREATE_REPLICATION_SLOT', slotName, temporary, replicationKind: 'physical', options, reserveWal: false };
    }
    if (this.isKw('LOGICAL')) {
      this.lx.next();
      const plugin = this.ident();
      const options = this.createSlotOptions();
      return { kind: 'CREATE_REPLICATION_SLOT', slotName, temporary, replicationKind: 'logical', plugin, options, snapshot: 'export', twoPhase: false };
    }
    throw syntaxError();
  }

  private createSlotOptions(): GenericOption[] {
    if (this.isChar('(')) {
      this.lx.next();
      const list = this.genericOptionList();
      this.expectChar(')');
      return list;
    }
    const list: GenericOption[] = [];
    for (;;) {
      const t = this.lx.peek();
      if (t.t !== 'KW') return list;
      switch (t.v) {
        case 'EXPORT_SNAPSHOT':
          list.push({ name: 'snapshot', arg: { kind: 'string', value: 'export' } });
          break;
        case 'NOEXPORT_SNAPSHOT':
          list.push({ name: 'snapshot', arg: { kind: 'string', value: 'nothing' } });
          break;
        case 'USE_SNAPSHOT':
          list.push({ name: 'snapshot', arg: { kind: 'string', value: 'use' } });
          break;
        case 'RESERVE_WAL':
          list.push({ name: 'reserve_wal', arg: { kind: 'boolean', value: true } });
          break;
        case 'TWO_PHASE':
          list.push({ name: 'two_phase', arg: { kind: 'boolean', value: true } });
          break;
        default:
          return list;
      }
      this.lx.next();
    }
  }

  private genericOptionList(): GenericOption[] {
    const list = [this.genericOption()];
    while (this.isChar(',')) {
      this.lx.next();
      list.push(this.genericOption());
    }
    return list;
  }

  private genericOption(): GenericOption {
    const t = this.lx.next();
    let name: string;
    if (t.t === 'IDENT') name = t.v;
    else if (t.t === 'KW' && OPTION_KEYWORDS.has(t.v)) name = t.v.toLowerCase();
    else throw syntaxError();
    const a = this.lx.peek();
    if (a.t === 'IDENT' || a.t === 'SCONST') {
      this.lx.next();
      return { name, arg: { kind: 'string', value: a.v } };
    }
    if (a.t === 'UCONST') {
      this.lx.next();
      return { name, arg: { kind: 'integer', value: a.v } };
    }
    return { name, arg: null };
  }

  private startReplication(): ReplicationCommand {
    let slotName: string | null = null;
    if (this.isKw('SLOT')) {
      this.lx.next();
      slotName = this.ident();
      if (this.isKw('LOGICAL')) {
        this.lx.next();
        const startLsn = this.recptr();
        const pluginOptions: { name: string; value: string | null }[] = [];
        if (this.isChar('(')) {
          this.lx.next();
          for (;;) {
            const name = this.ident();
            const v = this.lx.peek();
            let value: string | null = null;
            if (v.t === 'SCONST') {
              this.lx.next();
              value = v.v;
            }
            pluginOptions.push({ name, value });
            if (this.isChar(',')) {
              this.lx.next();
              continue;
            }
            break;
          }
          this.expectChar(')');
        }
        return { kind: 'START_REPLICATION', replicationKind: 'logical', slotName, startLsn, pluginOptions };
      }
    }
    if (this.isKw('PHYSICAL')) this.lx.next();
    const startLsn = this.recptr();
    let timeline: number | null = null;
    if (this.isKw('TIMELINE')) {
      this.lx.next();
      timeline = this.timelineConst();
    }
    return { kind: 'START_REPLICATION', replicationKind: 'physical', slotName, startLsn, timeline };
  }
}

// ---------------------------------------------------------------------------------------------
// Public entry points

/** True if the first token is a replication command keyword (otherwise PostgreSQL treats the query as SQL). */
export function isReplicationCommand(text: string): boolean {
  const t = new Lexer(text, []).peek();
  return t.t === 'KW' && COMMAND_KEYWORDS.has(t.v);
}

/**
 * Parses one simple-query string. Throws a WalstreamError with PostgreSQL's SQLSTATE and message:
 * 0A000 for SQL (or an empty query) on a physical connection, 42601 for syntax errors, and the
 * option errors PostgreSQL raises before executing CREATE_REPLICATION_SLOT / BASE_BACKUP.
 */
export function parseReplicationCommand(text: string): ParsedCommand {
  const notices: WalstreamError[] = [];
  const lx = new Lexer(text, notices);
  const first = lx.peek();
  if (first.t !== 'KW' || !COMMAND_KEYWORDS.has(first.v)) {
    throw Errors.featureNotSupported('cannot execute SQL commands in WAL sender for physical replication');
  }
  const command = new Parser(lx).parse();
  return { command, notices };
}

// ---------------------------------------------------------------------------------------------
// Formatting commands (client side)

/** `"name"`. The replication grammar has no escape for `"` inside a quoted identifier, so such names are refused. */
export function quoteIdent(name: string): string {
  if (name.includes('"')) throw Errors.invalidOption('identifier', 'the replication grammar cannot quote a name containing a double quote');
  return `"${name}"`;
}

/** `START_REPLICATION [SLOT "s"] X/X TIMELINE n`, as pg_receivewal and the walreceiver send it. */
export function formatStartReplication(startLsn: Lsn, timeline: number | null, slotName?: string | null): string {
  let s = 'START_REPLICATION';
  if (slotName) s += ` SLOT ${quoteIdent(slotName)}`;
  s += ` ${lsnToString(startLsn)}`;
  if (timeline !== null) s += ` TIMELINE ${timeline}`;
  return s;
}
