// ustar (POSIX.1-1988) archive pieces, as PostgreSQL's basebackup writes them (tarCreateHeader in
// src/port/tar.c): 512-byte headers whose numbers are zero-padded octal ended by a space
// (print_tar_number), directories named with a trailing "/" (type '5', size 0), file data padded to
// 512 bytes, two zero blocks at the end. Used by the walsender's BASE_BACKUP
// (server side) and by anyone reading such an archive (parseTar, for tests and the standby side).
// Pure functions over bytes; no I/O, nothing to stop.

import { Errors } from '../errors.js';
import { assert } from '../util/assert.js';

export const TAR_BLOCK_BYTES = 512;
const NAME_MAX = 100;
const PREFIX_MAX = 155;

export interface TarEntryHeader {
  name: string;
  size: number;
  /** Permission bits (default 0o600, like PostgreSQL's data files). */
  mode?: number;
  /** Modification time, Unix seconds. */
  mtimeSec?: number;
  /** '0' regular file (default), '5' directory. */
  type?: '0' | '5';
}

/** print_tar_number: `width - 1` zero-padded octal digits and a space. */
function octal(buf: Buffer, off: number, width: number, v: number): void {
  const s = Math.floor(v).toString(8);
  assert(s.length <= width - 1, `tar field too small for ${v}`);
  buf.write(s.padStart(width - 1, '0'), off, 'ascii');
  buf[off + width - 1] = 0x20;
}

/** One 512-byte ustar header. */
export function tarHeader(h: TarEntryHeader): Buffer {
  const b = Buffer.alloc(TAR_BLOCK_BYTES);
  // A directory's name ends with "/" (tarCreateHeader).
  let name = h.type === '5' && !h.name.endsWith('/') ? `${h.name}/` : h.name;
  let prefix = '';
  if (Buffer.byteLength(name) > NAME_MAX) {
    const cut = name.lastIndexOf('/', PREFIX_MAX);
    if (cut <= 0 || Buffer.byteLength(name.slice(cut + 1)) > NAME_MAX) throw Errors.invalidOption('tar name', `"${h.name}" is too long for ustar`);
    prefix = name.slice(0, cut);
    name = name.slice(cut + 1);
  }
  b.write(name, 0, NAME_MAX, 'utf8');
  octal(b, 100, 8, h.mode ?? (h.type === '5' ? 0o700 : 0o600));
  octal(b, 108, 8, 0); // uid
  octal(b, 116, 8, 0); // gid
  octal(b, 124, 12, h.type === '5' ? 0 : h.size);
  octal(b, 136, 12, h.mtimeSec ?? Math.floor(Date.now() / 1000));
  b.fill(0x20, 148, 156); // checksum placeholder: spaces
  b.write(h.type ?? '0', 156, 'ascii');
  b.write('ustar\0', 257, 'ascii');
  b.write('00', 263, 'ascii');
  b.write('postgres', 265, 'ascii'); // uname
  b.write('postgres', 297, 'ascii'); // gname
  b.write(prefix, 345, PREFIX_MAX, 'utf8');
  let sum = 0;
  for (let i = 0; i < TAR_BLOCK_BYTES; i++) sum += b[i]!;
  octal(b, 148, 8, sum);
  return b;
}

/** Zero bytes that pad `size` bytes of file data to a whole block. */
export function tarPadding(size: number): Buffer {
  const r = size % TAR_BLOCK_BYTES;
  return Buffer.alloc(r === 0 ? 0 : TAR_BLOCK_BYTES - r);
}

/** The two zero blocks that end an archive. */
export function tarTrailer(): Buffer {
  return Buffer.alloc(2 * TAR_BLOCK_BYTES);
}

/** Bytes an entry of `size` takes in the archive (header + padded data). */
export function tarEntryBytes(size: number): number {
  return TAR_BLOCK_BYTES + Math.ceil(size / TAR_BLOCK_BYTES) * TAR_BLOCK_BYTES;
}

export interface TarEntry {
  name: string;
  type: string;
  mode: number;
  mtimeSec: number;
  data: Uint8Array;
}

/** Parse a whole ustar archive (checksums verified). */
export function parseTar(buf: Uint8Array): TarEntry[] {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const out: TarEntry[] = [];
  let off = 0;
  const field = (at: number, len: number) => {
    const s = b.subarray(at, at + len);
    const z = s.indexOf(0);
    return s.subarray(0, z < 0 ? len : z).toString('utf8');
  };
  const num = (at: number, len: number) => {
    const t = field(at, len).trim();
    return t === '' ? 0 : parseInt(t, 8);
  };
  while (off + TAR_BLOCK_BYTES <= b.length) {
    const h = b.subarray(off, off + TAR_BLOCK_BYTES);
    if (h.every((x) => x === 0)) break;
    let sum = 0;
    for (let i = 0; i < TAR_BLOCK_BYTES; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i]!;
    if (sum !== num(off + 148, 8)) throw Errors.protocolViolation(`tar header checksum mismatch at offset ${off}`);
    const prefix = field(off + 345, PREFIX_MAX);
    const name = (prefix ? prefix + '/' : '') + field(off, NAME_MAX);
    const size = num(off + 124, 12);
    const type = field(off + 156, 1) || '0';
    const dataAt = off + TAR_BLOCK_BYTES;
    if (dataAt + size > b.length) throw Errors.protocolViolation(`tar entry "${name}" is truncated`);
    out.push({ name, type, mode: num(off + 100, 8), mtimeSec: num(off + 136, 12), data: b.subarray(dataAt, dataAt + size) });
    off = dataAt + Math.ceil(size / TAR_BLOCK_BYTES) * TAR_BLOCK_BYTES;
  }
  return out;
}
