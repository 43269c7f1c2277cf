// Value codec: msgpackr without shared record structures, so that bytes are self-describing and
// every thread and process (primary, standby, pg_waldump users) decodes them the same way.

import { Packr } from './msgpackr.js';

const packr = new Packr({ useRecords: false, moreTypes: true });
const enc = new TextEncoder();

export function encodeValue(v: unknown): Uint8Array {
  return packr.pack(v);
}

/**
 * Upper bound of the bytes writeValue(v, …) takes for the values it encodes without msgpackr
 * (Uint8Array, Buffer, string), or -1 for any other value (encode those with encodeValue).
 */
export function fastValueBound(v: unknown): number {
  if (typeof v === 'string') return v.length * 3 + 5;
  if (v instanceof Uint8Array) {
    const c = v.constructor;
    if (c === Uint8Array || c === Buffer) return v.length + 7;
  }
  return -1;
}

/**
 * Write encodeValue(v)'s exact bytes at out[off] for a Uint8Array (msgpackr with moreTypes: ext 0x74
 * "typed array", subtype 1), a Buffer (bin 8/16/32) or an ASCII string (fixstr/str 8/16/32); needs
 * fastValueBound(v) bytes of room. Returns the end offset, or -1 when v is none of those (a string
 * with a non-ASCII character included): nothing meaningful was written, use encodeValue. The output
 * is byte-identical to msgpackr's (test/codec-fast), so decoders and digests cannot tell them apart.
 */
export function writeValue(v: unknown, out: Uint8Array, off: number): number {
  if (typeof v === 'string') return writeAsciiString(v, out, off);
  if (!(v instanceof Uint8Array)) return -1;
  const c = v.constructor;
  const n = v.length;
  let p = off;
  if (c === Uint8Array) {
    const m = n + 1; // ext payload: the typed-array subtype byte, then the bytes
    if (m < 0x100) {
      out[p++] = 0xc7;
      out[p++] = m;
    } else if (m < 0x10000) {
      out[p++] = 0xc8;
      out[p++] = m >>> 8;
      out[p++] = m & 0xff;
    } else {
      out[p++] = 0xc9;
      p = putU32BE(out, p, m);
    }
    out[p++] = 0x74;
    out[p++] = 1;
  } else if (c === Buffer) {
    if (n < 0x100) {
      out[p++] = 0xc4;
      out[p++] = n;
    } else if (n < 0x10000) {
      out[p++] = 0xc5;
      out[p++] = n >>> 8;
      out[p++] = n & 0xff;
    } else {
      out[p++] = 0xc6;
      p = putU32BE(out, p, n);
    }
  } else return -1;
  if (n <= 16) for (let i = 0; i < n; i++) out[p + i] = v[i]!;
  else out.set(v, p);
  return p + n;
}

function putU32BE(out: Uint8Array, p: number, v: number): number {
  out[p] = v >>> 24;
  out[p + 1] = (v >>> 16) & 0xff;
  out[p + 2] = (v >>> 8) & 0xff;
  out[p + 3] = v & 0xff;
  return p + 4;
}

function writeAsciiString(s: string, out: Uint8Array, off: number): number {
  const n = s.length;
  let p = off;
  if (n < 32) out[p++] = 0xa0 | n;
  else if (n < 0x100) {
    out[p++] = 0xd9;
    out[p++] = n;
  } else if (n < 0x10000) {
    out[p++] = 0xda;
    out[p++] = n >>> 8;
    out[p++] = n & 0xff;
  } else {
    out[p++] = 0xdb;
    p = putU32BE(out, p, n);
  }
  if (n <= 64) {
    for (let i = 0; i < n; i++) {
      const ch = s.charCodeAt(i);
      if (ch >= 0x80) return -1;
      out[p + i] = ch;
    }
    return p + n;
  }
  // Every UTF-16 unit takes >= 1 UTF-8 byte and exactly 1 only when ASCII.
  const r = enc.encodeInto(s, out.subarray(p, p + n));
  return r.read === n && r.written === n ? p + n : -1;
}

export function decodeValue(b: Uint8Array): unknown {
  return packr.unpack(b);
}

/** UTF-8 bytes of a string; short ASCII strings skip TextEncoder's call overhead. */
export function utf8(s: string): Uint8Array {
  const n = s.length;
  if (n <= 64) {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80) return enc.encode(s);
      out[i] = c;
    }
    return out;
  }
  return enc.encode(s);
}

export function keyBytes(key: string | Uint8Array): { bytes: Uint8Array; isString: boolean } {
  if (typeof key === 'string') return { bytes: utf8(key), isString: true };
  return { bytes: key, isString: false };
}
