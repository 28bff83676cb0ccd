-- Give up a coordinator's lease (a clean stop, or an idle key), so the next
-- gateway takes it at once rather than when it would have ended.
--
-- KEYS[1]  the hash holding the lease (see lease_acquire.lua)
-- ARGV[1]  the holder's instance ID: a lease another instance holds by now
--          is left alone
--
-- The fencing token stays, so the next holder's is higher. Returns 1 when
-- released, 0 when this instance did not hold it.

if redis.call('HGET', KEYS[1], 'lease:instance') ~= ARGV[1] then
  return 0
end
redis.call('HDEL', KEYS[1], 'lease:node', 'lease:instance', 'lease:until')
return 1
