local cur = redis.call('GET', KEYS[1])
local old = ''
if cur then
  local exp, tenant = string.match(cur, '^(-?%d+):(.*)$')
  if exp and tcmp(exp, ARGV[1]) > 0 then return 'taken:' .. (tenant or '') end
  old = tenant or ''
end
redis.call('SET', KEYS[1], ARGV[2] .. ':' .. ARGV[3], 'PX', ARGV[4])
return old
