// Package checkpoint keeps every job's state in Redis hashes and is the only
// package that knows the key schema.
//
// # Keys
//
// All keys of a job share the hash tag {job}, so they live in one Redis
// Cluster slot and one Lua script may touch all of them:
//
//	llmfleet:{job}:job      hash  policy (and its max_attempts), state, timestamps and counters
//	llmfleet:{job}:input    hash  item id → canonical item JSON (tasks.Item)
//	llmfleet:{job}:status   hash  item id → pending | active | awaiting_input | done | failed
//	llmfleet:{job}:order    list  item ids in input order (export order)
//	llmfleet:{job}:calls    hash  item id → provider calls made (the attempt budget)
//	llmfleet:{job}:claim    hash  item id → token of the attempt that holds it
//	llmfleet:{job}:result   hash  item id → result line (export JSON)
//	llmfleet:{job}:failure  hash  item id → final failure record
//	llmfleet:{job}:lasterr  hash  item id → last retryable failure
//	llmfleet:{job}:steps    hash  agent items' steps: "c:ID" → step count, "N:ID" → step N (JSON)
//	llmfleet:{job}:awaiting hash  item id → its requests for a person, with their decisions (JSON)
//	llmfleet:jobs           set   job names (the only key outside a job's slot)
//
// The keys of the fleet-wide breaker, rate limiter and alerts are spelled
// in keys.go as well (BreakerKeys, LimiterKeys, AlertKeys: the alerts'
// outbox stream, per-job outcome counts, raised-event markers and
// cooldowns, under llmfleet:alerts:{fleet}:), so that this package is the
// one place that knows every key llmfleet writes.
//
// # Files
//
// job.go (jobs: open, snapshot, pause, budgets), policy.go (the policy and
// its validation), item.go (an item's transitions: record, begin, commit,
// fail, release), steps.go (agent items' steps), awaiting.go (items parked for a person), sweep.go (job-level ends: cancel, expire), replay.go
// (failed items back to pending), walk.go (reading items in input order),
// keys.go (the key schema), scripts.go (the Lua scripts), coalesce.go
// (group commit of the worker's transitions).
//
// # Invariants
//
//   - Every transition of an item is applied whole by one Lua script that
//     changes its status and the job's counters together, so total = done +
//     failed + active + pending holds in every snapshot, and a status read
//     (one HGETALL) is consistent. A worker's two per-item transitions,
//     Begin and Commit, are coalesced across its concurrent attempts of a
//     job (group commit): one script run may carry several items'
//     transitions, each applied whole, in order.
//   - Begin claims an item and counts its call in one step; a counted call
//     that never goes out (a wait, a failure before the call) is given back
//     by the step that ends the attempt (ReleaseUnsent, FailUnsent), so the
//     item's budget and the job's provider_calls count provider calls only.
//   - A result is committed at most once per item: a second commit of a done
//     item changes nothing but the job's duplicates counter.
//   - An attempt holds an item through a claim token. A worker whose task was
//     re-dispatched elsewhere (lease expiry, shutdown requeue) cannot move the
//     item back to pending or fail it under the new holder; its success is
//     still kept, since a result is a result.
//   - An agent item's steps are appended one at a time, numbered, under the
//     claim (AppendStep): step N is written once, only by the attempt that
//     holds the item, and only after step N-1. A model step adds its usage
//     to the job's spend and starts the next step's call count from 0
//     (--max-attempts bounds the failed calls of one step). A replay or an
//     edit removes the item's steps, so its run starts over.
//   - An item parked for a person (awaiting_input) holds no claim: Park
//     drops it in the script that stores the requests. Decisions are
//     written by compare and set (Decide), only while the item is parked;
//     the one that answers its last request puts it back to pending, in the
//     same script. total = done + failed + active + awaiting_input +
//     pending holds in every snapshot.
//   - Whether an item is done is the checkpoint's answer, never asynq's.
//   - The attempt budget (provider calls per item) is counted here, so asynq's
//     retry counter, which also counts crashes and waits, is never trusted.
//   - When done + failed reaches total the job is finished: finished_at is set
//     and every key of the job expires after the job's retention. Recording
//     new items reopens it.
package checkpoint
