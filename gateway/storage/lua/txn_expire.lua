-- Forget a transactional ID unused for transactional.id.expiration.ms
-- (Kafka's default: 7 days), as Kafka's coordinator removes it: only while
-- no transaction is under way (Empty, CompleteCommit, CompleteAbort).
--
-- KEYS[1]  the transactional ID's state hash (txn_init.lua)
-- ARGV[1]  the writer's fencing token, '-' when not checked
-- ARGV[2]  the expiration, ms
--
-- The coordinator's lease:* fields stay, so its fencing token never goes
-- down (a gateway with an old token stays refused). Returns 1 when
-- forgotten, 0 when the ID is in use or was used since, NOT_COORDINATOR.

local NOT_COORDINATOR = 16

local txn = KEYS[1]
local h = redis.call('HMGET', txn, 'lease:token', 'state', 'updated_ms')
if ARGV[1] ~= '-' and tonumber(ARGV[1]) < tonumber(h[1] or '0') then
  return NOT_COORDINATOR
end
local state = h[2]
if state ~= 'Empty' and state ~= 'CompleteCommit' and state ~= 'CompleteAbort' then
  return 0
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if tonumber(h[3]) + tonumber(ARGV[2]) > now then
  return 0
end
local fields = redis.call('HKEYS', txn)
for i = 1, #fields do
  if string.sub(fields[i], 1, 6) ~= 'lease:' then
    redis.call('HDEL', txn, fields[i])
  end
end
return 1
