local now = ARGV[1]
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[4], '+inf')
local n = 0
for _, id in ipairs(ids) do
  local key = ARGV[3] .. id
  local v = redis.call('HMGET', key, 'expires', 'status', 'user')
  if v[1] and tcmp(v[1], now) > 0 and v[2] ~= 'revoked' and v[3] == ARGV[2] then
    redis.call('HSET', key, 'status', 'revoked', 'revoked', ARGV[1])
    redis.call('HINCRBY', key, 'version', 1)
    n = n + 1
  end
end
return n
