-- Ends a session's presence (compare-and-delete): a late close of an old session never marks a device that
-- reconnected elsewhere as offline.
-- ARGV: prefix, device id, session id
-- Returns: 1 released, 0 another session owns the device
local device_id, session = ARGV[2], ARGV[3]
if redis.call('GET', k_presence(device_id)) ~= session then return 0 end
redis.call('DEL', k_presence(device_id))
redis.call('HSET', k_device(device_id), 'last_seen', now_ms())
return 1
