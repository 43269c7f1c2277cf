// ClientAuth: the authentication exchange of one server connection, sans I/O (PostgreSQL's
// ClientAuthentication in src/backend/libpq/auth.c, for the methods walstream serves: trust,
// password, md5, SCRAM-SHA-256). Owned by ReplicationServerConn (server-conn.ts), which creates
// it for a StartupMessage, passes it every authentication message ('p') and, when it reports
// success, sends AuthenticationOk and the session's ParameterStatus. Owns the chosen method, the
// MD5 salt and the SCRAM exchange; sends authentication requests through `out`. Nothing to stop:
// a failure is thrown as the FATAL error the connection sends (28P01, 28000, 08P01).

import { randomBytes as nodeRandomBytes } from 'node:crypto';
import { Errors } from '../../errors.js';
import { assert } from '../../util/assert.js';
import type { Frame } from './frames.js';
import { checkHba, type CompiledHbaRule, type HbaConnType, type HbaMethod } from './hba.js';
import {
  decodePasswordMessage,
  decodeSASLInitialResponse,
  encodeAuthenticationCleartextPassword,
  encodeAuthenticationMD5Password,
  encodeAuthenticationSASL,
  encodeAuthenticationSASLContinue,
  encodeAuthenticationSASLFinal,
} from './messages.js';
import {
  parseScramVerifier,
  passwordType,
  SCRAM_SHA_256,
  scramMockSalt,
  ScramServerExchange,
  verifyCleartextPassword,
  verifyMd5Response,
  type RandomBytes,
} from './scram.js';

/** What the server knows about a role (pg_authid). */
export interface UserAuthInfo {
  /** rolpassword: a SCRAM verifier (`SCRAM-SHA-256$…`), an MD5 hash (`md5…`), or null for none. */
  password: string | null;
  /** rolcanlogin; default true. */
  canLogin?: boolean;
  /** rolreplication; default true. */
  replication?: boolean;
  /** rolsuper; default false. */
  superuser?: boolean;
}

/** undefined = no such role. */
export type UserLookup = (user: string) => UserAuthInfo | undefined;

export interface ClientAuthOptions {
  out: (bytes: Uint8Array) => void;
  hba: readonly CompiledHbaRule[];
  lookupUser: UserLookup;
  connType: HbaConnType;
  remoteAddress: string;
  /** Method pretended for roles without a password under an `md5` rule (PostgreSQL's password_encryption). */
  passwordEncryption: 'scram-sha-256' | 'md5';
  /** Key for made-up SCRAM salts of unknown roles; null: one per process. */
  mockSaltKey: Uint8Array | null;
  random: RandomBytes;
}

/** Bytes of the MD5 salt (AuthenticationMD5Password). */
const MD5_SALT_BYTES = 4;
/** Bytes of the per-process key for mock SCRAM salts. */
const MOCK_SALT_KEY_BYTES = 32;
let processMockSaltKey: Buffer | null = null;

export class ClientAuth {
  readonly user: string;
  /** The pg_hba method that applies (reject and "no entry" are thrown by the constructor). */
  readonly method: Exclude<HbaMethod, 'reject'>;
  /** The role, or undefined when it does not exist (found out only after the exchange, as PostgreSQL). */
  readonly userInfo: UserAuthInfo | undefined;
  private step: 'password' | 'md5' | 'sasl-init' | 'sasl-cont' | 'done' = 'done';
  private md5Salt: Buffer | null = null;
  private scram: ScramServerExchange | null = null;

  /** Applies pg_hba (throws 28000 for reject / no entry); start() then sends the first request. */
  constructor(private readonly o: ClientAuthOptions, user: string, database: string) {
    this.user = user;
    this.method = checkHba(o.hba, { type: o.connType, address: o.remoteAddress, user, database, physicalReplication: true });
    this.userInfo = o.lookupUser(user);
  }

  /** What the client must send next, for error messages. */
  get expecting(): 'SASL' | 'password' {
    return this.step === 'sasl-init' || this.step === 'sasl-cont' ? 'SASL' : 'password';
  }

  /** Send the first authentication request; true when none is needed (trust). */
  start(): boolean {
    switch (this.method) {
      case 'trust':
        return true;
      case 'password':
        this.step = 'password';
        this.o.out(encodeAuthenticationCleartextPassword());
        return false;
      case 'md5': {
        const stored = this.userInfo?.password ?? null;
        const type = stored === null ? this.o.passwordEncryption : passwordType(stored);
        if (type === 'md5') {
          this.step = 'md5';
          this.md5Salt = this.o.random(MD5_SALT_BYTES);
          this.o.out(encodeAuthenticationMD5Password(this.md5Salt));
          return false;
        }
        this.startSasl();
        return false;
      }
      case 'scram-sha-256':
        this.startSasl();
        return false;
    }
  }

  /** A PasswordMessage / SASLInitialResponse / SASLResponse; true when the client is authenticated. */
  onPasswordMessage(f: Frame): boolean {
    if (f.type !== 0x70 /* 'p' */) throw Errors.protocolViolation(`expected ${this.expecting} response, got message type ${f.type}`);
    const stored = this.userInfo?.password ?? null;
    switch (this.step) {
      case 'password': {
        const pw = decodePasswordMessage(f.body);
        if (stored === null || !verifyCleartextPassword(stored, this.user, pw)) throw Errors.invalidPassword(this.user);
        return this.done();
      }
      case 'md5': {
        const resp = decodePasswordMessage(f.body);
        if (stored === null || !verifyMd5Response(stored, resp, this.md5Salt!)) throw Errors.invalidPassword(this.user);
        return this.done();
      }
      case 'sasl-init': {
        const { mechanism, data } = decodeSASLInitialResponse(f.body);
        const secret = stored === null ? null : parseScramVerifier(stored);
        this.scram = new ScramServerExchange({
          mechanism,
          secret,
          mockSalt: scramMockSalt(this.user, this.mockSaltKey()),
          randomBytes: this.o.random,
          user: this.user,
        });
        this.step = 'sasl-cont';
        return this.saslStep(data);
      }
      case 'sasl-cont':
        return this.saslStep(f.body);
      default:
        assert(false, `auth message in auth step ${this.step}`);
    }
  }

  private startSasl(): void {
    this.step = 'sasl-init';
    this.o.out(encodeAuthenticationSASL([SCRAM_SHA_256]));
  }

  private saslStep(data: Uint8Array | null): boolean {
    const r = this.scram!.step(data);
    switch (r.kind) {
      case 'continue':
        this.o.out(encodeAuthenticationSASLContinue(r.output));
        return false;
      case 'failure':
        throw r.error;
      case 'success':
        this.o.out(encodeAuthenticationSASLFinal(r.output));
        return this.done();
    }
  }

  private done(): true {
    this.step = 'done';
    this.scram = null;
    return true;
  }

  private mockSaltKey(): Uint8Array {
    if (this.o.mockSaltKey) return this.o.mockSaltKey;
    processMockSaltKey ??= nodeRandomBytes(MOCK_SALT_KEY_BYTES);
    return processMockSaltKey;
  }
}
