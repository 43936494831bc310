-- Marks a ready patch whose object is gone from the bucket as missing, so that no device is offered it again.
-- Devices that a rollout of the patch targets get a clear artifact_missing failure instead (claim_offer.lua).
-- ARGV: prefix, patch id
-- Returns: 1 marked, 0 the patch is not in state ready
local patch = k_patch(ARGV[2])
if redis.call('HGET', patch, 'state') ~= 'ready' then return 0 end
redis.call('HSET', patch, 'state', 'missing', 'removed_at', now_ms())
redis.call('INCR', k_catalog_version())
redis.call('PUBLISH', k_events(), cjson.encode({ kind = 'catalog', patchId = ARGV[2] }))
return 1
