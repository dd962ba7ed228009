-- Reads the event log after a cursor, or says it cannot: another epoch (the log was lost)
-- or entries after the cursor were trimmed away.
-- ARGV: prefix, cursor epoch, cursor id, limit, candidate epoch.
-- Returns {"gap"} or {"ok", id1, data1, id2, data2, ...}.
local prefix = ARGV[1]
local log = prefix .. "log"
local epoch = redis.call("GET", prefix .. "epoch")
if not epoch then
  epoch = ARGV[5]
  redis.call("SET", prefix .. "epoch", epoch)
end
if epoch ~= ARGV[2] then
  return {"gap"}
end
local function parse(id)
  local ms, seq = string.match(id, "^(%d+)-(%d+)$")
  return tonumber(ms), tonumber(seq)
end
local function before(a, b)
  local ams, aseq = parse(a)
  local bms, bseq = parse(b)
  return ams < bms or (ams == bms and aseq < bseq)
end
if redis.call("EXISTS", log) == 1 then
  local info = redis.call("XINFO", "STREAM", log)
  for i = 1, #info, 2 do
    if info[i] == "max-deleted-entry-id" and before(ARGV[3], info[i + 1]) then
      return {"gap"}
    end
    if info[i] == "last-generated-id" and before(info[i + 1], ARGV[3]) then
      return {"gap"}
    end
  end
elseif ARGV[3] ~= "0-0" then
  return {"gap"}
end
local out = {"ok"}
local entries = redis.call("XRANGE", log, "(" .. ARGV[3], "+", "COUNT", ARGV[4])
for _, entry in ipairs(entries) do
  table.insert(out, entry[1])
  table.insert(out, entry[2][2])
end
return out
