#!lua flags=no-cluster
-- Takes a task out of the engine once its file is written (watcherctl spool export): its
-- stream entry acknowledged and deleted, its receipt, its retry wait and its hash removed.
-- Only if it is still as it was read (same phase, same entry): every check before the first
-- write.
-- KEYS: q, task, inflight, delayed
-- ARGV: group, id, entry as read, phase as read
local phase = redis.call('HGET', KEYS[2], 'phase')
if not phase then
  return {'absent', ''}
end
local entry = redis.call('HGET', KEYS[2], 'entry') or ''
if phase ~= ARGV[4] or entry ~= ARGV[3] then
  return {'changed', phase}
end
if entry ~= '' then
  redis.call('XACK', KEYS[1], ARGV[1], entry)
  redis.call('XDEL', KEYS[1], entry)
end
redis.call('ZREM', KEYS[4], ARGV[2])
redis.call('HDEL', KEYS[3], ARGV[2])
redis.call('DEL', KEYS[2])
return {'taken', phase}
