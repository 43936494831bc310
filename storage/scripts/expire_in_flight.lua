-- Times out updates whose deadline passed. ZREM inside the script makes each expiry happen exactly once,
-- even when every replica runs this sweep.
-- ARGV: prefix, max devices per call
-- Returns: the ids of the devices whose update timed out
local limit = tonumber(ARGV[2])
local now = now_ms()
local expired = redis.call('ZRANGEBYSCORE', k_in_flight(), '-inf', now, 'LIMIT', 0, limit)
for _, device_id in ipairs(expired) do
  local device = k_device(device_id)
  local patch_id = redis.call('HGET', device, 'inflight_patch')
  if patch_id then
    local state, attempt = get_status(patch_id, device_id)
    if state and RANK[state] < 5 then
      put_status(patch_id, device_id, 'timed_out', attempt, now, state, 'no report before the deadline')
    end
    redis.call('HDEL', device, 'inflight_patch', 'inflight_attempt')
  end
  redis.call('ZREM', k_in_flight(), device_id)
end
return expired
