-- wrk script: batches of 100 events per request.
-- wrk -t2 -c16 -d20s -s tests/Audience.Benchmarks/http/batch.lua http://127.0.0.1:5080/api/events/batch
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local bodies = {}
for b = 1, 50 do
  local items = {}
  for i = 1, 100 do
    local user = "user-" .. math.random(10000)
    items[i] = '{"userId":"' .. user .. '","eventType":"page_view","properties":{"page":"/p/' .. math.random(100) .. '"}}'
  end
  bodies[b] = "[" .. table.concat(items, ",") .. "]"
end
local n = 0
request = function()
  n = n % 50 + 1
  return wrk.format(nil, nil, nil, bodies[n])
end
