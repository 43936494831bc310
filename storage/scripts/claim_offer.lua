-- Picks the patch a device should work on next and records the offer, atomically.
-- A device has at most one update in flight. If it already has one (it reconnected mid-update), the same
-- attempt is returned again with a fresh deadline so the device can resume.
-- Otherwise the first catalog entry the device lacks wins, in catalog order:
--   * an entry without metadata (pushed to the list but not yet inspected) stops the walk: 'wait';
--   * an entry whose object is missing from the bucket is skipped;
--   * applied patches are skipped, and so are patches whose last attempt failed or timed out once the
--     attempt limit is reached.
-- ARGV: prefix, device id, timeout ms, max attempts
-- Returns: { 'offer', patch id, attempt, resumed 0|1 } | { 'wait', patch id } | { 'none' }
local device_id, timeout_ms, max_attempts = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local now = now_ms()
local device = k_device(device_id)

-- A device waiting for an operator to accept it gets nothing.
if redis.call('HGET', device, 'enrollment') == 'pending' then return { 'none' } end

local current = redis.call('HGET', device, 'inflight_patch')
if current then
  if redis.call('ZSCORE', k_in_flight(), device_id) then
    redis.call('ZADD', k_in_flight(), 'XX', now + timeout_ms, device_id)
    return { 'offer', current, tonumber(redis.call('HGET', device, 'inflight_attempt')), 1 }
  end
  redis.call('HDEL', device, 'inflight_patch', 'inflight_attempt')
end

local seen = {}
for _, patch_id in ipairs(redis.call('LRANGE', k_patch_files(), 0, -1)) do
  if not seen[patch_id] then
    seen[patch_id] = true
    local patch_state = redis.call('HGET', k_patch(patch_id), 'state')
    if not patch_state then
      return { 'wait', patch_id }
    end
    if patch_state == 'ready' then
      local state, attempt = get_status(patch_id, device_id)
      local has_it = redis.call('SISMEMBER', k_device_applied(device_id), patch_id) == 1
      if has_it and state ~= 'applied' then
        put_status(patch_id, device_id, 'applied', math.max(attempt, 1), now, state, 'reported in hello')
      elseif not has_it and state ~= 'applied' then
        -- With no update in flight, a non-terminal state here is an orphan; a new attempt replaces it.
        local exhausted = (state == 'failed' or state == 'timed_out') and attempt >= max_attempts
        if not exhausted then
          local next_attempt = attempt + 1
          put_status(patch_id, device_id, 'offered', next_attempt, now, state, nil)
          redis.call('HSET', device, 'inflight_patch', patch_id, 'inflight_attempt', next_attempt)
          redis.call('ZADD', k_in_flight(), now + timeout_ms, device_id)
          return { 'offer', patch_id, next_attempt, 0 }
        end
      end
    end
  end
end
return { 'none' }
