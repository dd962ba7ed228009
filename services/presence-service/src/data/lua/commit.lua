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
--
-- The batch is read first, then written with one variadic command per key (versions with
-- one HMGET per tenant, records with one HSET, due times with one ZADD, …): a command from a
-- script costs far more than one more argument to it.
local prefix = ARGV[1]
local maxlen = ARGV[2]
local count = tonumber(ARGV[4])
local sep = "\31"
-- unpack() may spread only so many values on Lua's stack.
local CHUNK = 1000
local at = 5
local function take()
  local value = ARGV[at]
  at = at + 1
  return value
end

-- Calls `command key args...` in chunks of `step` arguments.
local function each_chunk(command, key, args, step)
  for first = 1, #args, step do
    redis.call(command, key, unpack(args, first, math.min(first + step - 1, #args)))
  end
end

local changes = {}
for index = 0, count - 1 do
  local change = {
    index = index, tenant = take(), user = take(), expected = take(),
    record = take(), due = take(), online = take(),
    members = {}, connections = {}, pages = {}, nodes = {},
  }
  for _ = 1, tonumber(take()) do table.insert(change.members, {take(), take()}) end
  for _ = 1, tonumber(take()) do table.insert(change.connections, {take(), take()}) end
  for _ = 1, tonumber(take()) do table.insert(change.pages, {take(), take()}) end
  for _ = 1, tonumber(take()) do table.insert(change.nodes, {take(), take(), take()}) end
  change.diffs = take()
  changes[#changes + 1] = change
end

-- Versions, one HMGET per tenant: a change applies only if its record is as it was read.
local tenants = {}
for _, change in ipairs(changes) do
  local tenant = tenants[change.tenant]
  if not tenant then
    tenant = {users = {}, changes = {}}
    tenants[change.tenant] = tenant
  end
  table.insert(tenant.users, change.user)
  table.insert(tenant.changes, change)
end
local conflicts = {}
for name, tenant in pairs(tenants) do
  for first = 1, #tenant.users, CHUNK do
    local last = math.min(first + CHUNK - 1, #tenant.users)
    local current = redis.call("HMGET", prefix .. "u:" .. name, unpack(tenant.users, first, last))
    for offset = 0, last - first do
      local change = tenant.changes[first + offset]
      local stored = current[offset + 1]
      local version = "0"
      if stored then
        version = string.match(stored, "^(%d+):") or "0"
      end
      change.ok = version == change.expected
      if not change.ok then
        table.insert(conflicts, change.index)
      end
    end
  end
end

-- What to write, gathered per key; for sets, the last word on a member wins.
local function list(map, key)
  local items = map[key]
  if not items then
    items = {}
    map[key] = items
  end
  return items
end
local hset, hdel, zadd, zrem, flags, counters = {}, {}, {}, {}, {}, {}
local function flag(key, member, on)
  list(flags, key)[member] = on
end
local events = {}
for _, change in ipairs(changes) do
  if change.ok then
    local tenant, user = change.tenant, change.user
    local member = tenant .. sep .. user
    if change.record == "" then
      table.insert(list(hdel, prefix .. "u:" .. tenant), user)
    else
      local fields = list(hset, prefix .. "u:" .. tenant)
      table.insert(fields, user)
      table.insert(fields, change.record)
    end
    if change.due == "" then
      table.insert(list(zrem, prefix .. "due"), member)
    elseif change.due ~= "=" then
      local due = list(zadd, prefix .. "due")
      table.insert(due, change.due)
      table.insert(due, member)
    end
    if change.online ~= "" then
      flag("z" .. prefix .. "on:" .. tenant, user, change.online == "1")
    end
    for _, entry in ipairs(change.members) do
      flag("z" .. prefix .. "cm:" .. tenant .. ":" .. entry[1], user, entry[2] == "1")
    end
    -- Counters are keys of their own: a hash per tenant would stay a listpack (linear
    -- scans) until it outgrows hash-max-listpack-entries.
    for _, entry in ipairs(change.connections) do
      local key = prefix .. "cc:" .. tenant .. ":" .. entry[1]
      counters[key] = (counters[key] or 0) + tonumber(entry[2])
    end
    for _, entry in ipairs(change.pages) do
      local key = prefix .. "pv:" .. tenant .. ":" .. entry[1]
      counters[key] = (counters[key] or 0) + tonumber(entry[2])
    end
    for _, entry in ipairs(change.nodes) do
      flag("s" .. prefix .. "n:" .. entry[1], member .. sep .. entry[2], entry[3] == "1")
    end
    if change.diffs ~= "" then
      table.insert(events, change.diffs)
    end
  end
end

for key, fields in pairs(hset) do each_chunk("HSET", key, fields, 2 * CHUNK) end
for key, fields in pairs(hdel) do each_chunk("HDEL", key, fields, CHUNK) end
for key, items in pairs(zadd) do each_chunk("ZADD", key, items, 2 * CHUNK) end
for key, members in pairs(zrem) do each_chunk("ZREM", key, members, CHUNK) end
-- Sorted sets (online users, channel members: all scores 0) and sets (a node's connections).
for tagged, members in pairs(flags) do
  local kind, key = string.sub(tagged, 1, 1), string.sub(tagged, 2)
  local added, removed = {}, {}
  for member, on in pairs(members) do
    if on then
      if kind == "z" then table.insert(added, 0) end
      table.insert(added, member)
    else
      table.insert(removed, member)
    end
  end
  if kind == "z" then
    each_chunk("ZADD", key, added, 2 * CHUNK)
    each_chunk("ZREM", key, removed, CHUNK)
  else
    each_chunk("SADD", key, added, CHUNK)
    each_chunk("SREM", key, removed, CHUNK)
  end
end
for key, delta in pairs(counters) do
  if delta ~= 0 and redis.call("INCRBY", key, delta) <= 0 then
    redis.call("DEL", key)
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
