// One table of error factories with stable codes. `code` is walstream's own stable identifier;
// `sqlstate` is what travels on the wire in an ErrorResponse (PostgreSQL's SQLSTATE).

export interface WalstreamErrorOptions {
  detail?: string;
  hint?: string;
  cause?: unknown;
}

export class WalstreamError extends Error {
  override name = 'WalstreamError';
  readonly code: string;
  readonly sqlstate: string;
  readonly detail: string | undefined;
  readonly hint: string | undefined;
  constructor(code: string, sqlstate: string, message: string, opts: WalstreamErrorOptions = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.code = code;
    this.sqlstate = sqlstate;
    this.detail = opts.detail;
    this.hint = opts.hint;
  }
}

type Factory<A extends unknown[]> = (...args: A) => WalstreamError;

function def<A extends unknown[]>(code: string, sqlstate: string, msg: (...args: A) => string | [string, WalstreamErrorOptions]): Factory<A> {
  return (...args: A) => {
    const m = msg(...args);
    return Array.isArray(m) ? new WalstreamError(code, sqlstate, m[0], m[1]) : new WalstreamError(code, sqlstate, m);
  };
}

/** %X/%X (an LSN as PostgreSQL prints it). */
function lsnText(lsn: number): string {
  return `${Math.floor(lsn / 0x1_0000_0000).toString(16).toUpperCase()}/${(lsn % 0x1_0000_0000).toString(16).toUpperCase()}`;
}

/** Every error walstream raises on purpose. Codes are stable: match on `err.code`. */
export const Errors = {
  // configuration and API misuse
  invalidOption: def('WS_INVALID_OPTION', '22023', (name: string, why: string) => `invalid value for option "${name}": ${why}`),
  promoteNotPossible: def('WS_PROMOTE_NOT_POSSIBLE', '55000', (why: string) => `cannot promote: ${why}`),
  closed: def('WS_CLOSED', '57P01', (what: string) => `${what} is closed`),
  transactionTooLarge: def('WS_TXN_TOO_LARGE', '54000', (bytes: number, limit: number) => `transaction of ${bytes} bytes exceeds maxTransactionBytes (${limit})`),
  invalidKey: def('WS_INVALID_KEY', '22023', (why: string) => `invalid key: ${why}`),
  invalidTable: def('WS_INVALID_TABLE', '42602', (name: string) => `invalid table name "${name}"`),
  valueTooLarge: def('WS_VALUE_TOO_LARGE', '54000', (bytes: number, limit: number) => `value of ${bytes} bytes exceeds maxValueBytes (${limit})`),
  storeFull: def('WS_STORE_FULL', '53200', (limit: number) => `store is full: maxStoreBytes (${limit}) reached`),

  // data directory
  notADataDir: def('WS_NOT_A_DATA_DIR', '58P01', (dir: string, why: string) => [`"${dir}" is not a walstream data directory`, { detail: why }]),
  dataDirInUse: def('WS_DATA_DIR_IN_USE', '55006', (dir: string, pid: number) => [`data directory "${dir}" is in use by process ${pid}`, { hint: 'Stop that process, or remove walstream.pid if it is gone.' }]),
  controlFileCorrupt: def('WS_CONTROL_CORRUPT', 'XX001', (path: string, why: string) => `control file "${path}" is damaged: ${why}`),
  checkpointCorrupt: def('WS_CHECKPOINT_CORRUPT', 'XX001', (path: string, why: string) => `checkpoint file "${path}" is damaged: ${why}`),
  walSystemIdMismatch: def('WS_WAL_SYSID_MISMATCH', 'XX000', (file: string, got: bigint, want: bigint) => [`WAL file "${file}" is from a different database system`, { detail: `WAL file system identifier is ${got}, data directory's is ${want}.` }]),
  walMissing: def('WS_WAL_MISSING', '58P01', (what: string) => `required WAL is missing: ${what}`),
  walCorrupt: def('WS_WAL_CORRUPT', 'XX001', (lsn: string, why: string) => `invalid WAL at ${lsn}: ${why}`),

  // replication protocol (SQLSTATEs as PostgreSQL sends them)
  protocolViolation: def('WS_PROTOCOL_VIOLATION', '08P01', (why: string) => why),
  syntaxError: def('WS_SYNTAX_ERROR', '42601', (why: string) => why),
  featureNotSupported: def('WS_NOT_SUPPORTED', '0A000', (why: string) => why),
  undefinedObject: def('WS_UNDEFINED_OBJECT', '42704', (why: string) => why),
  duplicateObject: def('WS_DUPLICATE_OBJECT', '42710', (why: string) => why),
  invalidName: def('WS_INVALID_NAME', '42602', (why: string) => why),
  objectInUse: def('WS_OBJECT_IN_USE', '55006', (why: string) => why),
  // walsender.c StartReplication / timeline.c tliSwitchPoint: plain ERRORs (no errcode: XX000)
  timelineNotInHistory: def('WS_TIMELINE_NOT_IN_HISTORY', 'XX000', (tli: number) => `requested timeline ${tli >>> 0} is not in this server's history`),
  startPointNotInHistory: def('WS_START_POINT_NOT_IN_HISTORY', 'XX000', (start: string, tli: number, switchpoint: string) => [
    `requested starting point ${start} on timeline ${tli >>> 0} is not in this server's history`,
    { detail: `This server's history forked from timeline ${tli >>> 0} at ${switchpoint}.` },
  ]),
  undefinedFile: def('WS_UNDEFINED_FILE', '58P01', (why: string) => why),
  internal: def('WS_INTERNAL', 'XX000', (why: string, detail?: string) => [why, detail === undefined ? {} : { detail }]),
  tooManyConnections: def('WS_TOO_MANY_CONNECTIONS', '53300', (why: string) => why),
  invalidAuthorization: def('WS_INVALID_AUTHORIZATION', '28000', (why: string) => why),
  invalidPassword: def('WS_INVALID_PASSWORD', '28P01', (user: string) => `password authentication failed for user "${user}"`),
  systemIdMismatch: def('WS_SYSID_MISMATCH', 'XX000', (got: string, want: string) => [`database system identifier differs between the primary and standby`, { detail: `The primary's identifier is ${got}, the standby's identifier is ${want}.` }]),
  timelineMismatch: def('WS_TIMELINE_MISMATCH', 'XX000', (got: number, want: number) => `highest timeline ${got} of the primary is behind recovery timeline ${want}`),
  /** The upstream's timeline history left ours before WAL we have flushed: we hold WAL it never had (xlogrecovery.c's wording). */
  timelineForkedOff: def('WS_TIMELINE_FORKED', 'XX000', (newTli: number, curTli: number, flushed: number, switchpoint: number) => [
    `new timeline ${newTli} forked off current database system timeline ${curTli} before current recovery point ${lsnText(flushed)}`,
    { detail: `The new timeline's history leaves timeline ${curTli} at ${lsnText(switchpoint)}; this standby has flushed WAL up to ${lsnText(flushed)}.` },
  ]),
  /**
   * Rejoining after a failover: this directory's WAL goes past the point where the upstream's
   * timeline forked off ours (an old primary that committed past the fork). Names both positions.
   */
  rejoinDiverged: def('WS_REJOIN_DIVERGED', '55000', (dir: string, newTli: number, curTli: number, fork: number, endOfWal: number, asideHint: string) => [
    `data directory "${dir}" has diverged from timeline ${newTli}: its WAL on timeline ${curTli} ends at ${lsnText(endOfWal)}, past the fork point ${lsnText(fork)}`,
    {
      detail: `Timeline ${newTli} forked off timeline ${curTli} at ${lsnText(fork)}; this directory holds WAL (and maybe commits) from ${lsnText(fork)} to ${lsnText(endOfWal)} that the new primary never had.`,
      hint: `Rebuild it from a base backup of the new primary: rebuildIfDiverged: true (walstream rejoin --rebuild-if-diverged) moves the old contents aside to ${asideHint} first.`,
    },
  ]),
  /** The upstream's timeline history does not contain our timeline. */
  timelineNotAChild: def('WS_TIMELINE_NOT_A_CHILD', 'XX000', (newTli: number, curTli: number) => `new timeline ${newTli} is not a child of database system timeline ${curTli}`),
  replicationTimeout: def('WS_REPLICATION_TIMEOUT', '08006', (who: string) => `terminating ${who} due to replication timeout`),
  connectionFailure: def('WS_CONNECTION_FAILURE', '08006', (why: string) => why),

  // replication protocol core (src/replication/protocol/): messages as PostgreSQL 15 words them
  protocolViolationDetail: def('WS_PROTOCOL_VIOLATION', '08P01', (why: string, detail: string) => [why, { detail }]),
  malformedScram: def('WS_MALFORMED_SCRAM', '08P01', (detail: string) => ['malformed SCRAM message', { detail }]),
  invalidParameterValue: def('WS_INVALID_PARAMETER_VALUE', '22023', (why: string, hint?: string) => [why, hint === undefined ? {} : { hint }]),
  invalidSlotName: def('WS_INVALID_SLOT_NAME', '42602', (why: string, hint?: string) => [why, hint === undefined ? {} : { hint }]),
  insufficientPrivilege: def('WS_INSUFFICIENT_PRIVILEGE', '42501', (why: string) => why),
  nameTruncated: def('WS_NAME_TRUNCATED', '42622', (ident: string, truncated: string) => `identifier "${ident}" will be truncated to "${truncated}"`),
  numericOutOfRange: def('WS_NUMERIC_OUT_OF_RANGE', '22003', (why: string) => why),
  undefinedParameter: def('WS_UNDEFINED_PARAMETER', '42704', (name: string) => `unrecognized configuration parameter "${name}"`),
  nameTooLong: def('WS_NAME_TOO_LONG', '42622', (why: string) => why),
  // walsender (src/replication/): PostgreSQL's wording
  adminShutdown: def('WS_ADMIN_SHUTDOWN', '57P01', () => 'terminating connection due to administrator command'),
  walSegmentRemoved: def('WS_WAL_SEGMENT_REMOVED', '58P01', (segment: string) => `requested WAL segment ${segment} has already been removed`),
  // standby (src/standby/)
  waitTimeout: def('WS_WAIT_TIMEOUT', '57014', (lsn: string, ms: number, replay: string) => [`canceling wait for replay of ${lsn}: timeout after ${ms} ms`, { detail: `Replay has reached ${replay}.` }]),
  /** An ErrorResponse received from a peer server: its SQLSTATE and texts as sent. */
  remote: (sqlstate: string, message: string, opts: WalstreamErrorOptions = {}) => new WalstreamError('WS_REMOTE', sqlstate, message, opts),
  // synchronous replication and replication slots (src/replication/syncrep*.ts, slots.ts): PostgreSQL 15's wording
  /** A synchronous_standby_names value the grammar rejects (GUC check hook: 42601 with the parser's detail). */
  invalidSyncStandbyNames: def('WS_INVALID_SYNC_STANDBY_NAMES', '42601', (value: string, detail: string) => [`invalid value for parameter "synchronous_standby_names": "${value}"`, { detail }]),
  /** A synchronous_standby_names value whose number of synchronous standbys is not positive. */
  syncStandbyNumSync: def('WS_INVALID_SYNC_STANDBY_NAMES', '22023', (n: number) => `number of synchronous standbys (${n}) must be greater than zero`),
  /**
   * A commit that is durable locally but whose wait for synchronous standbys ended without their
   * confirmation (timeout, shutdown, cancel). Never a rollback: PostgreSQL reports this as a WARNING
   * (SQLSTATE 01000) with the same detail.
   */
  syncNotConfirmed: def('WS_SYNC_NOT_CONFIRMED', '01000', (why: string, lsn: string) => [
    `canceling wait for synchronous replication: ${why}`,
    { detail: `The transaction has already committed locally at ${lsn}, but might not have been replicated to the standby.` },
  ]),
  objectNotInPrerequisiteState: def('WS_OBJECT_NOT_IN_PREREQUISITE_STATE', '55000', (why: string, detail?: string) => [why, detail === undefined ? {} : { detail }]),
  configurationLimitExceeded: def('WS_CONFIGURATION_LIMIT_EXCEEDED', '53400', (why: string, hint?: string) => [why, hint === undefined ? {} : { hint }]),
  slotFileCorrupt: def('WS_SLOT_FILE_CORRUPT', 'XX001', (why: string) => why),
} as const;

export type ErrorCode = ReturnType<(typeof Errors)[keyof typeof Errors]>['code'];

/** A WalstreamError as plain data, for postMessage between threads (structured clone keeps only name/message of an Error). */
export interface ErrorInfo {
  code: string;
  sqlstate: string;
  message: string;
  detail?: string;
  hint?: string;
}

/** `e` as ErrorInfo; anything that is not a WalstreamError becomes an internal error `${what}: …`. */
export function errorInfo(e: unknown, what: string): ErrorInfo {
  const err = e instanceof WalstreamError ? e : Errors.internal(`${what}: ${(e as Error)?.stack ?? String(e)}`);
  const out: ErrorInfo = { code: err.code, sqlstate: err.sqlstate, message: err.message };
  if (err.detail !== undefined) out.detail = err.detail;
  if (err.hint !== undefined) out.hint = err.hint;
  return out;
}

export function errorFromInfo(i: ErrorInfo): WalstreamError {
  const opts: WalstreamErrorOptions = {};
  if (i.detail !== undefined) opts.detail = i.detail;
  if (i.hint !== undefined) opts.hint = i.hint;
  return new WalstreamError(i.code, i.sqlstate, i.message, opts);
}
