-- wrk script for Vault KV v2 reads and writes (tests/bench/side_by_side.sh).
--
--   wrk ... -s kv.lua http://127.0.0.1:PORT -- MODE TOKEN MOUNT PREFIX KEYS SIZE
--
-- MODE is "get" (read the latest version) or "post" (write a new version);
-- each request goes to one of KEYS keys MOUNT/data/PREFIX/k<i>, picked at
-- random; a write's body is {"data":{"v":"<SIZE bytes>"}}. The summary is
-- printed as one machine-readable RESULT line.

local threads = {}
local counter = 0

function setup(thread)
   counter = counter + 1
   thread:set("id", counter)
   table.insert(threads, thread)
end

local mode, mount, prefix, keys, body

function init(args)
   mode = args[1]
   wrk.headers["X-Vault-Token"] = args[2]
   mount = args[3]
   prefix = args[4]
   keys = tonumber(args[5])
   local size = tonumber(args[6])
   if mode ~= "get" and mode ~= "post" then
      error("MODE must be get or post, not " .. tostring(mode))
   end
   wrk.headers["Content-Type"] = "application/json"
   body = '{"data":{"v":"' .. string.rep("x", size) .. '"}}'
   math.randomseed(id * 7919 + os.time())
end

function request()
   local path = "/v1/" .. mount .. "/data/" .. prefix .. "/k" .. math.random(0, keys - 1)
   if mode == "post" then
      return wrk.format("POST", path, nil, body)
   end
   return wrk.format("GET", path)
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "RESULT requests=%d duration_us=%d rps=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d " ..
      "status_errors=%d connect_errors=%d read_errors=%d write_errors=%d timeouts=%d\n",
      summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
      e.status, e.connect, e.read, e.write, e.timeout))
end
