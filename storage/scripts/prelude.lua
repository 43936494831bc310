-- Shared by every script: prepended when the scripts are loaded (storage/scripts.ts).
-- ARGV[1] is always the key prefix. The key builders mirror storage/keys.ts; a test checks they agree.
-- NOTE: scripts build some keys from ARGV instead of declaring them in KEYS. That is fine on a single Redis
-- or with Sentinel, but Redis Cluster would need every key of a script in one slot.
local PREFIX = ARGV[1]

local function k_known_devices() return PREFIX .. 'known_devices' end
local function k_patch_files() return PREFIX .. 'patch_files' end
local function k_catalog_version() return PREFIX .. 'catalog_version' end
local function k_in_flight() return PREFIX .. 'in_flight_updates' end
local function k_events() return PREFIX .. 'events' end
local function k_model_counts() return PREFIX .. 'model_counts' end
local function k_firmware_counts() return PREFIX .. 'firmware_counts' end
local function k_device(id) return PREFIX .. 'device:{' .. id .. '}' end
local function k_device_applied(id) return PREFIX .. 'device:{' .. id .. '}:applied' end
local function k_device_timeline(id) return PREFIX .. 'device:{' .. id .. '}:timeline' end
local function k_presence(id) return PREFIX .. 'presence:{' .. id .. '}' end
local function k_patch(id) return PREFIX .. 'patch:' .. id end
local function k_patch_status(id) return PREFIX .. 'patch_status:' .. id end
local function k_patch_counts(id) return PREFIX .. 'patch_counts:' .. id end
local function k_rollouts() return PREFIX .. 'rollouts' end
local function k_rollout_seq() return PREFIX .. 'rollout_seq' end
local function k_rollout_queues() return PREFIX .. 'rollout_queues' end
local function k_patch_rollout(id) return PREFIX .. 'patch_rollout:' .. id end
local function k_rollout(id) return PREFIX .. 'rollout:' .. id end
local function k_rollout_targets(id) return PREFIX .. 'rollout:' .. id .. ':targets' end
local function k_rollout_devices(id) return PREFIX .. 'rollout:' .. id .. ':devices' end
local function k_rollout_counts(id) return PREFIX .. 'rollout:' .. id .. ':counts' end
local function k_rollout_in_flight(id) return PREFIX .. 'rollout:' .. id .. ':in_flight' end
local function k_rollout_waiting(id) return PREFIX .. 'rollout:' .. id .. ':waiting' end
local function k_rollout_held(id) return PREFIX .. 'rollout:' .. id .. ':held' end

-- Timestamps come from the Redis clock so that no replica's clock decides a deadline.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local TIMELINE_LENGTH = 100
local RANK = { offered = 1, downloading = 2, verifying = 3, applying = 4, applied = 5, failed = 5, timed_out = 5 }

-- A status value is "state|attempt|updated_at_ms".
local function get_status(patch_id, device_id)
  local v = redis.call('HGET', k_patch_status(patch_id), device_id)
  if not v then return nil, 0, 0 end
  local s, a, t = string.match(v, '^([%a_]+)|(%d+)|(%d+)$')
  return s, tonumber(a), tonumber(t)
end

-- Returns the id of the patch's current rollout, or false when the patch has none.
local function rollout_of(patch_id)
  return redis.call('GET', k_patch_rollout(patch_id))
end

-- Appends one entry to the device timeline, newest first, keeping the last TIMELINE_LENGTH entries.
local function add_timeline(device_id, entry)
  redis.call('LPUSH', k_device_timeline(device_id), cjson.encode(entry))
  redis.call('LTRIM', k_device_timeline(device_id), 0, TIMELINE_LENGTH - 1)
end

-- Writes a new state for (patch, device), moves the per-state counters and appends to the device timeline.
local function put_status(patch_id, device_id, state, attempt, now, previous, detail)
  redis.call('HSET', k_patch_status(patch_id), device_id, state .. '|' .. attempt .. '|' .. now)
  if previous then redis.call('HINCRBY', k_patch_counts(patch_id), previous, -1) end
  redis.call('HINCRBY', k_patch_counts(patch_id), state, 1)
  local entry = { at = now, patchId = patch_id, state = state, attempt = attempt }
  local rollout_id = rollout_of(patch_id)
  if rollout_id then entry.rolloutId = rollout_id end
  if detail and detail ~= '' then entry.detail = detail end
  add_timeline(device_id, entry)
end

-- Drops the device's in-flight record if it belongs to this patch, and frees its slot in the rollout that
-- granted the attempt. SREM makes the slot free exactly once, whichever script gets there first. Returns true
-- when it freed a rollout slot.
local function clear_in_flight(device_id, patch_id)
  local device = k_device(device_id)
  local current, rollout_id = unpack(redis.call('HMGET', device, 'inflight_patch', 'inflight_rollout'))
  if current ~= patch_id then return false end
  redis.call('HDEL', device, 'inflight_patch', 'inflight_attempt', 'inflight_rollout')
  redis.call('ZREM', k_in_flight(), device_id)
  if rollout_id and redis.call('SREM', k_rollout_in_flight(rollout_id), device_id) == 1 then
    redis.call('HINCRBY', k_rollout(rollout_id), 'releases', 1)
    return true
  end
  return false
end
