package breaker

import "github.com/redis/go-redis/v9"

// KEYS (checkpoint.BreakerKeys): 1 state hash, 2 failed items (zset, score =
// time), 3 succeeded items, 4 rate-limited items, 5 streak (zset of items
// failing in a row, within the window), 6 probe leases (zset, score = lease end), 7 transition
// log (list, newest first). Times are Unix milliseconds from the caller.

const luaTransition = `
local function transition(from, to, now, reason)
  local t = cjson.encode({from = from, to = to, at = tonumber(now), reason = reason})
  redis.call('LPUSH', KEYS[7], t)
  redis.call('LTRIM', KEYS[7], 0, 99)
  redis.call('HINCRBY', KEYS[1], 'transitions', 1)
  return t
end
local function clear_windows()
  redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5])
end
`

// allowScript: ARGV now, max_probes, probe_token, probe_lease_ms,
// half_open_wait_ms. Returns {verdict, wait_ms, transition}.
var allowScript = redis.NewScript(luaTransition + `
local now = tonumber(ARGV[1])
local st = redis.call('HGET', KEYS[1], 'state') or 'closed'
if st == 'closed' then return {'allow', 0, ''} end
local tr = ''
if st == 'open' then
  local untl = tonumber(redis.call('HGET', KEYS[1], 'until') or '0')
  if now < untl then return {'deny', untl - now, ''} end
  redis.call('HSET', KEYS[1], 'state', 'half-open', 'since', now)
  redis.call('DEL', KEYS[6])
  tr = transition('open', 'half-open', now, 'cooldown over: probing')
end
redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', now)
if redis.call('ZCARD', KEYS[6]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[6], now + tonumber(ARGV[4]), ARGV[3])
  return {'probe', 0, tr}
end
return {'deny', tonumber(ARGV[5]), tr}
`)

// reportScript: ARGV now, outcome, item, probe_token, window_ms, min_items,
// failure_ratio, consecutive, rl_items, rl_ratio, cooldown_ms. Returns the
// transition it made, or ”.
var reportScript = redis.NewScript(luaTransition + `
local now = tonumber(ARGV[1])
local outcome, item, token = ARGV[2], ARGV[3], ARGV[4]
local cooldown = tonumber(ARGV[11])
local st = redis.call('HGET', KEYS[1], 'state') or 'closed'
local probe = token ~= '' and redis.call('ZREM', KEYS[6], token) == 1
if outcome == 'abandon' then return '' end

local function open(from, reason)
  redis.call('HSET', KEYS[1], 'state', 'open', 'since', now, 'until', now + cooldown)
  redis.call('DEL', KEYS[6])
  clear_windows()
  return transition(from, 'open', now, reason)
end

if st == 'half-open' then
  if not probe then return '' end
  if outcome == 'ok' or outcome == 'neutral' then
    redis.call('HSET', KEYS[1], 'state', 'closed', 'since', now)
    redis.call('DEL', KEYS[6])
    clear_windows()
    return transition('half-open', 'closed', now, 'probe succeeded')
  end
  return open('half-open', 'probe failed')
end
if st == 'open' then return '' end

-- closed: record the outcome per distinct item over the window.
local edge = now - tonumber(ARGV[5])
for i = 2, 5 do redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', edge) end
if outcome == 'ok' then
  redis.call('ZADD', KEYS[3], now, item)
  redis.call('ZREM', KEYS[2], item)
  redis.call('DEL', KEYS[5])
elseif outcome == 'fail' then
  redis.call('ZADD', KEYS[2], now, item)
  redis.call('ZREM', KEYS[3], item)
  redis.call('ZADD', KEYS[5], now, item)
elseif outcome == 'rl' then
  redis.call('ZADD', KEYS[4], now, item)
elseif outcome == 'inconclusive' then
  return ''
else
  redis.call('DEL', KEYS[5])
end
local f = redis.call('ZCARD', KEYS[2])
local o = redis.call('ZCARD', KEYS[3])
local r = redis.call('ZCARD', KEYS[4])
local streak = redis.call('ZCARD', KEYS[5])
if streak >= tonumber(ARGV[8]) then
  return open('closed', streak .. ' different items failed in a row')
end
if f + o >= tonumber(ARGV[6]) and f / (f + o) >= tonumber(ARGV[7]) then
  return open('closed', f .. ' of ' .. (f + o) .. ' items failed within the window')
end
if r >= tonumber(ARGV[9]) then
  -- Distinct items seen: a rate-limited item that later succeeded or
  -- failed is one item, not two.
  local seen = f + o
  for _, it in ipairs(redis.call('ZRANGE', KEYS[4], 0, -1)) do
    if not redis.call('ZSCORE', KEYS[2], it) and not redis.call('ZSCORE', KEYS[3], it) then seen = seen + 1 end
  end
  if r / seen >= tonumber(ARGV[10]) then
    return open('closed', 'sustained 429s: ' .. r .. ' items rate-limited within the window')
  end
end
return ''
`)
