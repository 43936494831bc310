-- Times out updates whose deadline passed. ZREM inside the script makes each expiry happen exactly once,
-- even when every replica runs this sweep. A timed-out attempt of a rollout frees its slot and is retried
-- after a backoff or fails for good (rollout.lua). Then the devices that may start now, because a slot freed
-- or a hold ended, get a `wake` event.
-- ARGV: prefix, max devices per call, default max attempts (for rollouts without their own limit)
-- Returns: the ids of the devices whose update timed out
local limit, default_max_attempts = tonumber(ARGV[2]), tonumber(ARGV[3]) or 3
local now = now_ms()
local expired = redis.call('ZRANGEBYSCORE', k_in_flight(), '-inf', now, 'LIMIT', 0, limit)
for _, device_id in ipairs(expired) do
  local patch_id = redis.call('HGET', k_device(device_id), 'inflight_patch')
  if patch_id then
    local state, attempt = get_status(patch_id, device_id)
    local timed_out = state and RANK[state] < 5
    if timed_out then
      put_status(patch_id, device_id, 'timed_out', attempt, now, state, 'no report before the deadline')
    end
    clear_in_flight(device_id, patch_id)
    local r = load_rollout(rollout_of(patch_id))
    if timed_out and r then
      rollout_attempt_ended(r, patch_id, device_id, 'timed_out', 'timed_out', now, default_max_attempts)
    end
  end
  redis.call('ZREM', k_in_flight(), device_id)
end
wake_devices(now)
return expired
