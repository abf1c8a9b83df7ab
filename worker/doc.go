// Package worker is the fleet's worker: an asynq server whose handler runs
// one attempt of one item per task run.
//
// # One attempt
//
// item.go holds the per-item path, in order: begin (claim the item and
// count its call, in one checkpoint script, skipping items already done or
// failed), the checks that end an attempt before any call (the job
// cancelled or past its deadline, the budget spent, the job's budget
// reached), the context window (window.go), the fleet's rate limiter and
// circuit breaker (guard.go), the call under the attempt's own contexts
// (the per-attempt timeout and the job deadline, each with its own cause),
// and decide (decide.go), a pure function that says what follows the call:
// commit the result, shrink the prompt and call again, fail the item for
// good, or release it to pending and ask asynq for a retry after a jittered
// exponential backoff that is never shorter than the provider's
// Retry-After. The attempt budget is counted in the checkpoint, never by
// asynq's retry counter.
//
// # Agent items
//
// An item of a job with tools is a model/tool loop (agent.go): the
// transcript of committed steps says where it stands, each model answer is
// committed before its tool calls run, and each tool result before the
// next model call, so an attempt that follows a crash or a retry resumes at
// the last committed step. Its model calls go through the same callModel
// as a single prompt's: window, guards, classification and retries are
// shared. Tool runs are the agent package's (HTTP tools with a stable
// Idempotency-Key, Go tools from Config.Tools). A call that waits for a
// person (approval "always", executor "human") parks the item: its
// requests are checkpointed and its task returns a wait, so it sits in
// asynq's retry set until an answer runs it, its --input-timeout or the
// job's deadline comes, or a daily recheck.
//
// # What an item costs
//
// On a healthy fleet an item costs asynq's own two scripts plus a share of
// two of ours: claims and results of concurrent attempts of a job share
// script runs (checkpoint's group commit, with a linger of up to
// Config.BatchLinger when they come fast). The breaker is read from the
// worker's view of it, refreshed at most every breaker.Settings.Refresh and
// by every outcome it sends, and successes are sent to it in batches; with
// no --rpm or --tpm set the limiter makes no round trip (its fleet-wide hold
// is read at most every ratelimit.HoldRefresh); and a prompt whose bytes
// cannot exceed the model's window is not tokenized.
//
// # Why asynq's own timeout, deadline and retry count are not used
//
// When asynq's Timeout or Deadline expires it fails the attempt without
// waiting for the handler, so the classified error would never reach
// RetryDelayFunc. asynq's retry count also counts crashed workers and is not
// reset by a replay. So the handler enforces time itself and owns the budget;
// tasks get a generous asynq MaxRetry and Timeout as a safety net only, and
// IsFailure is false for waits, shutdown requeues and lease expiry.
//
// # Dead letters
//
// A final failure is written to the checkpoint first (asynq's archive keeps
// at most 9,999 tasks per queue), then the task goes to asynq's archive via
// SkipRetry, with the class and reason as its last error so asynqmon shows
// them. Job-level ends (cancelled, expired) complete their tasks instead: the
// checkpoint holds their record.
package worker
