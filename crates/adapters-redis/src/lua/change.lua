local now = ARGV[1]
local exp = redis.call('HGET', KEYS[1], 'expires')
if not exp or tcmp(exp, now) <= 0 then return {'nf'} end
local st = redis.call('HGET', KEYS[1], 'status')
local op = ARGV[2]
local function bump() redis.call('HINCRBY', KEYS[1], 'version', 1) end
local function seen()
  if tcmp(now, redis.call('HGET', KEYS[1], 'seen')) > 0 then
    redis.call('HSET', KEYS[1], 'seen', ARGV[1]) return true
  end
  return false
end
if op == 'touch' then
  if st == 'revoked' then return {'st', st} end
  if seen() then bump() end
elseif op == 'refresh' then
  if st ~= 'active' then return {'st', st} end
  seen()
  redis.call('HSET', KEYS[1], 'refreshed', ARGV[1])
  bump()
elseif op == 'activate' then
  if st ~= 'pending_consent' then return {'st', st} end
  redis.call('HSET', KEYS[1], 'status', 'active')
  bump()
elseif op == 'revoke' then
  if st == 'revoked' then return {'st', st} end
  redis.call('HSET', KEYS[1], 'status', 'revoked', 'revoked', ARGV[1])
  bump()
else
  return redis.error_reply('ERR unknown op ' .. op)
end
local r = redis.call('HGETALL', KEYS[1])
table.insert(r, 1, 'ok')
return r
