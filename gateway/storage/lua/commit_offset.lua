-- Commit a Kafka consumer group's offset on one partition, as the Redis
-- consumer group of the same name on the partition's stream.
--
-- KEYS[1]  the partition's stream
-- KEYS[2]  its sparse offset index
-- KEYS[3]  its commit metadata hash (field: group)
-- KEYS[4]  its partition metadata hash (stream_info)
-- KEYS[5]  its fence stamps hash (field: group; the highest coordinator
--          fencing token that committed for the group here)
-- ARGV[1]  group ID
-- ARGV[2]  committed offset N (the next offset the group will read)
-- ARGV[3]  leader epoch (-1: none)
-- ARGV[4]  commit time (ms)
-- ARGV[5]  metadata string
-- ARGV[6]  the committing coordinator's fencing token ('': not checked)
--
-- Leaves the group with last-delivered-id = the ID of the entry at offset
-- N-1 and entries-read = N, so that `XREADGROUP GROUP g c STREAMS key >`
-- continues at offset N and XINFO GROUPS shows the group's lag. When N-1 is
-- below the log start (N = 0 included) the ID is 0-0: the group reads from
-- the first entry still there. Past the log end it is the last entry's ID.
-- A token below the partition's stamp for the group is a former
-- coordinator's (it lost the group's lease while paused): nothing is written,
-- so no commit of a former coordinator lands after one of a later coordinator
-- on this partition. The group's lease is in another slot, hence the stamp.
-- Returns the last-delivered-id it set, {-4} when fenced, or {-3} when
-- finding the entry copied SEEK_BYTES without getting there; it wrote
-- nothing then, and the same call again goes on from the index point the
-- seek left.

local stream, index, commits, meta, fences = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local token = tonumber(ARGV[6])
if token and token < tonumber(redis.call('HGET', fences, ARGV[1]) or '0') then
  return {-4}
end
-- Lua numbers are doubles: offset is exact only below 2^53, which is enough
-- to place the group in the stream (no stream holds 2^53 entries), but
-- ENTRIESREAD and the record get the offset as the client sent it.
local group, offset, exact_offset = ARGV[1], tonumber(ARGV[2]), ARGV[2]

local start, end_offset, first_id, last_id, sparse = stream_info(stream, meta, true)
local id = '0-0'
if offset - 1 >= end_offset then
  id = last_id
elseif sparse and offset - 1 >= start then
  -- A compacted topic: the position before offset N, which may be the ID
  -- of a removed entry (N-1 in a hole) or the last entry below N.
  id = sparse_position(stream, index, offset, start)
  if id == nil then
    return {-3}
  end
elseif offset - 1 >= start then
  id = entry_id_at(stream, index, offset - 1, start, end_offset, first_id)
  if id == nil then
    return {-3} -- the seek yielded (stream_info.lua), nothing written: call again
  end
end

local created = redis.pcall('XGROUP', 'CREATE', stream, group, id, 'MKSTREAM', 'ENTRIESREAD', exact_offset)
if type(created) == 'table' and created.err then
  if string.sub(created.err, 1, 9) ~= 'BUSYGROUP' then
    return redis.error_reply(created.err)
  end
  redis.call('XGROUP', 'SETID', stream, group, id, 'ENTRIESREAD', exact_offset)
end

-- "offset:epoch:time:metadata": the offset tells a later fetch whether the
-- metadata still belongs to the group's position (native consumers may
-- have moved it since).
redis.call('HSET', commits, group, exact_offset .. ':' .. ARGV[3] .. ':' .. ARGV[4] .. ':' .. ARGV[5])
if token then
  redis.call('HSET', fences, group, token)
end
return id
