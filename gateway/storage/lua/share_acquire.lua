-- Acquire records for a share-group member (KIP-932) from one partition:
-- the share group is the Redis consumer group of the same name, a member is
-- a Redis consumer named by its member ID, an acquisition lock is a pending
-- entry, its delivery count the PEL's delivery counter.
--
-- KEYS[1]  the partition's stream
-- KEYS[2]  its sparse offset index
-- KEYS[3]  its partition metadata hash (stream_info)
-- KEYS[4]  the group's held-records hash on this partition:
--          'o:<offset>' -> entry ID, 'i:<entry ID>' -> offset, 'cursor'
-- ARGV[1]  group ID
-- ARGV[2]  member ID (the Redis consumer)
-- ARGV[3]  maximum records (the caller caps it)
-- ARGV[4]  maximum bytes (field names and values; the first record always comes)
-- ARGV[5]  lock duration (ms): a pending entry idle this long is available
-- ARGV[6]  delivery-count limit: an entry whose next delivery would exceed
--          it is archived (XACK) instead of acquired
-- ARGV[7]  'earliest' or 'latest': where a new share group starts
--
-- Returns {acquired, archived}: acquired is a list of {offset, delivery
-- count, id, fields}, archived a list of {offset, id, fields} (the caller
-- may copy them to a dead-letter topic). Expired locks first (XAUTOCLAIM,
-- from a cursor kept in KEYS[4] so a long PEL is scanned a piece per call),
-- then new entries (XREADGROUP >, in steps sized from the entries seen).

local stream, index, meta, held = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local group, member = ARGV[1], ARGV[2]
local max_records, max_bytes = tonumber(ARGV[3]), tonumber(ARGV[4])
local lock_ms, limit, reset = tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7]

if redis.call('EXISTS', stream) == 0 then
  return {{}, {}}
end

local start, end_offset, first_id, last_id, sparse = stream_info(stream, meta, true)

local function group_info()
  for _, info in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
    local fields = {}
    for i = 1, #info, 2 do
      fields[info[i]] = info[i + 1]
    end
    if fields['name'] == group then
      return fields
    end
  end
  return nil
end

local info = group_info()
if info == nil then
  if reset == 'earliest' then
    redis.call('XGROUP', 'CREATE', stream, group, '0-0', 'ENTRIESREAD', start)
  else
    redis.call('XGROUP', 'CREATE', stream, group, last_id, 'ENTRIESREAD', end_offset)
  end
  info = group_info()
end

-- Entries a native worker took never had their offset kept: counting one
-- is a walk (stream_info.lua), so a call counts at most this many.
local MAX_COUNTS = 16
local counts = 0
local AVAILABLE, AVAILABLE_IDLE = 'krg-share-available', 315360000000

-- The offset of an entry this call got: kept when Kafka acquired it
-- before, its ID's sequence in a sparse partition, else counted (nil when
-- counting would copy too much, or this call counted enough already).
local function offset_of(id)
  local known = redis.call('HGET', held, 'i:' .. id)
  if known then
    return tonumber(known)
  end
  if sparse then
    return id_offset(id)
  end
  if counts >= MAX_COUNTS then
    return nil
  end
  counts = counts + 1
  local after = offset_after_id(stream, index, id, start, end_offset, first_id, last_id, true)
  if after == nil then
    return nil
  end
  return after - 1
end

local acquired, archived = {}, {}
local size = 0

local function keep(offset, count, entry)
  redis.call('HSET', held, 'o:' .. offset, entry[1], 'i:' .. entry[1], offset)
  acquired[#acquired + 1] = {offset, count, entry[1], entry[2]}
  size = size + entry_size(entry)
end

local function full()
  return #acquired >= max_records or (#acquired > 0 and size >= max_bytes)
end

-- Expired locks, released records included (they sit idle for years under
-- the pseudo-consumer share_ack.lua gives them to).
local cursor = redis.call('HGET', held, 'cursor') or '0-0'
local claimed = redis.call('XAUTOCLAIM', stream, group, member, lock_ms, cursor, 'COUNT', max_records)
redis.call('HSET', held, 'cursor', claimed[1])
for _, entry in ipairs(claimed[2]) do
  local pending = redis.call('XPENDING', stream, group, entry[1], entry[1], 1)
  local count = tonumber(pending[1][4])
  local offset = offset_of(entry[1])
  if count > limit then
    redis.call('XACK', stream, group, entry[1])
    redis.call('HDEL', held, 'i:' .. entry[1])
    if offset ~= nil then
      redis.call('HDEL', held, 'o:' .. offset)
      archived[#archived + 1] = {offset, entry[1], entry[2]}
    end
  elseif offset ~= nil then
    keep(offset, count, entry)
  else
    -- Not counted this time: available again at once, this claim uncounted.
    redis.call('XCLAIM', stream, group, AVAILABLE, 0, entry[1], 'IDLE', AVAILABLE_IDLE,
               'RETRYCOUNT', count - 1, 'JUSTID')
  end
end
-- Entries deleted from the stream while pending: XAUTOCLAIM dropped them.
for _, id in ipairs(claimed[3]) do
  local offset = redis.call('HGET', held, 'i:' .. id)
  redis.call('HDEL', held, 'i:' .. id)
  if offset then
    redis.call('HDEL', held, 'o:' .. offset)
  end
end

-- New entries. A dense partition's entries are consecutive offsets from
-- the group's entries-read on.
local next_offset = tonumber(info['entries-read'])
if not sparse and next_offset == nil then
  next_offset = offset_after_id(stream, index, info['last-delivered-id'], start, end_offset, first_id,
                                last_id, true)
end
local want = FIRST_STEP
while not full() and (sparse or next_offset ~= nil) do
  want = math.max(1, math.min(want, max_records - #acquired))
  local read = redis.call('XREADGROUP', 'GROUP', group, member, 'COUNT', want, 'STREAMS', stream, '>')
  local found = {}
  if read and read[1] then
    found = read[1][2]
  end
  for _, entry in ipairs(found) do
    local offset = next_offset
    if sparse then
      offset = id_offset(entry[1])
    else
      next_offset = next_offset + 1
    end
    keep(offset, 1, entry)
  end
  if #found < want then
    break
  end
  local average = size / math.max(1, #acquired)
  want = math.min(want * 4, math.floor((max_bytes - size) / math.max(1, average)) + 1)
end
return {acquired, archived}
