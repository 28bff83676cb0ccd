-- DeleteRecords: trim a partition's stream up to (not including) an offset.
--
-- KEYS[1]  the partition's stream
-- KEYS[2]  its sparse offset index
-- KEYS[3]  its partition metadata hash (stream_info)
-- ARGV[1]  the new log start offset; -1 for the end offset (high watermark)
--
-- Returns {0, log_start_offset} after trimming (an offset at or below the
-- log start offset trims nothing), or {1, log_start_offset} when the offset
-- is past the end offset (Kafka's OFFSET_OUT_OF_RANGE), or {2,
-- log_start_offset} when finding the entry copied SEEK_BYTES without getting
-- there: nothing trimmed yet, call again.
--
-- XTRIM MINID <ID of the entry at the offset> removes exactly the entries
-- before it, because offsets are positions (no XDEL in the middle); index
-- points below the new log start go with them.

local stream, index, meta = KEYS[1], KEYS[2], KEYS[3]
local target = tonumber(ARGV[1])
local start, end_offset, first_id, _, sparse = stream_info(stream, meta, true)
if target == -1 then
  target = end_offset
end
if target < 0 or target > end_offset then
  return {1, start}
end
if target > start then
  if target == end_offset then
    redis.call('XTRIM', stream, 'MAXLEN', 0)
  elseif sparse then
    -- A compacted topic: the entries up to the position before the target.
    local position = sparse_position(stream, index, target, start)
    if position == nil then
      return {2, start}
    end
    if position ~= '0-0' then
      redis.call('XTRIM', stream, 'MINID', next_id(position))
    end
  else
    local id = entry_id_at(stream, index, target, start, end_offset, first_id)
    if id == nil then
      return {2, start} -- the seek yielded (stream_info.lua): call again
    end
    redis.call('XTRIM', stream, 'MINID', id)
  end
  if sparse then
    -- Its log start is the meta's: exactly the offset asked for, as in Kafka.
    redis.call('HSET', meta, 'log_start', target)
  end
  start = stream_info(stream, meta, true)
end
redis.call('ZREMRANGEBYSCORE', index, '-inf', '(' .. string.format('%d', start))
return {0, start}
