-- The last step of ending a transaction: its outcome is written to every
-- partition and group (by the gateway, before this call), so it is
-- complete (CompleteCommit, CompleteAbort) and holds no partitions.
--
-- KEYS[1]  the transactional ID's state hash (txn_init.lua)
-- ARGV[1]  the writer's fencing token, '-' when not checked
-- ARGV[2]  producer ID, ARGV[3] producer epoch (of the prepared state)
-- ARGV[4]  'commit' or 'abort'
--
-- Returns 0 when completed or complete already, NOT_COORDINATOR, or
-- INVALID_TXN_STATE when the transaction is not the one prepared.

local NOT_COORDINATOR, INVALID_TXN_STATE = 16, 48

local txn, commit = KEYS[1], ARGV[4] == 'commit'
local h = redis.call('HMGET', txn, 'lease:token', 'pid', 'epoch', 'state')
if ARGV[1] ~= '-' and tonumber(ARGV[1]) < tonumber(h[1] or '0') then
  return NOT_COORDINATOR
end
if h[2] ~= ARGV[2] or h[3] ~= ARGV[3] then
  return INVALID_TXN_STATE
end
if h[4] == (commit and 'CompleteCommit' or 'CompleteAbort') then
  return 0
end
if h[4] ~= (commit and 'PrepareCommit' or 'PrepareAbort') then
  return INVALID_TXN_STATE
end

local fields = redis.call('HKEYS', txn)
for i = 1, #fields do
  local prefix = string.sub(fields[i], 1, 2)
  if prefix == 'p:' or prefix == 'g:' then
    redis.call('HDEL', txn, fields[i])
  end
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', txn, 'state', commit and 'CompleteCommit' or 'CompleteAbort', 'members', 0,
           'updated_ms', now)
return 0
