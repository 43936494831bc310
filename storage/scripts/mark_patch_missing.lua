-- Records that a catalog entry names no object in the bucket, so offers skip it instead of waiting on it.
-- ARGV: prefix, patch id
-- Returns: 1 recorded, 0 the patch already has metadata
local patch = k_patch(ARGV[2])
if redis.call('EXISTS', patch) == 1 then return 0 end
redis.call('HSET', patch, 'name', ARGV[2], 'state', 'missing', 'added_at', now_ms())
redis.call('INCR', k_catalog_version())
redis.call('PUBLISH', k_events(), cjson.encode({ kind = 'catalog', patchId = ARGV[2] }))
return 1
