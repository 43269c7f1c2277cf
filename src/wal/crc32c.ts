// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), used for WAL record and page CRCs.
// Called synchronously by whichever thread builds or checks records (primary, walreceiver, replay
// workers); it owns one small WebAssembly instance per thread (128 KiB of memory, built on the first
// input >= 256 bytes) and holds no other state between calls, so there is nothing to stop or close.
// PostgreSQL computes the record CRC as INIT, COMP(body), COMP(header[0,20)), FIN; this module exposes
// the same three steps so callers can cover discontiguous ranges without copying.
//
// How it is fast without a native addon (figures and alternatives in native-free.md, "CRC-32C"):
// - Inputs >= wasmMinBytes are copied into a WebAssembly memory and reduced with SIMD XORs modulo
//   *sparse multiples* of the CRC polynomial P:
//     M1 = x^5275 + x^4508 + x^2751 + 1                    (4 terms, degree 5275)
//     M2 = x^290 + x^136 + x^113 + x^107 + x^32 + 1        (6 terms, degree 290)
//   Both are divisible by P (test/crc32c.test.ts checks it). Squaring is linear over GF(2), so M(x)^8 = M(x^8)
//   is also a multiple of P: every exponent can be read in bytes instead of bits. Dividing the message
//   by M(x^8) is then a byte-aligned recurrence, quotient[p] = msg[p] ^ quotient[p - (D - e)] for the
//   lower terms e, evaluated 16 bytes at a time with v128 loads/XORs and no table lookups. The
//   remainder (< D bytes) is congruent to the message mod P, so its CRC is the message's CRC. M1 takes
//   inputs >= 16 KiB to a ~5.3 KB remainder, M2 takes what is left to <= 306 bytes, and a
//   slicing-by-16 table loop (also in WebAssembly, where loads need no bounds checks) finishes.
//   Every recurrence offset is >= 154 bytes, so a load never straddles a store still in flight.
// - The copy goes to the same address mod 8 as a SharedArrayBuffer source (V8 copies shared memory
//   word by word only then, else byte by byte, ~1 GB/s), behind up to 7 zero bytes so the SIMD loop
//   still runs on 64-aligned addresses (leading zeros do not change a zero-init CRC).
// - Inputs below wasmMinBytes stay in JS: slicing-by-16 over the caller's bytes. The same loop is
//   the fallback for everything when WebAssembly or its SIMD is unavailable.
// - The wasm path touches the caller's buffer only through .buffer/.byteOffset/.length and one
//   TypedArray.prototype.set, so Buffer, Uint8Array and SharedArrayBuffer views at any offset all
//   take the same machine code (no per-kind deopts).
// The WebAssembly module is src/wal/crc32c.wat, embedded below as its binary (CRC32C_WASM_BASE64,
// 1490 bytes); that file says how the bytes were made.

import { assert } from '../util/assert.js';

const POLY = 0x82f63b78;
/** T[k*256 + b]: CRC of byte b followed by k zero bytes (slicing-by-16 tables, reflected). */
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

/** Inputs shorter than this stay in JS (slicing-by-16); longer ones go to WebAssembly, whose fixed
 *  cost (a view, a copy and a call: ~100 ns) a short input does not repay. */
const wasmMinBytes = 256;

// ---------------------------------------------------------------------------------------------
// Portable paths (JS only)

function crcBytes(crc: number, buf: Uint8Array, i: number, end: number): number {
  const t = T;
  while (i < end) crc = t[(crc ^ buf[i++]!) & 0xff]! ^ (crc >>> 8);
  return crc;
}

/** Little-endian host: 32-bit loads through an Int32Array view give the bytes in CRC order. */
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
/** From this length the portable path loads 32-bit words (a view costs ~0.1 µs to make). */
const WORD_LOOP_MIN_BYTES = 1024;

/** Slicing-by-16 in plain JS (2.1–2.5 GB/s on 1 MiB here, quiet): serves inputs < wasmMinBytes,
 *  and all inputs when WebAssembly SIMD is unavailable. Exported for the benchmark and the tests. */
export function crc32cUpdatePortable(state: number, buf: Uint8Array, start = 0, end = buf.length): number {
  if (LITTLE_ENDIAN && end - start >= WORD_LOOP_MIN_BYTES) return crc32cWords(state, buf, start, end);
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
  return crcBytes(crc, buf, i, end) >>> 0;
}

/** Slicing-by-16 over 32-bit words (4 loads per 16 bytes instead of 16), after a byte-wise head up to 4-alignment. */
function crc32cWords(state: number, buf: Uint8Array, start: number, end: number): number {
  let crc = state | 0;
  let i = start;
  const t = T;
  while (i < end && ((buf.byteOffset + i) & 3) !== 0) crc = t[(crc ^ buf[i++]!) & 0xff]! ^ (crc >>> 8);
  const words = ((end - i) >> 4) << 2;
  if (words > 0) {
    const w = new Int32Array(buf.buffer, buf.byteOffset + i, words);
    for (let j = 0; j < words; j += 4) {
      const a = crc ^ w[j]!;
      const b = w[j + 1]!;
      const c = w[j + 2]!;
      const d = w[j + 3]!;
      crc =
        t[3840 + (a & 255)]! ^ t[3584 + ((a >>> 8) & 255)]! ^ t[3328 + ((a >>> 16) & 255)]! ^ t[3072 + (a >>> 24)]! ^
        t[2816 + (b & 255)]! ^ t[2560 + ((b >>> 8) & 255)]! ^ t[2304 + ((b >>> 16) & 255)]! ^ t[2048 + (b >>> 24)]! ^
        t[1792 + (c & 255)]! ^ t[1536 + ((c >>> 8) & 255)]! ^ t[1280 + ((c >>> 16) & 255)]! ^ t[1024 + (c >>> 24)]! ^
        t[768 + (d & 255)]! ^ t[512 + ((d >>> 8) & 255)]! ^ t[256 + ((d >>> 16) & 255)]! ^ t[d >>> 24]!;
    }
    i += words * 4;
  }
  return crcBytes(crc, buf, i, end) >>> 0;
}

// ---------------------------------------------------------------------------------------------
// The WebAssembly kernel (src/wal/crc32c.wat). It reduces the stream modulo sparse multiples of P,
// exponents in bytes (see the header): M1 = x^5275 + x^4508 + x^2751 + 1, the lowest-degree
// weight-4 multiple, and M2 = x^290 + x^136 + x^113 + x^107 + x^32 + 1, a low-degree weight-6 one
// whose recurrence offsets are all >= 154 bytes. (Found by a meet-in-the-middle search over
// x^k mod P; P has the factor x + 1, so only even weights exist.)
//
// Memory layout (bytes), as the kernel expects it: [0, 16384) tables T; [DATA_BASE - histBytes,
// DATA_BASE) the quotient history the recurrence reads behind the data; the stream at DATA_BASE
// (64-aligned), with room for chunkBytes + D1 + 16 bytes.

/** Degree of M1 in bytes: the kernel keeps this many quotient bytes between chunks. */
const D1 = 5275;
const chunkBytes = 65536;
const histBytes = (D1 + 63) & ~63;
const DATA_BASE = 16384 + histBytes;
assert(DATA_BASE % 64 === 0);

/** The binary of src/wal/crc32c.wat (WABT wat2wasm 1.0.39; the command is in that file). */
const CRC32C_WASM_BASE64 =
  'AGFzbQEAAAABJAVgA39/fwF/YAN/f38AYAJ/fwBgBX9/f39/AGAFf39/f38BfwMJCAABAgIBAgMEBQMBAAIHFwMDbWVtAgAFY2h1' +
  'bmsABgVmaW5hbAAHCvgKCM4CAQF/AkADQCABQRBqIAJLDQEgACABKAIAcyEDIANB/wFxQQJ0KAKAeCADQQZ2QfwHcSgCgHBzIANB' +
  'DnZB/AdxKAKAaHMgA0EWdkH8B3EoAoBgcyABKAIEIQMgA0H/AXFBAnQoAoBYIANBBnZB/AdxKAKAUHMgA0EOdkH8B3EoAoBIcyAD' +
  'QRZ2QfwHcSgCgEBzcyABKAIIIQMgA0H/AXFBAnQoAoA4IANBBnZB/AdxKAKAMHMgA0EOdkH8B3EoAoAocyADQRZ2QfwHcSgCgCBz' +
  'cyABKAIMIQMgA0H/AXFBAnQoAoAYIANBBnZB/AdxKAKAEHMgA0EOdkH8B3EoAoAIcyADQRZ2QfwHcSgCAHNzIQAgAUEQaiEBDAAL' +
  'CwJAA0AgASACTw0BIAAgAS0AAHNB/wFxQQJ0KAIAIABBCHZzIQAgAUEBaiEBDAALCyAAC2wAAkADQCACQRBJDQEgACAA/QAEACAB' +
  '/QAEAP1R/QsEACAAQRBqIQAgAUEQaiEBIAJBEGshAgwACwsCQANAIAJFDQEgACAALQAAIAEtAABzOgAAIABBAWohACABQQFqIQEg' +
  'AkEBayECDAALCwv+AQACQANAIABBwABqIAFLDQEgACAA/QAEmykgAP0ABJwj/VEgAP0ABL8V/VEgAP0ABAD9Uf0LBJspIAAgAP0A' +
  'BKspIAD9AASsI/1RIAD9AATPFf1RIAD9AAQQ/VH9CwSrKSAAIAD9AAS7KSAA/QAEvCP9USAA/QAE3xX9USAA/QAEIP1R/QsEuykg' +
  'ACAA/QAEyykgAP0ABMwj/VEgAP0ABO8V/VEgAP0ABDD9Uf0LBMspIABBwABqIQAMAAsLAkADQCAAQRBqIAFLDQEgACAA/QAEmykg' +
  'AP0ABJwj/VEgAP0ABL8V/VEgAP0ABAD9Uf0LBJspIABBEGohAAwACwsLzgIAAkADQCAAQcAAaiABSw0BIAAgAP0ABKICIAD9AASI' +
  'Af1RIAD9AARx/VEgAP0ABGv9USAA/QAEIP1RIAD9AAQA/VH9CwSiAiAAIAD9AASyAiAA/QAEmAH9USAA/QAEgQH9USAA/QAEe/1R' +
  'IAD9AAQw/VEgAP0ABBD9Uf0LBLICIAAgAP0ABMICIAD9AASoAf1RIAD9AASRAf1RIAD9AASLAf1RIAD9AARA/VEgAP0ABCD9Uf0L' +
  'BMICIAAgAP0ABNICIAD9AAS4Af1RIAD9AAShAf1RIAD9AASbAf1RIAD9AARQ/VEgAP0ABDD9Uf0LBNICIABBwABqIQAMAAsLAkAD' +
  'QCAAQRBqIAFLDQEgACAA/QAEogIgAP0ABIgB/VEgAP0ABHH9USAA/QAEa/1RIAD9AAQg/VEgAP0ABAD9Uf0LBKICIABBEGohAAwA' +
  'CwsLGwAgAEEAIAEgAGv8CwAgASABKAIAIAJzNgIACxgAAkAgAUUNACAAQZspa0EAQZsp/AsACws3ACAAIAIgAxAEIAAgBBAFIABB' +
  'mylrIAAgAWpBmylrEAIgAEGbKWsgACABakGbKWtBmyn8CgAAC/sBAQN/IAAgAiADEAQgACABaiEHIAAhBQJAIAFBgIABSSAEcQ0A' +
  'IAAgBBAFIAAgAUGbKWtBcHFqIQYgAEGbKWsgBkGbKWsQAiAGIAZB/wVrQf8FEAEgBiAGQdwTa0HcExABIAYgBkGbKWtBmykQASAG' +
  'IQULAkAgByAFa0GyAkkNACAFQaICa0EAQaIC/AsAIAUgByAFa0GiAmtBcHFqIQYgBUGiAmsgBkGiAmsQAyAGIAZBmgFrQZoBEAEg' +
  'BiAGQbEBa0GxARABIAYgBkG3AWtBtwEQASAGIAZBggJrQYICEAEgBiAGQaICa0GiAhABIAYhBQtBACAFIAcQAAs=';

// ---------------------------------------------------------------------------------------------
// Instance

interface WasmGlobal {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
}
interface Kernel {
  mem: Uint8Array;
  chunk: (d: number, n: number, x: number, state: number, first: number) => void;
  final: (d: number, n: number, x: number, state: number, first: number) => number;
}

/** Built on the first input >= wasmMinBytes, so threads that only CRC small records never pay for
 *  it. null: no usable WebAssembly here, the JS path serves all. */
function instantiate(): Kernel | null {
  const wasm = (globalThis as { WebAssembly?: WasmGlobal }).WebAssembly;
  if (!wasm) return null;
  const bytes = Buffer.from(CRC32C_WASM_BASE64, 'base64');
  let module: object;
  try {
    module = new wasm.Module(bytes);
  } catch {
    return null; // e.g. an engine without WebAssembly SIMD or bulk memory: use the JS path
  }
  const ex = new wasm.Instance(module, {}).exports as {
    mem: { buffer: ArrayBuffer };
    chunk: Kernel['chunk'];
    final: Kernel['final'];
  };
  const mem = new Uint8Array(ex.mem.buffer);
  new Int32Array(ex.mem.buffer, 0, T.length).set(T);
  return { mem, chunk: ex.chunk, final: ex.final };
}

let kernel: Kernel | null | undefined; // undefined: not built yet

/** Which implementation serves inputs >= 256 bytes in this thread (builds the kernel if needed). */
export function crc32cImplementation(): 'wasm-simd-fold' | 'js-slicing-16' {
  if (kernel === undefined) kernel = instantiate();
  return kernel ? 'wasm-simd-fold' : 'js-slicing-16';
}

function updateWasm(k: Kernel, state: number, buf: Uint8Array, start: number, end: number): number {
  const ab = buf.buffer;
  let src = buf.byteOffset + start;
  // A shared source is copied to the same address mod 8 (V8 copies shared memory word by word only
  // when they agree, else byte by byte), after `pad` zero bytes so the stream stays 64-aligned.
  let pad = ab instanceof SharedArrayBuffer ? src & 7 : 0;
  let n = end - start + pad; // stream bytes, padding included
  let first = 1;
  while (n > chunkBytes + D1 + 16) {
    k.mem.set(new Uint8Array(ab, src, chunkBytes - pad), DATA_BASE + pad);
    k.chunk(DATA_BASE, chunkBytes, DATA_BASE + pad, state, first);
    src += chunkBytes - pad;
    n -= chunkBytes;
    pad = 0;
    state = 0;
    first = 0;
  }
  const whole = first && start === 0 && end === buf.length; // no view needed
  k.mem.set(whole ? buf : new Uint8Array(ab, src, n - pad), DATA_BASE + pad);
  return k.final(DATA_BASE, n, DATA_BASE + pad, state, first) >>> 0;
}

// ---------------------------------------------------------------------------------------------
// Public API

/** Feed bytes `buf[start, end)` into a running (un-finalised) CRC state. */
export function crc32cUpdate(state: number, buf: Uint8Array, start = 0, end = buf.length): number {
  assert(start >= 0 && start <= end && end <= buf.length, 'crc32cUpdate: range outside the buffer');
  if (end - start >= wasmMinBytes) {
    if (kernel === undefined) kernel = instantiate();
    if (kernel) return updateWasm(kernel, state | 0, buf, start, end);
  }
  return crc32cUpdatePortable(state, buf, start, end);
}

export function crc32cFinal(state: number): number {
  return (state ^ 0xffffffff) >>> 0;
}

/**
 * crc32c(buf, start, end) for ordinary (not shared) memory, with less work per call (the WAL record
 * builder calls it once per transaction): a range that fits the WebAssembly stream goes in with one
 * copy and one call.
 */
export function crc32cOrdinary(buf: Uint8Array, start: number, end: number): number {
  const n = end - start;
  if (n >= wasmMinBytes && n <= chunkBytes + D1 + 16 && start >= 0 && end <= buf.length && !(buf.buffer instanceof SharedArrayBuffer)) {
    if (kernel === undefined) kernel = instantiate();
    if (kernel) {
      kernel.mem.set(buf.subarray(start, end), DATA_BASE);
      return (kernel.final(DATA_BASE, n, DATA_BASE, CRC32C_INIT | 0, 1) ^ 0xffffffff) >>> 0;
    }
  }
  return crc32c(buf, start, end);
}

/** One-shot CRC-32C of `buf[start, end)`. CRC("123456789") = 0xE3069283. */
export function crc32c(buf: Uint8Array, start = 0, end = buf.length): number {
  return crc32cFinal(crc32cUpdate(CRC32C_INIT, buf, start, end));
}
