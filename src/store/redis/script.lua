-- tower-ratelimit: one GCRA decision over a quota set, atomically, all-or-nothing.
--
-- Times are whole microseconds since the Unix epoch: Lua numbers are doubles, exact
-- only below 2^53, which nanoseconds since the epoch exceed and microseconds do not.
--
-- KEYS[i]          the TAT of quota i (absent = empty state), all sharing one hash tag
-- ARGV[1]          cost of the request (1 <= cost <= smallest burst, checked by the caller)
-- ARGV[2]          "" to read the server's TIME (production); else "now" in microseconds
--                  (tests only: keys then live one extra minute, since the server's
--                  expiry clock does not follow the injected one)
-- ARGV[2i+1]       T of quota i: emission interval, microseconds (rounded up)
-- ARGV[2i+2]       cap of quota i: burst * T, microseconds
-- ARGV[2n+3]       "1" after a reload: clamp each TAT to now + cap (see below); absent
--                  for a store's first configuration
--
-- Reply: { now, denied, wait, tat_1, ..., tat_n }
--   denied = 0 when admitted (then tat_i are the new TATs, written with an expiry of
--   ceil((tat_i - now) / 1 ms): the time until the quota is equivalent to empty);
--   else the 1-based index of the quota with the longest wait (first on ties), the wait
--   in microseconds, and the TATs as stored (0 if absent). A denial writes nothing,
--   except a TAT clamped to a smaller capacity after a reload (see below).
if redis.replicate_commands then
  -- Redis 3.2 to 4 need this before writing after TIME; later versions ignore it.
  redis.replicate_commands()
end

local now
local slack = 0
if ARGV[2] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[2])
  slack = 60000
end

local cost = tonumber(ARGV[1])
local n = #KEYS
local clamp = ARGV[2 * n + 3] == '1'
local stored = redis.call('MGET', unpack(KEYS))
local reply = { now, 0, 0 }
local worst, worst_wait = 0, 0
local new = {}
local clamped = {}

for i = 1, n do
  local t = tonumber(ARGV[2 * i + 1])
  local cap = tonumber(ARGV[2 * i + 2])
  local tat = tonumber(stored[i]) or 0
  -- After a reload to a smaller capacity: nobody waits longer than the new tolerance.
  -- The clamped TAT is stored even on a denial (below), so the conversion happens once,
  -- at the first touch. Under an unchanged set TAT <= now + cap always holds, so this
  -- never fires and a denial still writes nothing. Only asked for after a reload, so
  -- that a clock stepping back is treated exactly as in memory until then.
  if clamp and tat > now + cap then
    tat = now + cap
    clamped[i] = true
  end
  local base = tat
  if now > base then base = now end
  local next_tat = base + cost * t
  local level = next_tat - now
  if level > cap and level - cap > worst_wait then
    worst, worst_wait = i, level - cap
  end
  new[i] = next_tat
  reply[3 + i] = tat
end

if worst > 0 then
  reply[2] = worst
  reply[3] = worst_wait
  for i = 1, n do
    if clamped[i] then
      local ttl = math.ceil((reply[3 + i] - now) / 1000) + slack
      redis.call('SET', KEYS[i], string.format('%d', reply[3 + i]), 'PX', string.format('%d', ttl))
    end
  end
  return reply
end

for i = 1, n do
  local ttl = math.ceil((new[i] - now) / 1000) + slack
  redis.call('SET', KEYS[i], string.format('%d', new[i]), 'PX', string.format('%d', ttl))
  reply[3 + i] = new[i]
end
return reply
