-- A share group's share-partition start offset (SPSO) and lag on one partition.
--
-- KEYS[1]  the partition's stream
-- KEYS[2]  its sparse offset index
-- KEYS[3]  its partition metadata hash (stream_info)
-- KEYS[4]  the group's held-records hash on this partition (share_acquire.lua)
-- ARGV[1]  group ID
-- ARGV[2], ARGV[3]  where a counting walk goes on (offset, ID), after a {-3}
--
-- The start offset is the offset of the oldest pending entry (a record
-- acquired and not yet acknowledged), else the group's next one to deliver;
-- the lag counts the records not yet delivered plus those pending.
-- Returns {start, lag}, {-1, -1} when the partition has no such group, or
-- {-3, offset, ID} when counting copied SEEK_BYTES of entries: call again.

local stream, index, meta, held = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local group = ARGV[1]

if redis.call('EXISTS', stream) == 0 then
  return {-1, -1}
end
local info = nil
for _, candidate in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
  local fields = {}
  for i = 1, #candidate, 2 do
    fields[candidate[i]] = candidate[i + 1]
  end
  if fields['name'] == group then
    info = fields
  end
end
if info == nil then
  return {-1, -1}
end

local start, end_offset, first_id, last_id, sparse = stream_info(stream, meta)
local function offset_after(id)
  if sparse then
    return sparse_offset_after_id(id, start, end_offset)
  end
  return offset_after_id(stream, index, id, start, end_offset, first_id, last_id, false,
                         tonumber(ARGV[2]), ARGV[3])
end

local delivered, walk = tonumber(info['entries-read']), nil
if delivered == nil then
  delivered, walk = offset_after(info['last-delivered-id'])
  if delivered == nil then
    return {-3, walk.pos, walk.id}
  end
end
local pending = tonumber(info['pending'])
local spso = math.max(delivered, start)
if pending > 0 then
  local oldest = redis.call('XPENDING', stream, group)[2]
  local known = redis.call('HGET', held, 'i:' .. oldest)
  if known then
    spso = tonumber(known)
  else
    local after
    after, walk = offset_after(oldest)
    if after == nil then
      return {-3, walk.pos, walk.id}
    end
    spso = after - 1
  end
end
return {spso, math.max(0, end_offset - delivered) + pending}
