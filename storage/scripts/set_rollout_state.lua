-- Pauses, resumes or cancels a rollout on an operator's request.
--   pause: no device starts an attempt. Attempts in flight finish and report; waiting and held devices keep
--     their place, and nothing counts as a failed attempt.
--   resume: devices start again, and those that may start now get a `wake` event. After a pause because a
--     wave missed its success threshold, the next wave opens. Failure threshold fields given with resume
--     replace the old ones.
--   cancel: final. Waiting and held devices become 'cancelled' and go on to later patches, so they get a
--     `wake` event. Attempts in flight finish and report as usual, and a failed one is not retried.
-- ARGV: prefix, rollout id, action ('pause' | 'resume' | 'cancel'), reason, JSON object of failure threshold
--       fields for resume ({} to keep them)
-- Returns: { 'ok', state afterwards } | { 'not_found' } | { 'invalid', current state } (resume or pause of a
--   cancelled rollout)
local rollout_id, action, reason, thresholds = ARGV[2], ARGV[3], ARGV[4], cjson.decode(ARGV[5])
local r = load_rollout(rollout_id)
if not r then return { 'not_found' } end
local now = now_ms()

if r.state == 'cancelled' then
  if action == 'cancel' then return { 'ok', 'cancelled' } end
  return { 'invalid', 'cancelled' }
end

if action == 'pause' then
  if r.state == 'running' then rollout_pause(r, now, 'operator', reason) end
  return { 'ok', r.state }
end

if action == 'resume' then
  for name, value in pairs(thresholds) do set_field(r, name, value) end
  if r.state == 'paused' then
    if r.pause_kind == 'wave' then set_field(r, 'wave', field_number(r, 'wave', 1) + 1) end
    set_field(r, 'state', 'running')
    set_field(r, 'reason', '')
    set_field(r, 'pause_kind', '')
    set_field(r, 'updated_at', now)
  end
  wake_devices(now)
  return { 'ok', r.state }
end

-- cancel
set_field(r, 'state', 'cancelled')
set_field(r, 'reason', reason)
set_field(r, 'pause_kind', '')
set_field(r, 'updated_at', now)
local released = {}
local flat = redis.call('HGETALL', k_rollout_devices(rollout_id))
for i = 1, #flat, 2 do
  local device_id = flat[i]
  local state = string.match(flat[i + 1], '^([%a_]+)|')
  if state == 'waiting' or state == 'held' then
    local _, tries = rollout_device(rollout_id, device_id)
    rollout_put(r, r.patch, device_id, 'cancelled', tries, 0, now, 'the rollout was cancelled')
    if redis.call('HGET', k_device(device_id), 'waiting_for') == rollout_id then
      redis.call('HDEL', k_device(device_id), 'waiting_for')
    end
    released[#released + 1] = device_id
  end
end
redis.call('DEL', k_rollout_waiting(rollout_id), k_rollout_held(rollout_id))
redis.call('SREM', k_rollout_queues(), rollout_id)
if #released > 0 then redis.call('PUBLISH', k_events(), cjson.encode({ kind = 'wake', devices = released })) end
return { 'ok', 'cancelled' }
