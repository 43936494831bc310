-- Pushes the deadlines of many unfinished attempts out by one update timeout each, for progress reports that
-- repeated a stage Redis already held, so such reports cost one script call per replica and flush. Each entry
-- is checked as report_state.lua checks a duplicate: an attempt that is no longer the device's latest, or that
-- has finished (timed out included), keeps its deadline.
-- ARGV: prefix, timeout ms for patches whose rollout sets none, then triples of device id, patch id, attempt
-- Returns: the number of deadlines moved
local default_timeout_ms = tonumber(ARGV[2])
local now = now_ms()
local timeouts = {}
local moved = 0

local function timeout_of(patch_id)
  local timeout_ms = timeouts[patch_id]
  if timeout_ms then return timeout_ms end
  timeout_ms = default_timeout_ms
  local r = load_rollout(rollout_of(patch_id))
  if r then timeout_ms = field_number(r, 'timeout_ms', timeout_ms) end
  timeouts[patch_id] = timeout_ms
  return timeout_ms
end

for i = 3, #ARGV, 3 do
  local device_id, patch_id, attempt = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local state, current_attempt = get_status(patch_id, device_id)
  if state and attempt == current_attempt and RANK[state] < 5 then
    moved = moved + redis.call('ZADD', k_in_flight(), 'XX', 'CH', now + timeout_of(patch_id), device_id)
  end
end
return moved
