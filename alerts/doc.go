// Package alerts sends the fleet's alert webhooks: error_rate,
// breaker_open, breaker_closed, budget_paused, awaiting_input,
// job_finished and job_expired, as JSON events or Slack messages, signed
// with HMAC-SHA256 when a secret is set.
//
// # How an event travels
//
// The worker's hooks (ItemFinished, BreakerTransition, BudgetPaused,
// AwaitingInput) only count or queue in memory under a short lock: alerts
// never slow item processing and never fail an item. Two loops per worker,
// every Interval (1s), do the rest:
//
//   - The rules loop adds this worker's counts to the fleet's, a hash per
//     job with a field per time bucket (a tenth of the window) that
//     expires after the window; evaluates the error-rate rule on the
//     fleet-wide counts of the jobs it saw in the window; looks up the jobs
//     it saw for their end (job_finished, job_expired); and raises what is
//     queued.
//   - The delivery loop reads the outbox through a consumer group shared by
//     every worker, posts each event to every webhook, and acknowledges it
//     once all answered 2xx.
//
// # Invariants
//
//   - Once for the fleet. Raising is one Lua script: SET NX on a gate key,
//     then XADD to the outbox. The gate is the event id's marker (kept a
//     day), or for error_rate the job's cooldown key (kept for the
//     cooldown). An event id is derived from what identifies the event (a
//     breaker transition's time, a job's finish time, an item's requests),
//     so two workers raising the same event agree on it and the second is
//     a no-op. Delivery is at least once: a worker that stops before its
//     acknowledgement leaves the event pending, another worker claims it
//     (XAUTOCLAIM after ClaimIdle) and sends it again; the receiver drops
//     the redelivery by its id.
//   - Retried, bounded. A failed delivery stays pending and is retried by
//     the same worker with jittered exponential backoff (RetryMin doubling
//     up to RetryMax), only to the webhooks that did not acknowledge it; the
//     worker resets the entries' idle time while it retries, so others
//     only claim those of a worker that stopped. The outbox is trimmed to
//     MaxEvents (exactly, with MAXLEN): while a receiver is down events
//     wait in Redis, and past the bound the oldest are dropped. An event
//     still failing after MaxAge is dropped with a warning.
//   - Secrets stay in memory. Webhook URLs and the secret are never logged
//     (a webhook is "webhook #1") and never written to Redis: the outbox
//     holds the event JSON only, and each format's body is built and signed
//     at delivery time, so the signature covers the exact bytes sent.
//
// # Events
//
// A JSON event is {"id", "event", "job", "at", ...details}:
//
//   - error_rate: failed, items, rate, threshold, min_items, window. Fires
//     when more than ErrorRate of the items of a job that finished in the
//     window failed and at least MinItems finished; then not again for the
//     job until the cooldown has passed.
//   - breaker_open, breaker_closed: endpoint, from, to, reason. Open is the
//     closed → open transition only: a failed probe reopening a half-open
//     breaker is the same outage.
//   - budget_paused: reason.
//   - awaiting_input: item, requests, request_ids, tools.
//   - job_finished, job_expired: summary (state, counts, tokens, cost,
//     success_rate as in `status --json`). A cancelled job that drained
//     raises job_finished with state "cancelled".
//
// The Slack format is {"text", "blocks"}: the event in one line and a
// context block with its kind, time and id.
//
// Every worker of a fleet should run with the same alert flags: the counts'
// buckets follow the window.
package alerts
