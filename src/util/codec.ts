// Value codec: msgpackr without shared record structures, so that bytes are self-describing and
// every thread and process (primary, standby, pg_waldump users) decodes them the same way.

import { Packr } from 'msgpackr';

const packr = new Packr({ useRecords: false, moreTypes: true });
const enc = new TextEncoder();
const dec = new TextDecoder();

export function encodeValue(v: unknown): Uint8Array {
  return packr.pack(v);
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

export function keyFromBytes(bytes: Uint8Array, isString: boolean): string | Uint8Array {
  return isString ? dec.decode(bytes) : bytes;
}
