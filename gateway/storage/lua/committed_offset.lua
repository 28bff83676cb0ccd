-- A consumer group's committed offset on one partition, read from the Redis
-- consumer group of the same name, whoever moved it last: a Kafka commit or
-- Redis-native XREADGROUP readers.
--
-- KEYS[1]  the partition's stream
-- KEYS[2]  its sparse offset index
-- KEYS[3]  its commit metadata hash (field: group)
-- KEYS[4]  its partition metadata hash (stream_info)
-- ARGV[1]  group ID
--
-- Returns {offset (an integer, or the committed digits as a string),
-- leader epoch, metadata}, or {-1, -1, ''} when the stream
-- has no such group, or {-3, offset, ID} when working the offset out
-- copied SEEK_BYTES of entries without getting there: call again with that
-- offset and ID as ARGV[2] and ARGV[3], where the count goes on (this
-- function may not write, so it leaves no index points). The offset is the group's entries-read; when Redis has
-- lost count (a group created natively at an explicit ID), it is worked out
-- from last-delivered-id through the offset index. Epoch and metadata are
-- those of the last Kafka commit while the group is still where that commit
-- left it, otherwise -1 and ''.

local stream, index, commits, meta = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local group = ARGV[1]

if redis.call('EXISTS', stream) == 0 then
  return {-1, -1, ''}
end

local last_delivered, entries_read = nil, false
for _, info in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
  local fields = {}
  for i = 1, #info, 2 do
    fields[info[i]] = info[i + 1]
  end
  if fields['name'] == group then
    last_delivered, entries_read = fields['last-delivered-id'], fields['entries-read']
    break
  end
end
if last_delivered == nil then
  return {-1, -1, ''}
end

local offset = entries_read
if not offset then
  local start, end_offset, first_id, last_id, sparse = stream_info(stream, meta)
  local walk
  if sparse then
    offset = sparse_offset_after_id(last_delivered, start, end_offset)
  else
    offset, walk = offset_after_id(stream, index, last_delivered, start, end_offset, first_id, last_id,
                                   false, tonumber(ARGV[2]), ARGV[3])
  end
  if offset == nil then
    return {-3, walk.pos, walk.id} -- counting copied SEEK_BYTES (stream_info.lua): call again
  end
end

local record = redis.call('HGET', commits, group)
if record then
  local at, epoch, _, metadata = string.match(record, '^(%-?%d+):(%-?%d+):(%-?%d+):(.*)$')
  if at and tonumber(at) == tonumber(offset) then
    -- The commit's own digits, not entries-read: Redis hands integers to
    -- Lua as doubles, which round offsets above 2^53. (Only a native
    -- XGROUP SETID within one rounding step of the commit could tell them
    -- apart, above 2^53.)
    return {at, tonumber(epoch), metadata}
  end
end
return {offset, -1, ''}
