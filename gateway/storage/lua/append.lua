-- Append one Kafka produce request's batches for a partition to its stream,
-- atomically: check every record, then write them all, or nothing. A
-- request too large for one call (more than STEP_RECORDS records or
-- STEP_HEADERS headers, or more bytes than the gateway sends in one call)
-- is checked piece by piece in calls that write nothing ('check'), then
-- appended piece by piece ('k/n'); see docs/design.md.
--
-- KEYS[1]  the partition's stream
-- KEYS[2]  its sparse offset index (sorted set: score = offset, member = entry ID)
-- KEYS[3]  its partition metadata hash (max timestamp and its offset; the
--          stream_info fields; index_bytes)
-- KEYS[4]  its idempotent-producer state hash (field: producer ID)
-- ARGV[1]  index interval: an index point at least every this many offsets
-- ARGV[2]  index bytes: and at least every this many bytes of entries
-- ARGV[3]  producer ID (-1: not idempotent), ARGV[4] producer epoch,
-- ARGV[5]  first sequence number, ARGV[6] last sequence number
-- ARGV[7]  the step: '-' for the whole request in this call; '+' for the
--          same, but refused with {-4} (nothing written) when it holds more
--          than ARGV[8] records or ARGV[9] headers; 'k/n' for piece k (from
--          0) of a request appended in n pieces; 'check' (below)
-- ARGV[10] number of record batches, then per batch five arguments:
--          its record count (as its header declares), base timestamp,
--          max timestamp, flags: 1 when it is a LogAppendTime batch (every
--          record takes the max timestamp), plus 2 when it is a piece that
--          does not end its batch (the max timestamp may be in another
--          piece), and its records section:
--          the records exactly as the Kafka wire format lays them out
--          (protocol/records.py), uncompressed. The gateway checked the
--          batch (CRC, codec, sizes); the records are parsed only here.
--
-- The last argument of every call is 'compact' for a topic with
-- cleanup.policy compact (or compact,delete), '-' otherwise. A compacted
-- topic's records must have keys (INVALID_RECORD, as Kafka), and its
-- partition's entries get explicit IDs `<append ms>-<offset>`: the ID names
-- the offset, so compaction can delete entries from the middle without
-- moving any other entry's offset (stream_info.lua; docs/mapping.md).
--
-- Each record becomes one entry with the fields ts, key, value, h:<name>
-- (h0:<name> for a null header value), in that order (docs/mapping.md).
--
-- 'check': ARGV[8] records and ARGV[9] headers at most, ARGV[10] 1 when
-- the bytes end their batch's records section, ARGV[11] base timestamp,
-- ARGV[12] bytes from the start of a record: parses the complete records
-- there, up to those limits, writes nothing, and returns {records, bytes
-- they take, bytes of the first record when it is incomplete, else 0}
-- or a refusal {-1, code, message}.
--
-- Returns {base_offset, first_id, log_start_offset} after an append,
-- {base_offset, false, log_start_offset, append_ms} for a batch already
-- appended (a retry: nothing is written, the original offset and append
-- time are returned),
-- {-3, next_step, base_offset, append_ms} for a piece that a previous
-- attempt of the same idempotent batch wrote already (resume at next_step),
-- {-4} for '+' beyond its limits,
-- {-1, kafka_error_code} when the producer state refuses the batch, or
-- {-1, kafka_error_code, message} when a record is malformed (nothing is
-- written either way).
--
-- A Kafka offset is the entry's position in the stream as Redis counts it:
-- entries-added before the append is the batch's base offset, so entries that
-- Redis-native producers add also take offsets and the sequence stays dense.

local stream, index, meta, producers = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local interval, index_bytes = tonumber(ARGV[1]), tonumber(ARGV[2])
local compacted = ARGV[#ARGV] == 'compact'

-- Parsing the records sections. Lua 5.1 numbers are doubles: exact for
-- integers below 2^53, which holds every length here; timestamps beyond
-- that are refused (INVALID_TIMESTAMP) rather than rounded.
local CORRUPT_MESSAGE, INVALID_TIMESTAMP, INVALID_RECORD = 2, 32, 87
-- A record's headers are parsed and XADDed in one go: this many at most
-- (about 16 ms of Lua). Kafka has no such limit; see docs/compatibility.md.
local MAX_RECORD_HEADERS = 10000
local EXACT = 9007199254740992 -- 2^53
local byte, sub, find, format = string.byte, string.sub, string.find, string.format

local function refuse(code, message)
  error({code, message}, 0)
end

-- The zigzag varint at pos (at most max_bytes long) -> value, next position.
-- Reading past the end gives byte() nil, and the comparison raises an error
-- that parse_all() reports as a truncated record.
local function varint(s, pos, max_bytes)
  local b = byte(s, pos)
  local raw
  if b < 128 then
    raw = b
    pos = pos + 1
  else
    raw = b - 128
    local scale = 128
    local last = pos + max_bytes - 1
    repeat
      pos = pos + 1
      if pos > last then
        refuse(CORRUPT_MESSAGE, 'varint longer than ' .. max_bytes .. ' bytes')
      end
      b = byte(s, pos)
      if b < 128 then
        raw = raw + b * scale
      else
        raw = raw + (b - 128) * scale
        scale = scale * 128
      end
    until b < 128
    pos = pos + 1
  end
  if raw % 2 == 0 then
    return raw / 2, pos
  end
  return -(raw + 1) / 2, pos
end

-- The length-prefixed bytes at pos -> the bytes (false for null), next position.
local function bytes_field(s, pos)
  local size
  size, pos = varint(s, pos, 5)
  if size >= 0 then
    return sub(s, pos, pos + size - 1), pos + size
  end
  if size ~= -1 then
    refuse(CORRUPT_MESSAGE, 'negative length ' .. size)
  end
  return false, pos
end

-- Python's strict UTF-8 decoding: no overlong forms, no surrogates, at most U+10FFFF.
local function is_utf8(s)
  local i, n = 1, #s
  while i <= n do
    local c = byte(s, i)
    local follow, low, high = 0, 128, 191
    if c >= 194 and c <= 223 then
      follow = 1
    elseif c >= 224 and c <= 239 then
      follow = 2
      if c == 224 then low = 160 elseif c == 237 then high = 159 end
    elseif c >= 240 and c <= 244 then
      follow = 3
      if c == 240 then low = 144 elseif c == 244 then high = 143 end
    elseif c >= 128 then
      return false
    end
    for j = 1, follow do
      local d = byte(s, i + j)
      if d == nil or d < low or d > high then
        return false
      end
      low, high = 128, 191
    end
    i = i + follow + 1
  end
  return true
end

-- The headers at pos (at their count) -> a list of field, value pairs
-- (false when there are none), next position.
local function headers_field(s, pos, record_end)
  local count
  count, pos = varint(s, pos, 5)
  if count == 0 then
    return false, pos
  end
  -- Each header takes at least two bytes: refuse absurd counts up front.
  if count < 0 or count * 2 > record_end - pos then
    refuse(CORRUPT_MESSAGE, 'bad header count ' .. count)
  end
  if count > MAX_RECORD_HEADERS then
    refuse(INVALID_RECORD, 'more than ' .. MAX_RECORD_HEADERS .. ' headers in a record')
  end
  local fields = {}
  for h = 1, count do
    local size, name, value
    size, pos = varint(s, pos, 5)
    if size < 0 then
      refuse(CORRUPT_MESSAGE, 'bad header key length ' .. size)
    end
    name = sub(s, pos, pos + size - 1)
    pos = pos + size
    if find(name, '[\128-\255]') and not is_utf8(name) then
      refuse(CORRUPT_MESSAGE, 'header key is not UTF-8')
    end
    value, pos = bytes_field(s, pos)
    if value then
      fields[2 * h - 1], fields[2 * h] = 'h:' .. name, value
    else
      fields[2 * h - 1], fields[2 * h] = 'h0:' .. name, ''
    end
  end
  return fields, pos
end

-- One record at pos, any layout -> its end as its length says, timestamp
-- delta, key, value, headers (false for null or none) and where its fields end.
local function general_record(s, pos)
  local size, delta, key, value, headers, _
  size, pos = varint(s, pos, 5)
  local record_end = pos + size
  -- attributes: one byte, unused in v2; then the timestamp delta
  delta, pos = varint(s, pos + 1, 10)
  -- offset delta: skipped, offsets are the stream's
  _, pos = varint(s, pos, 5)
  key, pos = bytes_field(s, pos)
  value, pos = bytes_field(s, pos)
  headers, pos = headers_field(s, pos, record_end)
  return record_end, delta, key, value, headers, pos
end

-- The fast path's second chance: any record of up to 8191 bytes without
-- headers, with a null key or one of up to 63 bytes and varints of at most
-- two bytes. Returns nil when the record is not one of those, or its end
-- as its length says, timestamp delta, key, value and where its fields end.
local function short_record(s, pos)
  local record_end, delta, key, value
  -- Enough bytes for every varint up to the key: the record length (one
  -- or two bytes), attributes, timestamp and offset deltas (one or two
  -- bytes each), key length, and the value length when the key is null.
  -- A byte is compared only once the fields before it say it is part of
  -- the record, so a nil (past the end) raises an error only for a
  -- truncated record, which parse_all() reports as such.
  local l1, l2, b3, b4, b5, b6, b7, b8, b9, b10 = byte(s, pos, pos + 9)
  local raw, t1, t2, o1, o2, x1, x2, x3, head
  if l1 < 128 then
    raw, head, t1, t2, o1, o2, x1, x2, x3 = l1, pos + 2, b3, b4, b5, b6, b7, b8, b9
  elseif l2 < 128 then
    raw, head, t1, t2, o1, o2, x1, x2, x3 = l1 - 128 + l2 * 128, pos + 3, b4, b5, b6, b7, b8, b9, b10
  end
  if head ~= nil then
    record_end = head - 1 + (raw % 2 == 0 and raw / 2 or -(raw + 1) / 2)
    -- head is where the timestamp delta starts; its width and the offset
    -- delta's decide where the key length is.
    local at, k, v1, v2
    if t1 < 128 then
      raw = t1
      if t2 < 128 then
        at, k, v1, v2 = head + 2, o1, o2, x1
      elseif o1 < 128 then
        at, k, v1, v2 = head + 3, o2, x1, x2
      end
    elseif t2 < 128 then
      raw = t1 - 128 + t2 * 128
      if o1 < 128 then
        at, k, v1, v2 = head + 3, o2, x1, x2
      elseif o2 < 128 then
        at, k, v1, v2 = head + 4, x1, x2, x3
      end
    end
    if at ~= nil then
      -- key: null (1) or 0 to 63 bytes (an even byte)
      if k == 1 then
        key, at = false, at + 1
      elseif k < 128 and k % 2 == 0 then
        key = sub(s, at + 1, at + k / 2)
        at = at + 1 + k / 2
        v1, v2 = byte(s, at, at + 1)
      end
      -- value: null (1), 0 to 63 bytes (an even byte) or 64 to 8191 (two bytes, even)
      local size
      if key == nil then
        at = nil
      elseif v1 == 1 then
        value, at = false, at + 1
      elseif v1 < 128 and v1 % 2 == 0 then
        size, at = v1 / 2, at + 1
      elseif v1 >= 128 and v2 < 128 and v1 % 2 == 0 then
        size, at = (v1 - 128 + v2 * 128) / 2, at + 2
      else
        at = nil
      end
      if at ~= nil and byte(s, at + (size or 0)) == 0 then -- no headers
        if size then
          value = sub(s, at, at + size - 1)
          at = at + size
        end
        delta = raw % 2 == 0 and raw / 2 or -(raw + 1) / 2
        return record_end, delta, key, value, at + 1
      end
    end
  end
  return nil
end

-- Parse one batch's records section onto the record lists: per record its
-- timestamp as a decimal string (ts), its value (false for null); its key
-- and headers (a list of field, value pairs) only where it has them.
-- Returns the number of records and the index (from 0) of the record
-- holding the batch's max timestamp.
--
-- The hot loop of the produce path, written for Lua 5.1's interpreter,
-- where a call to byte() costs as much as ten arithmetic steps: records of
-- 64 to 8191 bytes with a null key and no headers, whose varints take at
-- most two bytes (most producers' records), are read with two byte()
-- calls and one sub(); other records without headers of up to 8191 bytes
-- (a key of up to 63 bytes, short or null values) by short_record(); any
-- other record goes through general_record(). A timestamp string is
-- formatted once per distinct delta.
--
-- With `limit` ({records, headers} left for this call, partial: whether the
-- bytes may end inside a record), parsing stops before the record that
-- would go beyond them, and the record count is not compared with the
-- declared one; the position where parsing stopped is returned too.
local function parse_batch(s, base_ts, max_ts, log_append_time, declared, out, limit)
  local n = #s
  local pos = 1
  local first = #out.ts
  local count = 0
  local last_delta, last_ts, last_text = nil, nil, nil
  local max_index = nil
  local ts_list, key_list, value_list, header_list = out.ts, out.key, out.value, out.headers
  while pos <= n do
    if limit ~= nil then
      if limit.records <= 0 or limit.headers <= 0 then
        break
      end
      if limit.partial then
        local fits, size, after = pcall(varint, s, pos, 5)
        if not fits and type(size) == 'table' then
          error(size, 0)
        end
        if not fits or after + size - 1 > n then
          limit.incomplete = fits and after + size - pos or n - pos + 6
          break
        end
      end
    end
    local record_end, delta, key, value, headers
    -- Enough bytes for every varint up to the value's length. A nil (past
    -- the end) in a comparison raises an error, reported as a truncated
    -- record: with a two-byte length the record claims at least 64 bytes,
    -- so any byte of the window that is missing makes it truncated.
    local l1, l2, _, t1, t2, o1, o2, x1, x2, x3 = byte(s, pos, pos + 9)
    local fast = false
    if l1 >= 128 and l2 < 128 then
      local raw = l1 - 128 + l2 * 128
      record_end = pos + 2 + (raw % 2 == 0 and raw / 2 or -(raw + 1) / 2)
      -- The timestamp delta (one or two bytes) and the offset delta (one or
      -- two, skipped) decide where the key length is: pos + skip.
      local skip, k, v1, v2
      if t1 < 128 then
        raw = t1
        if t2 < 128 then
          skip, k, v1, v2 = 5, o1, o2, x1
        elseif o1 < 128 then
          skip, k, v1, v2 = 6, o2, x1, x2
        end
      elseif t2 < 128 then
        raw = t1 - 128 + t2 * 128
        if o1 < 128 then
          skip, k, v1, v2 = 6, o2, x1, x2
        elseif o2 < 128 then
          skip, k, v1, v2 = 7, x1, x2, x3
        end
      end
      -- A null key (1), then a two-byte value length that is not negative (even).
      if skip ~= nil and k == 1 and v1 >= 128 and v2 < 128 and v1 % 2 == 0 then
        local size = (v1 - 128 + v2 * 128) / 2
        local start = pos + skip + 3
        if byte(s, start + size) == 0 then -- no headers
          delta = raw % 2 == 0 and raw / 2 or -(raw + 1) / 2
          value, key, headers, fast = sub(s, start, start + size - 1), false, false, true
          pos = start + size + 1
        end
      end
    end
    if not fast then
      local short_end, short_delta, short_key, short_value, after = short_record(s, pos)
      if short_end ~= nil then
        record_end, delta, key, value, headers, pos = short_end, short_delta, short_key, short_value, false, after
        fast = true
      end
    end
    if not fast then
      record_end, delta, key, value, headers, pos = general_record(s, pos)
    end
    if pos ~= record_end then
      refuse(CORRUPT_MESSAGE, 'record length does not match its fields')
    end
    if delta ~= last_delta then
      local ts = base_ts + delta
      if delta >= EXACT / 2 or delta <= -EXACT / 2 or ts >= EXACT or ts <= -EXACT then
        refuse(INVALID_TIMESTAMP, 'record timestamp out of range')
      end
      last_delta, last_ts, last_text = delta, ts, format('%d', ts)
    end
    if max_index == nil and last_ts == max_ts then
      max_index = count
    end
    count = count + 1
    local at = first + count
    ts_list[at], value_list[at] = last_text, value
    if key then
      key_list[at] = key
    end
    if headers then
      header_list[at] = headers
    end
    if limit ~= nil then
      limit.records = limit.records - 1
      if headers then
        limit.headers = limit.headers - #headers / 2
      end
    end
  end
  if pos > n + 1 then
    refuse(CORRUPT_MESSAGE, 'truncated record')
  end
  if limit == nil and count ~= declared then
    refuse(INVALID_RECORD, 'batch declares ' .. declared .. ' records but holds ' .. count)
  end
  if log_append_time then
    -- The broker's time, stored as max timestamp, is every record's.
    local text = format('%d', max_ts)
    for at = first + 1, first + count do
      ts_list[at] = text
    end
    return count, count - 1, pos
  end
  -- Records usually arrive in time order: the last one holds the maximum.
  if count > 0 and last_ts == max_ts then
    max_index = count - 1
  end
  return count, max_index or count - 1, pos
end

-- Every batch's records, or nil and a refusal {-1, code, message}.
-- Also the max timestamp of the request and its offset within the request,
-- as the batch headers declare them (the last batch with the largest).
local function refusal(err)
  if type(err) == 'table' then
    return {-1, err[1], err[2]}
  end
  -- A varint or a field ran past the end of the records section.
  return {-1, CORRUPT_MESSAGE, 'truncated record'}
end

-- `limit` as parse_batch() takes it, for '+': nil, {-4} when the batches
-- go beyond it.
local function parse_all(limit)
  local out = {ts = {}, key = {}, value = {}, headers = {}}
  local max_ts, max_delta = -1, nil
  local batches = tonumber(ARGV[10])
  for b = 0, batches - 1 do
    local at = 11 + 5 * b
    local declared, base_ts, batch_max = tonumber(ARGV[at]), tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2])
    local flags = tonumber(ARGV[at + 3])
    local before = #out.ts
    local records = ARGV[at + 4]
    local ok, count, max_index, stopped = pcall(parse_batch, records, base_ts, batch_max,
                                                flags % 2 == 1, declared, out, limit)
    if not ok then
      return nil, refusal(count)
    end
    if limit ~= nil then
      if stopped <= #records then
        return nil, {-4}
      end
      if count ~= declared then
        return nil, {-1, INVALID_RECORD, 'batch declares ' .. declared .. ' records but holds ' .. count}
      end
    end
    -- A piece that does not end its batch holds the max timestamp only if
    -- one of its records has it; the batch's last piece answers otherwise.
    if flags >= 2 and (flags % 2 == 1 or out.ts[before + max_index + 1] ~= format('%d', batch_max)) then
      max_index = nil
    end
    if max_index ~= nil and (batch_max > max_ts or max_delta == nil) then
      max_ts, max_delta = batch_max, before + max_index
    end
  end
  if #out.ts == 0 then
    return nil, {-1, CORRUPT_MESSAGE, 'no records'}
  end
  return out, nil, max_ts, max_delta
end


-- Idempotent producers (KIP-98, as Kafka's ProducerStateManager checks them).
-- The state of one producer on this partition is
-- "epoch;first:last:offset:append_ms;..." holding the last five batches,
-- because a producer may have five batches in flight and retry any of them;
-- a retry is answered with the original offset and append time.
-- A batch appended in pieces has a fifth field while it is incomplete: the
-- next piece to write. A retry of it resumes there ({-3, ...}), and the
-- producer's later batches are refused (OUT_OF_ORDER_SEQUENCE_NUMBER, which
-- producers retry) until it is complete, so its records stay in order.
local OUT_OF_ORDER_SEQUENCE_NUMBER, INVALID_PRODUCER_EPOCH = 45, 47
local CACHED_BATCHES = 5
local producer_id = ARGV[3]
local producer_epoch = tonumber(ARGV[4])
local first_seq, last_seq = tonumber(ARGV[5]), tonumber(ARGV[6])
-- This call's piece (from 0) and the number of pieces: 0 and 1 for a
-- request appended in one call.
local piece, pieces = 0, 1
do
  local k, n = string.match(ARGV[7], '^(%d+)/(%d+)$')
  if k ~= nil then
    piece, pieces = tonumber(k), tonumber(n)
  end
end

local function parse_state(raw)
  local epoch = nil
  local batches = {}
  for part in string.gmatch(raw, '[^;]+') do
    if epoch == nil then
      epoch = tonumber(part)
    else
      local f, l, o, t, k = string.match(part, '^(%-?%d+):(%-?%d+):(%d+):?(%d*):?(%d*)$')
      batches[#batches + 1] = {tonumber(f), tonumber(l), tonumber(o), tonumber(t) or -1, tonumber(k)}
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

-- nil to append (and, for a later piece, the batch's state entry), or a
-- reply for a duplicate, a piece written already or a refused batch.
local function check_producer()
  if producer_id == '-1' then
    return nil
  end
  local raw = redis.call('HGET', producers, producer_id)
  if raw == false then
    -- No state here: a new producer, or one idle past producer.id.expiration.ms
    -- (producer_expiry.py). As Kafka, any sequence starts it anew; but a
    -- later piece of a batch needs the state its first piece left.
    if piece > 0 then
      return {-1, OUT_OF_ORDER_SEQUENCE_NUMBER}
    end
    return nil
  end
  local epoch, batches = parse_state(raw)
  if producer_epoch < epoch then
    return {-1, INVALID_PRODUCER_EPOCH}
  end
  if producer_epoch > epoch then
    if first_seq ~= 0 or piece > 0 then
      return {-1, OUT_OF_ORDER_SEQUENCE_NUMBER}
    end
    return nil
  end
  for _, batch in ipairs(batches) do
    if batch[1] == first_seq and batch[2] == last_seq then
      local next_piece = batch[5]
      if next_piece == nil then
        return {batch[3], false, 0, batch[4]}
      end
      if next_piece == piece then
        return nil, batch
      end
      if next_piece > piece then
        return {-3, next_piece, batch[3], batch[4]}
      end
      return {-1, OUT_OF_ORDER_SEQUENCE_NUMBER}
    end
  end
  local newest = batches[#batches]
  if piece > 0 or (newest ~= nil and (newest[5] ~= nil or first_seq ~= next_sequence(newest[2]))) then
    return {-1, OUT_OF_ORDER_SEQUENCE_NUMBER}
  end
  return nil
end

-- The producer's state with this batch as its newest: complete, or with
-- the next piece to write.
local function record_batch(base_offset, append_ms, next_piece)
  local raw = redis.call('HGET', producers, producer_id)
  local kept = {}
  if raw ~= false then
    local epoch, batches = parse_state(raw)
    if epoch == producer_epoch then
      for i = math.max(1, #batches - CACHED_BATCHES + 1), #batches do
        local b = batches[i]
        if b[1] ~= first_seq or b[2] ~= last_seq then
          kept[#kept + 1] = b[1] .. ':' .. b[2] .. ':' .. b[3] .. ':' .. b[4] .. (b[5] and ':' .. b[5] or '')
        end
      end
    end
  end
  while #kept >= CACHED_BATCHES do
    table.remove(kept, 1)
  end
  kept[#kept + 1] = first_seq .. ':' .. last_seq .. ':' .. base_offset .. ':' .. append_ms
      .. (next_piece and ':' .. next_piece or '')
  redis.call('HSET', producers, producer_id, producer_epoch .. ';' .. table.concat(kept, ';'))
end

-- 'check': parse, write nothing.
if ARGV[7] == 'check' then
  local limit = {records = tonumber(ARGV[8]), headers = tonumber(ARGV[9]), partial = ARGV[10] ~= '1'}
  local out = {ts = {}, key = {}, value = {}, headers = {}}
  local ok, count, _, stopped = pcall(parse_batch, ARGV[12], tonumber(ARGV[11]), nil, false, nil, out, limit)
  if not ok then
    return refusal(count)
  end
  return {count, stopped - 1, limit.incomplete or 0}
end


local limit = nil
if ARGV[7] == '+' then
  limit = {records = tonumber(ARGV[8]), headers = tonumber(ARGV[9])}
end
local records, malformed, max_ts, max_delta = parse_all(limit)
if malformed ~= nil then
  return malformed
end
if compacted then
  for i = 1, #records.ts do
    if not records.key[i] then
      return {-1, INVALID_RECORD, 'Compacted topic cannot accept message without key'}
    end
  end
end
-- What this partition's last gateway append left in the meta, read before
-- stream_info() may refresh it: an end offset other than the stream's
-- means native producers appended since (or the meta predates them).
local known = redis.call('HMGET', meta, 'end_offset', 'last_id', 'index_bytes')
local stream_existed = redis.call('EXISTS', stream) == 1
local start, base, _, last_generated, sparse = stream_info(stream, meta, true)
if compacted and not sparse and base == start then
  -- The first append to a compacted topic's empty partition makes it
  -- sparse for good; one whose stream already holds dense entries (a topic
  -- made compacted later) stays dense and is not compacted.
  redis.call('HSET', meta, 'offsets', 'ids', 'log_start', start)
  sparse = true
end
-- A sparse partition's entries get IDs <ms>-<offset>: ms is Redis's clock,
-- or the last ID's ms when that is later (a clock step back) or when its
-- sequence is not below the base offset (then one ms on).
local explicit_ms = nil
if sparse then
  local now = redis.call('TIME')
  local last_ms, last_seq = parse_id(last_generated)
  explicit_ms = math.max(tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000), last_ms)
  if explicit_ms == last_ms and last_seq >= base then
    explicit_ms = last_ms + 1
  end
end
local refused, in_progress = check_producer()
if refused ~= nil then
  if refused[1] >= 0 then
    refused[3] = start -- a duplicate: the log start offset as of now
  end
  return refused
end
-- A new leader's epoch begins before its first entry (stream_info.lua).
leader_epochs(meta, base, true)
local last_point = redis.call('ZRANGE', index, -1, -1, 'WITHSCORES')
local last_indexed = -interval
if #last_point == 2 then
  last_indexed = tonumber(last_point[2])
end
local natives_appended = not stream_existed or tonumber(known[1]) ~= base
-- Bytes of the entries since the last index point; unknown (so a point at
-- the first record) after native producers appended.
local bytes_since_point = tonumber(known[3]) or index_bytes
if natives_appended then
  bytes_since_point = index_bytes
end

-- Entries added natively carry their time in the ID only. offsets.lua counts
-- a native newest entry; one this append is about to bury counts here. Only
-- when natives appended can the newest entry be native: it is then copied.
local native_ms = nil
if base > start and natives_appended then
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

local ts_list, key_list, value_list, header_list = records.ts, records.key, records.value, records.headers
local count = #ts_list
local first_id = nil

-- XADD of record i with the fields it has (ts and value alone are handled
-- in the loop below).
local function add_record(i, new_id)
  local key, value, headers = key_list[i], value_list[i], header_list[i]
  if value and key and not headers then
    return redis.call('XADD', stream, new_id, 'ts', ts_list[i], 'key', key, 'value', value)
  end
  local args = {'XADD', stream, new_id, 'ts', ts_list[i]}
  local n = 5
  if key then
    args[n + 1] = 'key'
    args[n + 2] = key
    n = n + 2
  end
  if value then
    args[n + 1] = 'value'
    args[n + 2] = value
    n = n + 2
  end
  if headers then
    for j = 1, #headers do
      args[n + j] = headers[j]
    end
  end
  return redis.call(unpack(args))
end

-- The bytes of record i's key, value and headers (names and values): what
-- a seek that walks over its entry copies, give or take the field names
-- and the timestamp.
local function record_bytes(i)
  local size = #(key_list[i] or '') + #(value_list[i] or '')
  local headers = header_list[i]
  if headers then
    for j = 1, #headers do
      size = size + #headers[j]
    end
  end
  return size
end

local id
for i = 1, count do
  local value = value_list[i]
  local size
  local new_id = '*'
  if explicit_ms ~= nil then
    new_id = format('%d-%d', explicit_ms, base + i - 1)
  end
  if value and not key_list[i] and not header_list[i] then
    id = redis.call('XADD', stream, new_id, 'ts', ts_list[i], 'value', value)
    size = #value
  else
    id = add_record(i, new_id)
    size = record_bytes(i)
  end
  if first_id == nil then
    first_id = id
  end
  local offset = base + i - 1
  -- An index point at least every interval offsets and every index_bytes
  -- bytes of entries, so a seek from a point copies a bounded number of
  -- entries and bytes; the first record after entries that native
  -- producers added (they do not index) starts anew.
  if offset - last_indexed >= interval or bytes_since_point >= index_bytes then
    redis.call('ZADD', index, offset, id)
    last_indexed = offset
    bytes_since_point = 0
  end
  bytes_since_point = bytes_since_point + size
end

-- stream_info()'s fields: this append is the newest thing in the stream.
if base == start then -- the stream was empty: its first entry is this append's
  redis.call('HSET', meta, 'first_id', first_id)
end
-- (A sparse partition's length is not its offset range: it has holes.)
local length = base + count - start
if sparse then
  length = redis.call('XLEN', stream)
end
redis.call('HSET', meta, 'end_offset', base + count, 'length', length, 'last_id', id,
           'index_bytes', bytes_since_point)

known = redis.call('HGET', meta, 'max_ts')
if native_ms ~= nil and (known == false or tonumber(known) < native_ms) then
  redis.call('HSET', meta, 'max_ts', native_ms, 'max_ts_offset', base - 1)
  known = tostring(native_ms)
end
if max_delta ~= nil and (known == false or tonumber(known) < max_ts) then
  redis.call('HSET', meta, 'max_ts', format('%d', max_ts), 'max_ts_offset', base + max_delta)
end

if producer_id ~= '-1' then
  local next_piece = piece + 1 < pieces and piece + 1 or nil
  if in_progress then
    record_batch(in_progress[3], in_progress[4], next_piece)
  else
    record_batch(base, string.match(first_id, '^(%d+)'), next_piece)
  end
end

return {base, first_id, start}
