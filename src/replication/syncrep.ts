// Synchronous replication rules, sans I/O: the synchronous_standby_names grammar and the choice of
// synchronous standbys, as PostgreSQL 15 has them (syncrep_scanner.l, syncrep_gram.y, syncrep.c,
// pg_stat_get_wal_senders). Pure functions over a list of walsender states: any thread may call
// them (the primary for replicationStatus(), walsender workers when a reply arrives). Owns
// nothing, starts nothing, nothing to stop.
//
// DEV DOCS — the facts, checked against a PostgreSQL 15 server (ALTER SYSTEM runs the check hook):
//   * Tokens: blanks [ \t\n\r\f\v] are skipped; ANY and FIRST are keywords in any letter case
//     (`any`, `First`); an identifier is [A-Za-z\x80-\xff_][A-Za-z\x80-\xff_0-9$]*; digits form a
//     NUM; `"…"` is a name with `""` for a quote (case kept, may be empty); `*` is a name; `,` `(`
//     `)`; any other byte is junk. Names are stored as written — PostgreSQL does not lower-case
//     unquoted names either: it compares them with application_name case-insensitively (ASCII
//     folding, pg_strcasecmp), quoted or not. A keyword is never a name unless quoted
//     (`ANY 1 (first)` is a syntax error, `ANY 1 ("first")` is fine).
//   * Grammar: `list` (= FIRST 1), `NUM ( list )` (= FIRST NUM), `FIRST NUM ( list )`,
//     `ANY NUM ( list )`; list = name {, name}; a name is a NAME or a NUM (`1, 2` names two
//     standbys). The empty string means "no synchronous standbys" and is not parsed; blanks only
//     are a syntax error.
//   * Errors: 42601 `invalid value for parameter "synchronous_standby_names": "<value>"` with
//     detail `syntax error at or near "<token text>"` (the first token that cannot continue a valid
//     prefix; a quoted name's text is its closing `"`), `syntax error at end of input`, or
//     `unterminated quoted identifier at end of input`. NUM is read with C atoi (strtol clamped
//     to 64 bits, then truncated to 32): a value ≤ 0 gives 22023 `number of synchronous standbys
//     (<n>) must be greater than zero` (so `4294967296 (a)` reports 0). k larger than the number
//     of names is accepted (commits then wait until that many standbys confirm).
//   * Priority (SyncRepGetStandbyPriority): 1-based position of the first list member equal to
//     the application_name (case-insensitive) or equal to `*`; 0 = not listed. In ANY mode every
//     listed standby has priority 1. `*` therefore has its own position: in `2(a, *, b)` every
//     standby other than a has priority 2.
//   * Candidates (SyncRepGetCandidateStandbys): in use, state streaming or stopping, priority > 0,
//     a valid (non-zero) flush position. FIRST keeps the num_sync candidates of lowest priority,
//     ties broken by walsender slot order; ANY keeps them all.
//   * pg_stat_replication: sync_priority is the priority, shown as 0 while the standby has not
//     reported a flush position; sync_state is async (priority 0), sync/quorum (a kept candidate),
//     else potential (listed but not chosen, or not yet streaming).
//   * Synced positions (SyncRepGetSyncRecPtr): none unless at least num_sync candidates exist;
//     FIRST: the minimum of each position over the chosen; ANY: for each position separately, the
//     num_sync-th largest over all candidates.
//   * walstream's `remote_receive` level uses the standby's received position; standbys that do
//     not report one (every PostgreSQL client) count with their write position, which is never
//     ahead of what they received.

import { Errors } from '../errors.js';
import { assert } from '../util/assert.js';
import type { Lsn } from '../wal/lsn.js';

export type SyncRepMethod = 'priority' | 'quorum';

/** A parsed synchronous_standby_names (PostgreSQL's SyncRepConfigData). */
export interface SyncRepConfig {
  /** num_sync: how many standbys must confirm. */
  numSync: number;
  /** FIRST (priority) or ANY (quorum). */
  method: SyncRepMethod;
  /** Standby names as written (quotes removed), in list order. `*` matches any standby. */
  members: string[];
}

// ---------------------------------------------------------------------------------------------
// Scanner

type TokKind = 'ANY' | 'FIRST' | 'NAME' | 'NUM' | ',' | '(' | ')' | 'JUNK' | 'EOF' | 'UNTERMINATED';
interface Tok {
  kind: TokKind;
  /** The value (name without quotes, digits). */
  value: string;
  /** The text flex's yytext holds after the token (what error messages quote). */
  text: string;
}

const isSpace = (c: number) => c === 0x20 || (c >= 0x09 && c <= 0x0d);
const isDigit = (c: number) => c >= 0x30 && c <= 0x39;
const isIdentStart = (c: number) => (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c === 0x5f || c >= 0x80;
const isIdentCont = (c: number) => isIdentStart(c) || isDigit(c) || c === 0x24;

class Scanner {
  private pos = 0;
  private readonly bytes: Buffer;
  constructor(text: string) {
    // flex scans bytes: identifiers may hold any byte >= 0x80 (UTF-8 sequences stay whole).
    this.bytes = Buffer.from(text, 'utf8');
  }

  next(): Tok {
    const b = this.bytes;
    while (this.pos < b.length && isSpace(b[this.pos]!)) this.pos++;
    if (this.pos >= b.length) return { kind: 'EOF', value: '', text: '' };
    const start = this.pos;
    const c = b[start]!;
    if (c === 0x22) {
      // "…" with "" for a quote
      let out = '';
      let p = start + 1;
      for (;;) {
        if (p >= b.length) {
          this.pos = p;
          return { kind: 'UNTERMINATED', value: '', text: '' };
        }
        if (b[p] === 0x22) {
          if (b[p + 1] === 0x22) {
            out += '"';
            p += 2;
            continue;
          }
          this.pos = p + 1;
          return { kind: 'NAME', value: out, text: '"' };
        }
        let q = p;
        while (q < b.length && b[q] !== 0x22) q++;
        out += b.toString('utf8', p, q);
        p = q;
      }
    }
    if (isIdentStart(c)) {
      let p = start + 1;
      while (p < b.length && isIdentCont(b[p]!)) p++;
      this.pos = p;
      const word = b.toString('utf8', start, p);
      const upper = word.toUpperCase();
      if (upper === 'ANY' && word.length === 3) return { kind: 'ANY', value: word, text: word };
      if (upper === 'FIRST' && word.length === 5) return { kind: 'FIRST', value: word, text: word };
      return { kind: 'NAME', value: word, text: word };
    }
    if (isDigit(c)) {
      let p = start + 1;
      while (p < b.length && isDigit(b[p]!)) p++;
      this.pos = p;
      const digits = b.toString('latin1', start, p);
      return { kind: 'NUM', value: digits, text: digits };
    }
    this.pos = start + 1;
    if (c === 0x2a) return { kind: 'NAME', value: '*', text: '*' };
    if (c === 0x2c) return { kind: ',', value: ',', text: ',' };
    if (c === 0x28) return { kind: '(', value: '(', text: '(' };
    if (c === 0x29) return { kind: ')', value: ')', text: ')' };
    return { kind: 'JUNK', value: '', text: b.toString('latin1', start, start + 1) };
  }
}

/** C's atoi as glibc has it: strtol (clamped to the 64-bit range) truncated to a 32-bit int. */
function cAtoi(digits: string): number {
  let v = BigInt(digits);
  const LONG_MAX = (1n << 63n) - 1n;
  if (v > LONG_MAX) v = LONG_MAX;
  return Number(BigInt.asIntN(32, v));
}

// ---------------------------------------------------------------------------------------------
// Parser (one token of lookahead, failing at the same token as PostgreSQL's LALR parser)

class SyntaxFailure extends Error {
  constructor(readonly detail: string) {
    super(detail);
  }
}

class Parser {
  private readonly sc: Scanner;
  constructor(text: string) {
    this.sc = new Scanner(text);
  }

  private tok(): Tok {
    const t = this.sc.next();
    if (t.kind === 'UNTERMINATED') throw new SyntaxFailure('unterminated quoted identifier at end of input');
    return t;
  }

  private fail(t: Tok): never {
    throw new SyntaxFailure(t.kind === 'EOF' ? 'syntax error at end of input' : `syntax error at or near "${t.text}"`);
  }

  /** Names after a first one, up to `end` (')' or EOF); returns the token that ended the list. */
  private listRest(first: string, end: ')' | 'EOF'): string[] {
    const names = [first];
    for (;;) {
      const t = this.tok();
      if (t.kind === end) return names;
      if (t.kind !== ',') this.fail(t);
      const n = this.tok();
      if (n.kind !== 'NAME' && n.kind !== 'NUM') this.fail(n);
      names.push(n.value);
    }
  }

  private parenList(): string[] {
    const open = this.tok();
    if (open.kind !== '(') this.fail(open);
    const n = this.tok();
    if (n.kind !== 'NAME' && n.kind !== 'NUM') this.fail(n);
    return this.listRest(n.value, ')');
  }

  private expectEnd(): void {
    const t = this.tok();
    if (t.kind !== 'EOF') this.fail(t);
  }

  parse(): { num: string; method: SyncRepMethod; members: string[] } {
    const t0 = this.tok();
    if (t0.kind === 'ANY' || t0.kind === 'FIRST') {
      const num = this.tok();
      if (num.kind !== 'NUM') this.fail(num);
      const members = this.parenList();
      this.expectEnd();
      return { num: num.value, method: t0.kind === 'ANY' ? 'quorum' : 'priority', members };
    }
    if (t0.kind === 'NUM') {
      const t1 = this.tok();
      if (t1.kind === '(') {
        const n = this.tok();
        if (n.kind !== 'NAME' && n.kind !== 'NUM') this.fail(n);
        const members = this.listRest(n.value, ')');
        this.expectEnd();
        return { num: t0.value, method: 'priority', members };
      }
      // t0 was the first name of a plain list
      if (t1.kind === 'EOF') return { num: '1', method: 'priority', members: [t0.value] };
      if (t1.kind !== ',') this.fail(t1);
      const n = this.tok();
      if (n.kind !== 'NAME' && n.kind !== 'NUM') this.fail(n);
      return { num: '1', method: 'priority', members: [t0.value, ...this.listRest(n.value, 'EOF')] };
    }
    if (t0.kind === 'NAME') return { num: '1', method: 'priority', members: this.listRest(t0.value, 'EOF') };
    this.fail(t0);
  }
}

/**
 * Parse synchronous_standby_names as PostgreSQL 15's check hook does. Returns null for the empty
 * string (no synchronous replication). Throws WalstreamError 42601 (syntax) or 22023 (num_sync ≤ 0)
 * with PostgreSQL's messages.
 */
export function parseSynchronousStandbyNames(value: string): SyncRepConfig | null {
  if (typeof value !== 'string') throw Errors.invalidOption('synchronousStandbyNames', 'must be a string');
  if (value === '') return null;
  let r: { num: string; method: SyncRepMethod; members: string[] };
  try {
    r = new Parser(value).parse();
  } catch (e) {
    if (e instanceof SyntaxFailure) throw Errors.invalidSyncStandbyNames(value, e.detail);
    throw e;
  }
  const numSync = cAtoi(r.num);
  if (numSync <= 0) throw Errors.syncStandbyNumSync(numSync);
  return { numSync, method: r.method, members: r.members };
}

/** The canonical text of a config (what `SHOW synchronous_standby_names` would print is the input; this is for logs). */
export function formatSyncRepConfig(c: SyncRepConfig | null): string {
  if (c === null) return '';
  const q = (n: string) => (n === '*' || (/^[a-z_][a-z0-9_$]*$/.test(n) && !/^(any|first)$/i.test(n)) ? n : `"${n.replace(/"/g, '""')}"`);
  return `${c.method === 'quorum' ? 'ANY' : 'FIRST'} ${c.numSync} (${c.members.map(q).join(', ')})`;
}

// ---------------------------------------------------------------------------------------------
// Standby selection

/** pg_strcasecmp: ASCII letters folded, other bytes compared as they are. */
export function pgStrCaseEq(a: string, b: string): boolean {
  if (a === b) return true;
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  if (x.length !== y.length) return false;
  for (let i = 0; i < x.length; i++) {
    let c = x[i]!;
    let d = y[i]!;
    if (c >= 0x41 && c <= 0x5a) c += 0x20;
    if (d >= 0x41 && d <= 0x5a) d += 0x20;
    if (c !== d) return false;
  }
  return true;
}

/** Priorities already computed per config object (walsenders call this on every standby reply). */
const priorityMemo = new WeakMap<SyncRepConfig, Map<string, number>>();
const PRIORITY_MEMO_MAX_NAMES = 1024;

/** SyncRepGetStandbyPriority: 0 = not a synchronous candidate. */
export function standbyPriority(config: SyncRepConfig | null, applicationName: string): number {
  if (config === null) return 0;
  let memo = priorityMemo.get(config);
  if (memo === undefined) priorityMemo.set(config, (memo = new Map()));
  let v = memo.get(applicationName);
  if (v === undefined) {
    v = computePriority(config, applicationName);
    if (memo.size < PRIORITY_MEMO_MAX_NAMES) memo.set(applicationName, v);
  }
  return v;
}

function computePriority(config: SyncRepConfig, applicationName: string): number {
  for (let i = 0; i < config.members.length; i++) {
    const m = config.members[i]!;
    if (m === '*' || pgStrCaseEq(m, applicationName)) return config.method === 'priority' ? i + 1 : 1;
  }
  return 0;
}

/** What selection needs to know of one walsender (a WalSndCtl snapshot fits). */
export interface SyncSenderState {
  /** Index in the walsender array: ties between equal priorities go to the lower slot. */
  slot: number;
  /** pid-like walsender id (0 = free). */
  id: number;
  applicationName: string;
  /** WalSndCtl state name: startup | backup | catchup | streaming | stopping. */
  stateName: string;
  write: Lsn;
  flush: Lsn;
  apply: Lsn;
  /** Received (held in the standby's memory, maybe not written); absent = use `write`. */
  receive?: Lsn;
}

export type SyncState = 'async' | 'potential' | 'sync' | 'quorum';

export interface StandbySyncStatus {
  slot: number;
  id: number;
  applicationName: string;
  /** pg_stat_replication.sync_priority */
  syncPriority: number;
  /** pg_stat_replication.sync_state */
  syncState: SyncState;
}

/**
 * SyncRepGetCandidateStandbys: the standbys considered synchronous right now (FIRST: at most
 * num_sync of lowest priority, ties by slot; ANY: all candidates), with their priorities.
 */
export function candidateStandbys(config: SyncRepConfig | null, senders: readonly SyncSenderState[]): Array<SyncSenderState & { priority: number }> {
  if (config === null) return [];
  const out: Array<SyncSenderState & { priority: number }> = [];
  for (const s of senders) {
    if (s.id === 0) continue;
    if (s.stateName !== 'streaming' && s.stateName !== 'stopping') continue;
    const priority = standbyPriority(config, s.applicationName);
    if (priority === 0) continue;
    if (s.flush === 0) continue;
    out.push({ ...s, priority });
  }
  if (config.method === 'priority' && out.length > config.numSync) {
    out.sort((a, b) => a.priority - b.priority || a.slot - b.slot);
    out.length = config.numSync;
  }
  return out;
}

/** pg_stat_replication's sync_priority and sync_state for every walsender, in input order. */
export function syncStates(config: SyncRepConfig | null, senders: readonly SyncSenderState[]): StandbySyncStatus[] {
  const chosen = candidateStandbys(config, senders);
  return senders.map((s) => {
    const priority = s.flush === 0 ? 0 : standbyPriority(config, s.applicationName);
    const isSync = chosen.some((c) => c.slot === s.slot && c.id === s.id);
    const syncState: SyncState = priority === 0 ? 'async' : isSync ? (config!.method === 'priority' ? 'sync' : 'quorum') : 'potential';
    return { slot: s.slot, id: s.id, applicationName: s.applicationName, syncPriority: priority, syncState };
  });
}

/** Positions up to which the synchronous standbys, taken together, have confirmed WAL. */
export interface SyncedPositions {
  receive: Lsn;
  write: Lsn;
  flush: Lsn;
  apply: Lsn;
}

/**
 * SyncRepGetSyncRecPtr: the synced positions, or null when fewer than num_sync standbys are
 * candidates (then no commit can be released). With `mySlot`, also null unless that walsender is
 * one of the chosen (PostgreSQL's am_sync: only a synchronous standby's reply releases waiters).
 */
/** Whether walsender `slot` is one of the synchronous standbys chosen now (PostgreSQL's am_sync). */
export function isChosenSyncStandby(config: SyncRepConfig | null, senders: readonly SyncSenderState[], slot: number): boolean {
  return config !== null && candidateStandbys(config, senders).some((c) => c.slot === slot);
}

export function syncedPositions(config: SyncRepConfig | null, senders: readonly SyncSenderState[], mySlot?: number): SyncedPositions | null {
  if (config === null) return null;
  const chosen = candidateStandbys(config, senders);
  if (mySlot !== undefined && !chosen.some((c) => c.slot === mySlot)) return null;
  if (chosen.length < config.numSync) return null;
  const rec = (s: SyncSenderState) => (s.receive === undefined || s.receive < s.write ? s.write : s.receive);
  if (config.method === 'priority') {
    let receive = Infinity;
    let write = Infinity;
    let flush = Infinity;
    let apply = Infinity;
    for (const s of chosen) {
      receive = Math.min(receive, rec(s));
      write = Math.min(write, s.write);
      flush = Math.min(flush, s.flush);
      apply = Math.min(apply, s.apply);
    }
    return { receive, write, flush, apply };
  }
  const nth = (vals: number[]) => {
    vals.sort((a, b) => b - a);
    const v = vals[config.numSync - 1];
    assert(v !== undefined, 'quorum position');
    return v;
  };
  return {
    receive: nth(chosen.map(rec)),
    write: nth(chosen.map((s) => s.write)),
    flush: nth(chosen.map((s) => s.flush)),
    apply: nth(chosen.map((s) => s.apply)),
  };
}

// ---------------------------------------------------------------------------------------------
// Wait modes

/** What a commit waits for (PostgreSQL's SYNC_REP_WAIT_WRITE/FLUSH/APPLY plus walstream's receive). */
export type SyncWaitMode = 'remote_receive' | 'remote_write' | 'remote_flush' | 'remote_apply';
export const SYNC_WAIT_MODES: readonly SyncWaitMode[] = ['remote_receive', 'remote_write', 'remote_flush', 'remote_apply'];

/** The wait mode of a synchronous_commit level, or null when the commit does not wait for standbys. */
export function waitModeOf(level: string): SyncWaitMode | null {
  switch (level) {
    case 'remote_receive':
      return 'remote_receive';
    case 'remote_write':
      return 'remote_write';
    case 'on':
      return 'remote_flush';
    case 'remote_apply':
      return 'remote_apply';
    default:
      return null;
  }
}

/** The synced position a wait mode compares against. */
export function positionFor(mode: SyncWaitMode, p: SyncedPositions): Lsn {
  switch (mode) {
    case 'remote_receive':
      return p.receive;
    case 'remote_write':
      return p.write;
    case 'remote_flush':
      return p.flush;
    case 'remote_apply':
      return p.apply;
  }
}
