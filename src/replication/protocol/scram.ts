// Password authentication for replication connections: SCRAM-SHA-256 (RFC 5802/7677) as
// PostgreSQL 15 does it, MD5, and cleartext checks, over node:crypto. Sans I/O: the server and
// client exchanges are small state machines fed the SASL payloads; ReplicationServerConn and
// ReplicationClientConn move them in and out of `R`/`p` messages.
//
// Server errors mirror auth-scram.c (messages, details, SQLSTATE 08P01/0A000); a wrong password is
// not an exception here but a `failure` result, which the connection turns into 28P01. For an
// unknown user (or one without a SCRAM secret) the server runs the whole exchange with a made-up
// salt and fails only at the end, so the answer does not reveal whether the role exists.

import { createHash, createHmac, pbkdf2Sync, randomBytes as nodeRandomBytes, timingSafeEqual } from 'node:crypto';
import { Errors, type WalstreamError } from '../../errors.js';
import { assert } from '../../util/assert.js';

export const SCRAM_SHA_256 = 'SCRAM-SHA-256';
export const SCRAM_SHA_256_PLUS = 'SCRAM-SHA-256-PLUS';
export const SCRAM_DEFAULT_ITERATIONS = 4096;
export const SCRAM_SALT_BYTES = 16;
/** Raw bytes of PostgreSQL's and libpq's nonces (24 base64 characters). */
export const SCRAM_NONCE_BYTES = 18;
const SCRAM_KEY_BYTES = 32;

export type RandomBytes = (n: number) => Buffer;
const defaultRandom: RandomBytes = (n) => nodeRandomBytes(n);

export interface ScramSecret {
  iterations: number;
  salt: Buffer;
  storedKey: Buffer;
  serverKey: Buffer;
}

// ---------------------------------------------------------------------------------------------
// Primitives

function hmac(key: Uint8Array, msg: string | Uint8Array): Buffer {
  return createHmac('sha256', key).update(msg).digest();
}
function sha256(b: Uint8Array): Buffer {
  return createHash('sha256').update(b).digest();
}
function xor(a: Uint8Array, b: Uint8Array): Buffer {
  assert(a.length === b.length, 'xor of different lengths');
  const out = Buffer.allocUnsafe(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i]! ^ b[i]!;
  return out;
}
function safeEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

// RFC 3454 tables, reduced to what matters for passwords.
const NON_ASCII_SPACE = /[\u00A0\u1680\u2000-\u200B\u202F\u205F\u3000]/g;
const MAPPED_TO_NOTHING = /[\u00AD\u034F\u1806\u180B-\u180D\u200C\u200D\u2060\uFE00-\uFE0F\uFEFF]/g;
// Prohibited output: controls, private use, non-characters, surrogates, inappropriate for plain text/canonical, tagging.
// eslint-disable-next-line no-control-regex
const PROHIBITED = /[\u0000-\u001F\u007F-\u009F\u0340\u0341\u06DD\u070F\u180E\u200E\u200F\u2028-\u202E\u206A-\u206F\uD800-\uDFFF\uE000-\uF8FF\uFFF9-\uFFFF]|[\u{E0001}\u{E0020}-\u{E007F}\u{F0000}-\u{10FFFF}]/u;

/**
 * SASLprep (RFC 4013) as PostgreSQL's pg_saslprep applies it to passwords: pure ASCII is left
 * alone; otherwise map, NFKC-normalise, and if the result contains prohibited characters fall back
 * to the raw password (as libpq and the server both do). Bidi checks are not applied.
 */
export function saslPrep(password: string): string {
  // eslint-disable-next-line no-control-regex
  if (/^[\u0000-\u007F]*$/.test(password)) return password;
  const mapped = password.replace(NON_ASCII_SPACE, ' ').replace(MAPPED_TO_NOTHING, '');
  const normalized = mapped.normalize('NFKC');
  if (normalized.length === 0 || PROHIBITED.test(normalized)) return password;
  return normalized;
}

export function scramSaltedPassword(password: string, salt: Uint8Array, iterations: number): Buffer {
  return pbkdf2Sync(Buffer.from(saslPrep(password), 'utf8'), salt, iterations, SCRAM_KEY_BYTES, 'sha256');
}
export function scramClientKey(saltedPassword: Uint8Array): Buffer {
  return hmac(saltedPassword, 'Client Key');
}
export function scramServerKey(saltedPassword: Uint8Array): Buffer {
  return hmac(saltedPassword, 'Server Key');
}
export function scramStoredKey(clientKey: Uint8Array): Buffer {
  return sha256(clientKey);
}

// ---------------------------------------------------------------------------------------------
// Secrets ("verifiers") as stored in pg_authid.rolpassword

export function makeScramSecret(password: string, opts: { iterations?: number; salt?: Uint8Array; randomBytes?: RandomBytes } = {}): ScramSecret {
  const iterations = opts.iterations ?? SCRAM_DEFAULT_ITERATIONS;
  if (!Number.isInteger(iterations) || iterations < 1) throw Errors.invalidOption('iterations', 'must be a positive integer');
  const salt = Buffer.from(opts.salt ?? (opts.randomBytes ?? defaultRandom)(SCRAM_SALT_BYTES));
  const salted = scramSaltedPassword(password, salt, iterations);
  return { iterations, salt, storedKey: scramStoredKey(scramClientKey(salted)), serverKey: scramServerKey(salted) };
}

export function formatScramVerifier(s: ScramSecret): string {
  return `${SCRAM_SHA_256}$${s.iterations}:${s.salt.toString('base64')}$${s.storedKey.toString('base64')}:${s.serverKey.toString('base64')}`;
}

/** PostgreSQL's `SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>` for `password`. */
export function makeScramVerifier(password: string, opts: { iterations?: number; salt?: Uint8Array; randomBytes?: RandomBytes } = {}): string {
  return formatScramVerifier(makeScramSecret(password, opts));
}

const B64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
function b64(s: string): Buffer | null {
  return B64.test(s) ? Buffer.from(s, 'base64') : null;
}

/** Parses a SCRAM verifier; null if it is not one (parse_scram_secret). */
export function parseScramVerifier(text: string): ScramSecret | null {
  const m = /^SCRAM-SHA-256\$(\d+):([^$]+)\$([^:]+):(.+)$/.exec(text);
  if (!m) return null;
  const iterations = Number(m[1]);
  const salt = b64(m[2]!);
  const storedKey = b64(m[3]!);
  const serverKey = b64(m[4]!);
  if (!Number.isSafeInteger(iterations) || iterations < 1 || !salt || !storedKey || !serverKey) return null;
  if (storedKey.length !== SCRAM_KEY_BYTES || serverKey.length !== SCRAM_KEY_BYTES) return null;
  return { iterations, salt, storedKey, serverKey };
}

export type PasswordType = 'scram-sha-256' | 'md5' | 'plaintext';

/** get_password_type(): how a stored password is encoded. */
export function passwordType(stored: string): PasswordType {
  if (/^md5[0-9a-f]{32}$/.test(stored)) return 'md5';
  if (parseScramVerifier(stored)) return 'scram-sha-256';
  return 'plaintext';
}

// ---------------------------------------------------------------------------------------------
// MD5

function md5hex(b: string | Uint8Array): string {
  return createHash('md5').update(b).digest('hex');
}

/** The stored form: `"md5" + md5hex(password ‖ user)`. */
export function md5PasswordHash(password: string, user: string): string {
  return 'md5' + md5hex(Buffer.from(password + user, 'utf8'));
}

/** What the client answers to AuthenticationMD5Password, from the stored `md5…` hash. */
export function md5SaltedResponse(storedMd5: string, salt: Uint8Array): string {
  assert(/^md5[0-9a-f]{32}$/.test(storedMd5), 'not an md5 password hash');
  assert(salt.length === 4, 'MD5 salt is 4 bytes');
  return 'md5' + md5hex(Buffer.concat([Buffer.from(storedMd5.slice(3), 'ascii'), salt]));
}

/** Client side: `"md5" + md5hex(md5hex(password ‖ user) ‖ salt)`. */
export function md5ClientResponse(password: string, user: string, salt: Uint8Array): string {
  return md5SaltedResponse(md5PasswordHash(password, user), salt);
}

/** md5_crypt_verify(): the client's answer against the stored password. Only an MD5-stored password can pass. */
export function verifyMd5Response(stored: string, response: string, salt: Uint8Array): boolean {
  if (passwordType(stored) !== 'md5') return false;
  const want = Buffer.from(md5SaltedResponse(stored, salt));
  return safeEqual(Buffer.from(response), want);
}

/** plain_crypt_verify(): a cleartext password against the stored SCRAM or MD5 form (never plaintext). */
export function verifyCleartextPassword(stored: string, user: string, password: string): boolean {
  switch (passwordType(stored)) {
    case 'scram-sha-256': {
      const s = parseScramVerifier(stored)!;
      const serverKey = scramServerKey(scramSaltedPassword(password, s.salt, s.iterations));
      return safeEqual(serverKey, s.serverKey);
    }
    case 'md5':
      return safeEqual(Buffer.from(md5PasswordHash(password, user)), Buffer.from(stored));
    case 'plaintext':
      return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Server exchange

/** sanitize_char() of auth-scram.c. */
function sanitizeChar(c: string | undefined): string {
  if (c === undefined || c === '') return '0x00';
  const code = c.charCodeAt(0);
  if (code >= 0x21 && code <= 0x7e) return `'${c}'`;
  return `0x${(code & 0xff).toString(16).padStart(2, '0')}`;
}

/** Cursor over a SCRAM message, with auth-scram.c's parsing errors. */
class AttrReader {
  pos = 0;
  constructor(readonly s: string) {}
  peek(): string | undefined {
    return this.s[this.pos];
  }
  private value(): string {
    let end = this.s.indexOf(',', this.pos);
    if (end < 0) end = this.s.length;
    const v = this.s.slice(this.pos, end);
    this.pos = end < this.s.length ? end + 1 : end;
    return v;
  }
  /** read_attribute_value() */
  attr(name: string): string {
    const c = this.peek();
    if (c !== name) throw Errors.malformedScram(`Expected attribute "${name}" but found "${sanitizeChar(c)}".`);
    this.pos++;
    if (this.peek() !== '=') throw Errors.malformedScram(`Expected character "=" for attribute "${name}".`);
    this.pos++;
    return this.value();
  }
  /** read_any_attr() */
  anyAttr(): { name: string; value: string } {
    const c = this.peek();
    if (c === undefined) throw Errors.malformedScram('Attribute expected, but found end of string.');
    if (!/[A-Za-z]/.test(c)) throw Errors.malformedScram(`Attribute expected, but found invalid character "${sanitizeChar(c)}".`);
    this.pos++;
    if (this.peek() !== '=') throw Errors.malformedScram(`Expected character "=" for attribute "${c}".`);
    this.pos++;
    return { name: c, value: this.value() };
  }
  get atEnd(): boolean {
    return this.pos >= this.s.length;
  }
}

function isScramPrintable(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x21 || c > 0x7e || c === 0x2c) return false;
  }
  return true;
}

export type ScramStepResult =
  | { kind: 'continue'; output: Buffer }
  | { kind: 'success'; output: Buffer }
  /** Wrong password (or doomed exchange): `error` is the 28P01 to send as FATAL. */
  | { kind: 'failure'; error: WalstreamError };

export interface ScramServerOptions {
  /** The role's secret; null for an unknown role or one without a usable SCRAM secret. */
  secret: ScramSecret | null;
  /** Salt to offer when `secret` is null (stable per user, e.g. scramMockSalt()). */
  mockSalt?: Uint8Array;
  randomBytes?: RandomBytes;
  /** Mechanism chosen by the client. Only SCRAM-SHA-256 (no channel binding: no TLS here). */
  mechanism?: string;
  /** The startup packet's user, named in the 28P01 error. */
  user?: string;
}

/** A made-up salt for an unknown user, stable for a given server key (PostgreSQL hashes the user with a per-cluster nonce). */
export function scramMockSalt(user: string, serverKey: Uint8Array): Buffer {
  return hmac(serverKey, `mock-salt:${user}`).subarray(0, SCRAM_SALT_BYTES);
}

/** The server side of one SCRAM-SHA-256 exchange (scram_exchange in auth-scram.c). */
export class ScramServerExchange {
  private state: 'init' | 'salt-sent' | 'finished' = 'init';
  private readonly secret: ScramSecret;
  private readonly doomed: boolean;
  private readonly random: RandomBytes;
  private readonly user: string;
  private cbindFlag = '';
  private clientFirstBare = '';
  private clientNonce = '';
  private serverNonce = '';
  private serverFirst = '';

  constructor(opts: ScramServerOptions) {
    const mech = opts.mechanism ?? SCRAM_SHA_256;
    if (mech !== SCRAM_SHA_256) throw Errors.protocolViolation('client selected an invalid SASL authentication mechanism');
    this.random = opts.randomBytes ?? defaultRandom;
    this.user = opts.user ?? '';
    if (opts.secret) {
      this.secret = opts.secret;
      this.doomed = false;
    } else {
      // mock_scram_secret(): random keys that no password can match, with a plausible salt.
      const salt = Buffer.from(opts.mockSalt ?? this.random(SCRAM_SALT_BYTES));
      this.secret = { iterations: SCRAM_DEFAULT_ITERATIONS, salt, storedKey: this.random(SCRAM_KEY_BYTES), serverKey: this.random(SCRAM_KEY_BYTES) };
      this.doomed = true;
    }
  }

  get finished(): boolean {
    return this.state === 'finished';
  }

  /**
   * Feeds one client message (the SASLInitialResponse data, null if it carried none, then the
   * SASLResponse). Throws WalstreamError (08P01/0A000) for a malformed message.
   */
  step(input: Uint8Array | null): ScramStepResult {
    if (input === null) {
      if (this.state !== 'init') throw Errors.protocolViolation('invalid SCRAM exchange state');
      return { kind: 'continue', output: Buffer.alloc(0) };
    }
    if (input.length === 0) throw Errors.malformedScram('The message is empty.');
    if (input.includes(0)) throw Errors.malformedScram('Message length does not match input length.');
    const text = Buffer.from(input).toString('utf8');
    switch (this.state) {
      case 'init': {
        this.readClientFirst(text);
        this.serverNonce = this.random(SCRAM_NONCE_BYTES).toString('base64');
        this.serverFirst = `r=${this.clientNonce}${this.serverNonce},s=${this.secret.salt.toString('base64')},i=${this.secret.iterations}`;
        this.state = 'salt-sent';
        return { kind: 'continue', output: Buffer.from(this.serverFirst, 'utf8') };
      }
      case 'salt-sent': {
        const { finalNonce, proof, withoutProof } = this.readClientFinal(text);
        if (finalNonce !== this.clientNonce + this.serverNonce) throw Errors.protocolViolationDetail('invalid SCRAM response', 'Nonce does not match.');
        const authMessage = `${this.clientFirstBare},${this.serverFirst},${withoutProof}`;
        // Compute the proof check even when doomed, so timing does not reveal unknown roles.
        const clientSignature = hmac(this.secret.storedKey, authMessage);
        const clientKey = xor(proof, clientSignature);
        const ok = safeEqual(sha256(clientKey), this.secret.storedKey);
        if (!ok || this.doomed) {
          this.state = 'finished';
          return { kind: 'failure', error: Errors.invalidPassword(this.user) };
        }
        const serverSignature = hmac(this.secret.serverKey, authMessage);
        this.state = 'finished';
        return { kind: 'success', output: Buffer.from(`v=${serverSignature.toString('base64')}`, 'utf8') };
      }
      case 'finished':
        throw Errors.protocolViolation('invalid SCRAM exchange state');
    }
  }

  private readClientFirst(text: string): void {
    const r = new AttrReader(text);
    const flag = r.peek();
    switch (flag) {
      case 'n':
      case 'y':
        r.pos++;
        if (r.peek() !== ',') throw Errors.malformedScram(`Comma expected, but found character "${sanitizeChar(r.peek())}".`);
        r.pos++;
        this.cbindFlag = flag;
        break;
      case 'p':
        // Channel binding needs TLS, which this server does not offer.
        throw Errors.malformedScram('The client selected SCRAM-SHA-256 without channel binding, but the SCRAM message includes channel binding data.');
      default:
        throw Errors.malformedScram(`Unexpected channel-binding flag "${sanitizeChar(flag)}".`);
    }
    if (r.peek() === 'a') throw Errors.featureNotSupported('client uses authorization identity, but it is not supported');
    if (r.peek() !== ',') throw Errors.malformedScram(`Unexpected attribute "${sanitizeChar(r.peek())}" in client-first-message.`);
    r.pos++;
    this.clientFirstBare = text.slice(r.pos);
    if (r.peek() === 'm') throw Errors.featureNotSupported('client requires an unsupported SCRAM extension');
    r.attr('n'); // user name: ignored, the startup packet's user is authoritative
    this.clientNonce = r.attr('r');
    if (!isScramPrintable(this.clientNonce)) throw Errors.protocolViolation('non-printable characters in SCRAM nonce');
    while (!r.atEnd) r.anyAttr(); // optional extensions: ignored
  }

  private readClientFinal(text: string): { finalNonce: string; proof: Buffer; withoutProof: string } {
    const r = new AttrReader(text);
    const cbind = r.attr('c');
    if (!(cbind === 'biws' && this.cbindFlag === 'n') && !(cbind === 'eSws' && this.cbindFlag === 'y')) {
      throw Errors.protocolViolation('unexpected SCRAM channel-binding attribute in client-final-message');
    }
    const finalNonce = r.attr('r');
    let proofStart: number;
    let a: { name: string; value: string };
    do {
      proofStart = r.pos - 1;
      a = r.anyAttr();
    } while (a.name !== 'p');
    const proof = b64(a.value);
    if (!proof || proof.length !== SCRAM_KEY_BYTES) throw Errors.malformedScram('Malformed proof in client-final-message.');
    if (!r.atEnd) throw Errors.malformedScram('Garbage found at the end of client-final-message.');
    return { finalNonce, proof, withoutProof: text.slice(0, proofStart) };
  }
}

// ---------------------------------------------------------------------------------------------
// Client exchange

/** The client side of one SCRAM-SHA-256 exchange (what libpq does), without channel binding. */
export class ScramClientExchange {
  private readonly password: string;
  private readonly clientNonce: string;
  private clientFirstBare = '';
  private expectedServerSignature: Buffer | null = null;
  private state: 'start' | 'first-sent' | 'final-sent' | 'done' = 'start';

  constructor(opts: { password: string; nonce?: string; randomBytes?: RandomBytes }) {
    this.password = opts.password;
    this.clientNonce = opts.nonce ?? (opts.randomBytes ?? defaultRandom)(SCRAM_NONCE_BYTES).toString('base64');
    if (!isScramPrintable(this.clientNonce)) throw Errors.invalidOption('nonce', 'must be printable ASCII without commas');
  }

  get done(): boolean {
    return this.state === 'done';
  }

  /** client-first-message: `n,,n=,r=<nonce>` (libpq sends an empty user name). */
  clientFirstMessage(): Buffer {
    assert(this.state === 'start', 'SCRAM client-first sent twice');
    this.clientFirstBare = `n=,r=${this.clientNonce}`;
    this.state = 'first-sent';
    return Buffer.from(`n,,${this.clientFirstBare}`, 'utf8');
  }

  /** Takes server-first-message, returns client-final-message. */
  handleServerFirst(data: Uint8Array): Buffer {
    if (this.state !== 'first-sent') throw Errors.protocolViolation('unexpected SCRAM server-first-message');
    const serverFirst = Buffer.from(data).toString('utf8');
    const parts = serverFirst.split(',');
    const nonce = parts[0]?.startsWith('r=') ? parts[0].slice(2) : null;
    const saltText = parts[1]?.startsWith('s=') ? parts[1].slice(2) : null;
    const iterText = parts[2]?.startsWith('i=') ? parts[2].slice(2) : null;
    if (nonce === null || saltText === null || iterText === null) throw Errors.protocolViolation('malformed SCRAM message (server-first-message)');
    if (parts.length > 3) throw Errors.protocolViolation('malformed SCRAM message (garbage at end of server-first-message)');
    if (!nonce.startsWith(this.clientNonce) || nonce.length === this.clientNonce.length) {
      throw Errors.protocolViolation('invalid SCRAM response (nonce mismatch)');
    }
    const salt = b64(saltText);
    if (!salt || salt.length === 0) throw Errors.protocolViolation('malformed SCRAM message (invalid salt)');
    if (!/^[1-9][0-9]{0,9}$/.test(iterText)) throw Errors.protocolViolation('malformed SCRAM message (invalid iteration count)');
    const iterations = Number(iterText);
    const salted = scramSaltedPassword(this.password, salt, iterations);
    const clientKey = scramClientKey(salted);
    const storedKey = scramStoredKey(clientKey);
    const withoutProof = `c=biws,r=${nonce}`;
    const authMessage = `${this.clientFirstBare},${serverFirst},${withoutProof}`;
    const proof = xor(clientKey, hmac(storedKey, authMessage));
    this.expectedServerSignature = hmac(scramServerKey(salted), authMessage);
    this.state = 'final-sent';
    return Buffer.from(`${withoutProof},p=${proof.toString('base64')}`, 'utf8');
  }

  /** Checks server-final-message (`v=<ServerSignature>` or `e=<error>`). Throws if the server cannot prove it knows the password. */
  verifyServerFinal(data: Uint8Array): void {
    if (this.state !== 'final-sent') throw Errors.protocolViolation('unexpected SCRAM server-final-message');
    const text = Buffer.from(data).toString('utf8');
    if (text.startsWith('e=')) throw Errors.invalidAuthorization(`error received from server in SCRAM exchange: ${text.slice(2)}`);
    const sig = text.startsWith('v=') ? b64(text.slice(2)) : null;
    if (!sig) throw Errors.protocolViolation('malformed SCRAM message (server-final-message)');
    if (!safeEqual(sig, this.expectedServerSignature!)) throw Errors.invalidAuthorization('incorrect server signature');
    this.state = 'done';
  }
}
