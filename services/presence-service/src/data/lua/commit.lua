-- Writes a batch of user changes and appends their events to the log, in one step — or,
-- when any user's record is no longer the version the batch was computed from, nothing.
-- The arguments are laid out by data/commit_batch.rs: version checks, then write commands
-- grouped by key, then counters, then the events.
-- Returns {cursor or "", conflicting check positions (0-based)...}.
local prefix = ARGV[1]
local maxlen = ARGV[2]
-- unpack() may spread only so many values on Lua's stack.
local CHUNK = 1000
local at = 4
local function take()
  local value = ARGV[at]
  at = at + 1
  return value
end

-- Version checks, one HMGET per tenant (in chunks): each stored record must still begin
-- with the expected "<version>:" (expected "": no record). A check's position counts
-- across tenants; the caller maps it back to its change.
local conflicts = {}
local checked = 0
for _ = 1, tonumber(take()) do
  local key, users = prefix .. "u:" .. take(), tonumber(take())
  local names, expected = at, at + users
  at = at + 2 * users
  for first = 0, users - 1, CHUNK do
    local last = math.min(first + CHUNK, users) - 1
    local current = redis.call("HMGET", key, unpack(ARGV, names + first, names + last))
    for n = first, last do
      local stored, want = current[n - first + 1], ARGV[expected + n]
      local same
      if want == "" then
        same = not stored
      else
        same = stored and string.find(stored, want, 1, true) == 1
      end
      if not same then
        table.insert(conflicts, checked + n)
      end
    end
  end
  checked = checked + users
end
if #conflicts > 0 then
  local out = {""}
  for _, index in ipairs(conflicts) do
    table.insert(out, index)
  end
  return out
end

-- Writes: one command per key, in chunks (ZADD and HSET take pairs, so chunks are even).
for _ = 1, tonumber(take()) do
  local command, key, count = take(), take(), tonumber(take())
  for first = at, at + count - 1, CHUNK do
    redis.call(command, key, unpack(ARGV, first, math.min(first + CHUNK - 1, at + count - 1)))
  end
  at = at + count
end
-- Counters are keys of their own (a hash per tenant would stay a listpack, scanned on every
-- change, until it outgrows hash-max-listpack-entries); one that reaches 0 goes. A batch
-- touches hundreds (every page viewed), so they are read, summed here and written back in
-- a few calls rather than one INCRBY each.
local counters = tonumber(take())
local keys, deltas = {}, {}
for n = 1, counters do
  keys[n], deltas[n] = ARGV[at], tonumber(ARGV[at + 1])
  at = at + 2
end
local kept, gone = {}, {}
for first = 1, counters, CHUNK do
  local last = math.min(first + CHUNK - 1, counters)
  local current = redis.call("MGET", unpack(keys, first, last))
  for n = first, last do
    local value = (tonumber(current[n - first + 1]) or 0) + deltas[n]
    if value > 0 then
      table.insert(kept, keys[n])
      table.insert(kept, string.format("%d", value))
    else
      table.insert(gone, keys[n])
    end
  end
end
for first = 1, #kept, CHUNK do
  redis.call("MSET", unpack(kept, first, math.min(first + CHUNK - 1, #kept)))
end
for first = 1, #gone, CHUNK do
  redis.call("DEL", unpack(gone, first, math.min(first + CHUNK - 1, #gone)))
end

local events = take()
local cursor = ""
if events ~= "" then
  local epoch = redis.call("GET", prefix .. "epoch")
  if not epoch then
    epoch = ARGV[3]
    redis.call("SET", prefix .. "epoch", epoch)
  end
  local id = redis.call("XADD", prefix .. "log", "MAXLEN", maxlen, "*", "d", events)
  cursor = epoch .. "/" .. id
end
return {cursor}
