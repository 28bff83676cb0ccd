-- Compaction: one bounded step of cleaning a compacted topic's partition
-- (cleanup.policy compact or compact,delete; docs/mapping.md, "Compacted
-- topics").
--
-- KEYS[1]  the partition's stream (sparse: entry IDs are <ms>-<offset>)
-- KEYS[2]  its partition metadata hash: clean_id (every entry up to this ID
--          has been through compaction), clean_len (entries left up to it),
--          clean_until (the exclusive end of the pass under way), length;
--          swept_head, sweep_cursor (the sweep of trimmed keys, below)
-- KEYS[3]  key -> ID of the latest entry compaction has seen for that key
--          ('t' and the ID when that entry is a tombstone: only those need
--          a ZREM from KEYS[4] when superseded, and a ZREM costs about as
--          much as the rest of an entry's work)
-- KEYS[4]  tombstones compaction has seen: ID scored by when (ms)
-- ARGV[1]  min.compaction.lag.ms   ARGV[2] max.compaction.lag.ms
-- ARGV[3]  segment.ms: the active part, never compacted, is the entries
--          appended less than min(segment.ms, max.compaction.lag.ms) ago,
--          and always the newest entry
-- ARGV[4]  min.cleanable.dirty.ratio   ARGV[5] delete.retention.ms
-- ARGV[6]  most entries one call examines; ARGV[7] most bytes it copies
--
-- Returns {1 when more is due (call again) else 0, entries examined,
-- entries removed}.
--
-- A pass walks the dirty entries (after clean_id, up to the active part)
-- once, oldest first: each keyed entry replaces the key's previous latest
-- entry, which is XDELed (it is older, so already behind clean_id). The map
-- of latest entries persists between passes, so a pass costs the dirty
-- entries only, and deciding that no pass is due costs a few O(1) calls.
-- A tombstone (a key without a value) is kept until delete.retention.ms
-- after compaction reached it, then removed with its key's map entry.

-- (The offset index is not touched: a point whose entry is removed still
-- names a position, stream_info.lua.)
local stream, meta, latest, tombstones = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local min_lag, max_lag, active_ms = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local min_ratio, delete_retention = tonumber(ARGV[4]), tonumber(ARGV[5])
local max_records, max_bytes = tonumber(ARGV[6]), tonumber(ARGV[7])

if redis.call('HGET', meta, 'offsets') ~= 'ids' or redis.call('EXISTS', stream) == 0 then
  return {0, 0, 0} -- not a sparse partition (or nothing written yet): never compacted
end
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local examined, removed, copied = 0, 0, 0
local known = redis.call('HMGET', meta, 'clean_id', 'clean_len', 'clean_until')
local clean_id, clean_len, clean_until = known[1] or '0-0', tonumber(known[2]) or 0, known[3]

local function field(fields, name)
  for j = 1, #fields, 2 do
    if fields[j] == name then
      return fields[j + 1]
    end
  end
  return nil
end

-- Removes one entry compaction has passed (so counted in clean_len).
local function remove(id)
  local gone = redis.call('XDEL', stream, id)
  removed, clean_len = removed + gone, clean_len - gone
end

-- Tombstones whose delete.retention.ms has passed since compaction reached them.
local due = redis.call('ZRANGE', tombstones, '-inf', string.format('%d', now_ms - delete_retention),
                       'BYSCORE', 'LIMIT', 0, max_records)
for _, id in ipairs(due) do
  local entry = redis.call('XRANGE', stream, id, id)
  if #entry == 1 then
    local key = field(entry[1][2], 'key')
    remove(id)
    if key and redis.call('HGET', latest, key) == 't' .. id then
      redis.call('HDEL', latest, key)
    end
  end
  redis.call('ZREM', tombstones, id)
  examined = examined + 1
end

-- Keys whose latest entry retention or DeleteRecords trimmed (an ID below
-- the first entry's; `head` nil: the stream is empty, all are) are
-- forgotten: one HSCAN step per call (100 fields, or a small hash whole)
-- whenever the head has moved since the last complete sweep.
local function sweep(head)
  local mark = head or ''
  local swept = redis.call('HMGET', meta, 'swept_head', 'sweep_cursor')
  if swept[1] == mark and not swept[2] then
    return
  end
  local reply = redis.call('HSCAN', latest, swept[2] or '0', 'COUNT', 100)
  local fields = reply[2]
  for i = 1, #fields, 2 do
    local id, tombstone = fields[i + 1], string.sub(fields[i + 1], 1, 1) == 't'
    if tombstone then
      id = string.sub(id, 2)
    end
    if head == nil or not id_less_or_equal(head, id) then
      redis.call('HDEL', latest, fields[i])
      if tombstone then
        redis.call('ZREM', tombstones, id)
      end
    end
  end
  if reply[1] == '0' then
    redis.call('HSET', meta, 'swept_head', mark)
    redis.call('HDEL', meta, 'sweep_cursor')
  else
    redis.call('HSET', meta, 'sweep_cursor', reply[1])
  end
end

local first = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)
sweep(first[1] and first[1][1])
if #first == 0 then
  redis.call('HSET', meta, 'clean_len', 0, 'length', 0)
  return {0, examined, removed}
end
if not id_less_or_equal(first[1][1], clean_id) then
  clean_len = 0 -- retention or DeleteRecords trimmed every entry behind clean_id
end

if not clean_until then
  -- Is a pass due? Only entries outside the active part and at least
  -- min.compaction.lag.ms old are cleanable; the dirty ratio (entries after
  -- clean_id over all entries) must reach min.cleanable.dirty.ratio, unless
  -- the oldest dirty entry is max.compaction.lag.ms old.
  local newest = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)[1][1]
  local horizon = now_ms - math.max(min_lag, math.min(active_ms, max_lag))
  local bound = newest
  if horizon < parse_id(newest) then
    bound = string.format('%d-0', math.max(horizon + 1, 0))
  end
  local dirty = redis.call('XRANGE', stream, '(' .. clean_id, '(' .. bound, 'COUNT', 1)
  if #dirty == 0 then
    return {0, examined, removed}
  end
  local length = redis.call('XLEN', stream)
  local ratio = (length - math.min(clean_len, length)) / length
  if ratio < min_ratio and parse_id(dirty[1][1]) > now_ms - max_lag then
    return {0, examined, removed}
  end
  clean_until = bound
end

-- The pass: dirty entries in order, up to the bounds of one call.
local more, step = 1, 1
while examined < max_records and copied < max_bytes do
  local found = redis.call('XRANGE', stream, '(' .. clean_id, '(' .. clean_until, 'COUNT', step)
  for _, entry in ipairs(found) do
    local id, fields = entry[1], entry[2]
    examined, copied = examined + 1, copied + entry_size(entry)
    local key = field(fields, 'key')
    if key then
      local previous = redis.call('HGET', latest, key)
      if previous and string.sub(previous, 1, 1) == 't' then
        previous = string.sub(previous, 2)
        redis.call('ZREM', tombstones, previous)
      end
      if previous then
        remove(previous)
      end
      if field(fields, 'value') == nil then
        redis.call('HSET', latest, key, 't' .. id)
        redis.call('ZADD', tombstones, now_ms, id)
      else
        redis.call('HSET', latest, key, id)
      end
    end
    clean_len, clean_id = clean_len + 1, id
  end
  if #found < step then
    more, clean_until = 0, false -- the pass is done
    break
  end
  step = math.max(1, math.min(step * 2, max_records - examined))
end

redis.call('HSET', meta, 'clean_id', clean_id, 'clean_len', clean_len, 'length', redis.call('XLEN', stream))
if clean_until then
  redis.call('HSET', meta, 'clean_until', clean_until)
else
  redis.call('HDEL', meta, 'clean_until')
end
return {more, examined, removed}
