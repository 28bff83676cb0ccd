-- EndTxn (KIP-98), its first step: the producer's Ongoing transaction is
-- to be committed or aborted (PrepareCommit, PrepareAbort). The gateway then
-- writes the markers and completes it (txn_complete.lua). As Kafka's
-- TransactionCoordinator.endTransaction for transaction version 0 and 1.
--
-- KEYS[1]  the transactional ID's state hash (txn_init.lua)
-- ARGV[1]  the writer's fencing token, '-' when not checked
-- ARGV[2]  producer ID, ARGV[3] producer epoch
-- ARGV[4]  'commit' or 'abort'
--
-- Returns {0, member...}: prepared, with the partitions and groups
-- ('p:<topic>:<partition>', 'g:<group>') to write the outcome to; {0} when
-- the transaction already ended so (a retry); or {Kafka error code}:
-- NOT_COORDINATOR, INVALID_PRODUCER_ID_MAPPING, PRODUCER_FENCED,
-- CONCURRENT_TRANSACTIONS (it is ending so: retry), INVALID_TXN_STATE.
-- The members are at most txn_add.lua's limit.

local NOT_COORDINATOR, INVALID_TXN_STATE, INVALID_PRODUCER_ID_MAPPING = 16, 48, 49
local CONCURRENT_TRANSACTIONS, PRODUCER_FENCED = 51, 90

local txn, commit = KEYS[1], ARGV[4] == 'commit'
local h = redis.call('HMGET', txn, 'lease:token', 'pid', 'epoch', 'state')
if ARGV[1] ~= '-' and tonumber(ARGV[1]) < tonumber(h[1] or '0') then
  return {NOT_COORDINATOR}
end
if h[2] ~= ARGV[2] then
  return {INVALID_PRODUCER_ID_MAPPING}
end
if h[3] ~= ARGV[3] then
  return {PRODUCER_FENCED}
end
local state = h[4]
if state == (commit and 'CompleteCommit' or 'CompleteAbort') then
  return {0}
end
if state == (commit and 'PrepareCommit' or 'PrepareAbort') then
  return {CONCURRENT_TRANSACTIONS}
end
if state ~= 'Ongoing' then
  return {INVALID_TXN_STATE}
end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', txn, 'state', commit and 'PrepareCommit' or 'PrepareAbort', 'updated_ms', now)
local reply = {0}
local fields = redis.call('HKEYS', txn)
for i = 1, #fields do
  local name = fields[i]
  if string.sub(name, 1, 2) == 'p:' or string.sub(name, 1, 2) == 'g:' then
    reply[#reply + 1] = name
  end
end
return reply
