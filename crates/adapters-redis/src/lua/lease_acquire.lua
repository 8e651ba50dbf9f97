local cur = redis.call('HMGET', KEYS[1], 'holder', 'until')
if cur[1] and cur[1] ~= ARGV[1] and cur[2] and tcmp(cur[2], ARGV[2]) > 0 then return 0 end
redis.call('HSET', KEYS[1], 'holder', ARGV[1], 'until', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
