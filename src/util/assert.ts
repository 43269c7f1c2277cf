// Invariant assertions (TigerBeetle style): a failed assertion is a bug in walstream, never bad
// input. Bad input is reported through the error factories in src/errors.ts instead.

export class AssertionError extends Error {
  override name = 'AssertionError';
}

export function assert(cond: unknown, msg = 'assertion failed'): asserts cond {
  if (!cond) throw new AssertionError(msg);
}

/** Assert that LSN-like positions never go backwards: `a <= b`. */
export function assertOrdered(a: number, b: number, what: string): void {
  if (!(a <= b)) throw new AssertionError(`${what}: ${a} > ${b}`);
}
