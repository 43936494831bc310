-- Claims the next offer for many devices in one call, one device after another, as that many calls of
-- claim_offer.lua in a row would; claim.lua has the rules. A release fans out in batches of this script, so
-- Redis runs one script call per batch instead of one per device.
-- ARGV: prefix, default timeout ms, default max attempts, device id...
-- Returns one reply per device, in the order given: a reply of claim_offer.lua, or { 'error', message } when
-- the claim of that device raised an error. The claims before and after it still count.
local default_timeout, default_max_attempts = tonumber(ARGV[2]), tonumber(ARGV[3])
local replies = {}
for i = 4, #ARGV do
  -- Another device's claim may have moved a rollout's counters through plain HINCRBY calls, which the cached
  -- rollout tables do not see, so each device reads its rollouts afresh.
  loaded_rollouts = {}
  local ok, reply = pcall(claim, ARGV[i], default_timeout, default_max_attempts)
  if ok then
    replies[#replies + 1] = reply
  else
    replies[#replies + 1] = { 'error', type(reply) == 'table' and tostring(reply.err) or tostring(reply) }
  end
end
return replies
