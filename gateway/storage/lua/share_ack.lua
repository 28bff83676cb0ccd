-- Acknowledge records a share-group member holds on one partition.
--
-- KEYS[1]  the partition's stream
-- KEYS[2]  the group's held-records hash on this partition (share_acquire.lua)
-- ARGV[1]  group ID
-- ARGV[2]  member ID
-- ARGV[3]  lock duration (ms)
-- ARGV[4..] pairs of offset and KIP-932 type: 0 gap and 1 accept (XACK),
--          2 release (available again at once), 3 reject (XACK, archived),
--          4 renew (the lock starts again)
--
-- A record the member does not hold (never acquired, acknowledged, or its
-- lock expired) is skipped and counted. Returns {refused, archived}, archived
-- a list of {offset, id, fields} rejected here (for a dead-letter copy).

local stream, held = KEYS[1], KEYS[2]
local group, member, lock_ms = ARGV[1], ARGV[2], tonumber(ARGV[3])
-- Released records go to a consumer nobody reads as, idle for ten years:
-- the next XAUTOCLAIM of any member or native worker takes them first.
local AVAILABLE, AVAILABLE_IDLE = 'krg-share-available', 315360000000

local refused, archived = 0, {}
for i = 4, #ARGV - 1, 2 do
  local offset, kind = ARGV[i], tonumber(ARGV[i + 1])
  local id = redis.call('HGET', held, 'o:' .. offset)
  local pending = {}
  if id then
    pending = redis.call('XPENDING', stream, group, 'IDLE', 0, id, id, 1, member)
  end
  if #pending == 0 or tonumber(pending[1][3]) >= lock_ms then
    refused = refused + 1
  elseif kind == 4 then
    redis.call('XCLAIM', stream, group, member, 0, id, 'JUSTID')
  elseif kind == 2 then
    redis.call('XCLAIM', stream, group, AVAILABLE, 0, id, 'IDLE', AVAILABLE_IDLE, 'JUSTID')
  else
    redis.call('XACK', stream, group, id)
    redis.call('HDEL', held, 'o:' .. offset, 'i:' .. id)
    if kind == 3 then
      local entry = redis.call('XRANGE', stream, id, id)
      if #entry == 1 then
        archived[#archived + 1] = {tonumber(offset), id, entry[1][2]}
      end
    end
  end
end
return {refused, archived}
