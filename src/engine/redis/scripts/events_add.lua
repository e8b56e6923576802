#!lua flags=no-cluster
-- EVENTS_ADD: the listener's events, added to the events stream once each: an event whose id
-- was written since the listener's last commit is not added again (a restart after a crash
-- makes the events of the results it had not acknowledged again, under the same ids).
-- KEYS: events stream, events written.  ARGV: (id, JSON) pairs.
-- Reply: {added, already} counts
local added, already = 0, 0
for i = 1, #ARGV, 2 do
  if redis.call('SISMEMBER', KEYS[2], ARGV[i]) == 1 then
    already = already + 1
  else
    redis.call('XADD', KEYS[1], '*', 'id', ARGV[i], 'event', ARGV[i + 1])
    redis.call('SADD', KEYS[2], ARGV[i])
    added = added + 1
  end
end
return {added, already}
