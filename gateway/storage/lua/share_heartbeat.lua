-- A share-group member's heartbeat (ShareGroupHeartbeat, KIP-932): the
-- group's members and epoch live in one hash, so any gateway can answer.
--
-- KEYS[1]  the group's hash: 'epoch' -> group epoch, 'm:<member ID>' ->
--          '<session end ms>|<subscribed topics, comma-separated>|<client
--          host>|<client ID>' (ShareGroupDescribe shows them)
-- ARGV[1]  member ID
-- ARGV[2]  member epoch (0 joins, -1 leaves)
-- ARGV[3]  session timeout (ms)
-- ARGV[4]  '1' when the request names the subscribed topics, else '0'
-- ARGV[5]  the subscribed topics, comma-separated
-- ARGV[6]  at most this many members
-- ARGV[7]  the client's host
-- ARGV[8]  the client ID
--
-- Returns {code, group epoch, topics}: code 0 ok, 1 unknown member, 2 the
-- group is full. Members whose session ended are dropped first; any change
-- of membership or subscription bumps the group epoch.

local key = KEYS[1]
local member, member_epoch, session_ms = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local names_topics, topics, max_members = ARGV[4] == '1', ARGV[5], tonumber(ARGV[6])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)

local epoch = tonumber(redis.call('HGET', key, 'epoch') or '0')
local changed = false
local members = 0
local all = redis.call('HGETALL', key)
for i = 1, #all, 2 do
  if string.sub(all[i], 1, 2) == 'm:' then
    local ends = tonumber(string.match(all[i + 1], '^(%d+)|'))
    if ends < now and all[i] ~= 'm:' .. member then
      redis.call('HDEL', key, all[i])
      changed = true
    else
      members = members + 1
    end
  end
end

local field = 'm:' .. member
local current = redis.call('HGET', key, field)
if member_epoch == -1 then
  if current then
    redis.call('HDEL', key, field)
    changed = true
  end
  if changed then
    redis.call('HSET', key, 'epoch', epoch + 1)
  end
  return {0, -1, ''}
end
if current == nil and member_epoch ~= 0 then
  if changed then
    redis.call('HSET', key, 'epoch', epoch + 1)
  end
  return {1, epoch, ''}
end
if current == nil and members >= max_members then
  return {2, epoch, ''}
end
local old_topics = current and string.match(current, '^%d+|([^|]*)') or ''
if not names_topics then
  topics = old_topics
end
if current == nil or topics ~= old_topics then
  changed = true
end
redis.call('HSET', key, field, (now + session_ms) .. '|' .. topics .. '|' .. ARGV[7] .. '|' .. ARGV[8])
if changed then
  epoch = epoch + 1
  redis.call('HSET', key, 'epoch', epoch)
end
return {0, epoch, topics}
