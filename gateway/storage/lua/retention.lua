-- Retention: trim a partition's stream by age and/or size, a bounded amount
-- per call.
--
-- KEYS[1]  the partition's stream
-- KEYS[2]  its sparse offset index
-- KEYS[3]  its partition metadata hash (stream_info)
-- ARGV[1]  retention.ms: entries appended (entry ID time, Redis's clock)
--          longer ago than this go; -1 for no time limit
-- ARGV[2]  retention.bytes: approximate size limit; -1 for none
-- ARGV[3]  the most entries one call may trim
--
-- Returns {log_start_offset afterwards, 1 when more may be due (call
-- again), else 0}.
--
-- Trims go by whole internal nodes (XTRIM ~ ... LIMIT), which Redis frees
-- without touching each entry, at most ARGV[3] entries per call. Time: once
-- the whole nodes are gone, an exact XTRIM MINID <now - retention.ms>
-- removes the expired rest of the first node (fewer entries than a node
-- holds). Size: the stream's MEMORY USAGE (sampled) divided by its length
-- gives an average entry size, from which about retention.bytes worth of
-- entries are kept; the stream may stay somewhat above the limit. Index
-- points below the new log start are removed with the entries.

local stream, index, meta = KEYS[1], KEYS[2], KEYS[3]
local retention_ms = tonumber(ARGV[1])
local retention_bytes = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
if redis.call('EXISTS', stream) == 0 then
  return {0, 0}
end
local more = 0
local left = limit
local length_before = redis.call('XLEN', stream)
if retention_ms >= 0 then
  local now = redis.call('TIME')
  local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  local min_ms = now_ms - retention_ms
  if min_ms > 0 then
    local min_id = string.format('%d', min_ms)
    local trimmed = redis.call('XTRIM', stream, 'MINID', '~', min_id, 'LIMIT', left)
    left = left - trimmed
    if left <= 0 then
      more = 1
    else
      left = left - redis.call('XTRIM', stream, 'MINID', min_id)
    end
  end
end
if retention_bytes >= 0 and left > 0 then
  local length = redis.call('XLEN', stream)
  if length > 0 then
    local usage = redis.call('MEMORY', 'USAGE', stream, 'SAMPLES', 5)
    local keep = math.floor(retention_bytes * length / usage)
    if keep < length then
      local trimmed = redis.call('XTRIM', stream, 'MAXLEN', '~', string.format('%d', keep), 'LIMIT', left)
      if trimmed >= left then
        more = 1
      end
    end
  end
elseif retention_bytes >= 0 then
  more = 1
end
if redis.call('HGET', meta, 'offsets') == 'ids' and redis.call('XLEN', stream) < length_before then
  -- A compacted topic (compact,delete) keeps its log start in the meta
  -- (stream_info.lua): the first offset left, or the end when none is.
  local first = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)
  local _, added = stream_info(stream, meta, true)
  local moved = added
  if #first == 1 then
    moved = id_offset(first[1][1])
  end
  local known = tonumber(redis.call('HGET', meta, 'log_start')) or 0
  if moved > known then
    redis.call('HSET', meta, 'log_start', moved)
  end
end
local start = stream_info(stream, meta, true)
redis.call('ZREMRANGEBYSCORE', index, '-inf', '(' .. string.format('%d', start))
return {start, more}
