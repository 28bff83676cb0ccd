-- Renew a coordinator's lease (see lease_acquire.lua) that its holder still has.
--
-- KEYS[1]  the hash holding the lease
-- ARGV[1]  the holder's instance ID
-- ARGV[2]  its fencing token
-- ARGV[3]  lease length, ms
--
-- Still had: this instance is the holder and the token is the one it took,
-- so nobody else held the lease since (even if it ended meanwhile). Returns
-- 1 when renewed, 0 when lost (released, or taken by another).

local held = redis.call('HMGET', KEYS[1], 'lease:instance', 'lease:token')
if held[1] ~= ARGV[1] or held[2] ~= ARGV[2] then
  return 0
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], 'lease:until', now + tonumber(ARGV[3]))
return 1
