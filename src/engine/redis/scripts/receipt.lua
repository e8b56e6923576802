#!lua flags=no-cluster,allow-oom
-- RECEIPT: the worker's receipt of a run's start (attempt, pids, session), kept in the task's
-- hash for `watcherctl tasks`, only while the task is still held by that entry (a task ended
-- meanwhile is not made again). Allowed when memory is full: it replaces a value of about the
-- same size, and a held task's receipt must not fail its run.
-- KEYS: task.  ARGV: entry, receipt JSON.
-- Reply: {'kept', ''} | {'gone', ''}
if redis.call('HGET', KEYS[1], 'entry') ~= ARGV[1] then return {'gone', ''} end
redis.call('HSET', KEYS[1], 'receipt', ARGV[2])
return {'kept', ''}
