-- wrk script for bench/wrk.py: send the URL's request `total` times in all over wrk's
-- connections (a sync run's POST, or a GET of an execution), check each answer is a 200 with
-- state COMPLETED, and stop after the last.
-- Arguments (after wrk's `--`): total, JSON body (empty for a GET), protocol version.

local total, reserved = 0, 0
answered, failed, failures = 0, 0, {} -- globals: done() reads them through thread:get
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  total = tonumber(args[1])
  if args[2] == "" then
    wrk.method = "GET"
  else
    wrk.method = "POST"
    wrk.body = args[2]
    wrk.headers["Content-Type"] = "application/json"
  end
  wrk.headers["X-Flux-Protocol"] = args[3]
end

-- wrk asks before each request how long to wait: once `total` are on their way, a connection
-- waits for good, so no request beyond `total` is sent.
function delay()
  if reserved < total then
    reserved = reserved + 1
    return 0
  end
  return 3600000
end

function response(status, headers, body)
  if status == 200 and body:find('"state"%s*:%s*"COMPLETED"') then
    answered = answered + 1
  else
    failed = failed + 1
    if #failures < 5 then
      table.insert(failures, "HTTP " .. status .. ": " .. body:sub(1, 500))
    end
  end
  if answered + failed >= total then
    -- wrk's main thread sleeps out its -d duration whatever its threads do: bench/wrk.py
    -- interrupts it (SIGINT) when it reads this line.
    io.write("flux-wrk-finished\n")
    io.flush()
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local completed, refused = 0, 0
  for _, thread in ipairs(threads) do
    completed = completed + thread:get("answered")
    refused = refused + thread:get("failed")
  end
  local e = summary.errors
  io.write(string.format(
    "flux-wrk completed=%d failed=%d duration_us=%d p50_us=%d p95_us=%d p99_us=%d "
      .. "connect=%d read=%d write=%d timeout=%d\n",
    completed, refused, summary.duration, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), e.connect, e.read, e.write, e.timeout))
  for _, thread in ipairs(threads) do
    for _, failure in ipairs(thread:get("failures") or {}) do
      io.write("flux-wrk-failure " .. failure:gsub("\n", " ") .. "\n")
    end
  end
end
