// Direct I/O (O_DIRECT) for WAL written in bulk, without a native addon.
//
// Who uses it: the walreceiver while it catches up (many segments behind the primary). A buffered
// write copies every byte into a newly allocated page-cache page and leaves it dirty for writeback;
// on this kind of VM that kernel work, not the disk, bounds catch-up (≈1–2 s of system CPU per GiB
// against ≈0.1 s for direct writes of the same bytes). A direct write goes from our buffer to the
// device. PostgreSQL does the same for WAL with debug_io_direct=wal (16+) and, before that, with
// wal_sync_method=open_datasync when no walsender reads the files.
//
// O_DIRECT needs the buffer address, the file offset and the length aligned (to the device's
// logical block size; DIRECT_IO_ALIGN_BYTES covers 512-byte and 4 KiB devices). Node's Buffers and
// ArrayBuffers are only 16-byte aligned (EINVAL), but WebAssembly memory is page-aligned: staging
// buffers are WebAssembly.Memory pages. Durability is unchanged: a direct write still needs the
// fdatasync that follows it (device cache, extent metadata), which the caller does as before.
//
// DEV DOCS: DirectWriteStage holds at most one segment's window: WAL is copied in at its offset,
// written in whole blocks (a partial last block padded with zeros, as PostgreSQL writes whole WAL
// pages), and that partial block stays staged, so the next write rewrites it with more WAL. The
// caller owns the file descriptor; mixing this fd's direct writes with buffered writes through
// another fd of the same file is coherent (the kernel writes back and drops cached pages in the
// range of a direct write), only slower, so the walreceiver ends staging before it writes buffered.

import fs from 'node:fs';
import { assert } from '../util/assert.js';

/** Alignment of buffer address, file offset and length for direct I/O. */
export const DIRECT_IO_ALIGN_BYTES = 4096;
const WASM_PAGE_BYTES = 65536;

/** O_DIRECT where the platform has it (Linux); 0 elsewhere (direct I/O is then never used). */
export const O_DIRECT: number = (fs.constants as { O_DIRECT?: number }).O_DIRECT ?? 0;

/** The one WebAssembly API used here (the project's TypeScript lib has no WebAssembly types). */
interface WasmMemoryCtor {
  Memory: new (d: { initial: number; maximum: number }) => { buffer: ArrayBuffer };
}

/** A zeroed buffer whose address is page-aligned (a WebAssembly.Memory of its own). */
export function allocAligned(bytes: number): Uint8Array {
  assert(bytes > 0 && bytes % DIRECT_IO_ALIGN_BYTES === 0, 'allocAligned: size must be a positive multiple of the alignment');
  const wasm = (globalThis as { WebAssembly?: WasmMemoryCtor }).WebAssembly;
  assert(wasm !== undefined, 'allocAligned: WebAssembly is not available');
  const pages = Math.ceil(bytes / WASM_PAGE_BYTES);
  return new Uint8Array(new wasm.Memory({ initial: pages, maximum: pages }).buffer, 0, bytes);
}

/** Open an existing file read-write for direct I/O; null if this platform or file system refuses O_DIRECT. */
export function openDirect(file: string): number | null {
  if (O_DIRECT === 0) return null;
  try {
    return fs.openSync(file, fs.constants.O_RDWR | O_DIRECT);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EINVAL') return null;
    throw e;
  }
}

/** True for the error a file system gives when it refuses O_DIRECT or its alignment. */
export function isDirectIoRefusal(e: unknown): boolean {
  return (e as NodeJS.ErrnoException)?.code === 'EINVAL';
}

function pwrite(fd: number, buf: Uint8Array, off: number, n: number, pos: number): Promise<number> {
  return new Promise((resolve, reject) => fs.write(fd, buf, off, n, pos, (e, k) => (e ? reject(e) : resolve(k))));
}

export class DirectWriteStage {
  readonly capacityBytes: number;
  /** Buffers: one filling while the others' writes run on the libuv threadpool. */
  private readonly bufs: Uint8Array[];
  private bufIdx = 0;
  private buf: Uint8Array;
  /** The direct fd being staged for (-1: idle). */
  private fd = -1;
  /** File offset of buf[0] (aligned). */
  private base = 0;
  /** Bytes valid in buf. */
  private len = 0;
  /** Of those, the leading bytes already written to the file. */
  private writtenLen = 0;
  /**
   * Writes of full buffers in flight, oldest first (at most maxInflight). They never overlap (a
   * full buffer covers whole blocks; a partial block is only written by writeOut, with nothing in
   * flight), so their order of completion does not matter.
   */
  private readonly inflight: Array<{ p: Promise<void>; end: number }> = [];
  private inflightError: unknown = null;
  readonly maxInflight: number;
  /** File offset up to which every write of this staging has completed. */
  private doneEnd = 0;
  /** Opaque tag of what is staged (the segment number), for the caller. */
  tag = -1;

  /** `capacityBytes` per buffer; up to `maxInflight` buffers written at once while one more fills. */
  constructor(capacityBytes: number, maxInflight: number) {
    assert(capacityBytes >= 2 * DIRECT_IO_ALIGN_BYTES && capacityBytes % DIRECT_IO_ALIGN_BYTES === 0, 'DirectWriteStage: capacity must be a multiple of the alignment, at least two blocks');
    assert(Number.isInteger(maxInflight) && maxInflight >= 1, 'DirectWriteStage: maxInflight must be at least 1');
    this.capacityBytes = capacityBytes;
    this.maxInflight = maxInflight;
    this.bufs = [];
    this.buf = new Uint8Array(0);
  }

  /** The buffers are allocated when first needed (a standby that never catches up never pays for them). */
  private allocate(): void {
    if (this.bufs.length > 0) return;
    for (let i = 0; i <= this.maxInflight; i++) this.bufs.push(allocAligned(this.capacityBytes));
    this.bufIdx = 0;
    this.buf = this.bufs[0]!;
  }

  /** Whether `fd` (opened with O_DIRECT) really takes direct I/O: an aligned read of its first block. */
  probe(fd: number): boolean {
    this.allocate();
    try {
      fs.readSync(fd, this.buf, 0, DIRECT_IO_ALIGN_BYTES, 0);
      return true;
    } catch (e) {
      if (isDirectIoRefusal(e)) return false;
      throw e;
    }
  }

  get active(): boolean {
    return this.fd >= 0;
  }

  /** A write is in flight: settle() before writeOut(), finish() or begin(). */
  get busy(): boolean {
    return this.inflight.length > 0;
  }

  /** File offset just past the staged bytes (where the next put() goes). */
  get end(): number {
    return this.base + this.len;
  }

  /** File offset up to which everything written so far has completed (what the caller may call written). */
  get completedEnd(): number {
    return this.doneEnd;
  }

  /** True when put() accepts nothing more until submit(). */
  get full(): boolean {
    return this.len === this.capacityBytes;
  }

  /**
   * Start staging at file offset `off` of direct fd `fd`. The bytes of off's block that come
   * before it are read back from the file first (the block is rewritten whole).
   */
  begin(fd: number, off: number, tag: number): void {
    assert(this.fd < 0 && this.inflight.length === 0, 'DirectWriteStage: begin while active');
    this.allocate();
    const base = off - (off % DIRECT_IO_ALIGN_BYTES);
    const head = off - base;
    if (head > 0) {
      const r = fs.readSync(fd, this.buf, 0, DIRECT_IO_ALIGN_BYTES, base);
      // A file shorter than the block reads short: what is missing is zeros.
      if (r < head) this.buf.fill(0, r, head);
    }
    this.fd = fd;
    this.base = base;
    this.len = head;
    this.writtenLen = head;
    this.doneEnd = off;
    this.tag = tag;
  }

  /** Stage up to `n` bytes of `data` from `off`, at end(); returns how many fit (submit() when full). */
  put(data: Uint8Array, off: number, n: number): number {
    assert(this.fd >= 0, 'DirectWriteStage: put while idle');
    const k = Math.min(n, this.capacityBytes - this.len);
    this.buf.set(data.subarray(off, off + k), this.len);
    this.len += k;
    return k;
  }

  /**
   * Write the full buffer on the threadpool and go on staging into the next one. Waits only while
   * maxInflight writes are in flight (the oldest one's failure is thrown here).
   */
  async submit(): Promise<void> {
    assert(this.full, 'DirectWriteStage: submit of a buffer that is not full');
    while (this.inflight.length >= this.maxInflight) await this.settleOldest();
    const fd = this.fd;
    const buf = this.buf;
    const base = this.base;
    const n = this.len;
    const p = (async () => {
      let w = 0;
      while (w < n) {
        const k = await pwrite(fd, buf, w, n - w, base + w);
        assert(k > 0 && k % DIRECT_IO_ALIGN_BYTES === 0, `DirectWriteStage: direct write of ${n - w} bytes wrote ${k}`);
        w += k;
      }
    })().catch((e: unknown) => {
      this.inflightError ??= e;
    });
    this.inflight.push({ p, end: base + n });
    this.bufIdx = (this.bufIdx + 1) % this.bufs.length;
    this.buf = this.bufs[this.bufIdx]!;
    this.base = base + n;
    this.len = 0;
    this.writtenLen = 0;
  }

  private async settleOldest(): Promise<void> {
    const w = this.inflight[0]!;
    await w.p;
    this.inflight.shift();
    const e = this.inflightError;
    if (e !== null) {
      this.inflightError = null;
      throw e;
    }
    // Writes complete in any order; what counts is the end of the oldest completed in sequence.
    this.doneEnd = w.end;
  }

  /** Wait for every write in flight; throws the first failure. */
  async settle(): Promise<void> {
    while (this.inflight.length > 0) await this.settleOldest();
  }

  /**
   * Write everything staged, on this thread (whole blocks; the partial last one padded with
   * zeros), and keep that partial block staged. Nothing may be in flight (settle() first).
   */
  writeOut(): void {
    assert(this.inflight.length === 0, 'DirectWriteStage: writeOut while a write is in flight');
    if (this.len === this.writtenLen) return;
    const n = Math.ceil(this.len / DIRECT_IO_ALIGN_BYTES) * DIRECT_IO_ALIGN_BYTES;
    if (n > this.len) this.buf.fill(0, this.len, n);
    let w = 0;
    while (w < n) {
      const k = fs.writeSync(this.fd, this.buf, w, n - w, this.base + w);
      assert(k > 0 && k % DIRECT_IO_ALIGN_BYTES === 0, `DirectWriteStage: direct write of ${n - w} bytes wrote ${k}`);
      w += k;
    }
    this.doneEnd = this.base + this.len;
    const keep = this.len % DIRECT_IO_ALIGN_BYTES;
    const from = this.len - keep;
    if (keep > 0) this.buf.copyWithin(0, from, this.len);
    this.base += from;
    this.len = keep;
    this.writtenLen = keep;
  }

  /** writeOut() and go idle (the fd stays open: it is the caller's). */
  finish(): void {
    this.writeOut();
    this.reset();
  }

  /** Go idle, dropping anything staged (the stream is abandoned; nothing may be in flight). */
  reset(): void {
    assert(this.inflight.length === 0, 'DirectWriteStage: reset while a write is in flight');
    this.fd = -1;
    this.base = 0;
    this.len = 0;
    this.writtenLen = 0;
    this.doneEnd = 0;
    this.tag = -1;
  }

  /** Wait for a write in flight and forget its outcome (teardown after a failure reported elsewhere). */
  async quiesce(): Promise<void> {
    await Promise.all(this.inflight.map((w) => w.p));
    this.inflight.length = 0;
    this.inflightError = null;
  }
}
