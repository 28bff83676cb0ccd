-- Give an idempotent producer its ID and epoch (InitProducerId).
--
-- KEYS[1]  the producer ID counter (shared by every gateway on this Redis,
--          so IDs stay unique across restarts and gateways)
-- ARGV[1]  the producer ID the client has, or -1
-- ARGV[2]  its epoch, or -1
--
-- Returns {producer_id, epoch}. A returning producer that names an ID this
-- Redis issued keeps it with the epoch bumped (KIP-360), which fences its
-- older batches; anyone else, or an epoch about to overflow, gets a new ID.
local MAX_EPOCH = 32767
local producer_id, epoch = tonumber(ARGV[1]), tonumber(ARGV[2])
local issued = tonumber(redis.call('GET', KEYS[1]) or '0')
if producer_id >= 1 and producer_id <= issued and epoch >= 0 and epoch < MAX_EPOCH - 1 then
  return {producer_id, epoch + 1}
end
return {redis.call('INCR', KEYS[1]), 0}
