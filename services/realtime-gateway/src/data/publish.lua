-- One publish: idempotency, the next offset, history and fan-out in one step, so that what
-- subscribers receive live and what history holds never disagree.
-- KEYS[1] the stream's meta hash (e = epoch, o = offset)
-- KEYS[2] the history stream
-- KEYS[3] the idempotency key
-- ARGV[1] the publication body     ARGV[2] history size (0 = keep none)
-- ARGV[3] history ttl (s)          ARGV[4] meta ttl (s)
-- ARGV[5] epoch for a new stream   ARGV[6] the pub/sub channel
-- ARGV[7] idempotency ttl (s), 0 when the publish has no key
if ARGV[7] ~= '0' then
  local seen = redis.call('GET', KEYS[3])
  if seen then
    return {seen, 1}
  end
end
local epoch = redis.call('HGET', KEYS[1], 'e')
if not epoch then
  -- A new epoch: whatever history remained belongs to a stream that no longer counts.
  epoch = ARGV[5]
  redis.call('HSET', KEYS[1], 'e', epoch)
  redis.call('DEL', KEYS[2])
end
local offset = redis.call('HINCRBY', KEYS[1], 'o', 1)
redis.call('EXPIRE', KEYS[1], ARGV[4])
if tonumber(ARGV[2]) > 0 then
  redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[2], offset .. '-1', 'b', ARGV[1])
  redis.call('EXPIRE', KEYS[2], ARGV[3])
end
local position = offset .. '\n' .. epoch
redis.call('PUBLISH', ARGV[6], position .. '\n' .. ARGV[1])
if ARGV[7] ~= '0' then
  redis.call('SET', KEYS[3], position, 'EX', ARGV[7])
end
return {position, 0}
