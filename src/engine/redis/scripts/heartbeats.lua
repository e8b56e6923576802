#!lua flags=no-cluster,allow-oom
-- HEARTBEATS: every host's heartbeat of each worker asked for, the freshest first (by the
-- score of its hosts set: the server's time of each host's last heartbeat), for the
-- listener's health judgement and its series per host. A host whose heartbeat has expired
-- is left out. Reads only.
-- KEYS: none.  ARGV: (hosts key, heartbeat key prefix) pairs, one per worker.
-- Reply: {{host, heartbeat JSON, host, heartbeat JSON, ...}, ...}, one list per pair
local out = {}
for i = 1, #ARGV, 2 do
  local beats = {}
  for _, host in ipairs(redis.call('ZREVRANGE', ARGV[i], 0, -1)) do
    local hb = redis.call('GET', ARGV[i + 1] .. host)
    if hb then
      beats[#beats + 1] = host
      beats[#beats + 1] = hb
    end
  end
  out[#out + 1] = beats
end
return out
