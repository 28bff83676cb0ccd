-- Log start offset, end offset and the offset of the largest timestamp.
--
-- KEYS[1]  the partition's stream
-- KEYS[2]  its partition metadata hash
--
-- Returns {log_start_offset, end_offset, max_ts_offset, max_ts, last_id, epochs}
-- (-1, -1 for max_ts_offset and max_ts on an empty partition, and last_id
-- false). last_id is the newest entry's ID, whose ms is its append time;
-- epochs the partition's leader epochs (stream_info.lua's leader_epochs).
local stream, meta = KEYS[1], KEYS[2]
local start, end_offset, first_id, last_id = stream_info(stream, meta)
local epochs = leader_epochs(meta, end_offset, false)
if end_offset == start then
  return {start, end_offset, -1, -1, false, epochs}
end
local max_ts = tonumber(redis.call('HGET', meta, 'max_ts') or '-1')
local max_offset = tonumber(redis.call('HGET', meta, 'max_ts_offset') or '-1')
-- Entries added natively carry their time in the ID only; the newest ID is
-- their maximum. Only a native newest entry (one without a ts field) counts:
-- the gateway's own entries have IDs later than their CreateTime, which
-- max_ts already covers.
local function newest_is_native()
  local newest = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)
  if #newest == 0 then
    return false
  end
  local fields = newest[1][2]
  for j = 1, #fields, 2 do
    if fields[j] == 'ts' then
      return false
    end
  end
  return true
end
local last_ms = parse_id(last_id)
if max_offset < start or (last_ms > max_ts and newest_is_native()) then
  max_ts, max_offset = last_ms, end_offset - 1
end
return {start, end_offset, max_offset, max_ts, last_id, epochs}
