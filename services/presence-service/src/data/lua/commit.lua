-- Writes a batch of user changes and appends their events to the log, in one step.
-- ARGV: prefix, log max length, candidate epoch, change count, then per change:
--   tenant, user, expected version, record ("" deletes), due ms ("" none, "=" unchanged),
--   online ("1" entered, "0" left, "" unchanged),
--   n, n × (channel, "1"/"0")        membership
--   n, n × (channel, delta)          channel connections
--   n, n × (page, delta)             page viewers
--   n, n × (node, connection, "1"/"0")
--   events (a JSON array's items, "" for none)
-- Returns {cursor or "", conflicting change indexes (0-based)...}.
local prefix = ARGV[1]
local maxlen = ARGV[2]
local count = tonumber(ARGV[4])
local sep = "\31"
local at = 5
local function take()
  local value = ARGV[at]
  at = at + 1
  return value
end

local conflicts = {}
local events = {}
for index = 0, count - 1 do
  local tenant, user, expected, record, due, online = take(), take(), take(), take(), take(), take()
  local records = prefix .. "u:" .. tenant
  local current = redis.call("HGET", records, user)
  local version = "0"
  if current then
    version = string.match(current, "^(%d+):") or "0"
  end
  local ok = version == expected
  if not ok then
    table.insert(conflicts, index)
  end
  local member = tenant .. sep .. user
  if ok then
    if record == "" then
      redis.call("HDEL", records, user)
    else
      redis.call("HSET", records, user, record)
    end
    if due == "" then
      redis.call("ZREM", prefix .. "due", member)
    elseif due ~= "=" then
      redis.call("ZADD", prefix .. "due", due, member)
    end
    if online == "1" then
      redis.call("ZADD", prefix .. "on:" .. tenant, 0, user)
    elseif online == "0" then
      redis.call("ZREM", prefix .. "on:" .. tenant, user)
    end
  end
  for _ = 1, tonumber(take()) do
    local channel, entered = take(), take()
    if ok then
      local members = prefix .. "cm:" .. tenant .. ":" .. channel
      if entered == "1" then
        redis.call("ZADD", members, 0, user)
      else
        redis.call("ZREM", members, user)
      end
    end
  end
  -- Counters are keys of their own: a hash per tenant would stay a listpack (linear scans)
  -- until it outgrows hash-max-listpack-entries.
  for _ = 1, tonumber(take()) do
    local channel, delta = take(), take()
    if ok then
      local count = prefix .. "cc:" .. tenant .. ":" .. channel
      if redis.call("INCRBY", count, delta) <= 0 then
        redis.call("DEL", count)
      end
    end
  end
  for _ = 1, tonumber(take()) do
    local page, delta = take(), take()
    if ok then
      local count = prefix .. "pv:" .. tenant .. ":" .. page
      if redis.call("INCRBY", count, delta) <= 0 then
        redis.call("DEL", count)
      end
    end
  end
  for _ = 1, tonumber(take()) do
    local node, connection, held = take(), take(), take()
    if ok then
      local entry = member .. sep .. connection
      if held == "1" then
        redis.call("SADD", prefix .. "n:" .. node, entry)
      else
        redis.call("SREM", prefix .. "n:" .. node, entry)
      end
    end
  end
  local diffs = take()
  if ok and diffs ~= "" then
    table.insert(events, diffs)
  end
end

local cursor = ""
if #events > 0 then
  local epoch = redis.call("GET", prefix .. "epoch")
  if not epoch then
    epoch = ARGV[3]
    redis.call("SET", prefix .. "epoch", epoch)
  end
  local id = redis.call("XADD", prefix .. "log", "MAXLEN", maxlen, "*", "d", "[" .. table.concat(events, ",") .. "]")
  cursor = epoch .. "/" .. id
end
local out = {cursor}
for _, index in ipairs(conflicts) do
  table.insert(out, index)
end
return out
