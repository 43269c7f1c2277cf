// Copies into SharedArrayBuffer memory at full speed. V8 copies between a SharedArrayBuffer and
// other memory a word at a time only when source and destination agree modulo 8, and byte by
// byte otherwise (`node dist/bench/shm.js` measures both beside an ordinary memcpy). A misaligned source is first copied
// into an aligned bounce buffer (ordinary memory: memcpy speed), then into shared memory.

const BOUNCE_BYTES = 256 * 1024;
let bounce = new Uint8Array(BOUNCE_BYTES);
/** Below this, the misaligned byte loop is cheaper than a second copy. */
const MIN_BOUNCE_BYTES = 64;

export function copyToShared(dst: Uint8Array, dstOff: number, src: Uint8Array): void {
  const n = src.length;
  if (n < MIN_BOUNCE_BYTES || ((src.byteOffset - (dst.byteOffset + dstOff)) & 7) === 0) {
    dst.set(src, dstOff);
    return;
  }
  // Place the bounce copy at the destination's alignment so the second copy is word-aligned.
  const shift = (dst.byteOffset + dstOff) & 7;
  for (let done = 0; done < n; ) {
    const m = Math.min(n - done, BOUNCE_BYTES - 8);
    if (bounce.byteOffset !== 0) bounce = new Uint8Array(BOUNCE_BYTES);
    const b = bounce.subarray(shift, shift + m);
    b.set(src.subarray(done, done + m));
    dst.set(b, dstOff + done);
    done += m;
  }
}
