-- A gateway stopping cleanly leaves the broker registry at once.
--
-- KEYS[1]  registrations, KEYS[2]  leases (see broker_lease.lua)
-- ARGV[1]  node ID
-- ARGV[2]  the leaving instance's ID: a registration another instance
--          holds by now (this one's lease ended meanwhile) is left alone
--
-- Returns 1 when removed, 0 when the node ID was not this instance's.

local held = redis.call('HGET', KEYS[1], ARGV[1])
if not held or cjson.decode(held)['instance'] ~= ARGV[2] then
  return 0
end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
