local now = ARGV[1]
local new = ARGV[2]
local cur = redis.call('GET', KEYS[1])
if cur and tcmp(cur, now) > 0 and tcmp(cur, new) > 0 then new = cur end
local ttl = math.floor((tonumber(new) - tonumber(now)) / 1000) + tonumber(ARGV[3])
redis.call('SET', KEYS[1], new, 'PX', ttl)
return 1
