#!lua flags=no-cluster,allow-oom
-- DISCARD: a held entry is dropped for good: its task was finished by another run, or is not
-- to run at all. Holder only, as REQUEUE. The task goes with its entry when the entry is the
-- task's own (an entry the task moved on from leaves the task alone). Allowed when memory is
-- full: it only frees memory.
-- KEYS: queue, task, inflight.  ARGV: group, consumer, id, entry.
-- Reply: {'discarded', ''} | {'lost', holder} | {'gone', ''}
local q, task = KEYS[1], KEYS[2]
local group, consumer, id, entry = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local h = holder(q, group, entry)
if not h then return {'gone', ''} end
if h ~= consumer then return {'lost', h} end
if redis.call('HGET', task, 'entry') == entry then
  redis.call('DEL', task)
  redis.call('HDEL', KEYS[3], id)
end
ack_del(q, group, entry)
return {'discarded', ''}
