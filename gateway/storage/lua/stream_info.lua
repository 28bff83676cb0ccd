-- Shared prelude (prepended to scripts that need it by the storage layer):
-- the stream's log start offset, end offset, first entry ID and last ID.
--
-- entries-added counts every entry ever added, so it is the end offset (the
-- next offset to be assigned); the log start offset is that minus the
-- current length, which holds while entries leave only from the head
-- (XTRIM), never from the middle (XDEL).
--
-- XINFO STREAM copies the first and last entries into its reply (1.4-2.7
-- ms with 1 MiB entries), so the partition's metadata hash keeps what it
-- would say as of the gateway's last append or refresh: end_offset
-- (entries-added), length, first_id and last_id. They are trusted while
-- the stream has the same length and no entry newer than last_id
-- (XREVRANGE + (last_id returns nothing): nobody appended, trimmed or
-- recreated it with XADD *. Otherwise, or when the meta lacks them (data of
-- older gateways), XINFO STREAM is asked and the meta refreshed when the
-- caller may write (`writes`; functions flagged no-writes may not, so they
-- ask XINFO until a writing caller has refreshed the meta). Not
-- detected: a stream deleted and recreated with as many entries as before,
-- all with IDs at or below last_id (explicit IDs, or XADD * within the
-- millisecond of the gateway's last append), and XSETID.
local function stream_info_refresh(key, meta, writes)
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
  if writes then
    redis.call('HSET', meta, 'end_offset', added, 'length', length, 'first_id', first_id, 'last_id', last_id)
  end
  return added - length, added, first_id, last_id
end

local function stream_info(key, meta, writes)
  if redis.call('EXISTS', key) == 0 then
    return 0, 0, '0-0', '0-0'
  end
  local known = redis.call('HMGET', meta, 'end_offset', 'length', 'first_id', 'last_id')
  local end_offset, length, first_id, last_id = tonumber(known[1]), tonumber(known[2]), known[3], known[4]
  if end_offset == nil or length == nil or not first_id or not last_id
      or redis.call('XLEN', key) ~= length
      or #redis.call('XREVRANGE', key, '+', '(' .. last_id, 'COUNT', 1) > 0 then
    return stream_info_refresh(key, meta, writes)
  end
  return end_offset - length, end_offset, first_id, last_id
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

-- The ID of the entry at `offset` (start <= offset < end_offset): from the
-- nearest index point forward, or back from the newest entry when that is
-- closer. Kafka consumers fetched through the region before committing in
-- it, so the index usually bounds the scan to one interval.
local function entry_id_at(stream, index, offset, start, end_offset, first_id)
  local seek_offset, seek_id = seek_point(index, offset, start, first_id)
  local skip = offset - seek_offset
  local tail = end_offset - offset
  if tail <= skip then
    local newest = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', tail)
    return newest[#newest][1]
  end
  local found = redis.call('XRANGE', stream, seek_id, '+', 'COUNT', skip + 1)
  return found[#found][1]
end

-- The offset that follows entry ID `id`: how far a reader that has seen
-- every entry up to and including `id` has come. Binary search of the index
-- (its members rise with their scores) for the last point at or before the
-- ID, then a count of the entries from there.
local function offset_after_id(stream, index, id, start, end_offset, first_id, last_id)
  if id_less_or_equal(last_id, id) then
    return end_offset
  end
  local low, high = 0, redis.call('ZCARD', index) - 1
  local point_offset, point_id = start, first_id
  while low <= high do
    local middle = math.floor((low + high) / 2)
    local point = redis.call('ZRANGE', index, middle, middle, 'WITHSCORES')
    if id_less_or_equal(point[1], id) then
      if tonumber(point[2]) >= start then
        point_offset, point_id = tonumber(point[2]), point[1]
      end
      low = middle + 1
    else
      high = middle - 1
    end
  end
  if not id_less_or_equal(point_id, id) then
    return start -- the ID is before the first entry
  end
  return point_offset + #redis.call('XRANGE', stream, point_id, id)
end
