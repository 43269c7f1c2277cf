// Checks shared by the option resolvers (src/primary/options.ts, src/standby/options.ts): each
// returns the value when it is acceptable and otherwise throws WS_INVALID_OPTION (22023) naming the
// option and what it accepts. Options are validated once, when a Primary or Standby opens.

import { Errors } from '../errors.js';

/** An integer option in [min, max] (units are in the option's name: …Ms, …Bytes, …Us). */
export function intOption(name: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw Errors.invalidOption(name, `must be an integer from ${min} to ${max}, got ${String(v)}`);
  }
  return v;
}

/** A boolean option. */
export function boolOption(name: string, v: unknown): boolean {
  if (typeof v !== 'boolean') throw Errors.invalidOption(name, `must be true or false, got ${String(v)}`);
  return v;
}
