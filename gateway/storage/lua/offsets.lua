-- Log start offset, end offset and the offset of the largest timestamp.
--
-- KEYS[1]  the partition's stream
-- KEYS[2]  its partition metadata hash
--
-- Returns {log_start_offset, end_offset, max_ts_offset, max_ts}
-- (-1, -1 for the last two on an empty partition).
local stream, meta = KEYS[1], KEYS[2]
local start, end_offset, first_id, last_id = stream_info(stream)
if end_offset == start then
  return {start, end_offset, -1, -1}
end
local max_ts = tonumber(redis.call('HGET', meta, 'max_ts') or '-1')
local max_offset = tonumber(redis.call('HGET', meta, 'max_ts_offset') or '-1')
-- Entries added natively carry their time in the ID only; the newest ID is
-- their maximum.
local last_ms = parse_id(last_id)
if last_ms > max_ts or max_offset < start then
  max_ts, max_offset = last_ms, end_offset - 1
end
return {start, end_offset, max_offset, max_ts}
