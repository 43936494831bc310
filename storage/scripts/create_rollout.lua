-- Creates a rollout for a patch, which need not be in the catalog yet: create the rollout first and release
-- the patch after, so that no device is offered the patch before its rollout exists. A patch has one current
-- rollout; a new one replaces it only when it was cancelled.
-- ARGV: prefix, patch id, JSON object of rollout fields (names and values checked by storage/rollouts.ts),
--       JSON array of target device ids ([] when the rollout does not target by id)
-- Returns: { 'created', rollout id } | { 'exists', id of the patch's current rollout }
local patch_id, fields, targets = ARGV[2], cjson.decode(ARGV[3]), cjson.decode(ARGV[4])
local current = rollout_of(patch_id)
if current then
  local state = redis.call('HGET', k_rollout(current), 'state')
  if state and state ~= 'cancelled' then return { 'exists', current } end
end

local now = now_ms()
local rollout_id = 'r' .. redis.call('INCR', k_rollout_seq())
local rollout = k_rollout(rollout_id)
redis.call('HSET', rollout, 'patch', patch_id, 'state', 'running', 'reason', '', 'created_at', now,
  'updated_at', now, 'wave', 1, 'started', 0, 'claims', 0, 'releases', 0, 'max_in_flight_seen', 0,
  'max_fleet_in_flight_seen', 0)
for name, value in pairs(fields) do redis.call('HSET', rollout, name, tostring(value)) end
-- SADD in slices, because Lua's unpack has a limit on the number of values.
for first = 1, #targets, 1000 do
  redis.call('SADD', k_rollout_targets(rollout_id), unpack(targets, first, math.min(first + 999, #targets)))
end
if #targets > 0 then redis.call('HSET', rollout, 'target_list', '1') end
redis.call('SET', k_patch_rollout(patch_id), rollout_id)
redis.call('ZADD', k_rollouts(), now, rollout_id)
-- Every replica claims again for its devices, because the rollout changes what they get.
redis.call('INCR', k_catalog_version())
redis.call('PUBLISH', k_events(), cjson.encode({ kind = 'catalog', patchId = patch_id }))
return { 'created', rollout_id }
