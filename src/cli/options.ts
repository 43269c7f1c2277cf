// Option-argument parsers for the walstream command (commander custom parsers): each turns the
// text into a value or throws commander's InvalidArgumentError saying what the option accepts, so
// that a bad value ends the command with one line naming the option, e.g.
//   walstream: option '--port <port>' argument 'abc' is invalid. Expected an integer from 0 to 65535.

import fs from 'node:fs';
import path from 'node:path';
import { InvalidArgumentError } from 'commander';
import { MAX_RATE_LOWER, MAX_RATE_UPPER } from '../replication/protocol/command-options.js';
import { checkConninfoSyntax } from '../standby/options.js';
import { type Lsn, LSN_HI_LIMIT, parseLsn } from '../wal/lsn.js';

/**
 * The metrics port when `--metrics-port` is given without a value, and `walstream status`'s.
 * Prometheus's default port allocations give exporters 9100-9999, all taken (9187 is
 * postgres_exporter's); 10432 lies beyond them and recalls PostgreSQL's 5432.
 */
export const DEFAULT_METRICS_PORT = 10432;

const INT = /^[+-]?\d+$/;
const NUM = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;

function range(min: number, max: number | undefined): string {
  return max === undefined ? `>= ${min}` : `from ${min} to ${max}`;
}

/** An integer in [min, max]. */
export function intArg(min: number, max?: number): (v: string) => number {
  return (v) => {
    const n = Number(v.trim());
    if (!INT.test(v.trim()) || !Number.isSafeInteger(n) || n < min || (max !== undefined && n > max)) {
      throw new InvalidArgumentError(`Expected an integer ${range(min, max)}.`);
    }
    return n;
  };
}

/** A number > min (exclusive) or >= min (inclusive), e.g. seconds. */
export function numberArg(min: number, opts: { exclusive?: boolean; max?: number } = {}): (v: string) => number {
  return (v) => {
    const n = Number(v.trim());
    const low = opts.exclusive ? n > min : n >= min;
    if (!NUM.test(v.trim()) || !Number.isFinite(n) || !low || (opts.max !== undefined && n > opts.max)) {
      throw new InvalidArgumentError(`Expected a number ${opts.exclusive ? '>' : '>='} ${min}${opts.max !== undefined ? ` and <= ${opts.max}` : ''}.`);
    }
    return n;
  };
}

/** A TCP port: 0 (ephemeral) to 65535. */
export const portArg = intArg(0, 65535);

/** A comma-separated list of integers in [min, max], at least one, no duplicates. */
export function intListArg(min: number, max?: number): (v: string) => number[] {
  return (v) => {
    const parts = v.split(',').map((x) => x.trim());
    const ok = parts.length > 0 && parts.every((x) => INT.test(x) && Number(x) >= min && (max === undefined || Number(x) <= max));
    if (!ok || new Set(parts.map(Number)).size !== parts.length) {
      throw new InvalidArgumentError(`Expected a comma-separated list of distinct integers ${range(min, max)}, e.g. ${min},${min + 1}.`);
    }
    return parts.map(Number);
  };
}

/** A comma-separated list of some of `choices`, at least one, no duplicates. */
export function choiceListArg<T extends string>(choices: readonly T[]): (v: string) => T[] {
  return (v) => {
    const parts = v.split(',').map((x) => x.trim());
    const bad = parts.filter((x) => !(choices as readonly string[]).includes(x));
    if (parts.length === 0 || bad.length > 0 || new Set(parts).size !== parts.length) {
      throw new InvalidArgumentError(`Expected a comma-separated list of ${choices.join(', ')}${bad.length > 0 ? ` (not: ${bad.join(', ')})` : ''}.`);
    }
    return parts as T[];
  };
}

/** A file to write: its directory must exist. Returns the absolute path. */
export function outputFileArg(v: string): string {
  const abs = path.resolve(v);
  let st: fs.Stats | undefined;
  try {
    st = fs.statSync(path.dirname(abs));
  } catch {
    st = undefined;
  }
  if (!st?.isDirectory()) throw new InvalidArgumentError(`Expected a file path in an existing directory (${path.dirname(abs)} does not exist).`);
  if (fs.existsSync(abs) && fs.statSync(abs).isDirectory()) throw new InvalidArgumentError('Expected a file path, not a directory.');
  return abs;
}

/** An http(s) URL. */
export function urlArg(v: string): string {
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    throw new InvalidArgumentError('Expected a URL such as http://127.0.0.1:10432.');
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new InvalidArgumentError('Expected an http:// or https:// URL.');
  return v;
}

/**
 * A libpq key=value connection string, as the standby's primary_conninfo accepts it (its syntax
 * and keywords only: the environment and the password file complete it when it is used).
 */
export function conninfoArg(v: string): string {
  try {
    checkConninfoSyntax(v);
  } catch (e) {
    const why = (e as Error).message.replace(/^invalid value for option "primaryConninfo": /, '');
    throw new InvalidArgumentError(`Expected key=value pairs such as 'host=127.0.0.1 port=5433 user=rep' (${why}).`);
  }
  return v;
}

/** pg_basebackup's --max-rate: kB/s, or with a suffix k (kB/s) or M (MB/s), from 32 kB/s to 1 GB/s. */
export function maxRateArg(v: string): number {
  const m = /^\s*(\d+)\s*([kM]?)\s*$/.exec(v);
  const kb = m ? Number(m[1]) * (m[2] === 'M' ? 1024 : 1) : NaN;
  if (!Number.isSafeInteger(kb) || kb < MAX_RATE_LOWER || kb > MAX_RATE_UPPER) {
    throw new InvalidArgumentError(`Expected a transfer rate in kB/s from ${MAX_RATE_LOWER} to ${MAX_RATE_UPPER}, optionally with the suffix k or M (e.g. 512, 100M).`);
  }
  return kb;
}

/** A WAL location as PostgreSQL prints it: two hexadecimal numbers, X/X. */
export function lsnArg(v: string): Lsn {
  try {
    return parseLsn(v);
  } catch {
    throw new InvalidArgumentError(`Expected a WAL location X/X in hexadecimal below ${LSN_HI_LIMIT.toString(16).toUpperCase()}/0 (2^53 bytes), e.g. 0/16B3748.`);
  }
}
