-- Find the first offset whose record timestamp is at or after a time.
--
-- KEYS[1]  the partition's stream
-- KEYS[2]  its sparse offset index
-- KEYS[3]  its partition metadata hash (stream_info)
-- ARGV[1]  timestamp (ms), a non-negative decimal integer of up to 64 bits
-- ARGV[2]  how many entries after the first one appended at or after that
--          time to examine for a CreateTime timestamp at or after it
-- ARGV[3]  1 when record timestamps are append times (LogAppendTime topics:
--          the entry ID's ms), 0 to use the ts field (CreateTime)
-- ARGV[4]  (optional) continue the examination after this entry ID
--
-- Returns {offset, timestamp}, {-1, -1} when no record qualifies, or
-- {-2, last ID examined} when ARGV[2] entries were examined without an
-- answer and more follow: call again with that ID as ARGV[4].
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
local start, end_offset, first_id, last_id = stream_info(stream, meta)
if end_offset == start or wanted == nil or wanted[1] then
  return {-1, -1}
end

-- Entries appended at or after the time asked for (the ID's ms is the append time).
local from = wanted[2] == '' and '0' or wanted[2]
if ARGV[4] then
  from = '(' .. ARGV[4]
end
local candidates = redis.call('XRANGE', stream, from, '+', 'COUNT', scan)
local hit_id, hit_ts = nil, nil
for _, entry in ipairs(candidates) do
  local fields = entry[2]
  local ts = nil
  for j = 1, #fields, 2 do
    if by_append_time then
      break
    end
    if fields[j] == 'ts' then
      ts = as_timestamp(fields[j + 1])
      break
    end
  end
  if ts == nil then
    ts = as_timestamp(string.match(entry[1], '^%d+'))
  end
  if at_least(ts, wanted) then
    hit_id, hit_ts = entry[1], (ts[1] and '-' or '') .. (ts[2] == '' and '0' or ts[2])
    break
  end
end
if hit_id == nil then
  if #candidates == scan then
    -- Records stamped well before their append (a backfill, a long linger):
    -- the answer may lie further on.
    return {-2, candidates[scan][1]}
  end
  return {-1, -1}
end

-- offset_after_id counts up to and including the hit, so the hit is one before.
return {offset_after_id(stream, index, hit_id, start, end_offset, first_id, last_id) - 1, hit_ts}
