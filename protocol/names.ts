import { Type } from '@sinclair/typebox';

/**
 * Grammar shared by device ids and patch ids. Both end up inside Redis keys and bucket object keys, so the
 * allow-list leaves out separators, wildcards (`*`, `?`, `[`), braces (Redis Cluster hash tags), whitespace
 * and control bytes. A leading dot is rejected so that `.` and `..` can never name anything.
 */
export const ID_PATTERN = '^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$';
const idRegExp = new RegExp(ID_PATTERN);

export const DeviceId = Type.String({
  pattern: ID_PATTERN,
  description: 'Device id: 1 to 128 characters from A-Z a-z 0-9 . _ -, not starting with a dot.',
  examples: ['cam_0042'],
});

export const PatchId = Type.String({
  pattern: ID_PATTERN,
  description: 'Patch id: the object key of the patch file in the bucket and its entry in the catalog.',
  examples: ['cam-fw-2.4.1-hotfix1.bin'],
});

export const Tag = Type.String({
  pattern: ID_PATTERN,
  description: 'Tag: 1 to 128 characters from A-Z a-z 0-9 . _ -, not starting with a dot.',
  examples: ['lobby'],
});

export const Sha256Hex = Type.String({ pattern: '^[0-9a-f]{64}$', description: 'Lower-case hex SHA-256.' });

export function isValidId(value: string): boolean {
  return idRegExp.test(value);
}
