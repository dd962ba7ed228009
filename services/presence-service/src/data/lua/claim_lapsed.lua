-- Takes lapsed leases away from their nodes and returns who held connections there.
-- ARGV: prefix, now ms, max nodes. Returns {node, n, n × "tenant\31user\31connection", ...}.
local prefix = ARGV[1]
local leases = prefix .. "leases"
local out = {}
for _, node in ipairs(redis.call("ZRANGEBYSCORE", leases, "-inf", ARGV[2], "LIMIT", 0, ARGV[3])) do
  redis.call("ZREM", leases, node)
  local held = redis.call("SMEMBERS", prefix .. "n:" .. node)
  table.insert(out, node)
  table.insert(out, #held)
  for _, entry in ipairs(held) do
    table.insert(out, entry)
  end
end
return out
