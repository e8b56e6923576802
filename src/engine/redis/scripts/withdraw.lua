#!lua flags=no-cluster
-- WITHDRAW: takes a task that is not running out of the queue, to cancel it (`watcherctl
-- cancel`): a queued task's undelivered entry is deleted, a task waiting for a retry leaves the
-- delayed set, and the task becomes `withdrawn`, held by `consumer` (its receipt written) until
-- its cancelled result is written by COMPLETE. A task already withdrawn by a host that died
-- before writing that result is taken again. A claimed task is its holder's to stop.
-- The claim's entry is the task's last entry, deleted: COMPLETE's ack and delete of it find
-- nothing, and no renewal is asked for it.
-- KEYS: queue, task, inflight, delayed.  ARGV: group, consumer, id.
-- Reply: {'withdrawn', entry, doc, state, reclaims, queued_at} | {'absent', ''} |
-- {'held', owner}
local q, task = KEYS[1], KEYS[2]
local group, consumer, id = ARGV[1], ARGV[2], ARGV[3]
local v = redis.call('HMGET', task, 'phase', 'entry', 'owner')
local phase, entry = v[1], v[2]
if not phase or not entry then return {'absent', ''} end
if phase == 'claimed' then return {'held', v[3] or ''} end
if phase == 'queued' then
  ack_del(q, group, entry)
elseif phase == 'delayed' then
  redis.call('ZREM', KEYS[4], id)
elseif phase ~= 'withdrawn' then
  return {'absent', ''}
end
local now = now_ms()
redis.call('HSET', task, 'phase', 'withdrawn', 'owner', consumer, 'claimed_at', now)
redis.call('HSET', KEYS[3], id, cjson.encode({consumer = consumer, entry = entry, claimed_at = now}))
local t = redis.call('HMGET', task, 'doc', 'state', 'reclaims', 'queued_at')
return {'withdrawn', entry, t[1] or '', t[2] or '', tonumber(t[3] or '0'), tonumber(t[4] or '0')}
