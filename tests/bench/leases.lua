-- wrk script: issue a dynamic credential, then revoke its lease, in a loop
-- (tests/bench/leases_side_by_side.sh).
--
--   wrk -tN -cN ... -s leases.lua http://127.0.0.1:PORT -- TOKEN MOUNT ROLE
--
-- Run it with as many threads as connections (-tN -cN): wrk gives a script
-- one Lua state per thread and does not say which connection a request()
-- or response() is for, so one connection per thread is what makes the
-- alternation per connection. Each connection sends
--   GET /v1/MOUNT/creds/ROLE                       (issue)
-- takes `lease_id` out of the answer, and sends
--   PUT /v1/sys/leases/revoke {"lease_id": ..., "sync": true}   (revoke)
-- then issues again. A pair counts when its revoke answered 2xx. An issue
-- that fails (or answers without a lease id) is followed by another issue;
-- a revoke that fails is counted and not retried (the script's leak check
-- then finds the role).
--
-- Latency is measured here per request kind (clock_gettime through LuaJIT's
-- FFI, from just before wrk stamps the request's start to the response
-- callback, i.e. the same span wrk measures plus the callback's few
-- microseconds). done() prints one machine-readable RESULT line and one
-- PENDING line per lease issued but not revoked when wrk stopped.

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } leases_lua_timespec;
int clock_gettime(int clk_id, leases_lua_timespec *tp);
]]
local ts = ffi.new("leases_lua_timespec")
local function now_us()
   ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
   return tonumber(ts.tv_sec) * 1000000 + math.floor(tonumber(ts.tv_nsec) / 1000)
end

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

-- Per thread (= per connection). Globals, so that done() can read them with thread:get.
issue_lat = {}
revoke_lat = {}
issues = 0
pairs_done = 0
issue_errors = 0
revoke_errors = 0
no_lease = 0
pending = nil        -- the lease to revoke next
first_error = nil    -- status and body of the first failed request

local issue_path, kind, started

function init(args)
   wrk.headers["X-Vault-Token"] = args[1]
   wrk.headers["Content-Type"] = "application/json"
   issue_path = "/v1/" .. args[2] .. "/creds/" .. args[3]
end

function request()
   started = now_us()
   if pending then
      kind = "revoke"
      return wrk.format("PUT", "/v1/sys/leases/revoke", nil,
         '{"lease_id":"' .. pending .. '","sync":true}')
   end
   kind = "issue"
   return wrk.format("GET", issue_path)
end

local function failed(status, body)
   if not first_error then
      first_error = kind .. " " .. status .. " " .. string.sub(body or "", 1, 300)
   end
end

function response(status, headers, body)
   local dt = now_us() - started
   if kind == "issue" then
      if status == 200 then
         local id = string.match(body, '"lease_id"%s*:%s*"([^"]+)"')
         if id then
            pending = id
            issues = issues + 1
            issue_lat[#issue_lat + 1] = dt
         else
            no_lease = no_lease + 1
            failed(status, body)
         end
      else
         issue_errors = issue_errors + 1
         failed(status, body)
      end
   elseif kind == "revoke" then
      pending = nil
      if status >= 200 and status < 300 then
         pairs_done = pairs_done + 1
         revoke_lat[#revoke_lat + 1] = dt
      else
         revoke_errors = revoke_errors + 1
         failed(status, body)
      end
   end
   kind = nil
end

local function percentile(sorted, p)
   if #sorted == 0 then
      return 0
   end
   local i = math.ceil(#sorted * p / 100)
   if i < 1 then i = 1 end
   return sorted[i]
end

function done(summary, latency, requests)
   local all_issue, all_revoke = {}, {}
   local n = { issues = 0, pairs = 0, issue_errors = 0, revoke_errors = 0, no_lease = 0 }
   local first = nil
   for _, t in ipairs(threads) do
      for _, v in ipairs(t:get("issue_lat") or {}) do all_issue[#all_issue + 1] = v end
      for _, v in ipairs(t:get("revoke_lat") or {}) do all_revoke[#all_revoke + 1] = v end
      n.issues = n.issues + t:get("issues")
      n.pairs = n.pairs + t:get("pairs_done")
      n.issue_errors = n.issue_errors + t:get("issue_errors")
      n.revoke_errors = n.revoke_errors + t:get("revoke_errors")
      n.no_lease = n.no_lease + t:get("no_lease")
      local p = t:get("pending")
      if p then io.write("PENDING " .. p .. "\n") end
      first = first or t:get("first_error")
   end
   table.sort(all_issue)
   table.sort(all_revoke)
   local e = summary.errors
   local secs = summary.duration / 1e6
   io.write(string.format(
      "RESULT duration_us=%d requests=%d rps=%.1f pairs=%d pairs_per_s=%.1f issues=%d " ..
      "issue_p50_us=%d issue_p99_us=%d revoke_p50_us=%d revoke_p99_us=%d " ..
      "all_p50_us=%d all_p99_us=%d max_us=%d issue_errors=%d revoke_errors=%d no_lease=%d " ..
      "status_errors=%d connect_errors=%d read_errors=%d write_errors=%d timeouts=%d\n",
      summary.duration, summary.requests, summary.requests / secs, n.pairs, n.pairs / secs, n.issues,
      percentile(all_issue, 50), percentile(all_issue, 99),
      percentile(all_revoke, 50), percentile(all_revoke, 99),
      latency:percentile(50), latency:percentile(99), latency.max,
      n.issue_errors, n.revoke_errors, n.no_lease,
      e.status, e.connect, e.read, e.write, e.timeout))
   if first then
      io.write("FIRST_ERROR " .. string.gsub(first, "\n", " ") .. "\n")
   end
end
