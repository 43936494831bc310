-- Rollout rules, shared by every script: loaded after prelude.lua (storage/scripts.ts).
-- A rollout governs the offers of one patch: which devices it targets, how many may update at once (caps,
-- rate, waves), when it stops by itself (failure threshold, a wave below its success threshold) and how failed
-- attempts are retried. Each device has a state within the rollout, stored in rollout:ID:devices as
-- "state|tries|hold_until_ms" and counted per state in rollout:ID:counts. docs/rollouts.md has the diagrams.

-- Rollout states in which a device is done with the rollout.
local ROLLOUT_DONE = { applied = true, failed = true, timed_out = true, superseded = true, cancelled = true }
-- Failure kinds that get another attempt after a backoff. 'rejected', 'signature_invalid' and
-- 'artifact_missing' fail the device for good, because another attempt would fail the same way.
local RETRYABLE = { download_failed = true, checksum_mismatch = true, apply_failed = true, timed_out = true }
-- Devices one wake-up takes per rollout at most. The next sweep continues with the rest.
local WAKE_LIMIT = 500
local DEFAULT_BACKOFF_MS = 30000
local DEFAULT_BACKOFF_MAX_MS = 600000

local loaded_rollouts = {}

-- Returns the rollout's hash fields as a table, read once per script run, or nil when there is no rollout.
-- Writes through the helpers below update the table too.
local function load_rollout(rollout_id)
  if not rollout_id then return nil end
  local cached = loaded_rollouts[rollout_id]
  if cached ~= nil then return cached or nil end
  local flat = redis.call('HGETALL', k_rollout(rollout_id))
  if #flat == 0 then
    loaded_rollouts[rollout_id] = false
    return nil
  end
  local r = { id = rollout_id }
  for i = 1, #flat, 2 do r[flat[i]] = flat[i + 1] end
  loaded_rollouts[rollout_id] = r
  return r
end

local function set_field(r, name, value)
  redis.call('HSET', k_rollout(r.id), name, value)
  r[name] = tostring(value)
end

local function field_number(r, name, default)
  local value = tonumber(r[name])
  if value == nil then return default end
  return value
end

local function split_list(text)
  local items = {}
  if not text or text == '' then return items end
  for item in string.gmatch(text, '[^,]+') do items[#items + 1] = item end
  return items
end

local function list_contains(text, value)
  if not value then return false end
  for _, item in ipairs(split_list(text)) do
    if item == value then return true end
  end
  return false
end

-- True when the device matches every selector the rollout has: its id list, any of its tags (set by an
-- operator or reported in hello), its models and its firmware versions. A rollout without selectors targets
-- every device.
local function is_targeted(r, device_id)
  if r.target_list == '1' and redis.call('SISMEMBER', k_rollout_targets(r.id), device_id) == 0 then return false end
  local model, firmware, tags, reported_tags =
    unpack(redis.call('HMGET', k_device(device_id), 'model', 'firmware', 'tags', 'reported_tags'))
  if (r.target_models or '') ~= '' and not list_contains(r.target_models, model) then return false end
  if (r.target_firmware or '') ~= '' and not list_contains(r.target_firmware, firmware) then return false end
  if (r.target_tags or '') ~= '' then
    local own = (tags or '') .. ',' .. (reported_tags or '')
    for _, tag in ipairs(split_list(r.target_tags)) do
      if list_contains(own, tag) then return true end
    end
    return false
  end
  return true
end

-- Returns the device's state in the rollout (nil when it has none), its attempts in the rollout and the end
-- of its hold in ms.
local function rollout_device(rollout_id, device_id)
  local value = redis.call('HGET', k_rollout_devices(rollout_id), device_id)
  if not value then return nil, 0, 0 end
  local state, tries, hold_until = string.match(value, '^([%a_]+)|(%d+)|(%d+)$')
  return state, tonumber(tries), tonumber(hold_until)
end

local function rollout_count(r, state)
  return tonumber(redis.call('HGET', k_rollout_counts(r.id), state) or '0') or 0
end

-- Moves a device to a state within the rollout: the per-state counts, the waiting queue and the held set.
-- When the state changes and `detail` is given, the device timeline gets an entry; attempt states leave
-- that to put_status.
local function rollout_put(r, patch_id, device_id, state, tries, hold_until, now, detail)
  local previous = rollout_device(r.id, device_id)
  redis.call('HSET', k_rollout_devices(r.id), device_id, state .. '|' .. tries .. '|' .. hold_until)
  if previous ~= state then
    if previous then redis.call('HINCRBY', k_rollout_counts(r.id), previous, -1) end
    redis.call('HINCRBY', k_rollout_counts(r.id), state, 1)
    if detail then
      add_timeline(device_id,
        { at = now, patchId = patch_id, rolloutId = r.id, state = state, attempt = tries, detail = detail })
    end
  end
  if state ~= 'waiting' then redis.call('ZREM', k_rollout_waiting(r.id), device_id) end
  if state == 'held' then
    redis.call('ZADD', k_rollout_held(r.id), hold_until, device_id)
    redis.call('SADD', k_rollout_queues(), r.id)
  else
    redis.call('ZREM', k_rollout_held(r.id), device_id)
  end
end

-- Takes the device out of the queue it waits in, if any, unless that is the queue of `keep_rollout_id`.
local function leave_queue(device_id, keep_rollout_id)
  local device = k_device(device_id)
  local waiting_for = redis.call('HGET', device, 'waiting_for')
  if waiting_for and waiting_for ~= keep_rollout_id then
    redis.call('ZREM', k_rollout_waiting(waiting_for), device_id)
    redis.call('HDEL', device, 'waiting_for')
  end
end

-- Puts the device at the tail of the rollout's queue unless it is in it already, and returns its place,
-- counted from 0. A device waits in one queue at a time.
local function rollout_enqueue(r, device_id)
  local waiting = k_rollout_waiting(r.id)
  if not redis.call('ZSCORE', waiting, device_id) then
    leave_queue(device_id, r.id)
    redis.call('HSET', k_device(device_id), 'waiting_for', r.id)
    redis.call('ZADD', waiting, redis.call('HINCRBY', k_rollout(r.id), 'queue_seq', 1), device_id)
    redis.call('SADD', k_rollout_queues(), r.id)
  end
  return redis.call('ZRANK', waiting, device_id)
end

-- The rate limit is a token bucket on the Redis clock: rate_per_min tokens a minute, with at most one
-- second's worth, and at least one token, saved up. Returns the tokens available now.
local function rollout_tokens(r, now)
  local rate = field_number(r, 'rate_per_min', 0)
  if rate <= 0 then return math.huge end
  local burst = math.max(1, rate / 60)
  local tokens = field_number(r, 'tokens', burst)
  local elapsed = now - field_number(r, 'tokens_at', now)
  return math.min(burst, tokens + elapsed * rate / 60000)
end

local function rollout_take_token(r, now)
  if field_number(r, 'rate_per_min', 0) <= 0 then return end
  local left = rollout_tokens(r, now) - 1
  set_field(r, 'tokens', string.format('%.6f', left))
  set_field(r, 'tokens_at', now)
end

-- Returns how many attempts of the rollout may start now under its own cap, the fleet cap and the rate.
local function rollout_room(r, now)
  local room = math.huge
  local cap = field_number(r, 'max_in_flight', 0)
  if cap > 0 then room = cap - redis.call('SCARD', k_rollout_in_flight(r.id)) end
  local fleet_cap = field_number(r, 'fleet_max_in_flight', 0)
  if fleet_cap > 0 then room = math.min(room, fleet_cap - redis.call('ZCARD', k_in_flight())) end
  return math.min(room, math.floor(rollout_tokens(r, now)))
end

-- Returns the number of devices the open wave lets start in total: waves are cumulative device counts,
-- and after the last listed wave every targeted device may start (math.huge).
local function wave_size(r)
  local size = tonumber(split_list(r.waves)[field_number(r, 'wave', 1)])
  return size or math.huge
end

-- Opens the next waves while the applied devices reach the success share of the open wave's size.
local function advance_wave(r)
  local sizes = split_list(r.waves)
  local wave = field_number(r, 'wave', 1)
  local applied = rollout_count(r, 'applied')
  local share = field_number(r, 'wave_success_pct', 100)
  local opened = wave
  while sizes[opened] and applied >= math.ceil(tonumber(sizes[opened]) * share / 100) do opened = opened + 1 end
  if opened ~= wave then set_field(r, 'wave', opened) end
end

local function rollout_pause(r, now, kind, reason)
  set_field(r, 'state', 'paused')
  set_field(r, 'pause_kind', kind)
  set_field(r, 'reason', reason)
  set_field(r, 'updated_at', now)
end

-- Pauses a running rollout once its failing devices reach the failure threshold, counted among the devices
-- that finished at least one attempt once there are failure_min of them. A device counts as failing while
-- its last attempt failed or timed out: held for a retry, or failed for good.
local function check_failure_threshold(r, now)
  if r.state ~= 'running' then return end
  local count_limit = field_number(r, 'failure_count', 0)
  local pct_limit = field_number(r, 'failure_pct', 0)
  if count_limit <= 0 and pct_limit <= 0 then return end
  local failing = redis.call('ZCARD', k_rollout_held(r.id)) + rollout_count(r, 'failed') + rollout_count(r, 'timed_out')
  local finished = failing + rollout_count(r, 'applied')
  local minimum = field_number(r, 'failure_min', 1)
  if finished == 0 or finished < minimum then return end
  if count_limit > 0 and failing >= count_limit then
    rollout_pause(r, now, 'failures', string.format(
      'failure threshold reached: %d of %d devices failed their last attempt, threshold %d devices',
      failing, finished, count_limit))
  elseif pct_limit > 0 and failing * 100 >= pct_limit * finished then
    rollout_pause(r, now, 'failures', string.format(
      'failure threshold reached: %d of %d devices (%d%%) failed their last attempt, threshold %d%% after %d devices',
      failing, finished, math.floor(failing * 100 / finished), pct_limit, minimum))
  end
end

-- Advances the waves, then pauses a running rollout whose open wave has started all its devices, has none
-- left in flight or held, and still lacks the applied devices that open the next wave.
local function check_wave(r, now)
  advance_wave(r)
  if r.state ~= 'running' then return end
  local size = wave_size(r)
  if size == math.huge or field_number(r, 'started', 0) < size then return end
  if redis.call('SCARD', k_rollout_in_flight(r.id)) > 0 or redis.call('ZCARD', k_rollout_held(r.id)) > 0 then return end
  rollout_pause(r, now, 'wave', string.format(
    'wave %d ended with %d of %d devices applied, below its success threshold of %d%%',
    field_number(r, 'wave', 1), rollout_count(r, 'applied'), size, field_number(r, 'wave_success_pct', 100)))
end

-- Records how a device's attempt ended: applied, held for a retry with exponential backoff, or failed for
-- good. `kind` is the failure reason, 'timed_out' for a timeout. Returns the reason when this pauses the
-- rollout, else nil.
local function rollout_attempt_ended(r, patch_id, device_id, outcome, kind, now, default_max_attempts)
  local _, tries = rollout_device(r.id, device_id)
  local was_running = r.state == 'running'
  if outcome == 'applied' then
    rollout_put(r, patch_id, device_id, 'applied', tries, 0, now, nil)
  else
    local max_attempts = field_number(r, 'max_attempts', default_max_attempts)
    if r.state ~= 'cancelled' and RETRYABLE[kind] and tries < max_attempts then
      local base = field_number(r, 'backoff_ms', DEFAULT_BACKOFF_MS)
      local delay = math.min(field_number(r, 'backoff_max_ms', DEFAULT_BACKOFF_MAX_MS), base * 2 ^ math.max(0, tries - 1))
      rollout_put(r, patch_id, device_id, 'held', tries, now + delay, now,
        string.format('%s, next attempt in %d s at the earliest', kind, math.ceil(delay / 1000)))
    else
      rollout_put(r, patch_id, device_id, outcome, tries, 0, now, nil)
    end
    check_failure_threshold(r, now)
  end
  check_wave(r, now)
  if was_running and r.state == 'paused' then return r.reason end
  return nil
end

-- Marks a device that applied the patch outside this rollout's offers (listed in hello) as applied, if it
-- has a state in the rollout.
local function rollout_applied_elsewhere(r, patch_id, device_id, now)
  local state, tries = rollout_device(r.id, device_id)
  if state and state ~= 'applied' then
    rollout_put(r, patch_id, device_id, 'applied', tries, 0, now, nil)
    check_wave(r, now)
  end
end

-- Ends a device's part in the rollout without an attempt: 'superseded', 'failed' (the patch file is gone) or
-- 'cancelled'. Only targeted devices that wait, are held or have no state yet get one.
local function rollout_end_without_attempt(r, patch_id, device_id, state, now, detail)
  local current, tries = rollout_device(r.id, device_id)
  if current == nil and not is_targeted(r, device_id) then return end
  if current ~= nil and current ~= 'waiting' and current ~= 'held' then return end
  rollout_put(r, patch_id, device_id, state, tries, 0, now, detail)
end

-- Finds devices that may start an attempt now, in every rollout that has a queue: held devices whose hold
-- ended first, then the head of the waiting queue, as many as each rollout has room for. Devices without a
-- presence lease are dropped from the head of a queue, and they queue again when they next ask. Publishes
-- one `wake` event so that the replicas holding these devices offer to them, and returns their ids.
local function wake_devices(now)
  local woken = {}
  for _, rollout_id in ipairs(redis.call('SMEMBERS', k_rollout_queues())) do
    local r = load_rollout(rollout_id)
    local waiting, held = k_rollout_waiting(rollout_id), k_rollout_held(rollout_id)
    if not r or r.state == 'cancelled' or redis.call('ZCARD', waiting) + redis.call('ZCARD', held) == 0 then
      redis.call('SREM', k_rollout_queues(), rollout_id)
    elseif r.state == 'running' then
      local room = math.min(rollout_room(r, now), WAKE_LIMIT)
      if room > 0 then
        for _, device_id in ipairs(redis.call('ZRANGEBYSCORE', held, '-inf', now, 'LIMIT', 0, room)) do
          if redis.call('EXISTS', k_presence(device_id)) == 1 then
            woken[#woken + 1] = device_id
            room = room - 1
          end
        end
      end
      room = math.min(room, wave_size(r) - field_number(r, 'started', 0))
      local kept, examined = 0, 0
      while room > 0 and examined < WAKE_LIMIT do
        local batch = redis.call('ZRANGE', waiting, kept, kept + room - 1)
        if #batch == 0 then break end
        for _, device_id in ipairs(batch) do
          if room <= 0 then break end
          examined = examined + 1
          if redis.call('EXISTS', k_presence(device_id)) == 1 then
            woken[#woken + 1] = device_id
            kept = kept + 1
            room = room - 1
          else
            redis.call('ZREM', waiting, device_id)
          end
        end
      end
    end
  end
  if #woken > 0 then redis.call('PUBLISH', k_events(), cjson.encode({ kind = 'wake', devices = woken })) end
  return woken
end
