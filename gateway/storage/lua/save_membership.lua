-- Store a consumer group's membership (generation, members, assignments) so
-- that a restarted gateway, or the next one to coordinate the group, carries
-- on with the same generation instead of making every member rejoin.
--
-- KEYS[1]  the group's membership hash (generation, state; and the group
--          coordinator's lease, lease:*, see lease_acquire.lua)
-- ARGV[1]  generation
-- ARGV[2]  the state, as the coordinator encodes it
-- ARGV[3]  the writer's fencing token (absent: not checked)
--
-- A writer whose token is below the lease's has lost the group to another
-- gateway since (it was paused or cut off past its lease): it writes
-- nothing. A state is only replaced by one of the same or a later
-- generation: the gateway writes Empty states in the background, so a write
-- may arrive after a newer one. Returns 1 when stored, 0 when a newer one
-- was there, -1 when fenced.

if ARGV[3] and tonumber(ARGV[3]) < tonumber(redis.call('HGET', KEYS[1], 'lease:token') or '0') then
  return -1
end
local stored = tonumber(redis.call('HGET', KEYS[1], 'generation') or '-1')
if tonumber(ARGV[1]) < stored then
  return 0
end
redis.call('HSET', KEYS[1], 'generation', ARGV[1], 'state', ARGV[2])
return 1
