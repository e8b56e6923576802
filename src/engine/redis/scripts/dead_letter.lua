#!lua flags=no-cluster
-- DEAD_LETTER: the task gives up. Records the dead letter (listed by time), writes the failed
-- result and its results-stream entry when one is given, moves the task hash whole (doc and
-- state with its history) to the dead key for `dlq retry`, and acknowledges and deletes the
-- entry. Like COMPLETE, a task that already has a result is a duplicate run.
-- KEYS: queue, task, result, inflight, delayed, results stream, dlq, dlq index, dead.
-- ARGV: group, id, entry, record JSON, state ('' keep), result JSON ('' none), ttl s, worker.
-- Reply: {'dead', results entry | ''} | {'duplicate', ''} | {'gone', ''}
local q, task, result = KEYS[1], KEYS[2], KEYS[3]
local group, id, entry = ARGV[1], ARGV[2], ARGV[3]
local ttl = tonumber(ARGV[7])
if not ttl or ttl < 0 then return redis.error_reply('ERR dead_letter: bad ttl') end
if redis.call('EXISTS', result) == 1 then
  ack_del(q, group, entry)
  return {'duplicate', ''}
end
local current = redis.call('HGET', task, 'entry')
if redis.call('EXISTS', task) == 0 then
  ack_del(q, group, entry)
  return {'gone', ''}
end
local now = now_ms()
local event = ''
if ARGV[6] ~= '' then
  if ttl > 0 then
    redis.call('SET', result, ARGV[6], 'EX', ttl)
  else
    redis.call('SET', result, ARGV[6])
  end
  event = redis.call('XADD', KEYS[6], '*', 'worker', ARGV[8], 'id', id, 'status', 'failed')
end
redis.call('HSET', KEYS[7], id, ARGV[4])
redis.call('ZADD', KEYS[8], now, id)
redis.call('HSET', task, 'phase', 'dead', 'died_at', now)
if ARGV[5] ~= '' then redis.call('HSET', task, 'state', ARGV[5]) end
redis.call('HDEL', task, 'owner', 'entry', 'claimed_at', 'due')
redis.call('RENAME', task, KEYS[9])
ack_del(q, group, entry)
if current and current ~= entry then ack_del(q, group, current) end
redis.call('ZREM', KEYS[5], id)
redis.call('HDEL', KEYS[4], id)
return {'dead', event}
