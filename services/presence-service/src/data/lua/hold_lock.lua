-- Takes or keeps the cleanup lock. ARGV: key, holder, ttl ms. Returns 1 when held.
local current = redis.call("GET", ARGV[1])
if not current then
  redis.call("SET", ARGV[1], ARGV[2], "PX", ARGV[3])
  return 1
end
if current == ARGV[2] then
  redis.call("PEXPIRE", ARGV[1], ARGV[3])
  return 1
end
return 0
