import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

export const OPERATOR_ROLES = ['read', 'operator'] as const;
export type OperatorRole = (typeof OPERATOR_ROLES)[number];

/** Prefix that makes operator tokens easy to spot in a secret scanner. */
const TOKEN_PREFIX = 'fop_';

export function newOperatorToken(): string {
  return `${TOKEN_PREFIX}${randomBytes(32).toString('base64url')}`;
}

/**
 * Operator tokens are stored as their SHA-256, never in clear. A token has 256 random bits, so a fast hash
 * is enough: there is nothing to brute-force that a slow hash would protect.
 */
export function hashOperatorToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/** Compares two tokens in constant time, by comparing their hashes (equal length whatever the input). */
export function sameToken(a: string, b: string): boolean {
  return timingSafeEqual(Buffer.from(hashOperatorToken(a), 'hex'), Buffer.from(hashOperatorToken(b), 'hex'));
}

export function roleAllows(role: OperatorRole, needed: OperatorRole): boolean {
  return role === 'operator' || needed === 'read';
}
