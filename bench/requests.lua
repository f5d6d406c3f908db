-- wrk script: cycle through a file of prepared requests, one a line, tab-separated:
--   method, path, Authorization value, If-None-Match value, body (empty fields are left out).
-- Each wrk thread starts at its own place in the list. Every request asks for its connection to
-- be closed after the response (operators poll every few minutes, each time on a new connection),
-- so every request (and connection) carries the next license, whatever the worker class.
-- Prints one JSON line of results when done.

local prepared = {}
local position = 1
local threads = {}

function setup(thread)
  thread:set("thread_number", #threads)
  table.insert(threads, thread)
end

function init(args)
  local file = assert(io.open(args[1], "r"))
  for line in file:lines() do
    local method, path, authorization, if_none_match, body =
      line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
    local headers = {Connection = "close"}
    if authorization ~= "" then headers["Authorization"] = authorization end
    if if_none_match ~= "" then headers["If-None-Match"] = if_none_match end
    if body == "" then
      body = nil
    else
      headers["Content-Type"] = "application/json"
    end
    prepared[#prepared + 1] = wrk.format(method, path, headers, body)
  end
  file:close()
  position = (thread_number * 7919) % #prepared + 1
end

function request()
  local next_request = prepared[position]
  position = position % #prepared + 1
  return next_request
end

function done(summary, latency, requests)
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "connect_errors": %d, "read_errors": %d, ' ..
    '"write_errors": %d, "status_errors": %d, "timeouts": %d, "p50_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.status, summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
