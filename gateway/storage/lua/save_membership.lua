-- Store a consumer group's membership (generation, members, assignments) so
-- that a restarted gateway, or the next one to coordinate the group, carries
-- on with the same generation instead of making every member rejoin.
--
-- KEYS[1]  the group's membership hash (generation, state)
-- ARGV[1]  generation
-- ARGV[2]  the state, as the coordinator encodes it
--
-- A state is only replaced by one of the same or a later generation: the
-- gateway writes Empty states in the background, so a write may arrive
-- after a newer one. Returns 1 when stored, 0 when a newer one was there.

local stored = tonumber(redis.call('HGET', KEYS[1], 'generation') or '-1')
if tonumber(ARGV[1]) < stored then
  return 0
end
redis.call('HSET', KEYS[1], 'generation', ARGV[1], 'state', ARGV[2])
return 1
