#!lua flags=no-cluster
-- ENQUEUE: queue a task once. Refused while its task or its result exists (idempotent by id:
-- a producer whose reply was lost sends it again). Refused, with an OOM error, above the
-- enqueue memory limit, so that admitted work can still finish below maxmemory.
-- KEYS: task, result, queue, workers.  ARGV: id, doc, state ('' none), worker, limit (% of
-- maxmemory, 0 off).
-- Reply: {'queued', entry} | {'duplicate', phase | 'result'}
local limit = tonumber(ARGV[5])
if not limit then return redis.error_reply('ERR enqueue: bad memory limit') end
local phase = redis.call('HGET', KEYS[1], 'phase')
if phase then return {'duplicate', phase} end
if redis.call('EXISTS', KEYS[2]) == 1 then return {'duplicate', 'result'} end
if limit > 0 then
  local info = redis.call('INFO', 'memory')
  local used = tonumber(string.match(info, 'used_memory:(%d+)')) or 0
  local max = tonumber(string.match(info, 'maxmemory:(%d+)')) or 0
  if max > 0 and used * 100 > max * limit then
    return redis.error_reply(string.format(
      'OOM enqueue refused: used_memory %d is above %d%% of maxmemory %d', used, limit, max))
  end
end
local now = now_ms()
local entry = redis.call('XADD', KEYS[3], '*', 'id', ARGV[1])
redis.call('HSET', KEYS[1], 'doc', ARGV[2], 'phase', 'queued', 'entry', entry,
  'queued_at', now, 'reclaims', 0)
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'state', ARGV[3]) end
redis.call('SADD', KEYS[4], ARGV[4])
return {'queued', entry}
