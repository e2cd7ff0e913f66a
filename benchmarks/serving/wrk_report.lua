-- wrk script: POST each benchmark sentence in turn as ["..."], report JSON at the end.
local bodies = {}
local index = 0

function init(args)
  local path = args[1]
  for line in io.lines(path) do
    if #line > 0 then table.insert(bodies, line) end
  end
end

function request()
  index = index % #bodies + 1
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, bodies[index])
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "mean_us": %.1f, ' ..
    '"errors": %d, "non_2xx": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.mean,
    e.connect + e.read + e.write + e.timeout + e.status, e.status))
end
