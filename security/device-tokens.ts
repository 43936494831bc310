import { randomUUID } from 'node:crypto';
import { errors as joseErrors, jwtVerify, SignJWT } from 'jose';
import { isValidId } from '../protocol/names.ts';

/** Issuer and audience of device tokens; a token minted for another purpose fails verification. */
const ISSUER = 'camera-fleet';
const AUDIENCE = 'fleet-device';
const ALGORITHM = 'HS256';

export interface DeviceClaims {
  deviceId: string;
  /**
   * Token generation of the device when the token was issued. Revoking a device's tokens raises its
   * generation, which invalidates every token issued before, without relying on clocks.
   */
  generation: number;
  tokenId: string;
}

export type TokenFailure = 'missing' | 'malformed' | 'bad_signature' | 'expired' | 'invalid_claims';

export class DeviceTokenError extends Error {
  constructor(
    readonly reason: TokenFailure,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Device tokens: JWTs signed with HMAC-SHA256 under the fleet's device-token secret, subject = device id.
 * The secret must be at least 32 bytes, the length of the hash, so the key is as strong as the MAC.
 */
export class DeviceTokens {
  private readonly key: Uint8Array;

  constructor(secret: string) {
    this.key = new TextEncoder().encode(secret);
    if (this.key.length < 32) throw new Error('the device token secret must be at least 32 bytes long');
  }

  /** Signs a token for `deviceId`; `ttlSeconds` 0 means it never expires (revocation still applies). */
  async issue(deviceId: string, generation: number, ttlSeconds = 0): Promise<string> {
    if (!isValidId(deviceId)) throw new Error(`invalid device id ${JSON.stringify(deviceId)}`);
    const jwt = new SignJWT({ gen: generation })
      .setProtectedHeader({ alg: ALGORITHM, typ: 'JWT' })
      .setSubject(deviceId)
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setIssuedAt()
      .setJti(randomUUID());
    if (ttlSeconds > 0) jwt.setExpirationTime(`${ttlSeconds}s`);
    return jwt.sign(this.key);
  }

  /** Verifies signature, issuer, audience, expiry and subject grammar; throws DeviceTokenError. */
  async verify(token: string): Promise<DeviceClaims> {
    try {
      const { payload } = await jwtVerify(token, this.key, {
        algorithms: [ALGORITHM],
        issuer: ISSUER,
        audience: AUDIENCE,
        requiredClaims: ['sub', 'iat', 'jti', 'gen'],
      });
      const deviceId = payload.sub ?? '';
      if (!isValidId(deviceId)) throw new DeviceTokenError('invalid_claims', 'token subject is not a valid device id');
      const generation = payload.gen;
      if (typeof generation !== 'number' || !Number.isInteger(generation) || generation < 0) {
        throw new DeviceTokenError('invalid_claims', 'token claim gen is invalid');
      }
      return { deviceId, generation, tokenId: payload.jti ?? '' };
    } catch (err) {
      if (err instanceof DeviceTokenError) throw err;
      if (err instanceof joseErrors.JWTExpired) throw new DeviceTokenError('expired', 'token expired');
      if (err instanceof joseErrors.JWSSignatureVerificationFailed) {
        throw new DeviceTokenError('bad_signature', 'token signature does not verify');
      }
      if (err instanceof joseErrors.JWTClaimValidationFailed) {
        throw new DeviceTokenError('invalid_claims', `token claim ${err.claim} is invalid`);
      }
      throw new DeviceTokenError('malformed', 'token is not a well-formed JWT');
    }
  }
}

/** Extracts the token from an `Authorization: Bearer …` header value; empty when there is none. */
export function bearerToken(header: string): string {
  // The scheme name is case-insensitive (RFC 7235).
  const match = /^Bearer ([A-Za-z0-9._~+/=-]+)$/i.exec(header.trim());
  return match?.[1] ?? '';
}
