-- Check a read cursor before a plain XRANGE continues from it.
--
-- A consumer reading a partition in order asks next for the offset after
-- the last entry it got. The gateway remembers that entry's ID, and instead
-- of read.lua (which copies every entry into Lua and back) it sends this
-- check and `XRANGE <stream> (<id> + COUNT n` in one pipeline: the entries
-- after the ID are exactly the entries from the offset on.
--
-- KEYS[1]  the partition's stream
-- KEYS[2]  its partition metadata hash (stream_info)
-- ARGV[1]  the offset to read from
-- ARGV[2]  the ID of the entry at offset - 1, as the gateway last read it
--
-- Returns {status, log_start_offset, end_offset, last_id, sparse, epochs}
--   epochs: the partition's leader epochs (stream_info.lua's leader_epochs)
--   sparse 1: a compacted topic's partition, whose entries' offsets are
--             their IDs' sequence numbers (read.lua)
--   status 0: the cursor holds; entries of the XRANGE beyond end_offset
--             (appended between the two commands) are to be dropped
--   status 1: the offset is outside [log_start_offset, end_offset]
--   status 3: the entry is gone (the topic was deleted and created again):
--             read with read.lua instead
-- At offset == log_start_offset the entry may have been trimmed away
-- legitimately; every entry left is after it, so the cursor still holds.

local stream, meta = KEYS[1], KEYS[2]
local offset = tonumber(ARGV[1])
local start, end_offset, _, last_id, sparse = stream_info(stream, meta)
local flag = sparse and 1 or 0
local epochs = leader_epochs(meta, end_offset, false)
if offset < start or offset > end_offset then
  return {1, start, end_offset, last_id, flag, epochs}
end
-- In a compacted topic the entry may be gone, but its ID is still the
-- position before the offset (its sequence number is its offset).
if not sparse and offset > start and #redis.call('XRANGE', stream, ARGV[2], ARGV[2]) == 0 then
  return {3, start, end_offset, last_id, flag, epochs}
end
return {0, start, end_offset, last_id, flag, epochs}
