if redis.call('TYPE', KEYS[1]).ok ~= 'hash' then return false end
local v = redis.call('HMGET', KEYS[1], 'expires', 'user')
if v[1] and tcmp(v[1], ARGV[1]) <= 0 then
  redis.call('DEL', KEYS[1])
  return v[2] or ''
end
return false
