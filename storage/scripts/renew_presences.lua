-- Extends the presence leases of many devices at once (compare-and-expire for each), so heartbeats cost one
-- script call per replica and flush instead of one each. A lease that lapsed while its session was still open is
-- taken back, unless another session owns the device now.
-- ARGV: prefix, lease ms, then pairs of device id and session id
-- Returns: the device ids whose session no longer owns the device
local lease_ms = tonumber(ARGV[2])
local now = now_ms()
local lost = {}
for i = 3, #ARGV, 2 do
  local device_id, session = ARGV[i], ARGV[i + 1]
  local holder = redis.call('GET', k_presence(device_id))
  -- No lease and no recorded session at all means Redis lost the device's record, not that another session
  -- took over: the lease is taken back, and the replica's data-loss check asks the device to say hello again.
  local recorded = redis.call('HGET', k_device(device_id), 'session')
  local owns = holder == session or (not holder and (recorded == session or not recorded))
  if owns then
    redis.call('SET', k_presence(device_id), session, 'PX', lease_ms)
    redis.call('HSET', k_device(device_id), 'last_seen', now)
  else
    lost[#lost + 1] = device_id
  end
end
return lost
