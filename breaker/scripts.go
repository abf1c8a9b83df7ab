package breaker

import "github.com/redis/go-redis/v9"

// KEYS (checkpoint.BreakerKeys): 1 state hash, 2 failed items (zset, score =
// time), 3 successes per second (hash: second → count), 4 rate-limited items
// (zset), 5 streak (zset of items failing in a row, within the window), 6
// probe leases (zset, score = lease end), 7 transition log (list, newest
// first), 8 rate-limited items that later succeeded (zset). Times are Unix
// milliseconds from the caller.

const luaTransition = `
local function transition(from, to, now, reason)
  local t = cjson.encode({from = from, to = to, at = tonumber(now), reason = reason})
  redis.call('LPUSH', KEYS[7], t)
  redis.call('LTRIM', KEYS[7], 0, 99)
  redis.call('HINCRBY', KEYS[1], 'transitions', 1)
  return t
end
local function clear_windows()
  redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[8])
end
local function view(tr)
  local s = redis.call('HMGET', KEYS[1], 'state', 'until')
  return {tr, s[1] or 'closed', tonumber(s[2] or '0'), 0, 0}
end
`

// allowScript: ARGV now, max_probes, probe_token, probe_lease_ms,
// half_open_wait_ms. Returns {verdict, wait_ms, transition, state, until}.
var allowScript = redis.NewScript(luaTransition + `
local now = tonumber(ARGV[1])
local s = redis.call('HMGET', KEYS[1], 'state', 'until')
local st = s[1] or 'closed'
if st == 'closed' then return {'allow', 0, '', 'closed', 0} end
local tr = ''
if st == 'open' then
  local untl = tonumber(s[2] or '0')
  if now < untl then return {'deny', untl - now, '', 'open', untl} end
  redis.call('HSET', KEYS[1], 'state', 'half-open', 'since', now)
  redis.call('DEL', KEYS[6])
  tr = transition('open', 'half-open', now, 'cooldown over: probing')
end
redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', now)
if redis.call('ZCARD', KEYS[6]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[6], now + tonumber(ARGV[4]), ARGV[3])
  return {'probe', 0, tr, 'half-open', 0}
end
return {'deny', tonumber(ARGV[5]), tr, 'half-open', 0}
`)

// reportScript: ARGV now, outcome, item, probe_token, window_ms, min_items,
// failure_ratio, consecutive, rl_items, rl_ratio, cooldown_ms, batch,
// last_ok_ms (the batch's last success, 0 if none), first_cooldown_ms, then
// the ids of the batched successes. An open from closed lasts
// first_cooldown_ms; one after a failed probe twice the last, at most
// cooldown_ms. batch is "second:count,..." of
// successes a worker counted since its last report, recorded before the
// outcome (outcome "batch" records them alone). Returns {transition or ”,
// state, until, failed items, successes}: the counts in the window while
// closed, 0 otherwise.
var reportScript = redis.NewScript(luaTransition + `
local now = tonumber(ARGV[1])
local outcome, item, token = ARGV[2], ARGV[3], ARGV[4]
local window = tonumber(ARGV[5])
local cooldown = tonumber(ARGV[11])
local st = redis.call('HGET', KEYS[1], 'state') or 'closed'
local probe = token ~= '' and redis.call('ZREM', KEYS[6], token) == 1
if outcome == 'abandon' then return view('') end

local function open(from, reason)
  local first = tonumber(ARGV[14])
  local cd = first
  if from == 'half-open' then
    cd = math.min(cooldown, 2 * (tonumber(redis.call('HGET', KEYS[1], 'cooldown') or '0') or 0))
    if cd < first then cd = first end
  end
  redis.call('HSET', KEYS[1], 'state', 'open', 'since', now, 'until', now + cd, 'cooldown', cd)
  redis.call('DEL', KEYS[6])
  clear_windows()
  return transition(from, 'open', now, reason)
end

if st == 'half-open' then
  if not probe then return view('') end
  if outcome == 'ok' or outcome == 'neutral' then
    redis.call('HSET', KEYS[1], 'state', 'closed', 'since', now)
    redis.call('DEL', KEYS[6])
    clear_windows()
    return view(transition('half-open', 'closed', now, 'probe succeeded'))
  end
  return view(open('half-open', 'probe failed'))
end
if st == 'open' then return view('') end

-- closed: forget what fell out of the window.
local edge = now - window
for _, k in ipairs({2, 4, 5, 8}) do redis.call('ZREMRANGEBYSCORE', KEYS[k], '-inf', edge) end
local oldest = math.floor(edge / 1000)

-- Successes a worker batched: counted per second, and the items among them
-- that had failed or been rate-limited are taken out of those windows.
local succeeded = {}
for i = 15, #ARGV do succeeded[#succeeded + 1] = ARGV[i] end
local last_ok = tonumber(ARGV[13])
if outcome == 'ok' then
  succeeded[#succeeded + 1] = item
  last_ok = now
end
local any = #succeeded > 0
for sec, n in string.gmatch(ARGV[12], '(%d+):(%d+)') do
  if tonumber(sec) >= oldest then redis.call('HINCRBY', KEYS[3], sec, n) end
  any = true
end
if outcome == 'ok' then redis.call('HINCRBY', KEYS[3], math.floor(now / 1000), 1) end
if any then
  -- A success breaks the streak of failures before it, not after it.
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', last_ok)
  if #succeeded > 0 and redis.call('ZCARD', KEYS[2]) > 0 then
    for i = 1, #succeeded, 500 do
      redis.call('ZREM', KEYS[2], unpack(succeeded, i, math.min(i + 499, #succeeded)))
    end
  end
  if #succeeded > 0 and redis.call('ZCARD', KEYS[4]) > 0 then
    for _, it in ipairs(succeeded) do
      if redis.call('ZSCORE', KEYS[4], it) then redis.call('ZADD', KEYS[8], now, it) end
    end
  end
end
local function successes()
  local o = 0
  local h = redis.call('HGETALL', KEYS[3])
  for i = 1, #h, 2 do
    if tonumber(h[i]) < oldest then redis.call('HDEL', KEYS[3], h[i]) else o = o + tonumber(h[i + 1]) end
  end
  return o
end

if outcome == 'fail' then
  redis.call('ZADD', KEYS[2], now, item)
  redis.call('ZADD', KEYS[5], now, item)
elseif outcome == 'rl' then
  redis.call('ZADD', KEYS[4], now, item)
elseif outcome == 'neutral' then
  redis.call('DEL', KEYS[5])
end

local f = redis.call('ZCARD', KEYS[2])
local o = successes()
local function closed()
  -- The counts tell the worker whether its next success could meet a rule
  -- (only while fewer than min_items items were seen) or may be batched.
  return {'', 'closed', 0, f, o}
end
if outcome == 'inconclusive' then return closed() end
local r = redis.call('ZCARD', KEYS[4])
local streak = redis.call('ZCARD', KEYS[5])
if streak >= tonumber(ARGV[8]) then
  return view(open('closed', streak .. ' different items failed in a row'))
end
if f + o >= tonumber(ARGV[6]) and f / (f + o) >= tonumber(ARGV[7]) then
  return view(open('closed', f .. ' of ' .. (f + o) .. ' items failed within the window'))
end
if r >= tonumber(ARGV[9]) then
  -- Distinct items seen: a rate-limited item that later succeeded or
  -- failed is one item, not two.
  local seen = f + o
  for _, it in ipairs(redis.call('ZRANGE', KEYS[4], 0, -1)) do
    if not redis.call('ZSCORE', KEYS[2], it) and not redis.call('ZSCORE', KEYS[8], it) then seen = seen + 1 end
  end
  if r / seen >= tonumber(ARGV[10]) then
    return view(open('closed', 'sustained 429s: ' .. r .. ' items rate-limited within the window'))
  end
end
return closed()
`)
