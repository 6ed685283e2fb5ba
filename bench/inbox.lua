-- wrk script: replay pre-built raw HTTP requests, each once, in file order.
--
--   wrk -t1 -c50 -d10s --latency -s bench/inbox.lua URL -- requests.bin OFFSET
--
-- requests.bin holds records "<decimal length>\n<raw request bytes>" (bench/gen_inbox_requests.py).
-- Replay starts at record OFFSET (0-based). Use one thread (-t1): the records are not split across
-- threads. done() prints one line "BENCHJSON {...}" with wrk's summary plus:
--   generated  requests handed to wrk (including any still in flight at the end)
--   next       index of the next unused record (= OFFSET + generated): the next run's OFFSET
--   wrapped    times the file ran out and replay restarted at OFFSET (must be 0: else duplicates)
--   s202/s2xx/sother  responses by status
-- Latencies are in microseconds.

local data, pos, first_pos = nil, 1, 1
generated, wrapped, s202, s2xx, sother, next_index, first_index = 0, 0, 0, 0, 0, 0, 0

local function skip_to(index)
  local p = 1
  for _ = 1, index do
    local nl = string.find(data, "\n", p, true)
    if not nl then return nil end
    p = nl + 1 + tonumber(string.sub(data, p, nl - 1))
  end
  return p
end

function init(args)
  local path, offset = args[1], tonumber(args[2] or "0")
  if not path then error("usage: -- requests.bin OFFSET") end
  local f = assert(io.open(path, "rb"))
  data = f:read("*a")
  f:close()
  pos = skip_to(offset)
  if not pos or pos > #data then error("OFFSET " .. offset .. " is past the end of " .. path) end
  first_pos, first_index, next_index = pos, offset, offset
end

function request()
  if pos > #data then
    wrapped = wrapped + 1
    pos, next_index = first_pos, first_index
  end
  local nl = string.find(data, "\n", pos, true)
  local n = tonumber(string.sub(data, pos, nl - 1))
  local req = string.sub(data, nl + 1, nl + n)
  pos = nl + 1 + n
  generated = generated + 1
  next_index = next_index + 1
  return req
end

function response(status, headers, body)
  if status == 202 then
    s202 = s202 + 1
  elseif status >= 200 and status < 300 then
    s2xx = s2xx + 1
  else
    sother = sother + 1
  end
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function done(summary, latency, requests)
  local g, w, a, b, c, nx = 0, 0, 0, 0, 0, 0
  for _, t in ipairs(threads) do
    g = g + t:get("generated")
    w = w + t:get("wrapped")
    a = a + t:get("s202")
    b = b + t:get("s2xx")
    c = c + t:get("sother")
    nx = math.max(nx, t:get("next_index"))
  end
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%d,"duration_us":%d,"bytes":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"max_us":%d,"mean_us":%.1f,"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d,' ..
    '"generated":%d,"next":%d,"wrapped":%d,"s202":%d,"s2xx_other":%d,"s_non2xx":%d}\n',
    summary.requests, summary.duration, summary.bytes, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean, e.connect, e.read, e.write, e.status, e.timeout,
    g, nx, w, a, b, c))
end
