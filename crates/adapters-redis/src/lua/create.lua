redis.call('DEL', KEYS[1])
local fields = {}
for i = 6, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
-- Entries long expired by this writer's clock are only candidates: one goes when its session
-- key is gone (expired on the server's own clock, or purged), since another instance's clock,
-- or this one's after a step back, may still find that session live.
local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[2], 'LIMIT', 0, 64)
for _, id in ipairs(old) do
  if redis.call('EXISTS', ARGV[5] .. id) == 0 then redis.call('ZREM', KEYS[2], id) end
end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
local ttl = redis.call('PTTL', KEYS[2])
if ttl < tonumber(ARGV[1]) then redis.call('PEXPIRE', KEYS[2], ARGV[1]) end
return 1
