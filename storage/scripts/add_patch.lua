-- Adds a patch to the catalog, or records the metadata of an entry someone pushed onto the list directly.
-- A patch id is bound to one content for good: the same id with another sha256 is a conflict.
-- A record in state 'unsigned' (its signature was missing when signatures are required) is completed when
-- the patch is added again with a signature.
-- ARGV: prefix, patch id, name, size, sha256, etag, source, append (1: RPUSH the id, 0: it is already listed),
--       version, signature ('' for none), state ('ready' or 'unsigned')
-- Returns: { 'added' } | { 'exists' } | { 'conflict', sha256 already recorded }
local patch_id, name, size, sha256, etag, source, append = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7],
  ARGV[8]
local version, signature, state = ARGV[9], ARGV[10], ARGV[11]
local patch = k_patch(patch_id)
local recorded = redis.call('HGET', patch, 'sha256')
if recorded then
  if recorded ~= sha256 then return { 'conflict', recorded } end
  local held = redis.call('HGET', patch, 'state')
  if held == 'ready' or (held == 'unsigned' and state == 'unsigned') then return { 'exists' } end
end
redis.call('HSET', patch, 'name', name, 'size', size, 'sha256', sha256, 'etag', etag, 'state', state,
  'source', source, 'version', version, 'signature', signature)
redis.call('HSETNX', patch, 'added_at', now_ms())
if append == '1' then redis.call('RPUSH', k_patch_files(), patch_id) end
redis.call('INCR', k_catalog_version())
redis.call('PUBLISH', k_events(), cjson.encode({ kind = 'catalog', patchId = patch_id }))
return { 'added' }
