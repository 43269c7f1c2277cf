// PostgreSQL 15 WAL layout constants (src/include/access/xlog_internal.h, xlogrecord.h,
// rmgrlist.h). Byte order inside WAL is little-endian; every position is an LSN (byte offset in the infinite WAL stream).

export const XLOG_PAGE_MAGIC = 0xd110; // PostgreSQL 15
export const XLOG_BLCKSZ = 8192;
export const MAXALIGN = 8;
export const SIZE_OF_SHORT_PHD = 24;
export const SIZE_OF_LONG_PHD = 40;
export const SIZE_OF_XLOG_RECORD = 24;
export const DEFAULT_WAL_SEGMENT_SIZE = 16 * 1024 * 1024;
export const MIN_WAL_SEGMENT_SIZE = 1024 * 1024;
export const MAX_WAL_SEGMENT_SIZE = 1024 * 1024 * 1024;

// xlp_info bits
export const XLP_FIRST_IS_CONTRECORD = 0x0001;
export const XLP_LONG_HEADER = 0x0002;
export const XLP_BKP_REMOVABLE = 0x0004;
export const XLP_FIRST_IS_OVERWRITE_CONTRECORD = 0x0008;
export const XLP_ALL_FLAGS = 0x000f;

// record body fragment ids
export const XLR_BLOCK_ID_DATA_SHORT = 0xff;
export const XLR_BLOCK_ID_DATA_LONG = 0xfe;
export const XLR_BLOCK_ID_ORIGIN = 0xfd;
export const XLR_BLOCK_ID_TOPLEVEL_XID = 0xfc;
export const XLR_MAX_BLOCK_ID = 32;

// built-in resource managers we emit or must recognise
export const RM_XLOG_ID = 0;
export const RM_MAX_BUILTIN_ID = 21;
export const RM_MIN_CUSTOM_ID = 128;
export const XLOG_NOOP = 0x20;
export const XLOG_SWITCH = 0x40;

/**
 * walstream's own resource manager, from PostgreSQL's custom range (128..255) so that pg_waldump
 * frames, CRC-checks and counts our records (it shows them as `custom130`).
 */
export const RM_WALSTREAM_ID = 130;
export const WS_TXN = 0x00; // one whole transaction: atomic by construction (one CRC)
export const WS_CHECKPOINT_ONLINE = 0x10;
export const WS_CHECKPOINT_SHUTDOWN = 0x20;
export const WS_NOOP = 0x30;

export const WALSTREAM_RECORD_NAMES: Record<number, string> = {
  [WS_TXN]: 'TXN',
  [WS_CHECKPOINT_ONLINE]: 'CHECKPOINT_ONLINE',
  [WS_CHECKPOINT_SHUTDOWN]: 'CHECKPOINT_SHUTDOWN',
  [WS_NOOP]: 'NOOP',
};

export const FIRST_NORMAL_XID = 3;
/** Largest record we will build; PostgreSQL's reader allocates a whole record (limit ~1 GiB). */
export const MAX_RECORD_BYTES = 256 * 1024 * 1024;

export function maxAlign(n: number): number {
  return Math.ceil(n / MAXALIGN) * MAXALIGN;
}

export function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
}

export function validSegmentSize(n: number): boolean {
  return isPowerOfTwo(n) && n >= MIN_WAL_SEGMENT_SIZE && n <= MAX_WAL_SEGMENT_SIZE;
}

/** PostgreSQL's TimestampTz: µs since 2000-01-01 UTC. */
export const PG_EPOCH_OFFSET_MS = 946_684_800_000;
export function nowPgMicros(): number {
  return (Date.now() - PG_EPOCH_OFFSET_MS) * 1000;
}
