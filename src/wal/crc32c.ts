// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) in pure TypeScript, slicing-by-16.
// PostgreSQL computes the record CRC as INIT, COMP(body), COMP(header[0,20)), FIN; this module
// exposes the same three steps so callers can cover discontiguous ranges without copying.
// Measured cost and the reasons for not using WASM are in native-free.md.

const POLY = 0x82f63b78;
const T = new Int32Array(16 * 256);
for (let i = 0; i < 256; i++) {
  let c = i;
  for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
  T[i] = c;
}
for (let i = 0; i < 256; i++) {
  for (let t = 1; t < 16; t++) {
    const prev = T[(t - 1) * 256 + i]!;
    T[t * 256 + i] = (prev >>> 8) ^ T[prev & 0xff]!;
  }
}

export const CRC32C_INIT = 0xffffffff;

/** Feed bytes `buf[start, end)` into a running (un-finalised) CRC state. */
export function crc32cUpdate(state: number, buf: Uint8Array, start = 0, end = buf.length): number {
  let crc = state | 0;
  let i = start;
  const t = T;
  const end16 = end - 15;
  while (i < end16) {
    const a = crc ^ (buf[i]! | (buf[i + 1]! << 8) | (buf[i + 2]! << 16) | (buf[i + 3]! << 24));
    crc =
      t[3840 + (a & 0xff)]! ^
      t[3584 + ((a >>> 8) & 0xff)]! ^
      t[3328 + ((a >>> 16) & 0xff)]! ^
      t[3072 + (a >>> 24)]! ^
      t[2816 + buf[i + 4]!]! ^
      t[2560 + buf[i + 5]!]! ^
      t[2304 + buf[i + 6]!]! ^
      t[2048 + buf[i + 7]!]! ^
      t[1792 + buf[i + 8]!]! ^
      t[1536 + buf[i + 9]!]! ^
      t[1280 + buf[i + 10]!]! ^
      t[1024 + buf[i + 11]!]! ^
      t[768 + buf[i + 12]!]! ^
      t[512 + buf[i + 13]!]! ^
      t[256 + buf[i + 14]!]! ^
      t[buf[i + 15]!]!;
    i += 16;
  }
  while (i < end) crc = t[(crc ^ buf[i++]!) & 0xff]! ^ (crc >>> 8);
  return crc >>> 0;
}

export function crc32cFinal(state: number): number {
  return (state ^ 0xffffffff) >>> 0;
}

/** One-shot CRC-32C of `buf[start, end)`. CRC("123456789") = 0xE3069283. */
export function crc32c(buf: Uint8Array, start = 0, end = buf.length): number {
  return crc32cFinal(crc32cUpdate(CRC32C_INIT, buf, start, end));
}
