-- wrk script for Switchyard: POST /mcp tools/call "echo" with an Mcp-Session-Id.
--
-- Environment (set by Tests/Bench/run.sh):
--   BENCH_SESSIONS   space-separated session ids (required)
--   BENCH_MODE       "shared"   : every request of every connection uses the first session
--                    "per-conn" : one session per connection (needs #sessions == connections)
--   BENCH_THREADS    wrk -t value (per-conn: sessions are split evenly across threads)
--   BENCH_TEXT       echo text (plain ASCII without quotes/backslashes)
--   BENCH_PROTO      MCP-Protocol-Version header (default 2025-06-18)
--
-- "per-conn": wrk's Lua API does not tell request() which connection it is for, so each thread keeps
-- a free list holding as many sessions as it has connections. request() takes a free session,
-- response() gives it back (found through the Mcp-Session-Id response header). With one request
-- in flight per connection this gives every session at most one request in flight, which is what
-- "one client (session) per connection" means to the gateway. If the free list is empty (a
-- response without the session header, or a socket error that dropped an in-flight request) the
-- thread falls back to round-robin and counts it in `fallback`.
--
-- done() prints one machine-readable line starting with "BENCH_WRK" (and "BENCH_SAMPLE" lines
-- describing the first bad response per thread), which run.sh parses.

local threads = {}

function setup(thread)
   table.insert(threads, thread)
   local idx = #threads
   local all = {}
   for sid in string.gmatch(os.getenv("BENCH_SESSIONS") or "", "%S+") do
      table.insert(all, sid)
   end
   local mode = os.getenv("BENCH_MODE") or "shared"
   local nthreads = tonumber(os.getenv("BENCH_THREADS") or "1")
   local mine = {}
   if mode == "per-conn" then
      local per = math.floor(#all / nthreads)
      for i = (idx - 1) * per + 1, idx * per do
         table.insert(mine, all[i])
      end
   else
      mine = { all[1] }
   end
   thread:set("sessions_str", table.concat(mine, " "))
   thread:set("mode", mode)
   -- wrk calls request() once on the first thread's Lua state right after init() to check the
   -- request (script_verify_request); that call is not sent and must not take a session.
   thread:set("verify_pending", idx == 1)
end

-- per-thread state (each wrk thread has its own Lua state)
local reqs = {}        -- sid -> preformatted request
local sessions = {}    -- list of sids
local free = {}        -- stack of free sids (per-conn)
local inflight = {}    -- sid -> in-flight count (per-conn)
local rr = 0
local text
local shared_req

non200 = 0
bad_body = 0
missing_sid = 0
fallback = 0
ok = 0
sample = ""

function init(args)
   text = os.getenv("BENCH_TEXT") or "hello from switchyard bench"
   local proto = os.getenv("BENCH_PROTO") or "2025-06-18"
   local body = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"'
      .. text .. '"}}}'
   for sid in string.gmatch(sessions_str or "", "%S+") do
      table.insert(sessions, sid)
      reqs[sid] = wrk.format("POST", "/mcp", {
         ["Content-Type"] = "application/json",
         ["Accept"] = "application/json, text/event-stream",
         ["Mcp-Session-Id"] = sid,
         ["MCP-Protocol-Version"] = proto,
      }, body)
      table.insert(free, sid)
      inflight[sid] = 0
   end
   if #sessions == 0 then
      error("tools_call.lua: no sessions for this thread (BENCH_SESSIONS/BENCH_THREADS)")
   end
   shared_req = reqs[sessions[1]]
end

function request()
   if mode ~= "per-conn" then
      return shared_req
   end
   if verify_pending then
      verify_pending = false
      return shared_req
   end
   local n = #free
   local sid
   if n > 0 then
      sid = free[n]
      free[n] = nil
   else
      fallback = fallback + 1
      rr = rr % #sessions + 1
      sid = sessions[rr]
   end
   inflight[sid] = inflight[sid] + 1
   return reqs[sid]
end

local function header_sid(headers)
   local v = headers["Mcp-Session-Id"]
   if v then return v end
   for k, val in pairs(headers) do
      if string.lower(k) == "mcp-session-id" then return val end
   end
   return nil
end

local function note_bad(kind, status, body)
   if sample == "" then
      local b = string.sub(body or "", 1, 300):gsub("[\r\n]", "\\n")
      sample = kind .. " status=" .. tostring(status) .. " body=" .. b
   end
end

function response(status, headers, body)
   if status ~= 200 then
      non200 = non200 + 1
      note_bad("non200", status, body)
   elseif not string.find(body, '"result"', 1, true) or not string.find(body, text, 1, true) then
      bad_body = bad_body + 1
      note_bad("bad_body", status, body)
   else
      ok = ok + 1
   end
   if mode == "per-conn" then
      local sid = header_sid(headers)
      if sid and inflight[sid] and inflight[sid] > 0 then
         inflight[sid] = inflight[sid] - 1
         if inflight[sid] == 0 then
            free[#free + 1] = sid
         end
      else
         missing_sid = missing_sid + 1
      end
   end
end

function done(summary, latency, requests)
   local t = { non200 = 0, bad_body = 0, missing_sid = 0, fallback = 0, ok = 0 }
   local samples = {}
   for _, th in ipairs(threads) do
      for k, _ in pairs(t) do
         t[k] = t[k] + (th:get(k) or 0)
      end
      local s = th:get("sample")
      if s and s ~= "" then table.insert(samples, s) end
   end
   local e = summary.errors
   io.write(string.format(
      "BENCH_WRK requests=%d duration_us=%d p50_us=%.0f p90_us=%.0f p99_us=%.0f max_us=%.0f ok=%d non200=%d "
         .. "bad_body=%d missing_sid=%d fallback=%d err_connect=%d err_read=%d err_write=%d err_status=%d "
         .. "err_timeout=%d\n",
      summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency.max, t.ok, t.non200, t.bad_body, t.missing_sid, t.fallback,
      e.connect, e.read, e.write, e.status, e.timeout))
   for _, s in ipairs(samples) do
      io.write("BENCH_SAMPLE " .. s .. "\n")
   end
end
