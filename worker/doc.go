// Package worker is the fleet's worker: an asynq server whose handler runs
// one attempt of one item per task run.
//
// # One attempt
//
// The handler claims the item in the checkpoint (skipping items already done
// or failed), checks the job's cancellation and deadline, spends one unit of
// the item's attempt budget (counted in the checkpoint, never by asynq's
// retry counter), calls the provider under its own contexts (the per-attempt
// timeout and the job deadline, each with its own cause), classifies the
// outcome, and then either commits the result, fails the item for good, or
// releases it to pending and asks asynq for a retry after a jittered
// exponential backoff that is never shorter than the provider's Retry-After.
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
