import { createHash, randomBytes, scrypt as scryptCb, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';
import type { Catalog, Migration, SqlRow } from '../ops/catalog/types.js';
import { LifeboatError } from '../errors.js';

/**
 * Users, API tokens and login sessions of `lifeboat serve`, stored in the
 * catalog (migrations 300-302).
 *
 *  - Passwords: scrypt (N=2^15, r=8, p=1, 16-byte random salt, 32-byte key),
 *    stored as `scrypt$N$r$p$salt$hash`; compared with timingSafeEqual. A
 *    login for an unknown user still runs one scrypt so timing does not tell
 *    which user names exist.
 *  - API tokens: `lbt_` + 32 random bytes (base64url). Only their SHA-256 is
 *    stored (a high-entropy random secret needs no slow hash); the clear
 *    token is shown once, at creation.
 *  - Sessions: a random 32-byte id in an HttpOnly cookie; the catalog keeps
 *    its SHA-256, the user, the expiry and the session's CSRF token.
 */

export const ROLES = ['viewer', 'operator'] as const;
export type Role = (typeof ROLES)[number];

export function roleAllows(have: Role, need: Role): boolean {
  return ROLES.indexOf(have) >= ROLES.indexOf(need);
}

export const USER_NAME = /^[A-Za-z0-9_.@-]{1,64}$/;

const scrypt = promisify(scryptCb) as (pw: string | Buffer, salt: Buffer, keylen: number, opts: { N: number; r: number; p: number; maxmem: number }) => Promise<Buffer>;
const SCRYPT = { N: 1 << 15, r: 8, p: 1 };

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await scrypt(password, salt, 32, { ...SCRYPT, maxmem: 128 * SCRYPT.N * SCRYPT.r * 2 });
  return `scrypt$${SCRYPT.N}$${SCRYPT.r}$${SCRYPT.p}$${salt.toString('base64')}$${key.toString('base64')}`;
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const [N, r, p] = [Number(parts[1]), Number(parts[2]), Number(parts[3])];
  const salt = Buffer.from(parts[4]!, 'base64');
  const want = Buffer.from(parts[5]!, 'base64');
  const got = await scrypt(password, salt, want.length, { N, r, p, maxmem: 128 * N * r * 2 });
  return got.length === want.length && timingSafeEqual(got, want);
}

const DUMMY_HASH = 'scrypt$32768$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=';

export function sha256(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}

export const AUTH_MIGRATIONS: readonly Migration[] = [
  {
    version: 300,
    name: 'server users',
    sqlite: [
      `CREATE TABLE server_users (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL UNIQUE,
        role TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        last_login_at INTEGER
      )`,
    ],
    postgres: (s) => [
      `CREATE TABLE ${s}.server_users (
        id BIGSERIAL PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        role TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        last_login_at TIMESTAMPTZ
      )`,
    ],
  },
  {
    version: 301,
    name: 'server api tokens',
    sqlite: [
      `CREATE TABLE server_tokens (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL UNIQUE,
        role TEXT NOT NULL,
        token_hash TEXT NOT NULL UNIQUE,
        prefix TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER,
        last_used_at INTEGER,
        revoked_at INTEGER
      )`,
    ],
    postgres: (s) => [
      `CREATE TABLE ${s}.server_tokens (
        id BIGSERIAL PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        role TEXT NOT NULL,
        token_hash TEXT NOT NULL UNIQUE,
        prefix TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        expires_at TIMESTAMPTZ,
        last_used_at TIMESTAMPTZ,
        revoked_at TIMESTAMPTZ
      )`,
    ],
  },
  {
    version: 302,
    name: 'server sessions',
    sqlite: [
      `CREATE TABLE server_sessions (
        id_hash TEXT PRIMARY KEY,
        user_name TEXT NOT NULL,
        csrf TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
      )`,
    ],
    postgres: (s) => [
      `CREATE TABLE ${s}.server_sessions (
        id_hash TEXT PRIMARY KEY,
        user_name TEXT NOT NULL,
        csrf TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        expires_at TIMESTAMPTZ NOT NULL
      )`,
    ],
  },
];

export interface User {
  id: number;
  name: string;
  role: Role;
  createdAt: Date;
  lastLoginAt: Date | null;
}

export interface ApiToken {
  id: number;
  name: string;
  role: Role;
  /** First characters of the token, to recognise it. */
  prefix: string;
  createdAt: Date;
  expiresAt: Date | null;
  lastUsedAt: Date | null;
  revokedAt: Date | null;
}

export interface Principal {
  kind: 'session' | 'token';
  name: string;
  role: Role;
  /** Sessions only. */
  csrf?: string;
  sessionHash?: string;
}

function checkRole(role: string): Role {
  if (!(ROLES as readonly string[]).includes(role)) throw new LifeboatError(`unknown role "${role}" (roles: ${ROLES.join(', ')})`, 2);
  return role as Role;
}

export class AuthStore {
  private ready: Promise<void> | undefined;
  constructor(private readonly catalog: Catalog) {}

  private async init(): Promise<void> {
    this.ready ??= this.catalog.ensureMigrations(AUTH_MIGRATIONS);
    await this.ready;
  }

  private get sql() {
    return this.catalog.sql;
  }

  private user(r: SqlRow): User {
    return { id: Number(r.id), name: String(r.name), role: r.role as Role, createdAt: this.sql.toDate(r.created_at)!, lastLoginAt: this.sql.toDate(r.last_login_at) };
  }

  async addUser(name: string, role: string, password: string): Promise<User> {
    await this.init();
    if (!USER_NAME.test(name)) throw new LifeboatError(`invalid user name "${name}" (1-64 of letters, digits, _ . @ -)`, 2);
    checkRole(role);
    if (password.length < 8) throw new LifeboatError('password too short: use at least 8 characters', 2);
    if (await this.getUser(name)) throw new LifeboatError(`user ${name} exists already`, 2);
    const hash = await hashPassword(password);
    await this.sql.insertId(`INSERT INTO ${this.sql.t('server_users')} (name, role, password_hash, created_at) VALUES (?, ?, ?, ?)`, [name, role, hash, new Date()]);
    return (await this.getUser(name))!;
  }

  async setPassword(name: string, password: string): Promise<void> {
    await this.init();
    if (password.length < 8) throw new LifeboatError('password too short: use at least 8 characters', 2);
    const n = await this.sql.exec(`UPDATE ${this.sql.t('server_users')} SET password_hash = ? WHERE name = ?`, [await hashPassword(password), name]);
    if (!n) throw new LifeboatError(`no user ${name}`, 2);
    await this.sql.exec(`DELETE FROM ${this.sql.t('server_sessions')} WHERE user_name = ?`, [name]);
  }

  async getUser(name: string): Promise<User | undefined> {
    await this.init();
    const [r] = await this.sql.all(`SELECT * FROM ${this.sql.t('server_users')} WHERE name = ?`, [name]);
    return r ? this.user(r) : undefined;
  }

  async listUsers(): Promise<User[]> {
    await this.init();
    return (await this.sql.all(`SELECT * FROM ${this.sql.t('server_users')} ORDER BY name`)).map((r) => this.user(r));
  }

  async removeUser(name: string): Promise<boolean> {
    await this.init();
    const n = await this.sql.exec(`DELETE FROM ${this.sql.t('server_users')} WHERE name = ?`, [name]);
    await this.sql.exec(`DELETE FROM ${this.sql.t('server_sessions')} WHERE user_name = ?`, [name]);
    return n > 0;
  }

  /** The user if the password is right; always costs one scrypt. */
  async checkPassword(name: string, password: string): Promise<User | undefined> {
    await this.init();
    const [r] = await this.sql.all(`SELECT * FROM ${this.sql.t('server_users')} WHERE name = ?`, [name]);
    const ok = await verifyPassword(password, r ? String(r.password_hash) : DUMMY_HASH);
    if (!r || !ok) return undefined;
    await this.sql.exec(`UPDATE ${this.sql.t('server_users')} SET last_login_at = ? WHERE id = ?`, [new Date(), Number(r.id)]);
    return this.user(r);
  }

  // --- sessions

  async createSession(user: User, ttlMs: number): Promise<{ id: string; csrf: string; expiresAt: Date }> {
    await this.init();
    const id = randomBytes(32).toString('base64url');
    const csrf = randomBytes(24).toString('base64url');
    const now = new Date();
    const expiresAt = new Date(now.getTime() + ttlMs);
    await this.sql.exec(`INSERT INTO ${this.sql.t('server_sessions')} (id_hash, user_name, csrf, created_at, expires_at) VALUES (?, ?, ?, ?, ?)`, [sha256(id), user.name, csrf, now, expiresAt]);
    // opportunistic cleanup of expired sessions
    await this.sql.exec(`DELETE FROM ${this.sql.t('server_sessions')} WHERE expires_at < ?`, [now]);
    return { id, csrf, expiresAt };
  }

  async session(id: string): Promise<Principal | undefined> {
    await this.init();
    if (!/^[A-Za-z0-9_-]{20,100}$/.test(id)) return undefined;
    const h = sha256(id);
    const [r] = await this.sql.all(
      `SELECT s.csrf, s.expires_at, u.name, u.role FROM ${this.sql.t('server_sessions')} s JOIN ${this.sql.t('server_users')} u ON u.name = s.user_name WHERE s.id_hash = ?`,
      [h],
    );
    if (!r || this.sql.toDate(r.expires_at)!.getTime() <= Date.now()) return undefined;
    return { kind: 'session', name: String(r.name), role: r.role as Role, csrf: String(r.csrf), sessionHash: h };
  }

  async endSession(sessionHash: string): Promise<void> {
    await this.init();
    await this.sql.exec(`DELETE FROM ${this.sql.t('server_sessions')} WHERE id_hash = ?`, [sessionHash]);
  }

  // --- API tokens

  private token(r: SqlRow): ApiToken {
    return {
      id: Number(r.id),
      name: String(r.name),
      role: r.role as Role,
      prefix: String(r.prefix),
      createdAt: this.sql.toDate(r.created_at)!,
      expiresAt: this.sql.toDate(r.expires_at),
      lastUsedAt: this.sql.toDate(r.last_used_at),
      revokedAt: this.sql.toDate(r.revoked_at),
    };
  }

  /** Create a token; the clear token is returned once and never stored. */
  async createToken(name: string, role: string, opts: { expiresAt?: Date } = {}): Promise<{ token: string; info: ApiToken }> {
    await this.init();
    if (!USER_NAME.test(name)) throw new LifeboatError(`invalid token name "${name}" (1-64 of letters, digits, _ . @ -)`, 2);
    checkRole(role);
    const [dup] = await this.sql.all(`SELECT id FROM ${this.sql.t('server_tokens')} WHERE name = ?`, [name]);
    if (dup) throw new LifeboatError(`token ${name} exists already (revoke it first)`, 2);
    const token = 'lbt_' + randomBytes(32).toString('base64url');
    await this.sql.insertId(
      `INSERT INTO ${this.sql.t('server_tokens')} (name, role, token_hash, prefix, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)`,
      [name, role, sha256(token), token.slice(0, 10), new Date(), opts.expiresAt ?? null],
    );
    const [r] = await this.sql.all(`SELECT * FROM ${this.sql.t('server_tokens')} WHERE name = ?`, [name]);
    return { token, info: this.token(r!) };
  }

  async listTokens(): Promise<ApiToken[]> {
    await this.init();
    return (await this.sql.all(`SELECT * FROM ${this.sql.t('server_tokens')} ORDER BY name`)).map((r) => this.token(r));
  }

  /** Revoking deletes the row: a revoked token cannot be used and its name can be reused. */
  async revokeToken(name: string): Promise<boolean> {
    await this.init();
    return (await this.sql.exec(`DELETE FROM ${this.sql.t('server_tokens')} WHERE name = ?`, [name])) > 0;
  }

  async checkToken(token: string): Promise<Principal | undefined> {
    await this.init();
    if (!/^lbt_[A-Za-z0-9_-]{20,100}$/.test(token)) return undefined;
    const [r] = await this.sql.all(`SELECT * FROM ${this.sql.t('server_tokens')} WHERE token_hash = ?`, [sha256(token)]);
    if (!r) return undefined;
    const t = this.token(r);
    if (t.revokedAt || (t.expiresAt && t.expiresAt.getTime() <= Date.now())) return undefined;
    await this.sql.exec(`UPDATE ${this.sql.t('server_tokens')} SET last_used_at = ? WHERE id = ?`, [new Date(), t.id]);
    return { kind: 'token', name: `token:${t.name}`, role: t.role };
  }
}

/** Failed-login throttle: per key (client address + user name), in memory. */
export class LoginLimiter {
  private readonly failures = new Map<string, number[]>();
  constructor(
    private readonly maxFailures: number,
    private readonly windowMs: number,
  ) {}

  private recent(key: string, now: number): number[] {
    const list = (this.failures.get(key) ?? []).filter((t) => now - t < this.windowMs);
    if (list.length) this.failures.set(key, list);
    else this.failures.delete(key);
    return list;
  }

  /** Milliseconds until the next attempt is allowed (0 = allowed). */
  blockedFor(key: string, now = Date.now()): number {
    const list = this.recent(key, now);
    if (list.length < this.maxFailures) return 0;
    return Math.max(1, this.windowMs - (now - list[list.length - this.maxFailures]!));
  }

  fail(key: string, now = Date.now()): void {
    const list = this.recent(key, now);
    list.push(now);
    this.failures.set(key, list);
    if (this.failures.size > 10_000) this.failures.delete(this.failures.keys().next().value!);
  }

  succeed(key: string): void {
    this.failures.delete(key);
  }
}
