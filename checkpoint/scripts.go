package checkpoint

import "github.com/redis/go-redis/v9"

// Every script receives the job's keys in the order of keys(): KEYS[1] job,
// 2 input, 3 status, 4 order, 5 calls, 6 claim, 7 result, 8 failure,
// 9 lasterr, 10 steps, 11 awaiting, 12 response. Times are Unix milliseconds passed by the caller, so the
// scripts stay deterministic and testable with an injected clock.

// luaCommon holds helpers shared by the scripts that end or reopen a job.
const luaCommon = `
local function finish_check(now)
  local t = redis.call('HMGET', KEYS[1], 'total', 'done', 'failed', 'state', 'retention_s')
  local total = tonumber(t[1]) or 0
  local done = tonumber(t[2]) or 0
  local failed = tonumber(t[3]) or 0
  if total == 0 or done + failed < total then return end
  -- A producer still recording items holds the job open: workers may have
  -- caught up with the first batches.
  if tonumber(redis.call('HGET', KEYS[1], 'submitting_until') or '0') > tonumber(now) then return end
  local ret = tonumber(t[5]) or 0
  if redis.call('HEXISTS', KEYS[1], 'finished_at') == 0 then
    redis.call('HSET', KEYS[1], 'finished_at', now)
    if t[4] == 'running' or t[4] == 'paused' then
      local d = tonumber(redis.call('HGET', KEYS[1], 'deadline') or '0')
      if d > 0 and tonumber(now) >= d and failed > 0 then
        redis.call('HSET', KEYS[1], 'state', 'expired')
      else
        redis.call('HSET', KEYS[1], 'state', 'done')
      end
      redis.call('HDEL', KEYS[1], 'paused_reason')
    elseif t[4] == 'expired' and failed == 0 then
      -- Marked expired, yet every item made it: nothing expired.
      redis.call('HSET', KEYS[1], 'state', 'done')
    end
    if ret > 0 then
      for i = 1, #KEYS do redis.call('EXPIRE', KEYS[i], ret) end
    end
  elseif ret > 0 then
    -- A late write to a finished job (a slow attempt's result) may have
    -- created a key: it expires with the others.
    for i = 1, #KEYS do
      if redis.call('TTL', KEYS[i]) == -1 then redis.call('EXPIRE', KEYS[i], ret) end
    end
  end
end
local function reopen()
  if redis.call('HEXISTS', KEYS[1], 'finished_at') == 1 then
    redis.call('HDEL', KEYS[1], 'finished_at')
    if redis.call('HGET', KEYS[1], 'state') == 'done' then redis.call('HSET', KEYS[1], 'state', 'running') end
  end
  for i = 1, #KEYS do redis.call('PERSIST', KEYS[i]) end
end
`

// openScript creates the job when absent. ARGV: policy, now, deadline,
// retention_s, max_attempts (kept beside the policy so that a claim need
// not decode it).
var openScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'state', 'running', 'policy', ARGV[1], 'created_at', ARGV[2],
  'deadline', ARGV[3], 'retention_s', ARGV[4], 'total', 0, 'done', 0, 'failed', 0, 'active', 0,
  'max_attempts', ARGV[5])
return 1
`)

// updatePolicyScript: ARGV policy, deadline, retention_s, now, max_attempts.
var updatePolicyScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'policy', ARGV[1], 'deadline', ARGV[2], 'retention_s', ARGV[3], 'max_attempts', ARGV[5])
local d = tonumber(ARGV[2]) or 0
if redis.call('HGET', KEYS[1], 'state') == 'expired' and (d == 0 or d > tonumber(ARGV[4])) then
  redis.call('HSET', KEYS[1], 'state', 'running')
end
return 1
`)

// recordScript: ARGV now, then id, canonical pairs.
var recordScript = redis.NewScript(luaCommon + `
if redis.call('EXISTS', KEYS[1]) == 0 then return {'missing'} end
local out = {}
local added = 0
for i = 2, #ARGV, 2 do
  local id, body = ARGV[i], ARGV[i + 1]
  local cur = redis.call('HGET', KEYS[2], id)
  if not cur then
    redis.call('HSET', KEYS[2], id, body)
    redis.call('HSET', KEYS[3], id, 'pending')
    redis.call('RPUSH', KEYS[4], id)
    added = added + 1
    out[#out + 1] = 'new'
  elseif cur == body then
    out[#out + 1] = redis.call('HGET', KEYS[3], id) or 'pending'
  else
    out[#out + 1] = 'conflict'
  end
end
if added > 0 then
  redis.call('HINCRBY', KEYS[1], 'total', added)
  reopen()
end
return out
`)

// claimScript claims items of one job: ARGV now, mode, start, then id,
// token pairs. Returns {job, item...}: job is {policy, state, tokens_in,
// tokens_out, cost_micros}, or false when the job is missing; each item is
// {verdict, calls, input, lasterr, replayed, call, refused}. With mode "replay", a
// failed item is replayed first (its task was run from asynq's archive,
// which the caller verified). With start '1' the claim also starts the
// attempt's call (Begin): unless the job was cancelled or is past its
// deadline, or the item's budget (max_attempts) is spent, the call is
// counted and call is its number; otherwise refused says why ('ended' or
// 'spent'). Each item's transition is applied whole, in order.
var claimScript = redis.NewScript(luaCommon + luaSteps + luaReplay + `
local now, mode, start = ARGV[1], ARGV[2], ARGV[3] == '1'
local j = redis.call('HMGET', KEYS[1], 'policy', 'state', 'tokens_in', 'tokens_out', 'cost_micros',
  'started_at', 'deadline', 'max_attempts')
local out = {false}
if not j[1] then
  for i = 4, #ARGV, 2 do out[#out + 1] = {'missing'} end
  return out
end
local max = tonumber(j[8])
if start and not max then max = tonumber(cjson.decode(j[1]).max_attempts) or 1 end
local d = tonumber(j[7] or '0')
local function startable(state)
  return start and state ~= 'cancelled' and state ~= 'expired' and (d == 0 or tonumber(now) < d)
end
local may_start = startable(j[2])
local started = j[6]
local active, calls_started, claimed = 0, 0, 0
for i = 4, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  local st = redis.call('HGET', KEYS[3], id)
  local replayed = ''
  if st == 'failed' and mode == 'replay' then
    -- The caller checked that asynq ran this task from its archive.
    replay(id)
    st = 'pending'
    replayed = 'replayed'
    may_start = startable(redis.call('HGET', KEYS[1], 'state'))
  end
  if not st then
    out[#out + 1] = {'unknown'}
  elseif st == 'done' or st == 'failed' then
    out[#out + 1] = {st}
  else
    if st == 'pending' or st == 'awaiting_input' then
      redis.call('HSET', KEYS[3], id, 'active')
      active = active + 1
      if st == 'awaiting_input' then redis.call('HINCRBY', KEYS[1], 'awaiting_input', -1) end
    end
    redis.call('HSET', KEYS[6], id, token)
    local calls = tonumber(redis.call('HGET', KEYS[5], id) or '0')
    local call, refused = 0, ''
    if start and not may_start then
      refused = 'ended'
    elseif start and calls >= max then
      refused = 'spent'
    elseif start then
      call = calls + 1
      redis.call('HSET', KEYS[5], id, call)
      calls_started = calls_started + 1
    end
    claimed = claimed + 1
    out[#out + 1] = {'ok', calls, redis.call('HGET', KEYS[2], id), redis.call('HGET', KEYS[9], id) or '', replayed, call, refused}
  end
end
if active > 0 then redis.call('HINCRBY', KEYS[1], 'active', active) end
if calls_started > 0 then redis.call('HINCRBY', KEYS[1], 'provider_calls', calls_started) end
if not started and claimed > 0 then redis.call('HSET', KEYS[1], 'started_at', now) end
-- A replay may have changed the state.
out[1] = {j[1], redis.call('HGET', KEYS[1], 'state'), tonumber(j[3] or '0'), tonumber(j[4] or '0'), tonumber(j[5] or '0')}
return out
`)

// startCallScript: ARGV id, token, max, now. Returns calls so far including
// this one, -1 when the claim is lost, -2 when the budget is spent, -3 when
// the job was cancelled or its deadline passed since the claim.
var startCallScript = redis.NewScript(`
local id = ARGV[1]
if redis.call('HGET', KEYS[6], id) ~= ARGV[2] then return -1 end
local j = redis.call('HMGET', KEYS[1], 'state', 'deadline')
local d = tonumber(j[2] or '0')
if j[1] == 'cancelled' or j[1] == 'expired' or (d > 0 and tonumber(ARGV[4]) >= d) then return -3 end
local c = tonumber(redis.call('HGET', KEYS[5], id) or '0')
if c >= tonumber(ARGV[3]) then return -2 end
redis.call('HINCRBY', KEYS[5], id, 1)
redis.call('HINCRBY', KEYS[1], 'provider_calls', 1)
return c + 1
`)

// commitScript commits results of one job: ARGV now, then id, result,
// tokens_in, tokens_out, model, cost_micros, response (” when none) tuples. Returns each one's
// outcome: committed, duplicate, missing or unknown. Each commit is applied
// whole, in order, and the job's finish check runs once, at the end.
var commitScript = redis.NewScript(luaCommon + `
local now = ARGV[1]
local out = {}
if redis.call('EXISTS', KEYS[1]) == 0 then
  for i = 2, #ARGV, 7 do out[#out + 1] = 'missing' end
  return out
end
local done, active, failed, awaiting, dups, tin, tout, cost = 0, 0, 0, 0, 0, 0, 0, 0
local per_model = {}
for i = 2, #ARGV, 7 do
  local id = ARGV[i]
  local st = redis.call('HGET', KEYS[3], id)
  if not st then
    out[#out + 1] = 'unknown'
  elseif st == 'done' then
    dups = dups + 1
    out[#out + 1] = 'duplicate'
  else
    redis.call('HSET', KEYS[7], id, ARGV[i + 1])
    if ARGV[i + 6] ~= '' then redis.call('HSET', KEYS[12], id, ARGV[i + 6]) end
    redis.call('HSET', KEYS[3], id, 'done')
    done = done + 1
    if st == 'active' then
      active = active + 1
    elseif st == 'failed' then
      failed = failed + 1
      redis.call('HDEL', KEYS[8], id)
    elseif st == 'awaiting_input' then
      -- A stale attempt's result for an item another attempt parked.
      awaiting = awaiting + 1
    end
    redis.call('HDEL', KEYS[6], id)
    redis.call('HDEL', KEYS[9], id)
    local ti, to, c = tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3]), tonumber(ARGV[i + 5])
    tin, tout, cost = tin + ti, tout + to, cost + c
    local m = per_model[ARGV[i + 4]]
    if not m then
      m = {0, 0, 0, 0}
      per_model[ARGV[i + 4]] = m
    end
    m[1], m[2], m[3], m[4] = m[1] + 1, m[2] + ti, m[3] + to, m[4] + c
    out[#out + 1] = 'committed'
  end
end
if dups > 0 then redis.call('HINCRBY', KEYS[1], 'duplicates', dups) end
if done > 0 then
  redis.call('HINCRBY', KEYS[1], 'done', done)
  if active > 0 then redis.call('HINCRBY', KEYS[1], 'active', -active) end
  if failed > 0 then redis.call('HINCRBY', KEYS[1], 'failed', -failed) end
  if awaiting > 0 then redis.call('HINCRBY', KEYS[1], 'awaiting_input', -awaiting) end
  redis.call('HINCRBY', KEYS[1], 'tokens_in', tin)
  redis.call('HINCRBY', KEYS[1], 'tokens_out', tout)
  redis.call('HINCRBY', KEYS[1], 'cost_micros', cost)
  for model, m in pairs(per_model) do
    local p = 'model:' .. model .. ':'
    redis.call('HINCRBY', KEYS[1], p .. 'items', m[1])
    redis.call('HINCRBY', KEYS[1], p .. 'in', m[2])
    redis.call('HINCRBY', KEYS[1], p .. 'out', m[3])
    redis.call('HINCRBY', KEYS[1], p .. 'cost', m[4])
  end
  finish_check(now)
end
return out
`)

// failScript: ARGV id, token, failure, now, unsent ('1' gives back the
// call Begin counted: it never went out).
var failScript = redis.NewScript(luaCommon + luaUnsent + `
if redis.call('EXISTS', KEYS[1]) == 0 then return 'missing' end
local id = ARGV[1]
local st = redis.call('HGET', KEYS[3], id)
if not st then return 'unknown' end
if st == 'done' or st == 'failed' then return 'ignored' end
-- Only the attempt that holds the item may fail it: a stale attempt (its
-- task re-dispatched elsewhere) must not end an item another one owns.
if redis.call('HGET', KEYS[6], id) ~= ARGV[2] then return 'lost' end
if ARGV[5] == '1' then unsent(id) end
redis.call('HSET', KEYS[8], id, ARGV[3])
redis.call('HSET', KEYS[3], id, 'failed')
redis.call('HINCRBY', KEYS[1], 'failed', 1)
if st == 'active' then redis.call('HINCRBY', KEYS[1], 'active', -1) end
redis.call('HDEL', KEYS[6], id)
finish_check(ARGV[4])
return 'failed'
`)

// releaseScript: ARGV id, token, lasterr (empty keeps the previous one),
// unsent ('1' gives back the call Begin counted: it never went out).
var releaseScript = redis.NewScript(luaUnsent + `
local id = ARGV[1]
if redis.call('HGET', KEYS[3], id) ~= 'active' or redis.call('HGET', KEYS[6], id) ~= ARGV[2] then return 'lost' end
if ARGV[4] == '1' then unsent(id) end
redis.call('HSET', KEYS[3], id, 'pending')
redis.call('HINCRBY', KEYS[1], 'active', -1)
redis.call('HDEL', KEYS[6], id)
if ARGV[3] ~= '' then redis.call('HSET', KEYS[9], id, ARGV[3]) end
return 'ok'
`)

// luaUnsent gives back a call that Begin counted but that never went out
// (the attempt waited for the limiter or the breaker, or ended before its
// call): the item's budget and the job's provider_calls stay true.
const luaUnsent = `
local function unsent(id)
  local c = tonumber(redis.call('HGET', KEYS[5], id) or '0')
  if c > 0 then
    redis.call('HSET', KEYS[5], id, c - 1)
    redis.call('HINCRBY', KEYS[1], 'provider_calls', -1)
  end
end
`

// sweepScript: ARGV failure, now, ids... Fails the listed items that are
// still pending.
var sweepScript = redis.NewScript(luaCommon + `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local n = 0
for i = 3, #ARGV do
  local id = ARGV[i]
  local st = redis.call('HGET', KEYS[3], id)
  if st == 'pending' or st == 'awaiting_input' then
    redis.call('HSET', KEYS[8], id, ARGV[1])
    redis.call('HSET', KEYS[3], id, 'failed')
    if st == 'awaiting_input' then redis.call('HINCRBY', KEYS[1], 'awaiting_input', -1) end
    n = n + 1
  end
end
if n > 0 then redis.call('HINCRBY', KEYS[1], 'failed', n) end
finish_check(ARGV[2])
return n
`)

// markExpiredScript sets a running job's state to expired.
var markExpiredScript = redis.NewScript(`
local st = redis.call('HGET', KEYS[1], 'state')
if st == 'running' or st == 'paused' then
  redis.call('HSET', KEYS[1], 'state', 'expired')
  redis.call('HDEL', KEYS[1], 'paused_reason')
end
return 1
`)

// recordDoneScript: ARGV now, then id, canonical, result triples.
var recordDoneScript = redis.NewScript(luaCommon + `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local added = 0
for i = 2, #ARGV, 3 do
  local id = ARGV[i]
  if redis.call('HEXISTS', KEYS[2], id) == 0 then
    redis.call('HSET', KEYS[2], id, ARGV[i + 1])
    redis.call('HSET', KEYS[3], id, 'done')
    redis.call('HSET', KEYS[7], id, ARGV[i + 2])
    redis.call('RPUSH', KEYS[4], id)
    added = added + 1
  end
end
if added > 0 then
  redis.call('HINCRBY', KEYS[1], 'total', added)
  redis.call('HINCRBY', KEYS[1], 'done', added)
  reopen()
  finish_check(ARGV[1])
end
return added
`)

// luaSteps removes an agent item's steps: a replay or an edit starts its run
// over from the first step.
const luaSteps = `
local function clear_steps(id)
  local n = tonumber(redis.call('HGET', KEYS[10], 'c:' .. id) or '0')
  for i = 1, n do redis.call('HDEL', KEYS[10], i .. ':' .. id) end
  redis.call('HDEL', KEYS[10], 'c:' .. id)
  redis.call('HDEL', KEYS[11], id)
end
`

// luaReplay turns one failed item back into a pending one with a fresh
// attempt budget and reopens the job. It needs luaCommon and luaSteps.
const luaReplay = `
local function replay(id)
  clear_steps(id)
  redis.call('HSET', KEYS[3], id, 'pending')
  redis.call('HINCRBY', KEYS[1], 'failed', -1)
  redis.call('HDEL', KEYS[5], id)
  redis.call('HDEL', KEYS[8], id)
  redis.call('HDEL', KEYS[9], id)
  redis.call('HDEL', KEYS[6], id)
  reopen()
  local state = redis.call('HGET', KEYS[1], 'state')
  if state == 'cancelled' or state == 'expired' then redis.call('HSET', KEYS[1], 'state', 'running') end
end
`

// replayScript: ARGV now, ids... Returns per id "replayed:archived",
// "replayed:", "not_failed:STATUS" or "unknown".
var replayScript = redis.NewScript(luaCommon + luaSteps + luaReplay + `
if redis.call('EXISTS', KEYS[1]) == 0 then return {'missing'} end
local out = {}
for i = 2, #ARGV do
  local id = ARGV[i]
  local st = redis.call('HGET', KEYS[3], id)
  if not st then
    out[#out + 1] = 'unknown'
  elseif st ~= 'failed' then
    out[#out + 1] = 'not_failed:' .. st
  else
    local f = redis.call('HGET', KEYS[8], id)
    local ok, rec = pcall(cjson.decode, f or '{}')
    local archived = ok and type(rec) == 'table' and rec.archived
    replay(id)
    out[#out + 1] = archived and 'replayed:archived' or 'replayed:'
  end
end
return out
`)

// replaceInputScript: ARGV id, canonical. Returns the item's status, or
// missing / unknown.
var replaceInputScript = redis.NewScript(luaSteps + `
if redis.call('EXISTS', KEYS[1]) == 0 then return 'missing' end
local st = redis.call('HGET', KEYS[3], ARGV[1])
if not st then return 'unknown' end
if st == 'failed' or st == 'pending' then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
  clear_steps(ARGV[1])
end
return st
`)

// pauseScript: ARGV reason. Pauses a running job.
var pauseScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'state') ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], 'state', 'paused', 'paused_reason', ARGV[1])
return 1
`)

// resumeScript puts a paused job back to running.
var resumeScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'state') ~= 'paused' then return 0 end
redis.call('HSET', KEYS[1], 'state', 'running')
redis.call('HDEL', KEYS[1], 'paused_reason')
return 1
`)

// addUsageScript: ARGV model, tokens_in, tokens_out, cost_micros. Usage of a
// call whose answer was not kept (invalid output, filtered): it was paid.
var addUsageScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[1], 'tokens_in', ARGV[2])
redis.call('HINCRBY', KEYS[1], 'tokens_out', ARGV[3])
redis.call('HINCRBY', KEYS[1], 'cost_micros', ARGV[4])
local m = 'model:' .. ARGV[1] .. ':'
redis.call('HINCRBY', KEYS[1], m .. 'in', ARGV[2])
redis.call('HINCRBY', KEYS[1], m .. 'out', ARGV[3])
redis.call('HINCRBY', KEYS[1], m .. 'cost', ARGV[4])
return 1
`)

// submittingScript: ARGV until_ms ('0' ends the submission), now. Ending
// it runs the finish check the submission held back.
var submittingScript = redis.NewScript(luaCommon + `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[1] == '0' then
  redis.call('HDEL', KEYS[1], 'submitting_until')
  finish_check(ARGV[2])
else
  redis.call('HSET', KEYS[1], 'submitting_until', ARGV[1])
end
return 1
`)

// noteEndpointScript: ARGV endpoint. Only for a job that exists: a late
// worker must not recreate a deleted job.
var noteEndpointScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'endpoint', ARGV[1])
return 1
`)

// cancelScript marks a job cancelled unless it is missing or finished.
var cancelScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 'missing' end
if redis.call('HEXISTS', KEYS[1], 'finished_at') == 1 then return 'finished' end
redis.call('HSET', KEYS[1], 'state', 'cancelled')
redis.call('HDEL', KEYS[1], 'paused_reason')
return 'ok'
`)

// appendStepScript commits one step of an agent item: ARGV id, token, n,
// step, tokens_in, tokens_out, model, cost_micros, kind ('model' or
// 'tool'), tool runs. Only the attempt holding the item may write, and
// only step n = count + 1: a step already there is left as it is
// ('exists'), so a step retried after a lost reply is written once. A
// model step's usage counts for the job at once (budgets see it) and ends
// the step's attempt budget: the next model call starts from 0.
var appendStepScript = redis.NewScript(`
local id = ARGV[1]
if redis.call('HGET', KEYS[3], id) ~= 'active' or redis.call('HGET', KEYS[6], id) ~= ARGV[2] then return 'lost' end
local have = tonumber(redis.call('HGET', KEYS[10], 'c:' .. id) or '0')
local n = tonumber(ARGV[3])
if n <= have then return 'exists' end
if n ~= have + 1 then return 'gap' end
redis.call('HSET', KEYS[10], n .. ':' .. id, ARGV[4], 'c:' .. id, n)
if ARGV[9] == 'model' then
  redis.call('HDEL', KEYS[5], id)
  redis.call('HDEL', KEYS[9], id)
  redis.call('HINCRBY', KEYS[1], 'model_steps', 1)
  redis.call('HINCRBY', KEYS[1], 'tokens_in', ARGV[5])
  redis.call('HINCRBY', KEYS[1], 'tokens_out', ARGV[6])
  redis.call('HINCRBY', KEYS[1], 'cost_micros', ARGV[8])
  local m = 'model:' .. ARGV[7] .. ':'
  redis.call('HINCRBY', KEYS[1], m .. 'in', ARGV[5])
  redis.call('HINCRBY', KEYS[1], m .. 'out', ARGV[6])
  redis.call('HINCRBY', KEYS[1], m .. 'cost', ARGV[8])
else
  redis.call('HINCRBY', KEYS[1], 'tool_runs', ARGV[10])
end
return 'ok'
`)

// stepsScript: ARGV id. Returns the item's steps in order.
var stepsScript = redis.NewScript(`
local n = tonumber(redis.call('HGET', KEYS[10], 'c:' .. ARGV[1]) or '0')
local out = {}
for i = 1, n do out[i] = redis.call('HGET', KEYS[10], i .. ':' .. ARGV[1]) or '' end
return out
`)

// unsendScript: ARGV id, token. Gives back the call Begin counted for an
// attempt that goes on without it (an agent item resuming at a tool run or
// at its finished answer), keeping the claim.
var unsendScript = redis.NewScript(luaUnsent + `
if redis.call('HGET', KEYS[6], ARGV[1]) ~= ARGV[2] then return 'lost' end
unsent(ARGV[1])
return 'ok'
`)

// parkScript: ARGV id, token, requests, unsent. Parks an agent item for a
// person: its requests are stored, it leaves active for awaiting_input and
// its claim is dropped, so no attempt holds it while a person thinks.
var parkScript = redis.NewScript(luaUnsent + `
local id = ARGV[1]
if redis.call('HGET', KEYS[3], id) ~= 'active' or redis.call('HGET', KEYS[6], id) ~= ARGV[2] then return 'lost' end
if ARGV[4] == '1' then unsent(id) end
redis.call('HSET', KEYS[3], id, 'awaiting_input')
redis.call('HINCRBY', KEYS[1], 'active', -1)
redis.call('HINCRBY', KEYS[1], 'awaiting_input', 1)
redis.call('HDEL', KEYS[6], id)
redis.call('HSET', KEYS[11], id, ARGV[3])
return 'ok'
`)

// decideScript: ARGV id, the requests as read, the requests with a new
// decision, complete ('1' when no request is left undecided). Stores them
// if the item still awaits input and nobody changed them since they were
// read (compare and set: the JSON is never decoded here, so arguments keep
// their exact text). A complete item goes back to pending, to be resumed.
// Returns ok, changed or the item's status.
var decideScript = redis.NewScript(`
local st = redis.call('HGET', KEYS[3], ARGV[1])
if not st then return 'unknown' end
if st ~= 'awaiting_input' then return st end
if (redis.call('HGET', KEYS[11], ARGV[1]) or '') ~= ARGV[2] then return 'changed' end
redis.call('HSET', KEYS[11], ARGV[1], ARGV[3])
if ARGV[4] == '1' then
  redis.call('HSET', KEYS[3], ARGV[1], 'pending')
  redis.call('HINCRBY', KEYS[1], 'awaiting_input', -1)
end
return 'ok'
`)

// restoreParkedScript: ARGV id, requests, ready, then the steps' JSON in
// order. Gives a pending item that has no steps the steps and requests an
// earlier process saved (the embedded mode's NAME.awaiting.jsonl) and
// parks it, unless ready ('1': every request is answered), when it stays
// pending to be resumed.
var restoreParkedScript = redis.NewScript(`
local id = ARGV[1]
if redis.call('HGET', KEYS[3], id) ~= 'pending' then return 'not_pending' end
if redis.call('HEXISTS', KEYS[10], 'c:' .. id) == 1 then return 'has_steps' end
for i = 4, #ARGV do redis.call('HSET', KEYS[10], (i - 3) .. ':' .. id, ARGV[i]) end
if #ARGV > 3 then redis.call('HSET', KEYS[10], 'c:' .. id, #ARGV - 3) end
redis.call('HSET', KEYS[11], id, ARGV[2])
if ARGV[3] == '1' then return 'ready' end
redis.call('HSET', KEYS[3], id, 'awaiting_input')
redis.call('HINCRBY', KEYS[1], 'awaiting_input', 1)
return 'parked'
`)
