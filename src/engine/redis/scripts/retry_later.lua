#!lua flags=no-cluster
-- RETRY_LATER: a failed attempt waits for its retry outside the stream. Saves the state
-- (attempts, history, and the reclaims counted so far: the task's own counter starts again
-- from 0), puts the task in the delayed set at server time + `delay`, and
-- acknowledges and deletes the entry. Only the entry's holder may: another host's
-- ('lost', after a reclaim) or an acknowledged one ('gone') is left alone.
-- KEYS: queue, task, inflight, delayed.  ARGV: group, consumer, id, entry, state, delay ms.
-- Reply: {'delayed', due ms} | {'lost', holder} | {'gone', ''}
local q, task = KEYS[1], KEYS[2]
local group, consumer, id, entry = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local delay = tonumber(ARGV[6])
if not delay or delay < 0 then return redis.error_reply('ERR retry_later: bad delay') end
local h = holder(q, group, entry)
if not h then return {'gone', ''} end
if h ~= consumer then return {'lost', h} end
if redis.call('HGET', task, 'entry') ~= entry then return {'gone', ''} end
local due = now_ms() + math.floor(delay)
redis.call('HSET', task, 'state', ARGV[5], 'phase', 'delayed', 'due', due, 'reclaims', 0)
redis.call('HDEL', task, 'owner', 'entry', 'claimed_at')
redis.call('ZADD', KEYS[4], due, id)
ack_del(q, group, entry)
redis.call('HDEL', KEYS[3], id)
return {'delayed', due}
