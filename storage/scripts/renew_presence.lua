-- Extends a device's presence lease if this session still owns it (compare-and-expire).
-- A lease that lapsed while the session was still open is taken back, unless another session owns the
-- device now.
-- ARGV: prefix, device id, session id, lease ms
-- Returns: 1 renewed, 0 another session owns the device
local device_id, session, lease_ms = ARGV[2], ARGV[3], tonumber(ARGV[4])
local holder = redis.call('GET', k_presence(device_id))
if holder and holder ~= session then return 0 end
if not holder and redis.call('HGET', k_device(device_id), 'session') ~= session then return 0 end
redis.call('SET', k_presence(device_id), session, 'PX', lease_ms)
redis.call('HSET', k_device(device_id), 'last_seen', now_ms())
return 1
