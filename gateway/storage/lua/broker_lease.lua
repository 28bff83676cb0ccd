-- Register or renew a gateway's broker lease, and answer the live brokers.
--
-- KEYS[1]  registrations: node ID -> registration (JSON with "instance")
-- KEYS[2]  leases: sorted set, node ID scored by when its lease ends (ms)
-- ARGV[1]  node ID
-- ARGV[2]  the gateway process's instance ID (random, one per start)
-- ARGV[3]  the registration (JSON)
-- ARGV[4]  lease length, ms
-- ARGV[5]  most live brokers answered (bounds the reply)
--
-- Time is Redis's clock, so gateways' clocks never need to agree. Leases
-- that ended are dropped first (at most 100 a call; the rest on the next
-- calls). A node ID whose lease is held by another instance is not taken,
-- as Kafka refuses a duplicate broker registration until the old one's
-- session expires. Returns {1 or 0 (registered or not), ms until the
-- holder's lease ends, registration...} with the live brokers' registrations.

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local ended = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 100)
for _, node in ipairs(ended) do
  redis.call('ZREM', KEYS[2], node)
  redis.call('HDEL', KEYS[1], node)
end

local registered, wait = 1, 0
local held = redis.call('HGET', KEYS[1], ARGV[1])
if held and cjson.decode(held)['instance'] ~= ARGV[2] then
  registered = 0
  wait = tonumber(redis.call('ZSCORE', KEYS[2], ARGV[1]) or now) - now
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[4]), ARGV[1])
end

local reply = {registered, wait}
local live = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. now, '+inf', 'LIMIT', 0, tonumber(ARGV[5]))
if #live > 0 then
  local registrations = redis.call('HMGET', KEYS[1], unpack(live))
  for _, registration in ipairs(registrations) do
    if registration then
      reply[#reply + 1] = registration
    end
  end
end
return reply
