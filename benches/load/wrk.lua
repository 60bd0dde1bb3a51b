-- wrk script for benches/load/run.sh.
--
-- WRK_CHURN=1: every request carries a fresh client address in X-Forwarded-For (the
-- server trusts its loopback peer as the proxy), so every request is a new key.
-- done() prints one machine-readable RESULT line.

local churn = os.getenv("WRK_CHURN") == "1"

if churn then
  local n = 0
  -- 11.0.0.0 upward: public-looking, never loopback (a trusted proxy address would be
  -- skipped by the extractor). wrk embeds LuaJIT (Lua 5.1): no bit operators.
  request = function()
    n = n + 1
    local ip = string.format("11.%d.%d.%d", math.floor(n / 65536) % 256, math.floor(n / 256) % 256, n % 256)
    return wrk.format(nil, nil, { ["X-Forwarded-For"] = ip })
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d non2xx=%d errors=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.duration, e.status,
    e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
