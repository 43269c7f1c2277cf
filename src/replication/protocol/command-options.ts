// Option interpretation PostgreSQL does right after parsing a replication command: the generic
// option lists of CREATE_REPLICATION_SLOT (walsender.c parseCreateReplSlotOptions) and BASE_BACKUP
// (basebackup.c parse_basebackup_options, with the compression specification of
// common/compression.c), and slot-name validation (slot.c ReplicationSlotValidateName). Pure
// functions, called by the parser in commands.ts (and validateSlotName by the slot table); errors
// are PostgreSQL's, with its SQLSTATEs.

import { Errors } from '../../errors.js';
import type { BaseBackupOptions, GenericOption, ReplicationCommand } from './commands.js';

/** PostgreSQL's NAMEDATALEN: names are at most NAMEDATALEN - 1 bytes. */
export const NAMEDATALEN = 64;

/** defGetString() */
function optString(o: GenericOption): string {
  if (o.arg === null) throw Errors.syntaxError(`${o.name} requires a parameter`);
  switch (o.arg.kind) {
    case 'string':
      return o.arg.value;
    case 'integer':
      return String(o.arg.value | 0);
    case 'boolean':
      return o.arg.value ? 'true' : 'false';
  }
}

/** defGetBoolean(): no value = true; 0/1; true/false/on/off in any case. */
function optBoolean(o: GenericOption): boolean {
  if (o.arg === null) return true;
  if (o.arg.kind === 'integer') {
    if (o.arg.value === 0) return false;
    if (o.arg.value === 1) return true;
  } else {
    const s = optString(o).toLowerCase();
    if (s === 'true' || s === 'on') return true;
    if (s === 'false' || s === 'off') return false;
  }
  throw Errors.syntaxError(`${o.name} requires a Boolean value`);
}

/** defGetInt64() */
function optInt64(o: GenericOption): number {
  if (o.arg === null || o.arg.kind !== 'integer') throw Errors.syntaxError(`${o.name} requires a numeric value`);
  return o.arg.value | 0;
}

export function finishCreateSlot(cmd: Extract<ReplicationCommand, { kind: 'CREATE_REPLICATION_SLOT' }>): ReplicationCommand {
  let snapshotGiven = false;
  let reserveWalGiven = false;
  let twoPhaseGiven = false;
  const conflicting = () => Errors.syntaxError('conflicting or redundant options');
  for (const o of cmd.options) {
    if (o.name === 'snapshot') {
      if (snapshotGiven || cmd.replicationKind !== 'logical') throw conflicting();
      const action = optString(o);
      snapshotGiven = true;
      if (action !== 'export' && action !== 'nothing' && action !== 'use') {
        throw Errors.invalidParameterValue(`unrecognized value for CREATE_REPLICATION_SLOT option "${o.name}": "${action}"`);
      }
      cmd.snapshot = action;
    } else if (o.name === 'reserve_wal') {
      if (reserveWalGiven || cmd.replicationKind !== 'physical') throw conflicting();
      reserveWalGiven = true;
      cmd.reserveWal = optBoolean(o);
    } else if (o.name === 'two_phase') {
      if (twoPhaseGiven || cmd.replicationKind !== 'logical') throw conflicting();
      twoPhaseGiven = true;
      cmd.twoPhase = optBoolean(o);
    } else {
      throw Errors.internal(`unrecognized option: ${o.name}`);
    }
  }
  // ReplicationSlotCreate() validates the name next (the logical path checks decoding requirements first).
  if (cmd.replicationKind === 'physical') validateSlotName(cmd.slotName);
  return cmd;
}

const CHECKSUM_TYPES = ['NONE', 'CRC32C', 'SHA224', 'SHA256', 'SHA384', 'SHA512'] as const;
const COMPRESSIONS = ['none', 'gzip', 'lz4', 'zstd'] as const;
/** MAX_RATE bounds, kB/s (MAX_RATE_LOWER / MAX_RATE_UPPER of PostgreSQL's basebackup.c). */
export const MAX_RATE_LOWER = 32;
export const MAX_RATE_UPPER = 1_048_576;

export function interpretBaseBackupOptions(options: GenericOption[]): BaseBackupOptions {
  const opt: BaseBackupOptions = {
    label: 'base backup',
    progress: false,
    fastCheckpoint: false,
    wait: true,
    includeWal: false,
    maxRateKBps: 0,
    tablespaceMap: false,
    verifyChecksums: true,
    manifest: 'no',
    manifestChecksums: 'CRC32C',
    target: null,
    targetDetail: null,
    compression: 'none',
    compressionDetail: null,
  };
  const seen = new Set<string>();
  const once = (o: GenericOption) => {
    if (seen.has(o.name)) throw Errors.syntaxError(`duplicate option "${o.name}"`);
    seen.add(o.name);
  };
  for (const o of options) {
    switch (o.name) {
      case 'label':
        once(o);
        opt.label = optString(o);
        break;
      case 'progress':
        once(o);
        opt.progress = optBoolean(o);
        break;
      case 'checkpoint': {
        once(o);
        const v = optString(o).toLowerCase();
        if (v === 'fast') opt.fastCheckpoint = true;
        else if (v === 'spread') opt.fastCheckpoint = false;
        else throw Errors.syntaxError(`unrecognized checkpoint type: "${optString(o)}"`);
        break;
      }
      case 'wait':
        once(o);
        opt.wait = optBoolean(o);
        break;
      case 'wal':
        once(o);
        opt.includeWal = optBoolean(o);
        break;
      case 'max_rate': {
        once(o);
        const v = optInt64(o);
        if (v < MAX_RATE_LOWER || v > MAX_RATE_UPPER) {
          throw Errors.numericOutOfRange(`${v} is outside the valid range for parameter "MAX_RATE" (${MAX_RATE_LOWER} .. ${MAX_RATE_UPPER})`);
        }
        opt.maxRateKBps = v;
        break;
      }
      case 'tablespace_map':
        once(o);
        opt.tablespaceMap = optBoolean(o);
        break;
      case 'verify_checksums':
        once(o);
        opt.verifyChecksums = optBoolean(o);
        break;
      case 'manifest': {
        once(o);
        const v = optString(o);
        const b = parsePgBool(v);
        if (b !== null) opt.manifest = b ? 'yes' : 'no';
        else if (v.toLowerCase() === 'force-encode') opt.manifest = 'force-encode';
        else throw Errors.syntaxError(`unrecognized manifest option: "${v}"`);
        break;
      }
      case 'manifest_checksums': {
        once(o);
        const v = optString(o);
        const t = CHECKSUM_TYPES.find((c) => c === v.toUpperCase());
        if (t === undefined) throw Errors.syntaxError(`unrecognized checksum algorithm: "${v}"`);
        opt.manifestChecksums = t;
        break;
      }
      case 'target':
        once(o);
        opt.target = optString(o);
        break;
      case 'target_detail':
        once(o);
        opt.targetDetail = optString(o);
        break;
      case 'compression': {
        once(o);
        const v = optString(o);
        const c = COMPRESSIONS.find((x) => x === v);
        if (c === undefined) throw Errors.syntaxError(`unrecognized compression algorithm: "${v}"`);
        opt.compression = c;
        break;
      }
      case 'compression_detail':
        once(o);
        opt.compressionDetail = optString(o);
        break;
      default:
        throw Errors.syntaxError(`unrecognized base backup option: "${o.name}"`);
    }
  }
  if (opt.manifest === 'no') {
    if (seen.has('manifest_checksums')) throw Errors.syntaxError('manifest checksums require a backup manifest');
    opt.manifestChecksums = 'NONE';
  }
  if (opt.target === null) {
    if (opt.targetDetail !== null) throw Errors.syntaxError('target detail cannot be used without target');
  } else if (opt.target === 'client' || opt.target === 'blackhole') {
    if (opt.targetDetail !== null) throw Errors.syntaxError(`target "${opt.target}" does not accept a target detail`);
  } else if (opt.target === 'server') {
    if (opt.targetDetail === null) throw Errors.syntaxError(`target "${opt.target}" requires a target detail`);
  } else {
    throw Errors.featureNotSupported(`unrecognized target: "${opt.target}"`);
  }
  if (seen.has('compression_detail') && !seen.has('compression')) {
    throw Errors.syntaxError('compression detail cannot be specified unless compression is enabled');
  }
  if (seen.has('compression')) {
    const why = compressionSpecError(opt.compression, opt.compressionDetail);
    if (why !== null) throw Errors.syntaxError(`invalid compression specification: ${why}`);
  }
  return opt;
}

/** parse_compress_specification() + validate_compress_specification() of PostgreSQL 15: null if valid. */
function compressionSpecError(algorithm: BaseBackupOptions['compression'], spec: string | null): string | null {
  let level: number | null = null;
  let workers = false;
  if (spec !== null) {
    if (/^\s*[+-]?\d+$/.test(spec)) level = Number(spec.trim()); // a bare integer is a level (strtol)
    else {
      for (const item of spec.split(',')) {
        const eq = item.indexOf('=');
        const keyword = eq < 0 ? item : item.slice(0, eq);
        const value = eq < 0 ? null : item.slice(eq + 1);
        if (keyword === '') return 'found empty string where a compression option was expected';
        if (keyword !== 'level' && keyword !== 'workers') return `unrecognized compression option: "${keyword}"`;
        if (value === null) return `compression option "${keyword}" requires a value`;
        if (!/^\s*[+-]?\d+$/.test(value)) return `value for compression option "${keyword}" must be an integer`;
        if (keyword === 'level') level = Number(value.trim());
        else workers = true;
      }
    }
  }
  if (level !== null) {
    const range = { gzip: [1, 9, -1], lz4: [1, 12, 0], zstd: [-131072, 22, 3], none: null }[algorithm];
    if (range === null) return `compression algorithm "${algorithm}" does not accept a compression level`;
    const [min, max, dflt] = range as [number, number, number];
    if ((level < min || level > max) && level !== dflt) {
      return `compression algorithm "${algorithm}" expects a compression level between ${min} and ${max} (default at ${dflt})`;
    }
  }
  if (workers && algorithm !== 'zstd') return `compression algorithm "${algorithm}" does not accept a worker count`;
  return null;
}

function parsePgBool(v: string): boolean | null {
  const s = v.toLowerCase();
  if (s.length === 0) return null;
  if ('true'.startsWith(s) || 'yes'.startsWith(s) || s === '1' || s === 'on') return true;
  if ('false'.startsWith(s) || 'no'.startsWith(s) || s === '0' || (s.length >= 2 && 'off'.startsWith(s))) return false;
  return null;
}

/**
 * Slot names: 1–63 characters from [a-z0-9_] (ReplicationSlotValidateName). PostgreSQL checks this
 * when creating a slot; looking up an invalid name just finds nothing (42704).
 */
export function validateSlotName(name: string): void {
  if (name.length === 0) throw Errors.invalidSlotName(`replication slot name "${name}" is too short`);
  if (Buffer.byteLength(name, 'utf8') >= NAMEDATALEN) throw Errors.nameTooLong(`replication slot name "${name}" is too long`);
  if (!/^[a-z0-9_]+$/.test(name)) {
    throw Errors.invalidSlotName(
      `replication slot name "${name}" contains invalid character`,
      'Replication slot names may only contain lower case letters, numbers, and the underscore character.',
    );
  }
}
