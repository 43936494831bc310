-- Applies a state a device reported for one attempt of one patch. Idempotent: a duplicate or late report
-- never moves a state backwards and never counts twice.
--   * an older attempt, or a rank at or below the current one, changes no state: 'stale' or 'duplicate'
--     (a duplicate of an unfinished attempt still pushes its deadline out);
--   * a terminal state clears the in-flight record; 'applied' also adds the patch to the device's set;
--   * a late 'applied' or 'failed' after the server timed the attempt out is still recorded, because the
--     device is the ground truth for what it installed.
-- ARGV: prefix, device id, patch id, attempt, new state, timeout ms, detail
-- Returns: { outcome, state held afterwards, attempt held afterwards }
--   outcome: 'ok' | 'duplicate' | 'stale' | 'unknown'
local device_id, patch_id = ARGV[2], ARGV[3]
local attempt, new_state, timeout_ms, detail = tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6]), ARGV[7]
local now = now_ms()

local state, current_attempt = get_status(patch_id, device_id)
if not state or attempt > current_attempt then
  return { 'unknown', state or '', current_attempt }
end
if attempt < current_attempt then
  return { 'stale', state, current_attempt }
end

local late_result = state == 'timed_out' and (new_state == 'applied' or new_state == 'failed')
if not late_result and RANK[new_state] <= RANK[state] then
  -- A repeated stage (say, download progress with more bytes) still shows the device is alive.
  if RANK[state] < 5 then redis.call('ZADD', k_in_flight(), 'XX', now + timeout_ms, device_id) end
  return { 'duplicate', state, current_attempt }
end

put_status(patch_id, device_id, new_state, attempt, now, state, detail)
if RANK[new_state] == 5 then
  clear_in_flight(device_id, patch_id)
  if new_state == 'applied' then
    redis.call('SADD', k_device_applied(device_id), patch_id)
  end
else
  redis.call('ZADD', k_in_flight(), 'XX', now + timeout_ms, device_id)
end
return { 'ok', new_state, attempt }
