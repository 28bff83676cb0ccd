-- AddPartitionsToTxn and AddOffsetsToTxn (KIP-98): partitions, or a group
-- whose offsets the transaction commits, join the producer's transaction,
-- which starts (Ongoing) with the first of them. As Kafka's
-- TransactionCoordinator.handleAddPartitionsToTransaction.
--
-- KEYS[1]  the transactional ID's state hash (txn_init.lua)
-- ARGV[1]  the writer's fencing token, '-' when not checked
-- ARGV[2]  producer ID, ARGV[3] producer epoch
-- ARGV[4]  how many partitions and groups one transaction may hold
-- ARGV[5..] the members to add: 'p:<topic>:<partition>' or 'g:<group>'
--
-- Returns a Kafka error code, 0 when added: NOT_COORDINATOR (a later
-- fencing token wrote), INVALID_PRODUCER_ID_MAPPING (not the ID's producer),
-- PRODUCER_FENCED (another epoch), CONCURRENT_TRANSACTIONS (the last
-- transaction is still ending: retry), INVALID_REQUEST (beyond the limit).

local NOT_COORDINATOR, INVALID_REQUEST, INVALID_PRODUCER_ID_MAPPING = 16, 42, 49
local CONCURRENT_TRANSACTIONS, PRODUCER_FENCED = 51, 90

local txn = KEYS[1]
local h = redis.call('HMGET', txn, 'lease:token', 'pid', 'epoch', 'state', 'members')
if ARGV[1] ~= '-' and tonumber(ARGV[1]) < tonumber(h[1] or '0') then
  return NOT_COORDINATOR
end
if h[2] ~= ARGV[2] then
  return INVALID_PRODUCER_ID_MAPPING
end
if h[3] ~= ARGV[3] then
  return PRODUCER_FENCED
end
local state = h[4]
if state == 'PrepareCommit' or state == 'PrepareAbort' then
  return CONCURRENT_TRANSACTIONS
end

local members = tonumber(h[5] or '0')
local added = 0
for i = 5, #ARGV do
  if redis.call('HEXISTS', txn, ARGV[i]) == 0 then
    added = added + 1
  end
end
if members + added > tonumber(ARGV[4]) then
  return INVALID_REQUEST
end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if state ~= 'Ongoing' then
  redis.call('HSET', txn, 'state', 'Ongoing', 'started_ms', now)
end
for i = 5, #ARGV do
  redis.call('HSET', txn, ARGV[i], 1)
end
redis.call('HSET', txn, 'members', members + added, 'updated_ms', now)
return 0
