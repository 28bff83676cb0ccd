-- Read records from a partition's stream starting at a Kafka offset.
--
-- KEYS[1]  the partition's stream
-- KEYS[2]  its sparse offset index
-- KEYS[3]  its partition metadata hash (stream_info)
-- ARGV[1]  offset to read from
-- ARGV[2]  maximum number of entries
-- ARGV[3]  maximum bytes (field names and values); the first entry is
--          returned whatever its size, as Kafka does (KIP-74)
-- ARGV[4]  index interval
-- ARGV[5]  maximum index-building steps in this call
-- ARGV[6]  1: the first entry comes whatever its size (KIP-74); 0: only
--          entries within maximum bytes
-- Maximum entries 0 returns the offsets without seeking.
--
-- Returns {status, log_start_offset, end_offset, last_id, entries}
--   status 0: entries start at the offset asked for (possibly none)
--   status 1: the offset is outside [log_start_offset, end_offset]
--   status 2: the seek walked as far as allowed through a region that had no
--             index points (entries added natively); call again
--
-- A seek costs an index lookup plus a scan of at most one interval, or of
-- the distance to the end when that is shorter. Regions added by native
-- producers get index points the first time a read walks through them.

local stream, index, meta = KEYS[1], KEYS[2], KEYS[3]
local offset = tonumber(ARGV[1])
local max_entries = tonumber(ARGV[2])
local max_bytes = tonumber(ARGV[3])
local interval = tonumber(ARGV[4])
local max_steps = tonumber(ARGV[5])
local min_one = ARGV[6] == '1'
-- Entries the first XRANGE of a read asks for beyond the seek (see below).
local FIRST_CHUNK = 128

local start, end_offset, first_id, last_id = stream_info(stream, meta, true)
if offset < start or offset > end_offset then
  return {1, start, end_offset, last_id, {}}
end
if offset == end_offset or max_entries <= 0 then
  return {0, start, end_offset, last_id, {}}
end

local seek_offset, seek_id = seek_point(index, offset, start, first_id)
local tail = end_offset - offset

-- Far from the end, walk forward through regions without index points an
-- interval at a time, indexing as we go, so that the final scan is short.
if tail > interval then
  local steps = 0
  while offset - seek_offset > interval do
    if steps >= max_steps then
      return {2, start, end_offset, last_id, {}}
    end
    local chunk = redis.call('XRANGE', stream, seek_id, '+', 'COUNT', interval + 1)
    if #chunk <= interval then
      break -- entries were deleted from the middle; offsets past here are approximate
    end
    seek_offset = seek_offset + interval
    seek_id = chunk[interval + 1][1]
    redis.call('ZADD', index, seek_offset, seek_id)
    steps = steps + 1
  end
end

local skip = offset - seek_offset
local entries = {}
local size = 0

-- Appends found[from..] to entries until max_entries or max_bytes is reached
-- (true when it is).
local function take(found, from)
  for i = from, #found do
    if #entries >= max_entries then
      return true
    end
    local entry = found[i]
    local fields = entry[2]
    for j = 1, #fields do
      size = size + #fields[j]
    end
    if size > max_bytes and (#entries > 0 or not min_one) then
      return true
    end
    entries[#entries + 1] = entry
  end
  return false
end

if tail <= skip then
  -- Near the end: count back from the last entry instead.
  local newest = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', tail)
  local found = {}
  for i = #newest, 1, -1 do
    found[#found + 1] = newest[i]
  end
  take(found, 1)
else
  -- Read in chunks, the later ones sized from the entries seen so far, so
  -- that a request allowing many small entries (max_entries) does not copy
  -- that many large ones when max_bytes stops it after a few.
  local want = math.min(max_entries, FIRST_CHUNK)
  local found = redis.call('XRANGE', stream, seek_id, '+', 'COUNT', skip + want)
  local full = take(found, skip + 1)
  while not full and #found == want + skip and #entries < max_entries do
    skip = 0
    local average = size / #entries
    want = math.min(max_entries - #entries,
                    math.max(FIRST_CHUNK, math.floor((max_bytes - size) / average) + 1))
    found = redis.call('XRANGE', stream, '(' .. found[#found][1], '+', 'COUNT', want)
    full = take(found, 1)
  end
end
return {0, start, end_offset, last_id, entries}
