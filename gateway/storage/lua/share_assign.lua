-- Store a share group's partition assignment (computed by the gateway from
-- the group's hash, gateway/coordinator/share_assign.py) for the group epoch
-- it was computed from, so the next computation keeps what members hold.
--
-- KEYS[1]  the group's hash (share_heartbeat.lua): the assignment is its
--          'assigned' field (the epoch) and 'a:<member ID>' -> 'topic:partition,...'
-- ARGV[1]  the group epoch the assignment was computed from
-- ARGV[2k], ARGV[2k+1]  member ID, its partitions
--
-- Returns 1 when stored, 0 when the epoch moved on (the assignment is then
-- computed again from the new membership).

local key, epoch = KEYS[1], ARGV[1]
if redis.call('HGET', key, 'epoch') ~= epoch then
  return 0
end
-- The hash holds at most MAX_MEMBERS members and their assignments.
local all = redis.call('HKEYS', key)
for i = 1, #all do
  if string.sub(all[i], 1, 2) == 'a:' then
    redis.call('HDEL', key, all[i])
  end
end
for i = 2, #ARGV - 1, 2 do
  redis.call('HSET', key, 'a:' .. ARGV[i], ARGV[i + 1])
end
redis.call('HSET', key, 'assigned', epoch)
return 1
