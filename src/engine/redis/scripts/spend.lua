#!lua flags=no-cluster,allow-oom
-- SPEND: adds `usd` to the worker's shared ledger in the current minute (server clock) and
-- returns the sum over the last `window` minutes; older minutes are dropped.
-- KEYS: spend.  ARGV: usd, window minutes.
-- Reply: the sum, as a string
local usd, window = tonumber(ARGV[1]), tonumber(ARGV[2])
if not usd or not window or window < 1 then return redis.error_reply('ERR spend: bad args') end
local minute = math.floor(now_ms() / 60000)
local oldest = minute - window + 1
if usd ~= 0 then redis.call('HINCRBYFLOAT', KEYS[1], minute, ARGV[1]) end
local all = redis.call('HGETALL', KEYS[1])
local total = 0
for i = 1, #all, 2 do
  if tonumber(all[i]) < oldest then
    redis.call('HDEL', KEYS[1], all[i])
  else
    total = total + tonumber(all[i + 1])
  end
end
redis.call('PEXPIRE', KEYS[1], (window + 1) * 60000)
return tostring(total)
