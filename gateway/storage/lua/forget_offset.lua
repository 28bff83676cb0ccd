-- Remove a consumer group's committed offset from one partition: the Redis
-- consumer group of that name (with its consumers and pending entries, as
-- Kafka's group deletion removes everything of the group) and its commit
-- metadata.
--
-- KEYS[1]  the partition's stream
-- KEYS[2]  its commit metadata hash
-- ARGV[1]  group ID
--
-- Returns 1 when there was a Redis consumer group to destroy, else 0.

local stream, commits = KEYS[1], KEYS[2]
local destroyed = 0
if redis.call('EXISTS', stream) == 1 then
  destroyed = redis.call('XGROUP', 'DESTROY', stream, ARGV[1])
end
redis.call('HDEL', commits, ARGV[1])
return destroyed
