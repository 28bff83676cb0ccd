-- Retention: trim a partition's stream by age and/or size.
--
-- KEYS[1]  the partition's stream
-- KEYS[2]  its sparse offset index
-- KEYS[3]  its partition metadata hash (stream_info)
-- ARGV[1]  retention.ms: entries appended (entry ID time, Redis's clock)
--          longer ago than this go; -1 for no time limit
-- ARGV[2]  retention.bytes: approximate size limit; -1 for none
--
-- Returns the log start offset afterwards.
--
-- Time: XTRIM MINID <now - retention.ms>, exact. Size: the stream's
-- MEMORY USAGE (sampled) divided by its length gives an average entry size,
-- from which XTRIM MAXLEN ~ keeps about retention.bytes worth of entries;
-- "~" lets Redis trim only whole internal nodes (about 100 entries), so the
-- stream may stay somewhat above the limit. Index points below the new log
-- start are removed with the entries.

local stream, index, meta = KEYS[1], KEYS[2], KEYS[3]
local retention_ms = tonumber(ARGV[1])
local retention_bytes = tonumber(ARGV[2])
if redis.call('EXISTS', stream) == 0 then
  return 0
end
if retention_ms >= 0 then
  local now = redis.call('TIME')
  local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  local min_ms = now_ms - retention_ms
  if min_ms > 0 then
    redis.call('XTRIM', stream, 'MINID', string.format('%d', min_ms))
  end
end
if retention_bytes >= 0 then
  local length = redis.call('XLEN', stream)
  if length > 0 then
    local usage = redis.call('MEMORY', 'USAGE', stream, 'SAMPLES', 5)
    local keep = math.floor(retention_bytes * length / usage)
    if keep < length then
      redis.call('XTRIM', stream, 'MAXLEN', '~', string.format('%d', keep))
    end
  end
end
local start = stream_info(stream, meta, true)
redis.call('ZREMRANGEBYSCORE', index, '-inf', '(' .. string.format('%d', start))
return start
