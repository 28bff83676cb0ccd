-- Shared prelude (prepended to scripts that need it by the storage layer):
-- the stream's log start offset, end offset, first entry ID and last ID.
--
-- entries-added counts every entry ever added, so it is the end offset (the
-- next offset to be assigned); the log start offset is that minus the
-- current length, which holds while entries leave only from the head
-- (XTRIM), never from the middle (XDEL).
local function stream_info(key)
  if redis.call('EXISTS', key) == 0 then
    return 0, 0, '0-0', '0-0'
  end
  local info = redis.call('XINFO', 'STREAM', key)
  local length, added, first_id, last_id = 0, 0, '0-0', '0-0'
  for i = 1, #info, 2 do
    local name = info[i]
    if name == 'length' then
      length = tonumber(info[i + 1])
    elseif name == 'entries-added' then
      added = tonumber(info[i + 1])
    elseif name == 'recorded-first-entry-id' then
      first_id = info[i + 1]
    elseif name == 'last-generated-id' then
      last_id = info[i + 1]
    end
  end
  return added - length, added, first_id, last_id
end

-- Entry IDs compare as (milliseconds, sequence) pairs.
local function parse_id(id)
  local dash = string.find(id, '-', 1, true)
  return tonumber(string.sub(id, 1, dash - 1)), tonumber(string.sub(id, dash + 1))
end

local function id_less_or_equal(a, b)
  local a_ms, a_seq = parse_id(a)
  local b_ms, b_seq = parse_id(b)
  return a_ms < b_ms or (a_ms == b_ms and a_seq <= b_seq)
end

-- The nearest known position at or before `offset`: an index point, or the
-- head of the stream when the index has nothing above the log start.
local function seek_point(index, offset, start, first_id)
  local point = redis.call('ZRANGE', index, offset, '-inf', 'BYSCORE', 'REV', 'LIMIT', 0, 1, 'WITHSCORES')
  if #point == 2 and tonumber(point[2]) >= start then
    return tonumber(point[2]), point[1]
  end
  return start, first_id
end
