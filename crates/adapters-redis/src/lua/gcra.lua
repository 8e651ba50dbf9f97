local now
if ARGV[1] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[1])
end
local T, tau, cost = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local function idiv(a, b)
  local q = math.floor(a / b)
  if q * b > a then q = q - 1 elseif (q + 1) * b <= a then q = q + 1 end
  return q
end
local stored = redis.call('GET', KEYS[1])
local tat = now
if stored then tat = math.max(tonumber(stored), now) end
local new_tat = tat + T * cost
local allow_at = new_tat - tau
if now < allow_at then
  return {0, math.max(0, idiv(tau - (tat - now), T)), tat - now, allow_at - now}
end
if ARGV[5] == '1' then
  local ttl = idiv(new_tat - now, 1000) + tonumber(ARGV[6])
  redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', ttl)
end
return {1, math.max(0, idiv(tau - (new_tat - now), T)), new_tat - now, 0}
