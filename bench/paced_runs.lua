-- wrk script for bench/sustained.py: POST the URL's sync run at a fixed rate for wrk's -d
-- duration over wrk's connections, and report latency per window of time, so the first
-- minute of a run shows apart from the rest.
-- Arguments (after wrk's `--`): runs per second, window in seconds, protocol version.
--
-- Each request's body (the workflow's input, which the answer echoes) is its send time in
-- microseconds, so an answer is matched to its request without knowing its connection.
-- Sends are paced on one schedule for all connections: wrk asks before each request how long
-- to wait, and each ask takes the next free slot. A connection still waiting for its answer
-- takes no slot, so when all are busy the rate drops instead of bursting afterwards: the
-- windows' `sent` column shows it. wrk sends each connection's first request as soon as it
-- connects, without asking: the run starts with one request per connection at once.

local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } flux_timespec;
  int clock_gettime(int clock, flux_timespec *tp);
]]
local ts = ffi.new("flux_timespec")

local function now_us()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000000 + math.floor(tonumber(ts.tv_nsec) / 1000)
end

local interval_us, window_us = 0, 5000000
local next_slot, start = 0, 0
-- globals: done() reads them through thread:get, which copies flat tables only
sent, sent_in, latency_us, failed, failures = {}, {}, {}, 0, {}
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  interval_us = 1000000 / tonumber(args[1])
  window_us = tonumber(args[2]) * 1000000
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["X-Flux-Protocol"] = args[3]
  start = now_us()
  next_slot = start
end

local function window(t)
  return math.floor((t - start) / window_us) + 1
end

function delay()
  local now = now_us()
  local slot = math.max(next_slot, now)
  next_slot = slot + interval_us
  return math.floor((slot - now) / 1000)
end

function request()
  local now = now_us()
  local w = window(now)
  sent[w] = (sent[w] or 0) + 1
  return wrk.format(nil, nil, nil, string.format("%d", now))
end

function response(status, headers, body)
  local now = now_us()
  local stamp = body:match('"input"%s*:%s*(%d+)')
  if status == 200 and stamp and body:find('"state"%s*:%s*"COMPLETED"') then
    table.insert(sent_in, window(tonumber(stamp)))
    table.insert(latency_us, now - tonumber(stamp))
  else
    failed = failed + 1
    if #failures < 5 then
      table.insert(failures, "HTTP " .. status .. ": " .. body:sub(1, 500))
    end
  end
end

local function pick(sorted, p)
  local k = math.floor(p / 100 * (#sorted - 1) + 0.5) + 1
  return sorted[math.min(#sorted, math.max(1, k))]
end

function done(summary, latency, requests)
  local all_sent, all_lat, refused, shown = {}, {}, 0, {}
  for _, thread in ipairs(threads) do
    for w, n in pairs(thread:get("sent")) do
      all_sent[w] = (all_sent[w] or 0) + n
    end
    local windows, values = thread:get("sent_in"), thread:get("latency_us")
    for i, w in ipairs(windows) do
      all_lat[w] = all_lat[w] or {}
      table.insert(all_lat[w], values[i])
    end
    refused = refused + thread:get("failed")
    for _, failure in ipairs(thread:get("failures") or {}) do
      table.insert(shown, failure)
    end
  end
  local last = 0
  for w, _ in pairs(all_sent) do
    last = math.max(last, w)
  end
  -- A window's answers are the requests sent in it (latency by send time); wrk's stop cuts
  -- the last window's answers short, so it is not reported.
  for w = 1, last - 1 do
    local values = all_lat[w] or {}
    table.sort(values)
    local n = #values
    io.write(string.format(
      "flux-wrk-window index=%d sent=%d answered=%d p50_us=%d p99_us=%d max_us=%d\n",
      w, all_sent[w] or 0, n, n > 0 and pick(values, 50) or 0, n > 0 and pick(values, 99) or 0,
      n > 0 and values[n] or 0))
  end
  local e = summary.errors
  io.write(string.format(
    "flux-wrk-summary failed=%d duration_us=%d connect=%d read=%d write=%d timeout=%d\n",
    refused, summary.duration, e.connect, e.read, e.write, e.timeout))
  for _, failure in ipairs(shown) do
    io.write("flux-wrk-failure " .. failure:gsub("\n", " ") .. "\n")
  end
end
