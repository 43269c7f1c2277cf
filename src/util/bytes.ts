// Little-endian integer reads from a byte array, for the hot decode paths (WAL pages, records):
// the same as DataView's getters without allocating a DataView per call.

/** Unsigned 16-bit little-endian at `off`. */
export function u16le(b: Uint8Array, off: number): number {
  return b[off]! | (b[off + 1]! << 8);
}

/** Unsigned 32-bit little-endian at `off`. */
export function u32le(b: Uint8Array, off: number): number {
  return (b[off]! | (b[off + 1]! << 8) | (b[off + 2]! << 16) | (b[off + 3]! << 24)) >>> 0;
}

/** Signed 64-bit little-endian at `off`, as a number (exact within ±2^53). */
export function i64leNumber(b: Uint8Array, off: number): number {
  const hi = b[off + 4]! | (b[off + 5]! << 8) | (b[off + 6]! << 16) | (b[off + 7]! << 24); // signed
  return hi * 0x1_0000_0000 + u32le(b, off);
}
