import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';

/** Patch fields an operator signs: everything a device checks before applying it. */
export interface PatchManifest {
  id: string;
  name: string;
  version: string;
  size: number;
  sha256: string;
}

/**
 * The exact bytes that are signed: a JSON object with the fields in a fixed order, so the server, the CLI and
 * the firmware build the same string from the same fields. Firmware must build it the same way.
 */
export function canonicalManifest(manifest: PatchManifest): string {
  return JSON.stringify({
    v: 1,
    id: manifest.id,
    name: manifest.name,
    version: manifest.version,
    size: manifest.size,
    sha256: manifest.sha256,
  });
}

/** Signs the manifest with an Ed25519 private key (PEM); returns the signature in base64. */
export function signManifest(privateKey: string | KeyObject, manifest: PatchManifest): string {
  const key = typeof privateKey === 'string' ? createPrivateKey(privateKey) : privateKey;
  return sign(null, Buffer.from(canonicalManifest(manifest)), key).toString('base64');
}

/** Checks a base64 Ed25519 signature of the manifest against the fleet's public key (PEM). */
export function verifyManifest(publicKey: string | KeyObject, manifest: PatchManifest, signature: string): boolean {
  try {
    const key = typeof publicKey === 'string' ? createPublicKey(publicKey) : publicKey;
    return verify(null, Buffer.from(canonicalManifest(manifest)), key, Buffer.from(signature, 'base64'));
  } catch {
    return false;
  }
}

export function generateSigningKeys(): { publicKey: string; privateKey: string } {
  const pair = generateKeyPairSync('ed25519');
  return {
    publicKey: pair.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    privateKey: pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  };
}

/** Throws unless `pem` is an Ed25519 public key. */
export function checkPublicKey(pem: string): KeyObject {
  const key = createPublicKey(pem);
  if (key.asymmetricKeyType !== 'ed25519') throw new Error(`expected an Ed25519 key, got ${key.asymmetricKeyType}`);
  return key;
}

/**
 * The contents of a detached signature object (`<id>.sig` next to the patch in the bucket), for patches
 * that enter the catalog without `fleet patch upload`.
 */
export function detachedSignature(privateKey: string, manifest: PatchManifest): string {
  return JSON.stringify({ name: manifest.name, version: manifest.version, signature: signManifest(privateKey, manifest) });
}
