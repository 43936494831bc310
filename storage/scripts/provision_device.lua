-- Provisions a device so that tokens issued for it are accepted, or accepts a pending device.
-- ARGV: prefix, device id
-- Returns: { token generation, enrollment before this call or '' }
local device_id = ARGV[2]
local device = k_device(device_id)
local before = redis.call('HGET', device, 'enrollment') or ''
redis.call('ZADD', k_known_devices(), 'NX', 0, device_id)
redis.call('HSET', device, 'enrollment', 'accepted')
redis.call('HSETNX', device, 'provisioned_at', now_ms())
redis.call('HSETNX', device, 'token_generation', 0)
if before == 'pending' then
  redis.call('PUBLISH', k_events(), cjson.encode({ kind = 'accepted', deviceId = device_id }))
end
return { tonumber(redis.call('HGET', device, 'token_generation')), before }
