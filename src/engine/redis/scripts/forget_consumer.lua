#!lua flags=no-cluster,allow-oom
-- FORGET_CONSUMER: removes a consumer from the group only when it holds no entry: deleting
-- one that does would drop its pending entries, and their tasks with them.
-- KEYS: queue.  ARGV: group, consumer.
-- Reply: {'deleted' | 'absent' | 'holds', pending count}
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local name, pending = false, 0
  for i = 1, #c, 2 do
    if c[i] == 'name' then name = c[i + 1] elseif c[i] == 'pending' then pending = c[i + 1] end
  end
  if name == ARGV[2] then
    if pending > 0 then return {'holds', pending} end
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
    return {'deleted', 0}
  end
end
return {'absent', 0}
