#!lua flags=no-cluster,allow-oom
-- LISTENER_LOCK: one listener serves a fleet. Takes or renews the lock for `ms` when it is
-- free or this holder's; another holder keeps it. Allowed when memory is full: it replaces a
-- value of the same size.
-- KEYS: lock.  ARGV: holder, ms.
-- Reply: {'held', ''} | {'taken', holder}
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return {'taken', holder} end
redis.call('SET', KEYS[1], ARGV[1], 'PX', math.floor(tonumber(ARGV[2]) or 30000))
return {'held', ''}
