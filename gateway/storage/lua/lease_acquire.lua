-- Take a coordinator's lease on one key (a group; later a transactional ID
-- or a share group), or keep it.
--
-- KEYS[1]  the hash that holds the lease beside the state it guards (fields
--          lease:node, lease:instance, lease:until, lease:token), so the
--          state's own scripts check the token in the same slot
-- ARGV[1]  the taker's node ID
-- ARGV[2]  the taker's instance ID (random, one per gateway start)
-- ARGV[3]  lease length, ms
--
-- The fencing token (lease:token) goes up by one each time the lease passes
-- to a holder that did not hold it last, and never down: it stays when the
-- lease ends or is released. The instance that held it last keeps its token,
-- even after its lease ended, since nobody wrote with a later one meanwhile.
-- Time is Redis's clock. Returns {1, token} when taken or kept, or
-- {0, the holder's node ID, ms until its lease ends} when another holds it.

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local held = redis.call('HMGET', KEYS[1], 'lease:node', 'lease:instance', 'lease:until', 'lease:token')
local node, instance, ends, token = held[1], held[2], tonumber(held[3] or '0'), tonumber(held[4] or '0')

if instance ~= ARGV[2] then
  if instance and ends > now then
    return {0, tonumber(node), ends - now}
  end
  token = token + 1
end
redis.call('HSET', KEYS[1], 'lease:node', ARGV[1], 'lease:instance', ARGV[2],
           'lease:until', now + tonumber(ARGV[3]), 'lease:token', token)
return {1, token}
