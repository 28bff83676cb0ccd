-- Append one Kafka produce batch to a partition's stream, atomically.
--
-- KEYS[1]  the partition's stream
-- KEYS[2]  its sparse offset index (sorted set: score = offset, member = entry ID)
-- KEYS[3]  its partition metadata hash (max timestamp and its offset)
-- KEYS[4]  its idempotent-producer state hash (field: producer ID)
-- ARGV[1]  index interval: an index point every this many offsets
-- ARGV[2]  the batch's max timestamp (ms)
-- ARGV[3]  the offset delta (within the batch) of the record with that timestamp
-- ARGV[4]  producer ID (-1: not idempotent), ARGV[5] producer epoch,
-- ARGV[6]  first sequence number, ARGV[7] last sequence number
-- ARGV[8]  number of records
-- ARGV[9]  the records' shape, then the records:
--          "v", "kv", "k" or "-" when every record has the same fields
--          (value only; key and value; key only; neither) and no headers:
--          per record its ts, then its key and/or value as the shape says;
--          "" otherwise: per record its field count n, followed by n
--          field/value pairs of the entry.
--          Either way the entry's fields are ts, key, value, h:<name>... in
--          that order (docs/mapping.md).
--
-- Returns {base_offset, first_id, log_start_offset} after an append,
-- {base_offset, false, log_start_offset, append_ms} for a batch already
-- appended (a retry: nothing is written, the original offset and append
-- time are returned), or
-- {-1, kafka_error_code} when the producer state refuses the batch.
--
-- A Kafka offset is the entry's position in the stream as Redis counts it:
-- entries-added before the append is the batch's base offset, so entries that
-- Redis-native producers add also take offsets and the sequence stays dense.

local stream, index, meta, producers = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local interval = tonumber(ARGV[1])

-- Idempotent producers (KIP-98, as Kafka's ProducerStateManager checks them).
-- The state of one producer on this partition is
-- "epoch;first:last:offset:append_ms;..." holding the last five batches,
-- because a producer may have five batches in flight and retry any of them;
-- a retry is answered with the original offset and append time.
local OUT_OF_ORDER_SEQUENCE_NUMBER, INVALID_PRODUCER_EPOCH = 45, 47
local CACHED_BATCHES = 5
local producer_id = ARGV[4]
local producer_epoch = tonumber(ARGV[5])
local first_seq, last_seq = tonumber(ARGV[6]), tonumber(ARGV[7])

local function parse_state(raw)
  local epoch = nil
  local batches = {}
  for part in string.gmatch(raw, '[^;]+') do
    if epoch == nil then
      epoch = tonumber(part)
    else
      local f, l, o, t = string.match(part, '^(%-?%d+):(%-?%d+):(%d+):?(%d*)$')
      batches[#batches + 1] = {tonumber(f), tonumber(l), tonumber(o), tonumber(t) or -1}
    end
  end
  return epoch, batches
end

-- Sequence numbers wrap from 2^31 - 1 to 0.
local function next_sequence(seq)
  if seq == 2147483647 then
    return 0
  end
  return seq + 1
end

-- nil to append, or a reply for a duplicate or a refused batch.
local function check_producer()
  if producer_id == '-1' then
    return nil
  end
  local raw = redis.call('HGET', producers, producer_id)
  if raw == false then
    if first_seq ~= 0 then
      return {-1, OUT_OF_ORDER_SEQUENCE_NUMBER}
    end
    return nil
  end
  local epoch, batches = parse_state(raw)
  if producer_epoch < epoch then
    return {-1, INVALID_PRODUCER_EPOCH}
  end
  if producer_epoch > epoch then
    if first_seq ~= 0 then
      return {-1, OUT_OF_ORDER_SEQUENCE_NUMBER}
    end
    return nil
  end
  for _, batch in ipairs(batches) do
    if batch[1] == first_seq and batch[2] == last_seq then
      return {batch[3], false, 0, batch[4]}
    end
  end
  local newest = batches[#batches]
  if newest ~= nil and first_seq ~= next_sequence(newest[2]) then
    return {-1, OUT_OF_ORDER_SEQUENCE_NUMBER}
  end
  return nil
end

local function record_batch(base_offset, append_ms)
  local raw = redis.call('HGET', producers, producer_id)
  local kept = {}
  if raw ~= false then
    local epoch, batches = parse_state(raw)
    if epoch == producer_epoch then
      for i = math.max(1, #batches - CACHED_BATCHES + 2), #batches do
        local b = batches[i]
        kept[#kept + 1] = b[1] .. ':' .. b[2] .. ':' .. b[3] .. ':' .. b[4]
      end
    end
  end
  kept[#kept + 1] = first_seq .. ':' .. last_seq .. ':' .. base_offset .. ':' .. append_ms
  redis.call('HSET', producers, producer_id, producer_epoch .. ';' .. table.concat(kept, ';'))
end


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
local refused = check_producer()
if refused ~= nil then
  if refused[1] ~= -1 then
    refused[3] = base - redis.call('XLEN', stream) -- log start offset as of now
  end
  return refused
end
local last_point = redis.call('ZRANGE', index, -1, -1, 'WITHSCORES')
local last_indexed = -interval
if #last_point == 2 then
  last_indexed = tonumber(last_point[2])
end

-- Entries added natively carry their time in the ID only. offsets.lua counts
-- a native newest entry; one this append is about to bury counts here.
local native_ms = nil
if base > 0 then
  local newest = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)
  if #newest == 1 then
    native_ms = tonumber(string.match(newest[1][1], '^(%d+)'))
    local fields = newest[1][2]
    for j = 1, #fields, 2 do
      if fields[j] == 'ts' then
        native_ms = nil
        break
      end
    end
  end
end

local count = tonumber(ARGV[8])
local shape = ARGV[9]
local pos = 10
local first_id = nil

-- XADD of the record at pos; returns its ID and the next record's position.
local function add_record()
  if shape == 'v' then
    return redis.call('XADD', stream, '*', 'ts', ARGV[pos], 'value', ARGV[pos + 1]), pos + 2
  elseif shape == 'kv' then
    return redis.call('XADD', stream, '*', 'ts', ARGV[pos], 'key', ARGV[pos + 1],
                      'value', ARGV[pos + 2]), pos + 3
  elseif shape == 'k' then
    return redis.call('XADD', stream, '*', 'ts', ARGV[pos], 'key', ARGV[pos + 1]), pos + 2
  elseif shape == '-' then
    return redis.call('XADD', stream, '*', 'ts', ARGV[pos]), pos + 1
  end
  local n = tonumber(ARGV[pos])
  return redis.call('XADD', stream, '*', unpack(ARGV, pos + 1, pos + 2 * n)), pos + 2 * n + 1
end

for i = 0, count - 1 do
  local id
  id, pos = add_record()
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

local known = redis.call('HGET', meta, 'max_ts')
if native_ms ~= nil and (known == false or tonumber(known) < native_ms) then
  redis.call('HSET', meta, 'max_ts', native_ms, 'max_ts_offset', base - 1)
  known = tostring(native_ms)
end
local max_ts = tonumber(ARGV[2])
if known == false or tonumber(known) < max_ts then
  redis.call('HSET', meta, 'max_ts', max_ts, 'max_ts_offset', base + tonumber(ARGV[3]))
end

if producer_id ~= '-1' then
  record_batch(base, string.match(first_id, '^(%d+)'))
end

local length = redis.call('XLEN', stream)
return {base, first_id, base + count - length}
