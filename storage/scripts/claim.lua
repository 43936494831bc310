-- The claim rules, shared by claim_offer.lua and claim_offers.lua: loaded after prelude.lua and rollout.lua
-- (storage/scripts.ts).
--
-- claim() picks the patch a device should work on next and records the offer.
-- A device has at most one update in flight. If it already has one (it reconnected mid-update), the same
-- attempt is returned again with a fresh deadline so the device can resume.
-- Otherwise the first catalog entry the device lacks wins, in catalog order:
--   * an entry without metadata (pushed to the list but not yet inspected) stops the walk: 'wait';
--   * an entry whose object is missing from the bucket is skipped;
--   * applied patches are skipped, and so are patches older than the newest patch the device applied, and
--     patches that a running rollout of a newer patch supersedes for this device;
--   * a patch without a rollout is offered at once, unless its last attempt failed or timed out and the
--     attempt limit is reached;
--   * a patch with a rollout is offered when the rollout targets the device and has room for it (see
--     rollout_claim). A device that must wait stops the walk there, so it never gets a later patch first.
-- Returns: { 'offer', patch id, attempt, resumed 0|1 } | { 'wait', patch id, reason } | { 'none' }
--   reason: 'pending' (the entry is not inspected yet), 'queued' (no room in the rollout), 'held' (backoff
--   after a failed attempt), 'paused' (the rollout is paused)

-- The catalog as the claims see it: the ids in release order, each once, with each patch's state and rollout
-- id. No claim writes these keys, so one script run reads them once, however many devices it claims for.
local catalog = nil
local function read_catalog()
  if catalog then return catalog end
  catalog = { entries = {}, states = {}, rollouts = {} }
  for _, patch_id in ipairs(redis.call('LRANGE', k_patch_files(), 0, -1)) do
    if catalog.states[patch_id] == nil then
      catalog.entries[#catalog.entries + 1] = patch_id
      catalog.states[patch_id] = redis.call('HGET', k_patch(patch_id), 'state')
      catalog.rollouts[patch_id] = rollout_of(patch_id)
    end
  end
  return catalog
end

-- `now` is the time of the claim in ms on the Redis clock (now_ms).
local function claim(device_id, default_timeout, default_max_attempts, now)
  local device = k_device(device_id)
  local enrollment, current, current_attempt =
    unpack(redis.call('HMGET', device, 'enrollment', 'inflight_patch', 'inflight_attempt'))

  -- A device waiting for an operator to accept it gets nothing.
  if enrollment == 'pending' then return { 'none' } end

  if current then
    if redis.call('ZSCORE', k_in_flight(), device_id) then
      local r = load_rollout(rollout_of(current))
      local timeout = default_timeout
      if r then timeout = field_number(r, 'timeout_ms', default_timeout) end
      redis.call('ZADD', k_in_flight(), 'XX', now + timeout, device_id)
      return { 'offer', current, tonumber(current_attempt), 1 }
    end
    clear_in_flight(device_id, current)
  end

  -- Starts attempt `attempt + 1` of a patch for the device.
  local function start_attempt(patch_id, previous_state, attempt, timeout, rollout_id)
    local next_attempt = attempt + 1
    put_status(patch_id, device_id, 'offered', next_attempt, now, previous_state, nil)
    redis.call('HSET', device, 'inflight_patch', patch_id, 'inflight_attempt', next_attempt)
    if rollout_id then
      redis.call('HSET', device, 'inflight_rollout', rollout_id)
    else
      redis.call('HDEL', device, 'inflight_rollout')
    end
    redis.call('ZADD', k_in_flight(), now + timeout, device_id)
    leave_queue(device_id, nil)
    return next_attempt
  end

  -- Decides what the device gets from a rollout at a ready patch it lacks: 'offer', attempt | 'wait', reason
  -- | 'skip' (go on to the next catalog entry).
  local function rollout_claim(r, patch_id, status, attempt)
    local state, tries, hold_until = rollout_device(r.id, device_id)
    if r.state == 'cancelled' or (state and ROLLOUT_DONE[state]) then return 'skip' end
    if state == nil and not is_targeted(r, device_id) then return 'skip' end
    if state == 'held' and hold_until > now then return 'wait', 'held' end
    -- A held device whose hold ended, or one whose attempt lost its in-flight record, retries ahead of the
    -- queue: it started in an earlier wave, so it needs room under the caps but no place in the queue.
    local retry = state ~= nil and state ~= 'waiting'
    if r.state ~= 'running' then
      if not retry then
        rollout_enqueue(r, device_id)
        rollout_put(r, patch_id, device_id, 'waiting', tries, 0, now, 'the rollout is paused')
      end
      return 'wait', 'paused'
    end
    local room = rollout_room(r, now)
    if not retry then
      room = math.min(room, wave_size(r) - field_number(r, 'started', 0))
      if rollout_enqueue(r, device_id) >= room then
        rollout_put(r, patch_id, device_id, 'waiting', tries, 0, now, 'waiting for a slot')
        return 'wait', 'queued'
      end
    elseif room < 1 then
      return 'wait', 'queued'
    end

    rollout_take_token(r, now)
    local next_attempt = start_attempt(patch_id, status, attempt, field_number(r, 'timeout_ms', default_timeout), r.id)
    rollout_put(r, patch_id, device_id, 'offered', tries + 1, 0, now, nil)
    redis.call('SADD', k_rollout_in_flight(r.id), device_id)
    set_field(r, 'claims', field_number(r, 'claims', 0) + 1)
    if tries == 0 then set_field(r, 'started', field_number(r, 'started', 0) + 1) end
    local in_flight = redis.call('SCARD', k_rollout_in_flight(r.id))
    if in_flight > field_number(r, 'max_in_flight_seen', 0) then set_field(r, 'max_in_flight_seen', in_flight) end
    local fleet_in_flight = redis.call('ZCARD', k_in_flight())
    if fleet_in_flight > field_number(r, 'max_fleet_in_flight_seen', 0) then
      set_field(r, 'max_fleet_in_flight_seen', fleet_in_flight)
    end
    return 'offer', next_attempt
  end

  local cat = read_catalog()
  local entries = cat.entries

  -- Order and supersession. A device never gets a patch older in the catalog than the newest patch it
  -- applied. A running rollout that supersedes older patches takes their place for the devices it targets,
  -- unless the device is done with that rollout (it failed the newer patch for good, say).
  local applied = {}
  for _, patch_id in ipairs(redis.call('SMEMBERS', k_device_applied(device_id))) do applied[patch_id] = true end
  local newest_applied = 0
  for i, patch_id in ipairs(entries) do
    if applied[patch_id] then newest_applied = i end
  end
  local superseded_by = {}
  for i, patch_id in ipairs(entries) do
    local r = load_rollout(cat.rollouts[patch_id])
    if r and r.state == 'running' and (r.supersedes or '') ~= '' and not applied[patch_id]
      and cat.states[patch_id] == 'ready' then
      local state = rollout_device(r.id, device_id)
      if not (state and ROLLOUT_DONE[state]) and (state or is_targeted(r, device_id)) then
        for j = 1, i - 1 do
          if r.supersedes == '*' or list_contains(r.supersedes, entries[j]) then superseded_by[entries[j]] = patch_id end
        end
      end
    end
  end

  local function skip_reason(i, patch_id)
    if i < newest_applied then return 'the device applied the newer patch ' .. entries[newest_applied] end
    if superseded_by[patch_id] then return 'superseded by ' .. superseded_by[patch_id] end
    return nil
  end

  for i, patch_id in ipairs(entries) do
    local patch_state = cat.states[patch_id]
    if not patch_state then
      return { 'wait', patch_id, 'pending' }
    end
    local r = load_rollout(cat.rollouts[patch_id])
    if patch_state == 'ready' then
      local state, attempt = get_status(patch_id, device_id)
      if applied[patch_id] then
        if state ~= 'applied' then
          put_status(patch_id, device_id, 'applied', math.max(attempt, 1), now, state, 'reported in hello')
          if r then rollout_applied_elsewhere(r, patch_id, device_id, now) end
        end
      elseif state ~= 'applied' then
        local skipped = skip_reason(i, patch_id)
        if skipped then
          if r and r.state ~= 'cancelled' then
            rollout_end_without_attempt(r, patch_id, device_id, 'superseded', now, skipped)
          end
        elseif r then
          local verdict, value = rollout_claim(r, patch_id, state, attempt)
          if verdict == 'offer' then return { 'offer', patch_id, value, 0 } end
          if verdict == 'wait' then return { 'wait', patch_id, value } end
        else
          -- With no update in flight, a non-terminal state here is an orphan; a new attempt replaces it.
          local exhausted = (state == 'failed' or state == 'timed_out') and attempt >= default_max_attempts
          if not exhausted then
            return { 'offer', patch_id, start_attempt(patch_id, state, attempt, default_timeout, nil), 0 }
          end
        end
      end
    elseif r and r.state ~= 'cancelled' and not applied[patch_id] then
      -- The patch left the catalog: its file is gone, or an operator retired it or it lacks its signature.
      local skipped = skip_reason(i, patch_id)
      if skipped then
        rollout_end_without_attempt(r, patch_id, device_id, 'superseded', now, skipped)
      elseif patch_state == 'missing' then
        rollout_end_without_attempt(r, patch_id, device_id, 'failed', now,
          'artifact_missing: the patch file is missing from the bucket')
      else
        leave_queue(device_id, nil)
      end
    end
  end
  return { 'none' }
end
