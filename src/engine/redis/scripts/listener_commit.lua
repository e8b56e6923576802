#!lua flags=no-cluster,allow-oom
-- LISTENER_COMMIT: the listener's turn made durable in one step: the results it took
-- acknowledged in its group, its state saved, the set of events written since the last
-- commit emptied (their results acknowledged, they cannot be made again), and its lock
-- renewed. Refused (nothing written) when another listener holds the lock. Allowed when
-- memory is full: it frees more than it writes (the state replaces itself).
-- KEYS: lock, state, results stream, events written.
-- ARGV: holder, lock ms, state JSON, group, entry ids acknowledged...
-- Reply: {'committed', n acknowledged} | {'superseded', holder}
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return {'superseded', holder} end
local ms = tonumber(ARGV[2])
if not ms then return redis.error_reply('ERR listener_commit: bad args') end
-- XACK in chunks: unpack is bounded by Lua's stack.
local acked, chunk = 0, {}
for i = 5, #ARGV do
  chunk[#chunk + 1] = ARGV[i]
  if #chunk == 500 or i == #ARGV then
    acked = acked + redis.call('XACK', KEYS[3], ARGV[4], unpack(chunk))
    chunk = {}
  end
end
redis.call('SET', KEYS[2], ARGV[3])
redis.call('DEL', KEYS[4])
redis.call('SET', KEYS[1], ARGV[1], 'PX', math.floor(ms))
return {'committed', acked}
