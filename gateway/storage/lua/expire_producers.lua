-- Forget idempotent producers idle on this partition for
-- producer.id.expiration.ms, as Kafka's ProducerStateManager does: one
-- bounded HSCAN step per call, so a partition that thousands of producers
-- wrote to is swept in many short calls.
--
-- KEYS[1]  the partition's idempotent-producer state hash (field: producer ID;
--          value "epoch;first:last:offset:append_ms;...", see append.lua)
-- ARGV[1]  HSCAN cursor ('0' to start)
-- ARGV[2]  how many fields this step looks at (HSCAN COUNT, at most 1000)
-- ARGV[3]  producer.id.expiration.ms
--
-- Returns {next cursor ('0': the sweep is done), producers removed}.
-- A producer goes when its newest batch's append time (Redis's clock, as
-- the entry IDs) is that old; a state with no append time at all (written
-- before append times were kept) is left alone.

local producers = KEYS[1]
local cursor, count, expiration_ms = ARGV[1], math.min(tonumber(ARGV[2]), 1000), tonumber(ARGV[3])
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)

local function newest_append_ms(state)
  local newest = nil
  for part in string.gmatch(state, '[^;]+') do
    local append_ms = tonumber(string.match(part, '^%-?%d+:%-?%d+:%d+:(%d+)$'))
    if append_ms ~= nil and (newest == nil or append_ms > newest) then
      newest = append_ms
    end
  end
  return newest
end

local step = redis.call('HSCAN', producers, cursor, 'COUNT', count)
local fields, expired = step[2], {}
for i = 1, #fields, 2 do
  local newest = newest_append_ms(fields[i + 1])
  if newest ~= nil and now_ms - newest >= expiration_ms then
    expired[#expired + 1] = fields[i]
  end
end
if #expired > 0 then
  redis.call('HDEL', producers, unpack(expired))
end
return {step[1], #expired}
