-- wrk script: each request posts one new, unique fact with 256 bytes of
-- fields (a per-thread prefix and a counter make every fact distinct), so
-- Cairn can be loaded by a client far lighter than `cairn bench`.
-- usage: wrk -t2 -c64 -d20s -s bench/wrk-write.lua http://127.0.0.1:7710
local counter = 0
local padding = string.rep("p", 196)
local thread_number = 0

-- Runs in the main state once per thread: gives each thread its own prefix
-- (the global `prefix` of that thread's state).
function setup(thread)
  thread_number = thread_number + 1
  thread:set("prefix", os.time() .. "-" .. thread_number)
end

request = function()
  counter = counter + 1
  local body = '{"facts":[{"type":"Bench.Item","predecessors":{},"fields":{"id":"' ..
    prefix .. "-" .. counter .. '","payload":"' .. padding .. '"}}]}'
  return wrk.format("POST", "/v1/facts", { ["Content-Type"] = "application/json" }, body)
end

response = function(status, headers, body)
  if status ~= 200 then
    io.stderr:write("status " .. status .. ": " .. body .. "\n")
  end
end
