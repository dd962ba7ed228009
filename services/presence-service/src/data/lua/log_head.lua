-- The log's epoch (created when missing) and its last id ("0-0" when empty).
-- ARGV: prefix, candidate epoch. Returns {epoch, id}.
local prefix = ARGV[1]
local epoch = redis.call("GET", prefix .. "epoch")
if not epoch then
  epoch = ARGV[2]
  redis.call("SET", prefix .. "epoch", epoch)
end
local id = "0-0"
if redis.call("EXISTS", prefix .. "log") == 1 then
  local info = redis.call("XINFO", "STREAM", prefix .. "log")
  for i = 1, #info, 2 do
    if info[i] == "last-generated-id" then
      id = info[i + 1]
    end
  end
end
return {epoch, id}
