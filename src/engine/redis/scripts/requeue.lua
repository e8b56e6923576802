#!lua flags=no-cluster
-- REQUEUE: a held task goes back to the queue's tail at once (shutdown drain, a claim the
-- daemon cannot run now), with its state saved when one is given (the state then carries
-- the reclaims counted so far: the task's own counter starts again from 0). Holder only, as
-- RETRY_LATER.
-- KEYS: queue, task, inflight.  ARGV: group, consumer, id, entry, state ('' keep).
-- Reply: {'queued', new entry} | {'lost', holder} | {'gone', ''}
local q, task = KEYS[1], KEYS[2]
local group, consumer, id, entry = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local h = holder(q, group, entry)
if not h then return {'gone', ''} end
if h ~= consumer then return {'lost', h} end
if redis.call('HGET', task, 'entry') ~= entry then return {'gone', ''} end
local new = redis.call('XADD', q, '*', 'id', id)
redis.call('HSET', task, 'phase', 'queued', 'entry', new)
if ARGV[5] ~= '' then redis.call('HSET', task, 'state', ARGV[5], 'reclaims', 0) end
redis.call('HDEL', task, 'owner', 'claimed_at')
ack_del(q, group, entry)
redis.call('HDEL', KEYS[3], id)
return {'queued', new}
