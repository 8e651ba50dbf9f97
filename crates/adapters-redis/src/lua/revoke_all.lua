local now = ARGV[1]
-- The members are read again: unless they are exactly those whose keys were declared,
-- nothing is written and they are returned, for the caller to call again with their keys.
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[3], '+inf')
local same = #ids == #KEYS - 1
if same then
  for i, id in ipairs(ids) do
    if ARGV[3 + i] ~= id then same = false break end
  end
end
if not same then return ids end
local n = 0
for i = 2, #KEYS do
  local v = redis.call('HMGET', KEYS[i], 'expires', 'status', 'user')
  if v[1] and tcmp(v[1], now) > 0 and v[2] ~= 'revoked' and v[3] == ARGV[2] then
    redis.call('HSET', KEYS[i], 'status', 'revoked', 'revoked', now)
    redis.call('HINCRBY', KEYS[i], 'version', 1)
    n = n + 1
  end
end
return n
