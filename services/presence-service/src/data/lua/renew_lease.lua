-- Renews a node's lease. ARGV: prefix, node, until ms. Returns 1 when the lease existed.
local leases = ARGV[1] .. "leases"
local known = redis.call("ZSCORE", leases, ARGV[2])
redis.call("ZADD", leases, ARGV[3], ARGV[2])
if known then
  return 1
end
return 0
