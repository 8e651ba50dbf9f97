local n = 0
for i = 2, #KEYS do
  local owner = redis.call('HGET', KEYS[i], 'user')
  if not owner or owner ~= ARGV[1] then
    n = n + redis.call('ZREM', KEYS[1], ARGV[i])
  end
end
return n
