-- Ends an attempt whose download failed because the patch store could not be reached, without counting it as
-- a failure of the device: the status becomes 'offered' under the next attempt number and the update stays
-- in flight, so the device gets the new attempt, with a fresh URL, once the store answers again.
-- ARGV: prefix, device id, patch id, attempt, timeout ms, detail
-- Returns: { 'waived', new attempt } | { 'stale', attempt held } when the attempt is not the device's open one
local device_id, patch_id = ARGV[2], ARGV[3]
local attempt, timeout_ms, detail = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
local now = now_ms()
local device = k_device(device_id)

local state, current = get_status(patch_id, device_id)
if not state or current ~= attempt or RANK[state] >= 5 or redis.call('HGET', device, 'inflight_patch') ~= patch_id then
  return { 'stale', current }
end
put_status(patch_id, device_id, 'offered', attempt + 1, now, state, detail)
redis.call('HSET', device, 'inflight_attempt', attempt + 1)
redis.call('ZADD', k_in_flight(), now + timeout_ms, device_id)
return { 'waived', attempt + 1 }
