import { isValidId } from '../../protocol/names.ts';
import { PatchExistsError } from '../../storage/bucket.ts';
import { InvalidPatchIdError, PatchConflictError, SignatureError } from '../../storage/catalog.ts';
import { ApiError } from './errors.ts';
import type { ApiHandler } from './context.ts';

function patchId(params: Record<string, string>): string {
  const id = params.id ?? '';
  if (!isValidId(id)) throw new ApiError('invalid_patch_id', 'use 1 to 128 characters from A-Z a-z 0-9 . _ -', id);
  return id;
}

/** GET /v1/patches: the catalog in release order, with per-state counts. */
export const listPatches: ApiHandler = async (ctx) => {
  const summary = await ctx.summary();
  return { status: 200, body: { patches: summary.patches, devices: summary.devices } };
};

/** GET /v1/patches/{id} */
export const showPatch: ApiHandler = async (ctx, request) => {
  const id = patchId(request.params);
  const record = await ctx.state.getPatch(id);
  if (!record) throw new ApiError('not_found', `no patch ${id}`, id);
  const counts = await ctx.state.patchCounts(id);
  return { status: 200, body: { ...record, counts } };
};

/**
 * POST /v1/patches/{id}: streams the body into the bucket, computing its sha256 on the way, and releases
 * it. Name, version and signature come in headers so the body can be the raw file.
 */
export const uploadPatch: ApiHandler = async (ctx, request) => {
  const id = patchId(request.params);
  const body = request.body;
  if (!body) throw new ApiError('length_required', 'send the patch file as the body with a Content-Length');
  if (body.length === 0) {
    body.stream.destroy();
    throw new ApiError('invalid_request', 'the patch file is empty; check the file name and upload it again', id);
  }
  const signature = request.headers['x-patch-signature'] || undefined;
  if (ctx.requireSignatures && !signature) {
    body.stream.destroy();
    throw new ApiError('signature_required', 'send X-Patch-Signature: the base64 Ed25519 signature of the manifest');
  }
  try {
    const uploaded = await ctx.catalog.upload(id, body.stream, body.length, {
      ...(request.headers['x-patch-name'] ? { name: request.headers['x-patch-name'] } : {}),
      ...(request.headers['x-patch-version'] ? { version: request.headers['x-patch-version'] } : {}),
      ...(signature ? { signature } : {}),
    });
    ctx.log.info({ patchId: id, operator: request.operator.name, sha256: uploaded.sha256 }, 'patch uploaded through the API');
    return { status: 201, body: { id, size: body.length, sha256: uploaded.sha256, state: uploaded.state, signed: uploaded.signed } };
  } catch (err) {
    if (err instanceof PatchExistsError || err instanceof PatchConflictError) throw new ApiError('patch_exists', err.message, id);
    if (err instanceof InvalidPatchIdError) throw new ApiError('invalid_patch_id', err.message, id);
    if (err instanceof SignatureError) throw new ApiError('signature_invalid', err.message, id);
    throw err;
  }
};

/** DELETE /v1/patches/{id}: retires a patch. Devices in the middle of it finish; nobody is offered it again. */
export const retirePatch: ApiHandler = async (ctx, request) => {
  const id = patchId(request.params);
  if (!(await ctx.state.retirePatch(id))) throw new ApiError('not_found', `no patch ${id}`, id);
  ctx.log.info({ patchId: id, operator: request.operator.name }, 'patch retired');
  return { status: 200, body: { id, state: 'retired' } };
};
