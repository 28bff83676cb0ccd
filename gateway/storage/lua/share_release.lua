-- Release what a share-group member still holds on one partition (its
-- share session closed): the records are available to others at once.
--
-- KEYS[1]  the partition's stream
-- ARGV[1]  group ID
-- ARGV[2]  member ID
-- ARGV[3]  at most this many records per call
--
-- Returns how many it released; the caller calls again while that is
-- ARGV[3]. The Redis consumer is deleted once it holds nothing.

local stream, group, member, cap = KEYS[1], ARGV[1], ARGV[2], tonumber(ARGV[3])
local AVAILABLE, AVAILABLE_IDLE = 'krg-share-available', 315360000000

if redis.call('EXISTS', stream) == 0 then
  return 0
end
local ok, pending = pcall(redis.call, 'XPENDING', stream, group, '-', '+', cap, member)
if not ok then
  return 0 -- no such group yet
end
for _, entry in ipairs(pending) do
  redis.call('XCLAIM', stream, group, AVAILABLE, 0, entry[1], 'IDLE', AVAILABLE_IDLE, 'JUSTID')
end
if #pending < cap then
  redis.call('XGROUP', 'DELCONSUMER', stream, group, member)
end
return #pending
