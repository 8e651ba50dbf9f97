local cur = redis.call('GET', KEYS[1])
if not cur then return 0 end
local exp = string.match(cur, '^(-?%d+):')
if exp and tcmp(exp, ARGV[1]) <= 0 then redis.call('DEL', KEYS[1]) return 1 end
return 0
