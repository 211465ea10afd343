-- Open calls that never end: newCall events with fresh call ids and no answer or hangup.
--
-- Run with `-t N -c N`. Each thread sends BENCH_QUOTA newCalls, ids `<BENCH_TAG>-<thread>-<n>`,
-- then stops; bench/memory.py stops wrk once the exporter counts them all.

local quota = tonumber(os.getenv("BENCH_QUOTA"))
local tag = os.getenv("BENCH_TAG")
local threads = {}

function setup(thread)
  thread:set("conn", #threads)
  table.insert(threads, thread)
end

local sent = 0
-- wrk calls request() once on thread 0 to check the script, and throws the request away.
local probed = false
local headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }

function request()
  if conn == 0 and not probed then
    probed = true
    return wrk.format("GET", "/-/ready")
  end
  if sent >= quota then
    wrk.thread:stop()
    return wrk.format("GET", "/-/ready")
  end
  sent = sent + 1
  local body = "event=newCall&direction=in&from=4915799912345&to=4921112345670"
    .. "&user%5B%5D=Alice&userId%5B%5D=w0&fullUserId%5B%5D=1234567w0"
    .. "&callId=" .. tag .. "-" .. conn .. "-" .. sent
  return wrk.format("POST", "/webhook", headers, body)
end
