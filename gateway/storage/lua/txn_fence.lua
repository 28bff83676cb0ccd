-- Abort an Ongoing transaction that its producer will not end: a new
-- producer instance called InitProducerId ('init'), or the transaction
-- outlived its timeout ('timeout', Kafka's transaction.timeout.ms). The
-- epoch goes up, so the old producer is fenced (its next request gets
-- PRODUCER_FENCED), and the transaction is to be aborted (PrepareAbort);
-- the gateway then writes the abort and completes it (txn_complete.lua),
-- as Kafka's prepareFenceProducerEpoch and abortTimedOutTransactions.
--
-- KEYS[1]  the transactional ID's state hash (txn_init.lua)
-- ARGV[1]  the writer's fencing token, '-' when not checked
-- ARGV[2]  'init' or 'timeout'
--
-- Returns {0, producer ID, the new epoch, member...} when fenced (the
-- members as txn_end.lua returns them), {-1} when there is nothing to
-- abort (not Ongoing, or not timed out), or {NOT_COORDINATOR}.

local NOT_COORDINATOR = 16
local MAX_EPOCH = 32767

local txn = KEYS[1]
local h = redis.call('HMGET', txn, 'lease:token', 'pid', 'epoch', 'state', 'started_ms', 'timeout_ms')
if ARGV[1] ~= '-' and tonumber(ARGV[1]) < tonumber(h[1] or '0') then
  return {NOT_COORDINATOR}
end
if h[4] ~= 'Ongoing' then
  return {-1}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ARGV[2] == 'timeout' and tonumber(h[5]) + tonumber(h[6]) > now then
  return {-1}
end

local epoch = tonumber(h[3])
if epoch < MAX_EPOCH then
  epoch = epoch + 1
end
redis.call('HSET', txn, 'epoch', epoch, 'last_epoch', -1, 'state', 'PrepareAbort', 'updated_ms', now)
local reply = {0, tonumber(h[2]), epoch}
local fields = redis.call('HKEYS', txn)
for i = 1, #fields do
  local prefix = string.sub(fields[i], 1, 2)
  if prefix == 'p:' or prefix == 'g:' then
    reply[#reply + 1] = fields[i]
  end
end
return reply
