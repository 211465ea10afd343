-- Replay a pre-generated corpus of sipgate.io events (bench/corpus.py) against /webhook.
--
-- Run with as many threads as connections (`-t N -c N`): each thread owns one connection and
-- replays that connection's events in file order, so every call's newCall, answer and hangup
-- arrive in order while calls interleave across connections. Environment:
--   BENCH_CORPUS  corpus file
--   BENCH_RATE    requests per second per connection; unset: as fast as the server answers
--   BENCH_LUA     directory of this script, for clock.lua
-- done() prints one line, `BENCH_RESULT {json}`, for bench/wrk.py.

package.path = os.getenv("BENCH_LUA") .. "/?.lua;" .. package.path
local now_us = require("clock")
local corpus_path = os.getenv("BENCH_CORPUS")
local rate = tonumber(os.getenv("BENCH_RATE") or "")

local threads = {}

function setup(thread)
  thread:set("conn", #threads)
  table.insert(threads, thread)
end

local requests, kinds, bodies = {}, {}, {}
local position, cycle, prefix, rewritable = 0, 0, nil, false
local current_kind, sent_at = nil, 0
wraps, bad_status, newcall_us = 0, 0, {}

local function format(body, signature)
  local headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }
  if signature ~= "" then
    headers["X-Sipgate-Signature"] = signature
  end
  return wrk.format("POST", "/webhook", headers, body)
end

function init(args)
  local file = assert(io.open(corpus_path, "r"))
  local header = file:read("*l")
  local rewrite
  prefix, rewrite = header:match("^prefix\t(%w+)\trewritable\t(%d)$")
  rewritable = rewrite == "1"
  for line in file:lines() do
    local owner, kind, signature, body = line:match("^(%d+)\t(%a+)\t([^\t]*)\t(.*)$")
    if tonumber(owner) == conn then
      table.insert(kinds, kind)
      table.insert(bodies, { body, signature })
      table.insert(requests, format(body, signature))
    end
  end
  file:close()
  assert(#requests > 0, "no events for connection " .. conn .. " in " .. corpus_path)
end

-- After the last event, start over; unsigned bodies get fresh call ids, signed ones cannot.
local function wrap()
  position, cycle, wraps = 1, cycle + 1, wraps + 1
  if not rewritable then
    return
  end
  local fresh = prefix .. "c" .. cycle .. "-"
  for i, pair in ipairs(bodies) do
    requests[i] = format((pair[1]:gsub(prefix .. "%-", fresh)), pair[2])
  end
end

-- wrk calls request() once on thread 0 to check the script, and throws the request away.
local probed = false

function request()
  if conn == 0 and not probed then
    probed = true
    return wrk.format("GET", "/-/ready")
  end
  position = position + 1
  if position > #requests then
    wrap()
  end
  current_kind = kinds[position]
  sent_at = now_us()
  return requests[position]
end

function response(status, headers, body)
  if status ~= 200 then
    bad_status = bad_status + 1
  end
  if rate and current_kind == "newCall" then
    newcall_us[#newcall_us + 1] = now_us() - sent_at
  end
end

if rate then
  -- A fixed schedule per connection, as wrk2 keeps; a late request goes out at once.
  local interval_ms = 1000 / rate
  local next_at = nil

  function delay()
    local now = now_us() / 1000
    if next_at == nil then
      next_at = now + math.random() * interval_ms
    else
      next_at = next_at + interval_ms
    end
    local wait = next_at - now
    if wait <= 0 then
      return 0
    end
    return math.floor(wait + 0.5)
  end
end

function done(summary, latency, requests_seen)
  local total_wraps, total_bad, latencies = 0, 0, {}
  for _, thread in ipairs(threads) do
    total_wraps = total_wraps + thread:get("wraps")
    total_bad = total_bad + thread:get("bad_status")
    for _, value in ipairs(thread:get("newcall_us")) do
      latencies[#latencies + 1] = string.format("%.1f", value)
    end
  end
  local errors = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"socket_errors":%d,"bad_status":%d,'
      .. '"wraps":%d,"newcall_us":[%s]}\n',
    summary.requests, summary.duration,
    errors.connect + errors.read + errors.write + errors.timeout,
    total_bad, total_wraps, table.concat(latencies, ",")))
end
