-- Records a device's hello: the device record, its presence lease and the patches it reports as applied.
-- A device seen for the first time (possible only with auto-enrolment) starts with the given enrollment.
-- Tags reported in hello replace the ones reported before; tags set by an operator are kept apart.
-- ARGV: prefix, device id, model, firmware, session id, lease ms, replica id, JSON array of applied patch ids,
--       enrollment for a new device ('pending' or 'accepted'), reported tags joined by commas ('' for none)
-- Returns: { previous session id or '', 1 if the device is new else 0, enrollment }
local device_id, model, firmware = ARGV[2], ARGV[3], ARGV[4]
local session, lease_ms, replica = ARGV[5], tonumber(ARGV[6]), ARGV[7]
local reported = cjson.decode(ARGV[8])
local new_enrollment, reported_tags = ARGV[9], ARGV[10] or ''
local now = now_ms()

local is_new = redis.call('ZADD', k_known_devices(), 'NX', 0, device_id)
local device = k_device(device_id)
redis.call('HSETNX', device, 'first_seen', now)
redis.call('HSETNX', device, 'enrollment', new_enrollment)
-- Fleet-wide counts by model and by firmware, kept here so that summaries need no scan of all devices.
local old_model, old_firmware = unpack(redis.call('HMGET', device, 'model', 'firmware'))
if old_model ~= model then
  if old_model then redis.call('HINCRBY', k_model_counts(), old_model, -1) end
  redis.call('HINCRBY', k_model_counts(), model, 1)
end
if old_firmware ~= firmware then
  if old_firmware then redis.call('HINCRBY', k_firmware_counts(), old_firmware, -1) end
  redis.call('HINCRBY', k_firmware_counts(), firmware, 1)
end
redis.call('HSET', device, 'model', model, 'firmware', firmware, 'last_seen', now, 'session', session,
  'replica', replica)
if reported_tags == '' then
  redis.call('HDEL', device, 'reported_tags')
else
  redis.call('HSET', device, 'reported_tags', reported_tags)
end

local previous = redis.call('GET', k_presence(device_id)) or ''
redis.call('SET', k_presence(device_id), session, 'PX', lease_ms)

local freed_slot = false
-- The device is the ground truth for what it has applied. Recording it here also rebuilds state that a
-- Redis without persistence lost in a restart.
for _, patch_id in ipairs(reported) do
  redis.call('SADD', k_device_applied(device_id), patch_id)
  if redis.call('EXISTS', k_patch(patch_id)) == 1 then
    local state, attempt = get_status(patch_id, device_id)
    if state ~= 'applied' then
      put_status(patch_id, device_id, 'applied', math.max(attempt, 1), now, state, 'reported in hello')
    end
    if clear_in_flight(device_id, patch_id) then freed_slot = true end
    local r = load_rollout(rollout_of(patch_id))
    if r then rollout_applied_elsewhere(r, patch_id, device_id, now) end
  end
end
if freed_slot then wake_devices(now) end

return { previous, is_new, redis.call('HGET', device, 'enrollment') }
