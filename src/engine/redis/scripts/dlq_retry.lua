#!lua flags=no-cluster
-- DLQ_RETRY: a dead letter runs again. The dead task hash (doc, state, history) comes back as
-- the task, with the given state (attempts reset by the caller, history kept) and its reclaim
-- count reset; its failed result is dropped and a new entry queued. Refused while the task
-- exists again or when its result is not a failure.
-- KEYS: dead, task, result, queue, dlq, dlq index.  ARGV: id, state ('' keep).
-- Reply: {'queued', entry} | {'absent', ''} | {'busy', phase} | {'completed', ''}
local dead, task, result = KEYS[1], KEYS[2], KEYS[3]
if redis.call('EXISTS', dead) == 0 then return {'absent', ''} end
local phase = redis.call('HGET', task, 'phase')
if phase then return {'busy', phase} end
local r = redis.call('GET', result)
if r then
  local ok, doc = pcall(cjson.decode, r)
  if not ok or type(doc) ~= 'table' or doc.status ~= 'failed' then return {'completed', ''} end
end
redis.call('RENAME', dead, task)
local entry = redis.call('XADD', KEYS[4], '*', 'id', ARGV[1])
redis.call('HSET', task, 'phase', 'queued', 'entry', entry, 'reclaims', 0)
if ARGV[2] ~= '' then redis.call('HSET', task, 'state', ARGV[2]) end
redis.call('HDEL', task, 'died_at', 'owner', 'claimed_at', 'due')
redis.call('HDEL', KEYS[5], ARGV[1])
redis.call('ZREM', KEYS[6], ARGV[1])
redis.call('DEL', result)
return {'queued', entry}
