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
//   Both are divisible by P (checked when the kernel is built). Squaring is linear over GF(2), so M(x)^8 = M(x^8)
//   is also a multiple of P: every exponent can be read in bytes instead of bits. Dividing the message
//   by M(x^8) is then a byte-aligned recurrence, quotient[p] = msg[p] ^ quotient[p - (D - e)] for the
//   lower terms e, evaluated 16 bytes at a time with v128 loads/XORs and no table lookups. The
//   remainder (< D bytes) is congruent to the message mod P, so its CRC is the message's CRC. M1 takes
//   inputs >= bulkMinBytes to a ~5.3 KB remainder, M2 takes what is left to <= 306 bytes, and a
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
// The WebAssembly module is assembled on first use from the WAT text below by a ~150-line assembler
// for the flat-WAT subset it uses; there is no binary blob and no toolchain.

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
// Sparse multiples of P, exponents in bytes (see header). Lower terms e give the recurrence
// offsets D - e; every offset must be >= 64 so a 4 x 16-byte step never feeds itself. (Found by a
// meet-in-the-middle search over x^k mod P; P has the factor x + 1, so only even weights exist.
// M1 is the lowest-degree weight-4 multiple (exhaustive search to degree 9000), M2 a low-degree
// weight-6 one whose offsets are all >= 154.)

const M1 = [5275, 4508, 2751, 0] as const;
const M2 = [290, 136, 113, 107, 32, 0] as const;
const D1 = M1[0];
const D2 = M2[0];

/** x^(8e) mod P in the reflected representation, summed over the terms: 0 iff P divides M(x^8). */
function residue(terms: readonly number[]): number {
  let sum = 0;
  for (const e of terms) {
    let v = 0x80000000; // x^0, reflected
    for (let k = 0; k < e; k++) v = T[v & 0xff]! ^ (v >>> 8); // multiply by x^8 mod P
    sum ^= v;
  }
  return sum;
}

// ---------------------------------------------------------------------------------------------
// WebAssembly memory layout (bytes): [0, 16384) tables T; [DATA_BASE - histBytes, DATA_BASE) the
// quotient history the recurrence reads behind the data; the stream at DATA_BASE (64-aligned), with
// room for chunkBytes + D1 + 16 bytes.

const chunkBytes = 65536;
/** Inputs from this size on are reduced by M1 before M2 (below it M1's scatter costs more than it saves). */
const bulkMinBytes = 16384;
assert(bulkMinBytes >= D1 + 16 && bulkMinBytes <= chunkBytes);
const histBytes = (D1 + 63) & ~63;
const DATA_BASE = 16384 + histBytes;
assert(DATA_BASE % 64 === 0);
const memPages = Math.ceil((DATA_BASE + 8 + chunkBytes + D1 + 16 + 64) / 65536);

/** fold(b, end): the recurrence over blocks [b + D, end + D), 16 bytes a step; 4 steps unrolled. */
function foldFunc(name: string, terms: readonly number[]): string {
  const D = terms[0]!;
  const step = (k: number) => `
      local.get $b
      local.get $b v128.load offset=${D + 16 * k}
      ${terms.slice(1).map((e) => `local.get $b v128.load offset=${e + 16 * k} v128.xor`).join('\n      ')}
      v128.store offset=${D + 16 * k}`;
  const loop = (steps: number) => `
    block $done loop $next
      local.get $b i32.const ${16 * steps} i32.add local.get $end i32.gt_u br_if $done
      ${Array.from({ length: steps }, (_, k) => step(k)).join('')}
      local.get $b i32.const ${16 * steps} i32.add local.set $b
      br $next
    end end`;
  return `
  (func $${name} (param $b i32) (param $end i32)
    ${loop(4)}
    ${loop(1)})`;
}

/** Scatter the last quotient bytes into the remainder: [q, q + o) ^= [q - o, q) for each offset o. */
function scatter(terms: readonly number[]): string {
  const D = terms[0]!;
  return terms
    .slice(1)
    .map((e) => `local.get $q local.get $q i32.const ${D - e} i32.sub i32.const ${D - e} call $xorin`)
    .join('\n    ');
}

/** Four table lookups for the bytes of local $a, tables k0 .. k0-3, XORed together. */
function lookups(k0: number): string {
  return `
      local.get $a i32.const 255 i32.and i32.const 2 i32.shl i32.load offset=${1024 * k0}
      local.get $a i32.const 6 i32.shr_u i32.const 1020 i32.and i32.load offset=${1024 * (k0 - 1)} i32.xor
      local.get $a i32.const 14 i32.shr_u i32.const 1020 i32.and i32.load offset=${1024 * (k0 - 2)} i32.xor
      local.get $a i32.const 22 i32.shr_u i32.const 1020 i32.and i32.load offset=${1024 * (k0 - 3)} i32.xor`;
}

const WAT = `
(module
  (memory (export "mem") ${memPages})

  ;; Slicing-by-16 over [p, end), then byte at a time.
  (func $tab (param $crc i32) (param $p i32) (param $end i32) (result i32) (local $a i32)
    block $done loop $next
      local.get $p i32.const 16 i32.add local.get $end i32.gt_u br_if $done
      local.get $crc local.get $p i32.load i32.xor local.set $a ${lookups(15)}
      local.get $p i32.load offset=4 local.set $a ${lookups(11)} i32.xor
      local.get $p i32.load offset=8 local.set $a ${lookups(7)} i32.xor
      local.get $p i32.load offset=12 local.set $a ${lookups(3)} i32.xor
      local.set $crc
      local.get $p i32.const 16 i32.add local.set $p
      br $next
    end end
    block $done loop $next
      local.get $p local.get $end i32.ge_u br_if $done
      local.get $crc local.get $p i32.load8_u i32.xor i32.const 255 i32.and i32.const 2 i32.shl i32.load
      local.get $crc i32.const 8 i32.shr_u i32.xor local.set $crc
      local.get $p i32.const 1 i32.add local.set $p
      br $next
    end end
    local.get $crc)

  ;; [dst, dst + n) ^= [src, src + n); the ranges do not overlap.
  (func $xorin (param $dst i32) (param $src i32) (param $n i32)
    block $done loop $next
      local.get $n i32.const 16 i32.lt_u br_if $done
      local.get $dst local.get $dst v128.load local.get $src v128.load v128.xor v128.store
      local.get $dst i32.const 16 i32.add local.set $dst
      local.get $src i32.const 16 i32.add local.set $src
      local.get $n i32.const 16 i32.sub local.set $n
      br $next
    end end
    block $done loop $next
      local.get $n i32.eqz br_if $done
      local.get $dst local.get $dst i32.load8_u local.get $src i32.load8_u i32.xor i32.store8
      local.get $dst i32.const 1 i32.add local.set $dst
      local.get $src i32.const 1 i32.add local.set $src
      local.get $n i32.const 1 i32.sub local.set $n
      br $next
    end end)
  ${foldFunc('fold1', M1)}
  ${foldFunc('fold2', M2)}

  ;; The stream starts at $d (64-aligned) with $x - $d <= 7 zero bytes of padding before the first
  ;; message byte at $x; leading zeros do not change a zero-init CRC. XOR the running state into the
  ;; first 4 message bytes (which makes the CRC a zero-init one).
  (func $start (param $d i32) (param $x i32) (param $state i32)
    local.get $d i32.const 0 local.get $x local.get $d i32.sub memory.fill
    local.get $x local.get $x i32.load local.get $state i32.xor i32.store)
  ;; On the first piece of a call, zero the quotient history the M1 recurrence reads behind $d.
  (func $clearHistory (param $d i32) (param $first i32)
    block $skip
      local.get $first i32.eqz br_if $skip
      local.get $d i32.const ${D1} i32.sub i32.const 0 i32.const ${D1} memory.fill
    end)

  ;; A non-final piece of n bytes (a multiple of 16, and at least D1 + 16 bytes follow it): all of
  ;; it is quotient. Keeps its last D1 quotient bytes as the history of the next piece.
  (func $chunk (export "chunk") (param $d i32) (param $n i32) (param $x i32) (param $state i32) (param $first i32)
    local.get $d local.get $x local.get $state call $start
    local.get $d local.get $first call $clearHistory
    local.get $d i32.const ${D1} i32.sub local.get $d local.get $n i32.add i32.const ${D1} i32.sub call $fold1
    local.get $d i32.const ${D1} i32.sub local.get $d local.get $n i32.add i32.const ${D1} i32.sub i32.const ${D1} memory.copy)

  ;; The final piece [d, d + n), n >= 4: returns the un-finalised CRC of the whole input.
  (func $final (export "final") (param $d i32) (param $n i32) (param $x i32) (param $state i32) (param $first i32) (result i32)
    (local $p i32) (local $q i32) (local $L i32)
    local.get $d local.get $x local.get $state call $start
    local.get $d local.get $n i32.add local.set $L
    local.get $d local.set $p
    block $s1
      ;; M1 first when the input is large enough to repay its 8.5 KB of scatter (or continues chunks)
      local.get $n i32.const ${bulkMinBytes} i32.lt_u local.get $first i32.and br_if $s1
      local.get $d local.get $first call $clearHistory
      local.get $d local.get $n i32.const ${D1} i32.sub i32.const -16 i32.and i32.add local.set $q
      local.get $d i32.const ${D1} i32.sub local.get $q i32.const ${D1} i32.sub call $fold1
    ${scatter(M1)}
      local.get $q local.set $p
    end
    block $s2
      local.get $L local.get $p i32.sub i32.const ${D2 + 16} i32.lt_u br_if $s2
      local.get $p i32.const ${D2} i32.sub i32.const 0 i32.const ${D2} memory.fill
      local.get $p local.get $L local.get $p i32.sub i32.const ${D2} i32.sub i32.const -16 i32.and i32.add local.set $q
      local.get $p i32.const ${D2} i32.sub local.get $q i32.const ${D2} i32.sub call $fold2
    ${scatter(M2)}
      local.get $q local.set $p
    end
    i32.const 0 local.get $p local.get $L call $tab)
)`;

// ---------------------------------------------------------------------------------------------
// A flat-WAT assembler for the subset above: one module, one memory, functions with i32 params,
// locals and results, block/loop/br/br_if with labels, call, i32/v128 arithmetic and memory ops.

const SIMPLE_OPS: Record<string, number[]> = {
  'i32.eqz': [0x45], 'i32.lt_u': [0x49], 'i32.gt_u': [0x4b], 'i32.ge_u': [0x4f],
  'i32.add': [0x6a], 'i32.sub': [0x6b], 'i32.and': [0x71], 'i32.xor': [0x73], 'i32.shl': [0x74], 'i32.shr_u': [0x76],
  'v128.xor': [0xfd, 0x51],
  'memory.copy': [0xfc, 0x0a, 0x00, 0x00], 'memory.fill': [0xfc, 0x0b, 0x00],
};
/** opcode bytes and natural alignment (log2) */
const MEMORY_OPS: Record<string, [number[], number]> = {
  'i32.load': [[0x28], 2], 'i32.load8_u': [[0x2d], 0], 'i32.store': [[0x36], 2], 'i32.store8': [[0x3a], 0],
  'v128.load': [[0xfd, 0x00], 4], 'v128.store': [[0xfd, 0x0b], 4],
};
const VALTYPE: Record<string, number> = { i32: 0x7f };

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n = Math.floor(n / 128);
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return out;
}
function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && !(b & 0x40)) || (n === -1 && b & 0x40)) return [...out, b];
    out.push(b | 0x80);
  }
}

type Sexp = string | Sexp[];

function parseWat(src: string): Sexp {
  const toks = src.replace(/;;[^\n]*/g, ' ').match(/\(|\)|"[^"]*"|[^\s()]+/g) ?? [];
  let i = 0;
  const read = (): Sexp => {
    const t = toks[i++];
    assert(t !== undefined && t !== ')', 'wat: unexpected end or )');
    if (t !== '(') return t;
    const list: Sexp[] = [];
    while (toks[i] !== ')') list.push(read());
    i++;
    return list;
  };
  const m = read();
  assert(i === toks.length, 'wat: trailing tokens');
  return m;
}

export function assembleWat(src: string): Uint8Array {
  const mod = parseWat(src);
  assert(Array.isArray(mod) && mod[0] === 'module', 'wat: expected (module ...)');
  const fields = mod.slice(1) as Sexp[][];
  const funcs = fields.filter((f) => f[0] === 'func');
  const funcIndex = new Map(funcs.map((f, i) => [f[1] as string, i]));
  const types: string[] = [];
  const exportsOut: number[][] = [];
  const str = (s: string) => [...uleb(s.length), ...new TextEncoder().encode(s)];
  let pages = -1;
  for (const f of fields) {
    if (f[0] === 'memory') {
      for (const x of f.slice(1)) {
        if (Array.isArray(x)) exportsOut.push([...str(JSON.parse(x[1] as string) as string), 0x02, 0]);
        else pages = Number(x);
      }
    } else assert(f[0] === 'func', `wat: unsupported field ${String(f[0])}`);
  }
  const bodies: number[][] = [];
  const typeOf: number[] = [];
  funcs.forEach((f, fi) => {
    const locals = new Map<string, number>();
    const params: number[] = [];
    const results: number[] = [];
    const extra: number[] = [];
    let j = 2;
    for (; j < f.length && Array.isArray(f[j]); j++) {
      const x = f[j] as string[];
      if (x[0] === 'export') exportsOut.push([...str(JSON.parse(x[1]!) as string), 0x00, fi]);
      else if (x[0] === 'param') (locals.set(x[1]!, locals.size), params.push(VALTYPE[x[2]!]!));
      else if (x[0] === 'result') results.push(VALTYPE[x[1]!]!);
      else if (x[0] === 'local') (locals.set(x[1]!, locals.size), extra.push(VALTYPE[x[2]!]!));
      else assert(false, `wat: unexpected (${x[0]})`);
    }
    const sig = JSON.stringify([params, results]);
    if (!types.includes(sig)) types.push(sig);
    typeOf.push(types.indexOf(sig));
    const body = f.slice(j) as string[];
    const code: number[] = [];
    const labels: (string | null)[] = [];
    const operand = (k: number, what: string) => {
      const v = body[k];
      assert(typeof v === 'string', `wat: ${what} needs an operand`);
      return v;
    };
    for (let k = 0; k < body.length; k++) {
      const op = body[k]!;
      assert(typeof op === 'string', 'wat: folded expressions are not supported');
      if (op === 'block' || op === 'loop') {
        code.push(op === 'block' ? 0x02 : 0x03, 0x40);
        labels.push(body[k + 1]?.startsWith('$') ? body[++k]! : null);
      } else if (op === 'end') {
        assert(labels.length > 0, 'wat: unmatched end');
        labels.pop();
        code.push(0x0b);
      } else if (op === 'br' || op === 'br_if') {
        const at = labels.lastIndexOf(operand(++k, op));
        assert(at >= 0, `wat: unknown label ${body[k]}`);
        code.push(op === 'br' ? 0x0c : 0x0d, ...uleb(labels.length - 1 - at));
      } else if (op === 'local.get' || op === 'local.set' || op === 'local.tee') {
        const n = locals.get(operand(++k, op));
        assert(n !== undefined, `wat: unknown local ${body[k]}`);
        code.push(op === 'local.get' ? 0x20 : op === 'local.set' ? 0x21 : 0x22, ...uleb(n));
      } else if (op === 'call') {
        const n = funcIndex.get(operand(++k, op));
        assert(n !== undefined, `wat: unknown function ${body[k]}`);
        code.push(0x10, ...uleb(n));
      } else if (op === 'i32.const') {
        code.push(0x41, ...sleb(Number(operand(++k, op)) | 0));
      } else if (MEMORY_OPS[op]) {
        const [bytes, natural] = MEMORY_OPS[op]!;
        let offset = 0;
        let align = natural;
        while (/^(offset|align)=\d+$/.test(body[k + 1] ?? '')) {
          const [key, v] = body[++k]!.split('=');
          if (key === 'offset') offset = Number(v);
          else align = Math.log2(Number(v));
        }
        code.push(...bytes, ...uleb(align), ...uleb(offset));
      } else {
        assert(SIMPLE_OPS[op] !== undefined, `wat: unknown instruction ${op}`);
        code.push(...SIMPLE_OPS[op]!);
      }
    }
    assert(labels.length === 0, 'wat: unclosed block');
    const groups: [number, number][] = [];
    for (const t of extra) {
      const g = groups[groups.length - 1];
      if (g && g[1] === t) g[0]++;
      else groups.push([1, t]);
    }
    const fb = [...uleb(groups.length), ...groups.flatMap(([n, t]) => [...uleb(n), t]), ...code, 0x0b];
    bodies.push([...uleb(fb.length), ...fb]);
  });
  const section = (id: number, items: number[][]) => {
    const payload = [...uleb(items.length), ...items.flat()];
    return [id, ...uleb(payload.length), ...payload];
  };
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, types.map((t) => {
      const [p, r] = JSON.parse(t) as [number[], number[]];
      return [0x60, ...uleb(p.length), ...p, ...uleb(r.length), ...r];
    })),
    ...section(3, typeOf.map((t) => uleb(t))),
    ...(pages >= 0 ? section(5, [[0x00, ...uleb(pages)]]) : []),
    ...section(7, exportsOut),
    ...section(10, bodies),
  ]);
}

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

/** Built on the first input >= wasmMinBytes (~8 ms, mostly assembling), so threads that only CRC
 *  small records never pay for it. null: no usable WebAssembly here, the JS path serves all. */
function instantiate(): Kernel | null {
  assert(residue(M1) === 0 && residue(M2) === 0, 'crc32c: M1 and M2 must be multiples of the CRC-32C polynomial');
  assert(M1[0] - M1[1] >= 64 && M2[0] - M2[1] >= 64, 'crc32c: recurrence offsets must be >= 64 bytes');
  const wasm = (globalThis as { WebAssembly?: WasmGlobal }).WebAssembly;
  if (!wasm) return null;
  const bytes = assembleWat(WAT);
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
