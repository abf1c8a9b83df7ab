// Package console is the fleet's web console: `producer console`. One HTTP
// server shows every job (progress, rate and ETA, failures per class, cost,
// breaker state), lets a person answer the requests items wait on (the same
// jobs.Respond as `producer respond`), and mounts asynqmon under /asynqmon/
// for the queues themselves.
//
// # What it serves
//
//	GET  /                          the jobs page (html/template, refreshed by static/console.js)
//	GET  /partials/jobs, /inbox     the page's two parts, which the script swaps in
//	GET  /api/jobs                  {"jobs": [JobView...]}
//	GET  /api/jobs/{job}            one JobView with its inbox
//	GET  /api/jobs/{job}/inbox      [jobs.InboxEntry...]
//	POST /api/jobs/{job}/respond    a jobs.Response (JSON object or array, or the page's form) → jobs.RespondSummary
//	GET  /login, POST /login        the login form; POST /logout
//	     /asynqmon/...              asynqmon v0.7.2, as a library, on the fleet's own asynq
//
// # Invariants
//
//   - With a Token, every path but /login answers 401 to a request without
//     `Authorization: Bearer TOKEN` or the session cookie. The cookie holds an
//     HMAC-SHA256 of the token under a key drawn at start, never the token,
//     so it dies with the process and a leaked cookie does not reveal the
//     token. Both are compared as MACs with hmac.Equal (constant time, equal
//     lengths whatever the guess). The token is never logged.
//   - Without a Token the console only listens on loopback (Config.Validate
//     refuses anything else with ErrTokenRequired), and only answers requests
//     whose Host is a loopback name, so a page that rebinds its DNS name to
//     127.0.0.1 cannot read it.
//   - A request that changes something (any method but GET, HEAD, OPTIONS)
//     made with the cookie, or with no authentication at all, must come from
//     the console's own origin (Origin, else Referer, naming the request's
//     Host): with SameSite=Strict on the cookie, that is the CSRF defence.
//     Bearer requests are not checked: browsers never add that header on
//     their own.
//   - ReadOnly refuses every such request with 403 (asynqmon's too: asynqmon
//     is also started read-only), except logging in and out.
//
// # asynqmon and the Redis connection
//
// asynqmon takes an asynq.RedisConnOpt and calls MakeRedisClient once for
// itself and once for its inspector; sharedConn hands it the fleet's
// connection instead of letting it dial a second pool. asynqmon's
// HTTPHandler.Close would then close that connection (twice: its own client
// and its inspector's), so the console never calls it: the connection
// belongs to the caller, who closes it once after Shutdown. asynqmon starts
// no goroutines, so nothing else needs stopping.
//
// # Rates and failure classes
//
// The rate is measured from the console's own snapshots of each job (items
// finished per second over the last minute), and from started_at until there
// are two snapshots a second apart; the ETA is what is left at that rate.
// Failures per class are counted from the checkpoint (jobs.WalkFailed, as
// `producer failed` counts them), not from asynq's archive, which drops
// tasks. That walk reads the job's whole item list, so it is redone only
// when the failed count changed, and no sooner than ten times as long as the
// last walk took: at most a tenth of the console's time goes to it however
// large the job.
package console
