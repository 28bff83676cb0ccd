-- Read records from a partition's stream starting at a Kafka offset.
--
-- KEYS[1]  the partition's stream
-- KEYS[2]  its sparse offset index
-- KEYS[3]  its partition metadata hash (stream_info)
-- ARGV[1]  offset to read from
-- ARGV[2]  maximum number of entries; 0 returns the offsets without seeking
-- ARGV[3]  maximum bytes (field names and values)
-- ARGV[4]  1: the first entry comes whatever its size (KIP-74); 0: only
--          entries within maximum bytes
--
-- Returns {status, log_start_offset, end_offset, last_id, entries, sparse, epochs}
--   status 0: entries start at the offset asked for (possibly none)
--   status 1: the offset is outside [log_start_offset, end_offset]
--   status 2: the seek copied SEEK_BYTES of entries without getting there
--             (a region without index points, such as one added natively);
--             it left an index point where it stopped: call again
--
-- What one call copies out of the stream is bounded in bytes: the seek at
-- most SEEK_BYTES forward after SEEK_BACK_BYTES (plus maximum bytes) back
-- from the end, and the read its maximum bytes plus one step. Steps are
-- sized from the biggest entry seen (stream_info.lua).
--
-- sparse is 1 for a compacted topic's partition: its entries' offsets are
-- their IDs' sequence numbers, with holes (stream_info.lua); the entries
-- are those from the offset on, the first of which may be at a later
-- offset. 0 otherwise: the entries are at offset, offset + 1, ...
-- epochs: the partition's leader epochs, 'epoch:start_offset,...'
-- (stream_info.lua), a new one stored first if the leader changed.

local stream, index, meta = KEYS[1], KEYS[2], KEYS[3]
local offset = tonumber(ARGV[1])
local max_entries = tonumber(ARGV[2])
local max_bytes = tonumber(ARGV[3])
local min_one = ARGV[4] == '1'

local start, end_offset, first_id, last_id, sparse = stream_info(stream, meta, true)
local sparse_flag = sparse and 1 or 0
local epochs = leader_epochs(meta, end_offset, end_offset > 0)
if offset < start or offset > end_offset then
  return {1, start, end_offset, last_id, {}, sparse_flag, epochs}
end
if offset == end_offset or max_entries <= 0 then
  return {0, start, end_offset, last_id, {}, sparse_flag, epochs}
end

local entries = {}
local size = 0

-- Appends found[1..] to entries until max_entries or max_bytes is reached
-- (true when it is).
local function take(found)
  for i = 1, #found do
    if #entries >= max_entries then
      return true
    end
    size = size + entry_size(found[i]) - #found[i][1]
    if size > max_bytes and (#entries > 0 or not min_one) then
      return true
    end
    entries[#entries + 1] = found[i]
  end
  return #entries >= max_entries
end

-- Reads in steps from position `from` (an XRANGE start): the first sized
-- from `average` (bytes per entry a seek saw; 0: unknown), the later ones
-- from the entries read, so that max_bytes stops the read within a step of
-- what it returns.
local function read_from(from, average)
  local want = FIRST_STEP
  while true do
    if average > 0 then
      want = math.min(want * 4, math.floor((max_bytes - size) / average) + 1)
    end
    want = math.max(1, math.min(want, max_entries - #entries))
    local found = redis.call('XRANGE', stream, from, '+', 'COUNT', want)
    if take(found) or #found < want then
      return
    end
    from = '(' .. found[#found][1]
    average = size / #entries
  end
end

if sparse then
  -- A compacted topic: the entries after the position below the offset.
  local position = sparse_position(stream, index, offset, start)
  if position == nil then
    return {2, start, end_offset, last_id, {}, 1, epochs}
  end
  read_from('(' .. position, 0)
  return {0, start, end_offset, last_id, entries, 1, epochs}
end

local seek_offset, seek_id = seek_point(stream, index, offset, start, first_id)
local tail = end_offset - offset

-- Near the end (closer than the index point), when the read may return
-- every entry up to the end: those are the newest entries, counted back
-- from the end, if they are few enough bytes.
if tail <= offset - seek_offset and tail <= max_entries then
  local newest = newest_entries(stream, tail, SEEK_BACK_BYTES + math.max(max_bytes, 0))
  if newest ~= nil and #newest == tail then
    take(newest)
    return {0, start, end_offset, last_id, entries, 0, epochs}
  end
end

-- Forward from the index point to the entry before the offset.
local walk = new_walk(index, seek_offset, seek_id)
if offset > seek_offset and not walk_forward(stream, walk, offset - 1) then
  return {2, start, end_offset, last_id, {}, 0, epochs}
end
local from = '(' .. walk.id
if walk.pos == offset then
  from = walk.id -- the index point is at the offset itself
end
read_from(from, walk.biggest)
return {0, start, end_offset, last_id, entries, 0, epochs}

