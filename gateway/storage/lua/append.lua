-- Append one Kafka produce batch to a partition's stream, atomically.
--
-- KEYS[1]  the partition's stream
-- KEYS[2]  its sparse offset index (sorted set: score = offset, member = entry ID)
-- KEYS[3]  its partition metadata hash (max timestamp and its offset)
-- ARGV[1]  index interval: an index point every this many offsets
-- ARGV[2]  the batch's max timestamp (ms)
-- ARGV[3]  the offset delta (within the batch) of the record with that timestamp
-- ARGV[4]  number of records, then for each record: its field count n,
--          followed by n field/value pairs of the entry.
--
-- Returns {base_offset, first_id, log_start_offset}.
--
-- A Kafka offset is the entry's position in the stream as Redis counts it:
-- entries-added before the append is the batch's base offset, so entries that
-- Redis-native producers add also take offsets and the sequence stays dense.

local stream, index, meta = KEYS[1], KEYS[2], KEYS[3]
local interval = tonumber(ARGV[1])

local function entries_added(key)
  if redis.call('EXISTS', key) == 0 then
    return 0
  end
  local info = redis.call('XINFO', 'STREAM', key)
  for i = 1, #info, 2 do
    if info[i] == 'entries-added' then
      return tonumber(info[i + 1])
    end
  end
  return 0
end

local base = entries_added(stream)
local last_point = redis.call('ZRANGE', index, -1, -1, 'WITHSCORES')
local last_indexed = -interval
if #last_point == 2 then
  last_indexed = tonumber(last_point[2])
end

local count = tonumber(ARGV[4])
local pos = 5
local first_id = nil
for i = 0, count - 1 do
  local n = tonumber(ARGV[pos])
  local id = redis.call('XADD', stream, '*', unpack(ARGV, pos + 1, pos + 2 * n))
  pos = pos + 2 * n + 1
  if first_id == nil then
    first_id = id
  end
  local offset = base + i
  -- An index point at least every interval offsets; the first record after
  -- entries that native producers added (they do not index) starts anew.
  if offset - last_indexed >= interval then
    redis.call('ZADD', index, offset, id)
    last_indexed = offset
  end
end

local max_ts = tonumber(ARGV[2])
local known = redis.call('HGET', meta, 'max_ts')
if known == false or tonumber(known) < max_ts then
  redis.call('HSET', meta, 'max_ts', max_ts, 'max_ts_offset', base + tonumber(ARGV[3]))
end

local length = redis.call('XLEN', stream)
return {base, first_id, base + count - length}
