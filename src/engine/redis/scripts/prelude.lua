-- Shared helpers, inserted after the shebang line of every script (scripts.rs). Only local
-- functions: a script's globals are refused by the server.

-- The server's clock in milliseconds: every due time is on it, never on a host's clock.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- An entry is done with: acknowledged and deleted together (task streams are never trimmed).
local function ack_del(q, group, entry)
  redis.call('XACK', q, group, entry)
  redis.call('XDEL', q, entry)
end

-- The consumer holding `entry` in the group, or false when it is not pending (acknowledged).
local function holder(q, group, entry)
  local p = redis.call('XPENDING', q, group, entry, entry, 1)
  if #p == 0 then return false end
  return p[1][2]
end

-- A field of a stream entry's {k1, v1, k2, v2, ...}, or false (a deleted entry has none).
local function field(fields, name)
  if not fields then return false end
  for i = 1, #fields, 2 do
    if fields[i] == name then return fields[i + 1] end
  end
  return false
end

-- The group's last-delivered-id: entries after it were never delivered to anyone.
local function last_delivered(q, group)
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', q)) do
    local name, ldid = false, false
    for i = 1, #g, 2 do
      if g[i] == 'name' then name = g[i + 1] elseif g[i] == 'last-delivered-id' then ldid = g[i + 1] end
    end
    if name == group then return ldid end
  end
  return '0-0'
end

-- Records that k.consumer holds `entry` (delivered by XREADGROUP or XAUTOCLAIM), or drops an
-- entry that no longer stands for a task to run. One reply row:
-- {entry, id, outcome, doc, state, reclaims, queued_at, previous holder}.
local function take(k, entry, fields, now, bump)
  local id = field(fields, 'id')
  if not id then
    ack_del(k.q, k.group, entry)
    return {entry, '', 'orphan', '', '', 0, 0, ''}
  end
  local tk = k.task_prefix .. id
  local previous = ''
  local receipt = redis.call('HGET', k.inflight, id)
  if receipt then
    local ok, r = pcall(cjson.decode, receipt)
    if ok and type(r) == 'table' and type(r.consumer) == 'string' then previous = r.consumer end
  end
  if redis.call('EXISTS', k.result_prefix .. id) == 1 then
    ack_del(k.q, k.group, entry)
    return {entry, id, 'done', '', '', 0, 0, previous}
  end
  if redis.call('HGET', tk, 'entry') ~= entry then
    ack_del(k.q, k.group, entry)
    return {entry, id, 'stale', '', '', 0, 0, previous}
  end
  if bump then redis.call('HINCRBY', tk, 'reclaims', 1) end
  redis.call('HSET', tk, 'phase', 'claimed', 'owner', k.consumer, 'claimed_at', now)
  redis.call('HSET', k.inflight, id,
    cjson.encode({consumer = k.consumer, entry = entry, claimed_at = now}))
  local v = redis.call('HMGET', tk, 'doc', 'state', 'reclaims', 'queued_at')
  return {entry, id, 'claimed', v[1] or '', v[2] or '', tonumber(v[3] or '0'),
    tonumber(v[4] or '0'), previous}
end
