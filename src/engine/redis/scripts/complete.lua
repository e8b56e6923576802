#!lua flags=no-cluster
-- COMPLETE: the final result, first one wins. Writes the result (kept `ttl` s), its entry on
-- the fleet's results stream, acknowledges and deletes the entry, and drops the task. A run
-- whose task already has a result is a duplicate: its entry is only acknowledged and deleted.
-- One script, so after a crash the result, the stream entry, the ack and the delete are all
-- recovered from the AOF or none is.
-- KEYS: queue, task, result, inflight, delayed, results stream.
-- ARGV: group, id, entry, result JSON, ttl s (0: kept), status, worker.
-- Reply: {'written', results entry} | {'duplicate', ''} | {'gone', ''}
local q, task, result = KEYS[1], KEYS[2], KEYS[3]
local group, id, entry = ARGV[1], ARGV[2], ARGV[3]
local ttl = tonumber(ARGV[5])
if not ttl or ttl < 0 then return redis.error_reply('ERR complete: bad ttl') end
if redis.call('EXISTS', result) == 1 then
  ack_del(q, group, entry)
  return {'duplicate', ''}
end
-- No task and no result: the result outlived its TTL, and this run is a late duplicate.
local current = redis.call('HGET', task, 'entry')
if redis.call('EXISTS', task) == 0 then
  ack_del(q, group, entry)
  return {'gone', ''}
end
if ttl > 0 then
  redis.call('SET', result, ARGV[4], 'EX', ttl)
else
  redis.call('SET', result, ARGV[4])
end
local event = redis.call('XADD', KEYS[6], '*', 'worker', ARGV[7], 'id', id, 'status', ARGV[6])
ack_del(q, group, entry)
-- The task may have moved on while this run went on (reclaimed and queued again): that entry
-- is done with too, and a retry waiting is dropped.
if current and current ~= entry then ack_del(q, group, current) end
redis.call('ZREM', KEYS[5], id)
redis.call('DEL', task)
redis.call('HDEL', KEYS[4], id)
return {'written', event}
