-- The driver comparison behind docs/performance.md ("Why this load generator"): wrk posting
-- single entries with a fresh UUID each, against the baseline. Not used by `make bench`.
--
--   BENCH_BASELINE_DSN=postgresql://postgres@127.0.0.1:5432/mgdiary_bench_baseline \
--     .venv/bin/uvicorn bench.baselines.minimal_app:create_app --factory --workers 1 \
--     --port 18901 --log-level warning --no-access-log &
--   wrk -t1 -c32 -d10s -s bench/driver_check/wrk_entry.lua http://127.0.0.1:18901 -- \
--     "$(TZ=Europe/Berlin date -d '-10 min' +%Y-%m-%dT%H:%M:%S%:z)"
--
-- (the baseline's tables must exist: bench.run creates them, or run its SCHEMA by hand).
local counter = 0
local tid = 0
local threads = {}

function setup(thread)
  tid = tid + 1
  thread:set("tid", tid)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(os.time() * 1000 + tid)
  recorded = args[1]
  ok2xx = 0
end

local function hex(n)
  local t = {}
  for i = 1, n do t[i] = string.format("%x", math.random(0, 15)) end
  return table.concat(t)
end

function request()
  counter = counter + 1
  -- random, plus the thread and a counter: unique within the run
  local id = hex(8) .. "-" .. hex(4) .. "-4" .. hex(3) .. "-8" .. hex(3) .. "-"
    .. string.format("%04x", tid) .. string.format("%08x", counter)
  local body = '{"id":"' .. id .. '","kind":"mg_adl","recorded_at":"' .. recorded
    .. '","time_zone":"Europe/Berlin","data":{"talking":1,"chewing":0,"swallowing":2,'
    .. '"breathing":0,"brushing_teeth_or_combing_hair":1,"arising_from_chair":0,'
    .. '"double_vision":1,"eyelid_droop":2}}'
  return wrk.format("POST", "/app/v1/diary/entries",
    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer x"}, body)
end

function response(status, headers, body)
  if status >= 200 and status < 300 then ok2xx = ok2xx + 1 end
end

function done(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do total = total + t:get("ok2xx") end
  io.write(string.format("2xx=%d p50=%.1fms p99=%.1fms\n", total,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
