#!lua flags=no-cluster,allow-oom
-- HEARTBEATS: the freshest heartbeat of each worker asked for (of its hosts, the one that
-- wrote last), for the listener's health judgement. Reads only.
-- KEYS: none.  ARGV: (hosts key, heartbeat key prefix) pairs, one per worker.
-- Reply: {heartbeat JSON or '', ...}, one per pair
local out = {}
for i = 1, #ARGV, 2 do
  local top = redis.call('ZREVRANGE', ARGV[i], 0, 0)
  local hb = false
  if #top > 0 then hb = redis.call('GET', ARGV[i + 1] .. top[1]) end
  out[#out + 1] = hb or ''
end
return out
