-- InitProducerId for a transactional ID (KIP-98, KIP-360): a new producer ID
-- with epoch 0, or the next epoch of the ID's producer, which fences every
-- producer of an older epoch (Kafka's TransactionCoordinator
-- prepareInitProducerIdTransit and TransactionMetadata.prepareIncrementProducerEpoch).
--
-- KEYS[1]  the transactional ID's state hash (fields pid, epoch, prev_pid,
--          last_epoch, state, timeout_ms, updated_ms; the coordinator's
--          lease:* fields beside them)
-- ARGV[1]  the writer's fencing token, '-' when not checked
-- ARGV[2]  the transaction timeout, ms
-- ARGV[3]  the producer ID the request names, -1 for none; ARGV[4] its epoch
-- ARGV[5]  a fresh producer ID, '-' when the caller has none yet
--
-- Returns {0, producer ID, epoch}; {-2} when a fresh producer ID is needed
-- (a new transactional ID, or the epochs of its ID are used up): call again
-- with one; {-3} when the previous producer's transaction is Ongoing: abort
-- it (txn_fence.lua), then the client retries; or {Kafka error code}:
-- NOT_COORDINATOR (a later fencing token wrote), CONCURRENT_TRANSACTIONS (a
-- transaction is ending: retry), PRODUCER_FENCED (the named producer is not
-- the current one).

local NOT_COORDINATOR, CONCURRENT_TRANSACTIONS, PRODUCER_FENCED = 16, 51, 90
-- Kafka's TransactionMetadata.isEpochExhausted: Short.MaxValue - 1.
local LAST_EPOCH = 32766

local txn = KEYS[1]
if ARGV[1] ~= '-' and tonumber(ARGV[1]) < tonumber(redis.call('HGET', txn, 'lease:token') or '0') then
  return {NOT_COORDINATOR}
end
local timeout_ms, named_pid, named_epoch = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local fresh = ARGV[5] ~= '-' and tonumber(ARGV[5]) or nil

local h = redis.call('HMGET', txn, 'pid', 'epoch', 'prev_pid', 'last_epoch', 'state')
local pid, epoch, prev_pid, last_epoch, state
if h[1] then
  pid, epoch, prev_pid, last_epoch, state = tonumber(h[1]), tonumber(h[2]), tonumber(h[3]), tonumber(h[4]), h[5]
elseif fresh then
  pid, epoch, prev_pid, last_epoch, state = fresh, -1, -1, -1, 'Empty'
else
  return {-2}
end

local named = named_pid >= 0
if named and not (epoch == -1 or named_pid == pid
                  or (named_pid == prev_pid and named_epoch >= LAST_EPOCH)) then
  return {PRODUCER_FENCED}
end
if state == 'Ongoing' then
  return {-3}
end
if state ~= 'Empty' and state ~= 'CompleteCommit' and state ~= 'CompleteAbort' then
  -- Ending (PrepareCommit, PrepareAbort): the client retries after it ended.
  return {CONCURRENT_TRANSACTIONS}
end

if epoch >= LAST_EPOCH and (not named or named_epoch == epoch) then
  -- The ID's epochs are used up: a new producer ID, the old one kept so a
  -- retry of this request is recognized.
  if not fresh then
    return {-2}
  end
  prev_pid, pid, last_epoch, epoch = pid, fresh, named and epoch or -1, 0
elseif not named then
  epoch, last_epoch = epoch + 1, -1
elseif epoch == -1 or named_epoch == epoch then
  epoch, last_epoch = epoch + 1, epoch
elseif named_epoch ~= last_epoch then
  return {PRODUCER_FENCED}
end
-- (named_epoch == last_epoch: a retry of a bump that succeeded; unchanged.)

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', txn, 'pid', pid, 'epoch', epoch, 'prev_pid', prev_pid, 'last_epoch', last_epoch,
           'state', 'Empty', 'timeout_ms', timeout_ms, 'updated_ms', now)
-- Empty has no start (Kafka's txnStartTimestamp -1); a completed one keeps its.
redis.call('HDEL', txn, 'started_ms')
return {0, pid, epoch}
