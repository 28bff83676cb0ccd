-- A partition's leader epochs and end offset: for Metadata's leader epoch
-- and OffsetForLeaderEpoch (the current epoch ends at the end offset).
--
-- KEYS[1]  the partition's stream
-- KEYS[2]  its partition metadata hash
--
-- Returns {end_offset, epochs}: epochs as 'epoch:start_offset,...', the
-- current one last (stream_info.lua's leader_epochs; a new leader's epoch
-- is reported here and stored by the next append or read).
local stream, meta = KEYS[1], KEYS[2]
local _, end_offset = stream_info(stream, meta)
return {end_offset, leader_epochs(meta, end_offset, false)}
