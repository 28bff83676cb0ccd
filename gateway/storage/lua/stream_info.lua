-- Shared prelude (prepended to scripts that need it by the storage layer):
-- the stream's log start offset, end offset, first entry ID and last ID.
--
-- entries-added counts every entry ever added, so it is the end offset (the
-- next offset to be assigned); the log start offset is that minus the
-- current length, which holds while entries leave only from the head
-- (XTRIM), never from the middle (XDEL).
--
-- XINFO STREAM copies the first and last entries into its reply (1.4-2.7
-- ms with 1 MiB entries), so the partition's metadata hash keeps what it
-- would say as of the gateway's last append or refresh: end_offset
-- (entries-added), length, first_id and last_id. They are trusted while
-- the stream has the same length and no entry newer than last_id
-- (XREVRANGE + (last_id returns nothing): nobody appended, trimmed or
-- recreated it with XADD *. Otherwise, or when the meta lacks them (data of
-- older gateways), XINFO STREAM is asked and the meta refreshed when the
-- caller may write (`writes`; functions flagged no-writes may not, so they
-- ask XINFO until a writing caller has refreshed the meta). Not
-- detected: a stream deleted and recreated with as many entries as before,
-- all with IDs at or below last_id (explicit IDs, or XADD * within the
-- millisecond of the gateway's last append), and XSETID.
--
-- Partitions of compacted topics (meta `offsets` = `ids`, written by their
-- first append) have holes: compaction XDELs entries from the middle. Their
-- entries carry their offset in their ID, `<append ms>-<offset>`, so an
-- entry's offset is its ID's sequence number, whatever was deleted before
-- it; their log start offset is the meta's `log_start` (moved only by
-- retention and DeleteRecords, never by compaction). stream_info's fifth
-- result says which kind the partition is (true: sparse).
local function stream_info_refresh(key, meta, writes, sparse, log_start)
  local info = redis.call('XINFO', 'STREAM', key)
  local length, added, first_id, last_id = 0, 0, '0-0', '0-0'
  for i = 1, #info, 2 do
    local name = info[i]
    if name == 'length' then
      length = tonumber(info[i + 1])
    elseif name == 'entries-added' then
      added = tonumber(info[i + 1])
    elseif name == 'recorded-first-entry-id' then
      first_id = info[i + 1]
    elseif name == 'last-generated-id' then
      last_id = info[i + 1]
    end
  end
  if writes then
    redis.call('HSET', meta, 'end_offset', added, 'length', length, 'first_id', first_id, 'last_id', last_id)
  end
  if sparse then
    return math.min(log_start, added), added, first_id, last_id, true
  end
  return added - length, added, first_id, last_id, false
end

local function stream_info(key, meta, writes)
  if redis.call('EXISTS', key) == 0 then
    return 0, 0, '0-0', '0-0', false
  end
  local known = redis.call('HMGET', meta, 'end_offset', 'length', 'first_id', 'last_id', 'offsets', 'log_start')
  local end_offset, length, first_id, last_id = tonumber(known[1]), tonumber(known[2]), known[3], known[4]
  local sparse, log_start = known[5] == 'ids', tonumber(known[6]) or 0
  if end_offset == nil or length == nil or not first_id or not last_id
      or redis.call('XLEN', key) ~= length
      or #redis.call('XREVRANGE', key, '+', '(' .. last_id, 'COUNT', 1) > 0 then
    return stream_info_refresh(key, meta, writes, sparse, log_start)
  end
  if sparse then
    return math.min(log_start, end_offset), end_offset, first_id, last_id, true
  end
  return end_offset - length, end_offset, first_id, last_id, false
end

-- Entry IDs compare as (milliseconds, sequence) pairs.
local function parse_id(id)
  local dash = string.find(id, '-', 1, true)
  return tonumber(string.sub(id, 1, dash - 1)), tonumber(string.sub(id, dash + 1))
end

-- The offset of an entry of a sparse partition: its ID's sequence number.
local function id_offset(id)
  local _, seq = parse_id(id)
  return seq
end

-- The position right after entry ID `id` (for an exclusive XTRIM MINID).
local function next_id(id)
  local ms, seq = parse_id(id)
  return string.format('%d-%d', ms, seq + 1)
end

local function id_less_or_equal(a, b)
  local a_ms, a_seq = parse_id(a)
  local b_ms, b_seq = parse_id(b)
  return a_ms < b_ms or (a_ms == b_ms and a_seq <= b_seq)
end

-- Seeks. Redis can only find an entry by ID, so finding the entry at an
-- offset means walking forward from the nearest index point, and every
-- entry walked over is copied out of the stream (XRANGE has no IDs-only
-- form). The walks below copy in steps sized from the biggest entry seen,
-- stop after SEEK_BYTES of entries (the caller then answers "call again",
-- which lets other clients in), and leave index points as they go, so the
-- next seek there is short.

-- Bytes of entries (IDs, field names and values) one script call may copy
-- while seeking forward, and first while trying back from the end (which
-- pays when the offset is a few entries from the end: consumers commit there).
local SEEK_BYTES = 1048576
local SEEK_BACK_BYTES = 262144
-- A walk leaves an index point every INDEX_INTERVAL offsets or every
-- INDEX_BYTES of entries, whichever comes first.
local INDEX_INTERVAL = 1024
local INDEX_BYTES = 262144
-- Entries in a walk's first step, before their size is known: one, as a
-- single entry may be as large as the whole budget.
local FIRST_STEP = 1

local function entry_size(entry)
  local size = #entry[1]
  local fields = entry[2]
  for j = 1, #fields do
    size = size + #fields[j]
  end
  return size
end

-- The next step's entry count: at most double the last one, and no more
-- than the bytes left allow at the biggest entry size seen.
local function next_step(count, left, biggest)
  return math.max(1, math.min(count * 2, math.floor(left / math.max(biggest, 1))))
end

-- A walk in progress: the entry at offset `pos` has ID `id`. `index` is nil
-- for callers that may not write (functions flagged no-writes): their walk
-- leaves no index points, and they hand where it stopped to the next call.
local function new_walk(index, pos, id)
  return {index = index, pos = pos, id = id, copied = 0, biggest = 0, count = 0, bytes = 0}
end

local function leave_point(walk)
  if walk.index ~= nil then
    redis.call('ZADD', walk.index, walk.pos, walk.id)
  end
end

-- Counts an entry passed over; leaves an index point when one is due.
local function pass(walk, entry)
  local size = entry_size(entry)
  walk.pos, walk.id = walk.pos + 1, entry[1]
  walk.copied = walk.copied + size
  walk.count, walk.bytes = walk.count + 1, walk.bytes + size
  if size > walk.biggest then
    walk.biggest = size
  end
  if walk.count >= INDEX_INTERVAL or walk.bytes >= INDEX_BYTES then
    leave_point(walk)
    walk.count, walk.bytes = 0, 0
  end
end

-- Walks forward until the entry at offset `target` (or, with `bound`, the
-- last entry at or before that ID) or SEEK_BYTES. Returns true when it got
-- there (or to the stream's end); false when the budget ran out first, after
-- leaving an index point where it stopped (walk.pos, walk.id), from which
-- the next call goes on.
local function walk_forward(stream, walk, target, bound)
  local step = FIRST_STEP
  while walk.pos < target do
    if walk.copied >= SEEK_BYTES then
      leave_point(walk)
      return false
    end
    local want = math.min(target - walk.pos, step)
    local found = redis.call('XRANGE', stream, '(' .. walk.id, bound or '+', 'COUNT', want)
    for i = 1, #found do
      pass(walk, found[i])
    end
    if #found < want then
      return true -- reached the bound (or entries were deleted from the middle)
    end
    step = next_step(step, SEEK_BYTES - walk.copied, walk.biggest)
  end
  return true
end

-- The newest `count` entries, oldest first, if they fit in `budget` bytes;
-- nil when they do not.
local function newest_entries(stream, count, budget)
  local newest, copied, biggest, step = {}, 0, 0, FIRST_STEP
  local before = '+'
  while #newest < count do
    if copied >= budget then
      return nil
    end
    local want = math.min(count - #newest, step)
    local found = redis.call('XREVRANGE', stream, before, '-', 'COUNT', want)
    for i = 1, #found do
      local size = entry_size(found[i])
      copied = copied + size
      biggest = math.max(biggest, size)
      newest[#newest + 1] = found[i]
    end
    if #found < want then
      break
    end
    before = '(' .. found[#found][1]
    step = next_step(step, budget - copied, biggest)
  end
  local oldest_first = {}
  for i = #newest, 1, -1 do
    oldest_first[#oldest_first + 1] = newest[i]
  end
  return oldest_first
end

-- The nearest known position at or before `offset`: an index point, or the
-- head of the stream when the index has nothing above the log start. A
-- point whose entry is gone (the stream was deleted and written again under
-- the same key, leaving the index) is removed; a few are tried.
local function seek_point(stream, index, offset, start, first_id)
  for _ = 1, 4 do
    local point = redis.call('ZRANGE', index, offset, '-inf', 'BYSCORE', 'REV', 'LIMIT', 0, 1, 'WITHSCORES')
    if #point ~= 2 or tonumber(point[2]) < start then
      break
    end
    if #redis.call('XRANGE', stream, point[1], point[1]) == 1 then
      return tonumber(point[2]), point[1]
    end
    redis.call('ZREM', index, point[1])
  end
  return start, first_id
end

-- The ID of the entry at `offset` (start <= offset < end_offset), or nil
-- when finding it would copy more than SEEK_BYTES: then the caller answers
-- "call again" and the next call goes on from the index point left. From
-- the nearest index point forward, or back from the newest entry when that
-- is closer and small enough.
local function entry_id_at(stream, index, offset, start, end_offset, first_id)
  local seek_offset, seek_id = seek_point(stream, index, offset, start, first_id)
  local tail = end_offset - offset
  if tail <= offset - seek_offset then
    local newest = newest_entries(stream, tail, SEEK_BACK_BYTES)
    if newest ~= nil and #newest == tail then
      return newest[1][1]
    end
  end
  local walk = new_walk(index, seek_offset, seek_id)
  if not walk_forward(stream, walk, offset) then
    return nil
  end
  return walk.id
end

-- The offset that follows entry ID `id`: how far a reader that has seen
-- every entry up to and including `id` has come. Binary search of the index
-- (its members rise with their scores) for the last point at or before the
-- ID, then a walk from there to the ID. When counting would copy more than
-- SEEK_BYTES it returns nil and the walk (call again, as for entry_id_at;
-- a caller that may not write, `index_writes` false, passes walk.pos and
-- walk.id to the next call as `resume_offset` and `resume_id`, where the
-- walk goes on).
local function offset_after_id(stream, index, id, start, end_offset, first_id, last_id,
                               index_writes, resume_offset, resume_id)
  if id_less_or_equal(last_id, id) then
    return end_offset
  end
  local low, high = 0, redis.call('ZCARD', index) - 1
  local point_offset, point_id = start, first_id
  while low <= high do
    local middle = math.floor((low + high) / 2)
    local point = redis.call('ZRANGE', index, middle, middle, 'WITHSCORES')
    if id_less_or_equal(point[1], id) then
      if tonumber(point[2]) >= start then
        point_offset, point_id = tonumber(point[2]), point[1]
      end
      low = middle + 1
    else
      high = middle - 1
    end
  end
  if resume_offset ~= nil and resume_offset > point_offset and resume_offset >= start
      and id_less_or_equal(resume_id, id) and #redis.call('XRANGE', stream, resume_id, resume_id) == 1 then
    point_offset, point_id = resume_offset, resume_id
  end
  if not id_less_or_equal(point_id, id) then
    return start -- the ID is before the first entry
  end
  local walk = new_walk(index_writes and index or nil, point_offset, point_id)
  if not walk_forward(stream, walk, end_offset, id) then
    return nil, walk
  end
  return walk.pos + 1
end

-- Seeks in sparse partitions (compacted topics). Offsets there are IDs'
-- sequence numbers and rise with the IDs, so the entries from an offset on
-- are the entries after a position: the last entry below the offset, or an
-- index point below it. An index point whose entry compaction removed is
-- still such a position (XRANGE takes any ID), so points stay.

-- A position (an ID) such that the entries after it are exactly those at
-- `target` and above: the last entry below `target`, found by walking
-- forward from the nearest index point below it (the walk leaves points as
-- in dense partitions). '0-0' when nothing below is left. nil when the walk
-- copied SEEK_BYTES first: it left a point where it stopped, call again.
local function sparse_position(stream, index, target, start)
  local position, position_offset = '0-0', -1
  if target - 1 >= start then
    local point = redis.call('ZRANGE', index, target - 1, '-inf', 'BYSCORE', 'REV', 'LIMIT', 0, 1, 'WITHSCORES')
    if #point == 2 and tonumber(point[2]) >= start then
      position, position_offset = point[1], tonumber(point[2])
    end
  end
  local walk = new_walk(index, position_offset, position)
  local step = FIRST_STEP
  while true do
    if walk.copied >= SEEK_BYTES then
      if walk.pos >= 0 then
        leave_point(walk)
      end
      return nil
    end
    local found = redis.call('XRANGE', stream, '(' .. walk.id, '+', 'COUNT', step)
    for i = 1, #found do
      local offset = id_offset(found[i][1])
      if offset >= target then
        return walk.id
      end
      walk.pos = offset - 1 -- pass() counts it to its offset, across holes
      pass(walk, found[i])
    end
    if #found < step then
      return walk.id
    end
    step = next_step(step, SEEK_BYTES - walk.copied, walk.biggest)
  end
end

-- The offset that follows position `id` in a sparse partition: its
-- sequence number plus one (a removed entry's ID still names its offset),
-- or the log start for a position before every entry.
local function sparse_offset_after_id(id, start, end_offset)
  if id == '0-0' then
    return start
  end
  return math.min(id_offset(id) + 1, end_offset)
end

-- Leader epochs (KIP-320). A Redis failover or restart may lose the tail
-- that had not reached the replica or the disk, and entries-added then hands
-- the same offsets to different records. Kafka clients detect that through
-- the partition's leader epoch: it changes whenever the log may have been
-- cut, and OffsetForLeaderEpoch tells where each epoch ended.
--
-- A Redis server's replication ID (master_replid) is new after every
-- restart and every promotion of a replica, and a replica carries its
-- primary's. The meta hash records which ID started the current epoch
-- (leader_replid) and the epochs as 'epoch:start_offset,...' (leader_epochs,
-- oldest first, at most MAX_EPOCHS). A server whose ID differs is a new
-- leader: a new epoch starts at its end offset, which is where the surviving
-- log ends. The meta hash sits in the partition's slot and is replicated
-- with the entries it describes, so the promoted replica has exactly the
-- epochs of the entries it has.
local MAX_EPOCHS = 16

local function replication_id()
  local info = redis.call('INFO', 'replication')
  return string.match(info, 'master_replid:(%x+)') or ''
end

local function parse_epochs(text)
  local epochs = {}
  for epoch, start in string.gmatch(text, '(%d+):(%d+)') do
    epochs[#epochs + 1] = {tonumber(epoch), tonumber(start)}
  end
  return epochs
end

local function format_epochs(epochs)
  local parts = {}
  for i = 1, #epochs do
    parts[i] = string.format('%d:%d', epochs[i][1], epochs[i][2])
  end
  return table.concat(parts, ',')
end

-- The epochs after a change of leader at end_offset: epochs that started
-- beyond it are gone with their entries; one that started exactly there
-- holds no entry and only takes the new number.
local function next_epoch(epochs, end_offset)
  local epoch = epochs[#epochs][1] + 1
  while #epochs > 0 and epochs[#epochs][2] >= end_offset do
    table.remove(epochs)
  end
  epochs[#epochs + 1] = {epoch, end_offset}
  while #epochs > MAX_EPOCHS do
    table.remove(epochs, 1)
  end
  return epochs
end

-- The partition's epochs as 'epoch:start,...', the current one last. A
-- partition without any starts at epoch 0 from offset 0. When the server is
-- not the one that began the current epoch, a new one begins at end_offset;
-- callers that may write (`writes`) store it, the others (functions flagged
-- no-writes) report what the next writer will store: nothing is appended
-- before an append stores it, so its start is the same end offset.
local function leader_epochs(meta, end_offset, writes)
  local known = redis.call('HMGET', meta, 'leader_epochs', 'leader_replid')
  local current = replication_id()
  local epochs = parse_epochs(known[1] or '')
  local changed = false
  if #epochs == 0 then
    epochs, changed = {{0, 0}}, true
  elseif known[2] ~= current then
    epochs, changed = next_epoch(epochs, end_offset), true
  end
  local text = format_epochs(epochs)
  if changed and writes then
    redis.call('HSET', meta, 'leader_epochs', text, 'leader_replid', current)
  end
  return text
end
