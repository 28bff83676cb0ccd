-- Start a share group afresh on one partition at an offset
-- (AlterShareGroupOffsets), or forget it there (DeleteShareGroupOffsets).
--
-- KEYS[1]  the partition's stream
-- KEYS[2]  its sparse offset index
-- KEYS[3]  its partition metadata hash (stream_info)
-- KEYS[4]  the group's held-records hash on this partition (share_acquire.lua)
-- ARGV[1]  group ID
-- ARGV[2]  the new start offset N; '' to forget the group on the partition
--
-- The Redis consumer group is destroyed with its pending entries (what was
-- acquired is no longer), then, for an offset, created again at the entry
-- of offset N-1 with entries-read N, as commit_offset.lua places a group.
-- Returns 1, or {-3} when finding the entry copied SEEK_BYTES without
-- getting there; it wrote nothing then: call again.

local stream, index, meta, held = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local group = ARGV[1]

local id = nil
if ARGV[2] ~= '' then
  local offset = tonumber(ARGV[2])
  local start, end_offset, first_id, last_id, sparse = stream_info(stream, meta, true)
  id = '0-0'
  if offset - 1 >= end_offset then
    id = last_id
  elseif sparse and offset - 1 >= start then
    id = sparse_position(stream, index, offset, start)
  elseif offset - 1 >= start then
    id = entry_id_at(stream, index, offset - 1, start, end_offset, first_id)
  end
  if id == nil then
    return {-3}
  end
  offset = math.max(offset, start)
  if redis.call('EXISTS', stream) == 1 then
    redis.pcall('XGROUP', 'DESTROY', stream, group)
  end
  redis.call('XGROUP', 'CREATE', stream, group, id, 'MKSTREAM', 'ENTRIESREAD', math.min(offset, end_offset))
else
  if redis.call('EXISTS', stream) == 1 then
    redis.pcall('XGROUP', 'DESTROY', stream, group)
  end
end
redis.call('DEL', held)
return 1
