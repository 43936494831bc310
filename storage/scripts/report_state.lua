-- Applies a state a device reported for one attempt of one patch. Idempotent: a duplicate or late report
-- never moves a state backwards and never counts twice.
--   * an older attempt, or a rank at or below the current one, changes no state: 'stale' or 'duplicate'
--     (a duplicate of an unfinished attempt still pushes its deadline out);
--   * a terminal state clears the in-flight record; 'applied' also adds the patch to the device's set;
--   * a late 'applied' or 'failed' after the server timed the attempt out is still recorded, because the
--     device is the ground truth for what it installed;
--   * for a patch with a rollout, the device's rollout state follows, a terminal state frees its slot and
--     may hold it for a retry or pause the rollout (rollout.lua), and devices that may start now get a
--     `wake` event.
-- ARGV: prefix, device id, patch id, attempt, new state, timeout ms, detail, failure reason ('' unless
--       failed), default max attempts (for rollouts without their own limit)
-- Returns: { outcome, state held afterwards, attempt held afterwards, reason if this paused the rollout or '' }
--   outcome: 'ok' | 'duplicate' | 'stale' | 'unknown'
local device_id, patch_id = ARGV[2], ARGV[3]
local attempt, new_state, timeout_ms, detail = tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6]), ARGV[7]
local reason, default_max_attempts = ARGV[8], tonumber(ARGV[9])
local now = now_ms()

local state, current_attempt = get_status(patch_id, device_id)
if not state or attempt > current_attempt then
  return { 'unknown', state or '', current_attempt, '' }
end
if attempt < current_attempt then
  return { 'stale', state, current_attempt, '' }
end

local r = load_rollout(rollout_of(patch_id))
if r then timeout_ms = field_number(r, 'timeout_ms', timeout_ms) end

local late_result = state == 'timed_out' and (new_state == 'applied' or new_state == 'failed')
if not late_result and RANK[new_state] <= RANK[state] then
  -- A repeated stage (say, download progress with more bytes) still shows the device is alive.
  if RANK[state] < 5 then redis.call('ZADD', k_in_flight(), 'XX', now + timeout_ms, device_id) end
  return { 'duplicate', state, current_attempt, '' }
end

put_status(patch_id, device_id, new_state, attempt, now, state, detail)
local paused = ''
if RANK[new_state] == 5 then
  clear_in_flight(device_id, patch_id)
  if new_state == 'applied' then
    redis.call('SADD', k_device_applied(device_id), patch_id)
  end
  if r then
    local kind = reason
    if kind == '' then kind = new_state end
    paused = rollout_attempt_ended(r, patch_id, device_id, new_state, kind, now, default_max_attempts) or ''
  end
  wake_devices(now)
else
  redis.call('ZADD', k_in_flight(), 'XX', now + timeout_ms, device_id)
  if r then
    local rollout_state, tries = rollout_device(r.id, device_id)
    if rollout_state and RANK[rollout_state] and RANK[rollout_state] < 5 then
      rollout_put(r, patch_id, device_id, new_state, tries, 0, now, nil)
    end
  end
end
return { 'ok', new_state, attempt, paused }
