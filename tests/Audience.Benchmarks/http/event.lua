-- wrk script: one purchase or page view per request, users spread over 10,000 ids.
-- wrk -t2 -c64 -d20s -s tests/Audience.Benchmarks/http/event.lua http://127.0.0.1:5080/api/events
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local bodies = {}
for i = 1, 1000 do
  local user = "user-" .. math.random(10000)
  if i % 5 == 0 then
    bodies[i] = '{"userId":"' .. user .. '","eventType":"purchase","properties":{"amount":' .. math.random(500) .. ',"category":"electronics"}}'
  else
    bodies[i] = '{"userId":"' .. user .. '","eventType":"page_view","properties":{"page":"/p/' .. math.random(100) .. '"}}'
  end
end
local n = 0
request = function()
  n = n % 1000 + 1
  return wrk.format(nil, nil, nil, bodies[n])
end
