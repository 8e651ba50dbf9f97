local v
local t = redis.call('TYPE', KEYS[1]).ok
if ARGV[2] == '' then
  if t ~= 'string' then return 0 end
  v = redis.call('GET', KEYS[1])
else
  if t ~= 'hash' then return 0 end
  v = redis.call('HGET', KEYS[1], ARGV[2])
end
if v and tcmp(v, ARGV[1]) <= 0 then redis.call('DEL', KEYS[1]) return 1 end
return 0
