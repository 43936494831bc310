import type { Redis } from 'ioredis';
import { hashOperatorToken, newOperatorToken, OPERATOR_ROLES, type OperatorRole } from '../security/operator-tokens.ts';
import type { Keys } from './keys.ts';

export interface OperatorTokenRecord {
  name: string;
  role: OperatorRole;
  createdAt: number;
}

/**
 * Operator tokens in Redis: a hash from SHA-256(token) to its record. Looking a token up by its hash leaks
 * nothing about the token through timing, and a copy of Redis yields no usable token.
 */
export class OperatorStore {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
  ) {}

  /** Creates a token; the clear token is returned once and never stored. */
  async create(name: string, role: OperatorRole): Promise<string> {
    const token = newOperatorToken();
    const record: OperatorTokenRecord = { name, role, createdAt: Date.now() };
    await this.redis.hset(this.keys.operatorTokens, hashOperatorToken(token), JSON.stringify(record));
    return token;
  }

  async authenticate(token: string): Promise<OperatorTokenRecord | null> {
    if (!token) return null;
    const raw = await this.redis.hget(this.keys.operatorTokens, hashOperatorToken(token));
    if (!raw) return null;
    const record = JSON.parse(raw) as OperatorTokenRecord;
    return OPERATOR_ROLES.includes(record.role) ? record : null;
  }

  async list(): Promise<OperatorTokenRecord[]> {
    const all = await this.redis.hvals(this.keys.operatorTokens);
    return all.map((raw) => JSON.parse(raw) as OperatorTokenRecord).sort((a, b) => a.name.localeCompare(b.name));
  }

  /** Deletes every token with this name; returns how many. */
  async revoke(name: string): Promise<number> {
    const entries = await this.redis.hgetall(this.keys.operatorTokens);
    const hashes = Object.entries(entries)
      .filter(([, raw]) => (JSON.parse(raw) as OperatorTokenRecord).name === name)
      .map(([hash]) => hash);
    if (hashes.length > 0) await this.redis.hdel(this.keys.operatorTokens, ...hashes);
    return hashes.length;
  }
}
