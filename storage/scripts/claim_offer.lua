-- Claims the next offer for one device, atomically; claim.lua has the rules.
-- ARGV: prefix, device id, default timeout ms, default max attempts
-- Returns: { 'offer', patch id, attempt, resumed 0|1 } | { 'wait', patch id, reason } | { 'none' }
return claim(ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), now_ms())
