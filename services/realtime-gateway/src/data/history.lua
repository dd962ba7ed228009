-- A channel's position and kept publications, read together. A channel without a stream
-- gets its epoch here, so subscribers learn a position they can recover from later.
-- KEYS[1] the stream's meta hash   KEYS[2] the history stream
-- ARGV[1] epoch for a new stream   ARGV[2] meta ttl (s)
-- ARGV[3] first stream id to read ('-' for the oldest)
-- ARGV[4] at most this many (0 reads none)   ARGV[5] '1' for newest first
local epoch = redis.call('HGET', KEYS[1], 'e')
if not epoch then
  epoch = ARGV[1]
  redis.call('HSET', KEYS[1], 'e', epoch, 'o', 0)
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  redis.call('DEL', KEYS[2])
end
local offset = redis.call('HGET', KEYS[1], 'o') or '0'
local entries = {}
if tonumber(ARGV[4]) > 0 then
  if ARGV[5] == '1' then
    entries = redis.call('XREVRANGE', KEYS[2], '+', ARGV[3], 'COUNT', ARGV[4])
  else
    entries = redis.call('XRANGE', KEYS[2], ARGV[3], '+', 'COUNT', ARGV[4])
  end
end
return {offset, epoch, entries}
