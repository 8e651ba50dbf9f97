local n = 0
for i = 3, #ARGV do
  local owner = redis.call('HGET', ARGV[1] .. ARGV[i], 'user')
  if not owner or owner ~= ARGV[2] then
    n = n + redis.call('ZREM', KEYS[1], ARGV[i])
  end
end
return n
