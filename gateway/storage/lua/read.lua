-- Read records from a partition's stream starting at a Kafka offset.
--
-- KEYS[1]  the partition's stream
-- KEYS[2]  its sparse offset index
-- ARGV[1]  offset to read from
-- ARGV[2]  maximum number of entries
-- ARGV[3]  maximum bytes (field names and values); the first entry is
--          returned whatever its size, as Kafka does (KIP-74)
-- ARGV[4]  index interval
-- ARGV[5]  maximum index-building steps in this call
-- ARGV[6]  '1': return the entries as Kafka records (see below); else raw
-- ARGV[7]  optional: the ID of the entry at offset - 1, where the gateway's
--          previous read stopped (a read cursor); used when it still exists
-- ARGV[8]  optional, with ARGV[7]: entries to ask the first XRANGE for
--
-- Returns {status, log_start_offset, end_offset, last_id, entries}, and with
-- ARGV[6] = '1' {status, log_start_offset, end_offset, last_id, segments,
-- last_entry_id, entry_bytes}, where
--   status 0: entries start at the offset asked for (possibly none)
--   status 1: the offset is outside [log_start_offset, end_offset]
--   status 2: the seek walked as far as allowed through a region that had no
--             index points (entries added natively); call again
--   segments: in offset order, each either {records, count, first_timestamp,
--             max_timestamp}: a run of entries in the gateway's own format as
--             one Kafka records section (docs/mapping.md, "Entries"), offset
--             deltas from 0 and timestamp deltas from first_timestamp; or
--             {id, fields}: one entry left raw for the gateway to map (a
--             native entry, or one whose timestamp or header names the
--             gateway must interpret itself)
--   last_entry_id, entry_bytes: the last entry returned and the field bytes
--             of all of them ('' and 0 when none)
--
-- A seek costs an index lookup plus a scan of at most one interval, or of
-- the distance to the end when that is shorter. Regions added by native
-- producers get index points the first time a read walks through them.
--
-- Encoding here instead of returning the entries costs Redis about as much
-- as the reply it replaces, and saves the gateway the per-record Python work
-- (a hiredis object per field, a Record, re-encoding): it gets one string
-- per run and only adds the batch header and CRC.

local stream, index = KEYS[1], KEYS[2]
local offset = tonumber(ARGV[1])
local max_entries = tonumber(ARGV[2])
local max_bytes = tonumber(ARGV[3])
local interval = tonumber(ARGV[4])
local max_steps = tonumber(ARGV[5])
local encode = ARGV[6] == '1'
local after_id = ARGV[7] or ''
-- Entries the first XRANGE of a read asks for beyond the seek (see below).
local FIRST_CHUNK = 128

local char, concat, find, sub, floor = string.char, table.concat, string.find, string.sub, math.floor

-- Kafka varints (zigzag) by arithmetic: Lua 5.1 numbers are doubles, exact
-- for the integers met here (timestamps are checked to stay below 2^53).
-- Sizes and deltas below 2^13 (one or two bytes) are remembered per call.
local small_varints = {}
local function unsigned_varint(n)
  local known = small_varints[n]
  if known then
    return known
  end
  local encoded
  if n < 128 then
    encoded = char(n)
  elseif n < 16384 then
    local low = n % 128
    encoded = char(low + 128, (n - low) / 128)
  else
    local bytes, rest = {}, n
    while rest >= 128 do
      local low = rest % 128
      bytes[#bytes + 1] = char(low + 128)
      rest = (rest - low) / 128
    end
    bytes[#bytes + 1] = char(rest)
    return concat(bytes)
  end
  small_varints[n] = encoded
  return encoded
end

local function varint(n)
  if n >= 0 then
    return small_varints[n * 2] or unsigned_varint(n * 2)
  end
  return unsigned_varint(-n * 2 - 1)
end

local NULL = varint(-1)

-- Integers whose decimal form the gateway's int() reads the same way and
-- that doubles hold exactly; anything else goes to the gateway raw.
local function exact_integer(text)
  if #text > 16 or not find(text, '^%-?%d+$') then
    return nil
  end
  local digits = #text - (sub(text, 1, 1) == '-' and 1 or 0)
  if digits > 15 then
    return nil
  end
  return tonumber(text)
end

-- Records of one produce batch share their timestamp text: parse it once
-- (Lua strings are interned, so the comparison is a pointer comparison).
local last_timestamp_text, last_timestamp = nil, nil
local function timestamp_of(text)
  if text ~= last_timestamp_text then
    last_timestamp_text, last_timestamp = text, exact_integer(text)
  end
  return last_timestamp
end

-- The encoder: runs of own-format entries become records sections.
local segments = {}
local run_parts, run_size, run_count, run_first_ts, run_max_ts = nil, 0, 0, 0, 0

local function close_run()
  if run_parts ~= nil then
    segments[#segments + 1] = {concat(run_parts), run_count, run_first_ts, run_max_ts}
    run_parts = nil
  end
end

-- The headers part of a record (count, then name and value of each), or
-- nil when the entry is not one this script maps: a native entry, or a
-- header name that is not ASCII (the gateway decodes names as UTF-8 with
-- replacement). Also the key, value and timestamp text it found.
local function scan_fields(fields)
  local ts, key, value
  local header_parts, header_count = nil, 0
  for i = 1, #fields, 2 do
    local name = fields[i]
    if name == 'value' then
      value = fields[i + 1]
    elseif name == 'key' then
      key = fields[i + 1]
    elseif name == 'ts' then
      ts = fields[i + 1]
    else
      local header_name, header_value
      if sub(name, 1, 2) == 'h:' then
        header_name, header_value = sub(name, 3), fields[i + 1]
      elseif sub(name, 1, 3) == 'h0:' then
        header_name = sub(name, 4)
      else
        return nil
      end
      if find(header_name, '[\128-\255]') then
        return nil
      end
      header_parts = header_parts or {}
      header_parts[#header_parts + 1] = varint(#header_name)
      header_parts[#header_parts + 1] = header_name
      if header_value == nil then
        header_parts[#header_parts + 1] = NULL
      else
        header_parts[#header_parts + 1] = varint(#header_value)
        header_parts[#header_parts + 1] = header_value
      end
      header_count = header_count + 1
    end
  end
  if header_parts == nil then
    return '\0', ts, key, value
  end
  return varint(header_count) .. concat(header_parts), ts, key, value
end

-- Adds one entry to the current run as a record; false when the entry is
-- not one this script maps (the caller then returns it raw).
local function add_record(id, fields)
  local headers, ts, key, value
  local field_count = #fields
  -- The commonest shapes first: ts and value; ts, key and value.
  if field_count == 4 and fields[1] == 'ts' and fields[3] == 'value' then
    headers, ts, value = '\0', fields[2], fields[4]
  elseif field_count == 6 and fields[1] == 'ts' and fields[3] == 'key' and fields[5] == 'value' then
    headers, ts, key, value = '\0', fields[2], fields[4], fields[6]
  else
    headers, ts, key, value = scan_fields(fields)
    if headers == nil then
      return false
    end
  end
  local timestamp
  if ts == nil then
    timestamp = exact_integer(sub(id, 1, find(id, '-', 1, true) - 1))
  else
    timestamp = timestamp_of(ts)
  end
  if timestamp == nil then
    return false
  end
  if run_parts == nil then
    run_parts, run_size, run_count, run_first_ts, run_max_ts = {}, 0, 0, timestamp, timestamp
  end
  -- Inlined cache lookups: this runs once per record.
  local timestamp_part = '\0'
  if timestamp ~= run_first_ts then
    timestamp_part = varint(timestamp - run_first_ts)
  end
  local offset_part = small_varints[run_count * 2] or unsigned_varint(run_count * 2)
  local key_part, value_part = NULL, NULL
  if key == nil then
    key = ''
  else
    key_part = small_varints[#key * 2] or unsigned_varint(#key * 2)
  end
  if value == nil then
    value = ''
  else
    value_part = small_varints[#value * 2] or unsigned_varint(#value * 2)
  end
  local record_size = 1 + #timestamp_part + #offset_part + #key_part + #key + #value_part + #value
                      + #headers
  local n = run_size
  run_parts[n + 1] = small_varints[record_size * 2] or unsigned_varint(record_size * 2)
  run_parts[n + 2] = '\0' -- record attributes, unused
  run_parts[n + 3] = timestamp_part
  run_parts[n + 4] = offset_part
  run_parts[n + 5] = key_part
  run_parts[n + 6] = key
  run_parts[n + 7] = value_part
  run_parts[n + 8] = value
  run_parts[n + 9] = headers
  run_size = n + 9
  run_count = run_count + 1
  if timestamp > run_max_ts then
    run_max_ts = timestamp
  end
  return true
end

local entries = {}
local count = 0
local size = 0
local last_entry_id = ''

local function keep(entry)
  count = count + 1
  last_entry_id = entry[1]
  if not encode then
    entries[count] = entry
  elseif not add_record(entry[1], entry[2]) then
    close_run()
    segments[#segments + 1] = entry
  end
end

local function reply(status, start, end_offset, last_id)
  if not encode then
    return {status, start, end_offset, last_id, entries}
  end
  close_run()
  return {status, start, end_offset, last_id, segments, last_entry_id, size}
end

-- Keeps found[from..] until max_entries or max_bytes is reached (true when
-- it is).
local function take(found, from)
  for i = from, #found do
    if count >= max_entries then
      return true
    end
    local entry = found[i]
    local fields = entry[2]
    local entry_size = 0
    for j = 1, #fields do
      entry_size = entry_size + #fields[j]
    end
    if size + entry_size > max_bytes and count > 0 then
      return true
    end
    size = size + entry_size
    keep(entry)
  end
  return false
end

-- Reads forward from first_id (skipping `skip` entries) in chunks, the later
-- ones sized from the entries seen so far, so that a request allowing many
-- small entries (max_entries) does not copy that many large ones when
-- max_bytes stops it after a few.
local function read_forward(first_id, skip, want)
  local found = redis.call('XRANGE', stream, first_id, '+', 'COUNT', skip + want)
  local full = take(found, skip + 1)
  while not full and #found == want + skip and count < max_entries do
    skip = 0
    local average = size / count
    want = math.min(max_entries - count,
                    math.max(FIRST_CHUNK, floor((max_bytes - size) / average) + 1))
    found = redis.call('XRANGE', stream, '(' .. found[#found][1], '+', 'COUNT', want)
    full = take(found, 1)
  end
end

local start, end_offset, first_id, last_id = stream_info(stream)
if offset < start or offset > end_offset then
  return reply(1, start, end_offset, last_id)
end
if offset == end_offset then
  return reply(0, start, end_offset, last_id)
end

-- A cursor holds while its entry exists: the entries after it are then
-- exactly those from the offset on. At the log start offset the entry may
-- have been trimmed away legitimately; every entry left is after it.
if after_id ~= '' and (offset == start or #redis.call('XRANGE', stream, after_id, after_id) > 0) then
  read_forward('(' .. after_id, 0, math.max(1, math.min(max_entries, tonumber(ARGV[8]))))
  return reply(0, start, end_offset, last_id)
end

local seek_offset, seek_id = seek_point(index, offset, start, first_id)
local tail = end_offset - offset

-- Far from the end, walk forward through regions without index points an
-- interval at a time, indexing as we go, so that the final scan is short.
if tail > interval then
  local steps = 0
  while offset - seek_offset > interval do
    if steps >= max_steps then
      return reply(2, start, end_offset, last_id)
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
if tail <= skip then
  -- Near the end: count back from the last entry instead.
  local newest = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', tail)
  local found = {}
  for i = #newest, 1, -1 do
    found[#found + 1] = newest[i]
  end
  take(found, 1)
else
  read_forward(seek_id, skip, math.min(max_entries, FIRST_CHUNK))
end
return reply(0, start, end_offset, last_id)
