-- Claims the next offer for many devices in one call. The devices are claimed one after another, with the
-- rules in claim.lua, so the result is that of as many claim_offer.lua calls in a row. A fan-out runs this
-- script once per batch of devices instead of once per device.
-- ARGV: prefix, default timeout ms, default max attempts, device id...
-- Returns one reply per device, in the order given: a reply of claim_offer.lua, or { 'error', message } when
-- the claim of that device raised an error. The claims before and after it still count.
local default_timeout, default_max_attempts = tonumber(ARGV[2]), tonumber(ARGV[3])
-- One time for the whole batch: the script runs atomically, so its claims happen at one instant.
local now = now_ms()
local replies = {}
for i = 4, #ARGV do
  -- Another device's claim may have moved a rollout's counters through plain HINCRBY calls, which the cached
  -- rollout tables do not see, so each device reads its rollouts afresh.
  loaded_rollouts = {}
  local ok, reply = pcall(claim, ARGV[i], default_timeout, default_max_attempts, now)
  if ok then
    replies[#replies + 1] = reply
  else
    replies[#replies + 1] = { 'error', type(reply) == 'table' and tostring(reply.err) or tostring(reply) }
  end
end
return replies
