-- Find the first offset whose record timestamp is at or after a time.
--
-- KEYS[1]  the partition's stream
-- KEYS[2]  its sparse offset index
-- KEYS[3]  its partition metadata hash (stream_info)
-- ARGV[1]  timestamp (ms), a non-negative decimal integer of up to 64 bits
-- ARGV[2]  how many entries after the first one appended at or after that
--          time to examine for a CreateTime timestamp at or after it (the
--          examination also stops after SEEK_BYTES of entries)
-- ARGV[3]  1 when record timestamps are append times (LogAppendTime topics:
--          the entry ID's ms), 0 to use the ts field (CreateTime)
-- ARGV[4]  (optional) continue the examination after this entry ID ('' for
--          from the start)
-- ARGV[5], ARGV[6]  (optional) where the last call's count stopped: an
--          offset and the ID of the entry there
--
-- Returns {offset, timestamp}, {-1, -1} when no record qualifies,
-- {-2, last ID examined} when ARGV[2] entries (or SEEK_BYTES) were examined
-- without an answer and more follow: call again with that ID as ARGV[4]; or
-- {-3, offset, ID} when converting the hit's ID to an offset copied
-- SEEK_BYTES without getting there: call again with the same arguments
-- plus that offset and ID (this function may not write, so it leaves no
-- index points).
--
-- Entry IDs carry the append time, which rises monotonically; a record's
-- CreateTime (field ts) is normally a little earlier than its append time,
-- so the answer lies at or just after the first entry appended at or after
-- the time asked for. Producer clocks running ahead of Redis make the answer
-- approximate (docs/mapping.md).

local stream, index, meta = KEYS[1], KEYS[2], KEYS[3]
local scan = tonumber(ARGV[2])
local by_append_time = ARGV[3] == '1'

-- Timestamps stay decimal strings and compare digit by digit: Lua numbers
-- are doubles, exact only up to 2^53, and tostring() of 10^14 is "1e+14",
-- which XRANGE refuses. A timestamp is {negative, digits without leading zeros}.
local function as_timestamp(text)
  local sign, digits = string.match(text, '^%s*([+-]?)(%d+)%s*$')
  if digits == nil then
    return nil
  end
  digits = string.gsub(digits, '^0+', '')
  return {sign == '-' and digits ~= '', digits}
end

local function at_least(a, b)
  if a[1] ~= b[1] then
    return b[1]
  end
  local a_digits, b_digits = a[2], b[2]
  if #a_digits ~= #b_digits then
    return (#a_digits > #b_digits) ~= a[1]
  end
  if a_digits == b_digits then
    return true
  end
  return (a_digits > b_digits) ~= a[1]
end

local wanted = as_timestamp(ARGV[1])
local start, end_offset, first_id, last_id, sparse = stream_info(stream, meta)
if end_offset == start or wanted == nil or wanted[1] then
  return {-1, -1}
end

-- The ts of an entry as a timestamp, or its ID's ms (native entries,
-- LogAppendTime topics).
local function timestamp_of(entry)
  if not by_append_time then
    local fields = entry[2]
    for j = 1, #fields, 2 do
      if fields[j] == 'ts' then
        local ts = as_timestamp(fields[j + 1])
        if ts ~= nil then
          return ts
        end
        break
      end
    end
  end
  return as_timestamp(string.match(entry[1], '^%d+'))
end

-- Examine the entries appended at or after the time asked for (the ID's ms
-- is the append time), in steps whose copied bytes stay within SEEK_BYTES.
local from = wanted[2] == '' and '0' or wanted[2]
if ARGV[4] and ARGV[4] ~= '' then
  from = '(' .. ARGV[4]
end
local hit_id, hit_ts = nil, nil
local examined, copied, biggest, step = 0, 0, 0, FIRST_STEP
local last_examined = nil
while hit_id == nil do
  if examined >= scan or copied >= SEEK_BYTES then
    -- Records stamped well before their append (a backfill, a long linger):
    -- the answer may lie further on.
    return {-2, last_examined}
  end
  local want = math.min(step, scan - examined)
  local candidates = redis.call('XRANGE', stream, from, '+', 'COUNT', want)
  for _, entry in ipairs(candidates) do
    local size = entry_size(entry)
    examined, copied, biggest = examined + 1, copied + size, math.max(biggest, size)
    last_examined = entry[1]
    local ts = timestamp_of(entry)
    if at_least(ts, wanted) then
      hit_id, hit_ts = entry[1], (ts[1] and '-' or '') .. (ts[2] == '' and '0' or ts[2])
      break
    end
  end
  if hit_id == nil and #candidates < want then
    return {-1, -1}
  end
  if last_examined ~= nil then
    from = '(' .. last_examined
  end
  step = next_step(step, SEEK_BYTES - copied, biggest)
end

if sparse then
  return {id_offset(hit_id), hit_ts} -- a compacted topic's entry names its offset
end
-- offset_after_id counts up to and including the hit, so the hit is one before.
local after, walk = offset_after_id(stream, index, hit_id, start, end_offset, first_id, last_id,
                                    false, tonumber(ARGV[5]), ARGV[6])
if after == nil then
  return {-3, walk.pos, walk.id} -- counting copied SEEK_BYTES without getting there: call again
end
return {after - 1, hit_ts}
