package worker

// The per-item path, top to bottom. One task run is one attempt of one item:
//
//  1. ProcessTask reads the payload (ids only) and begins: the item is
//     claimed and, without RPM/TPM limits, its call counted in one
//     checkpoint script (checkpoint.Store.Begin). An item already done or
//     failed (a re-dispatch, a rerun) ends here.
//  2. run checks what ends the attempt before any call: the job cancelled
//     or past its deadline, the item's budget of calls spent, a damaged
//     stored item, the job's budget reached.
//  3. preflight (window.go) fits the prompt into the model's window.
//  4. admit (guard.go) passes the fleet's rate limiter and circuit breaker;
//     both answer from the worker's own view when they can.
//  5. call makes the provider call under the attempt's timeout and the
//     job's deadline.
//  6. decide (decide.go) says what follows, with no side effects.
//  7. run carries it out: commit, shrink and call again, retry, fail,
//     expire or release.
//
// Every step that ends the attempt is one checkpoint script. A call counted
// that does not go out (a wait, a failure before the call, a worker
// stopping) is given back in the same script that ends the attempt
// (ReleaseUnsent, FailUnsent), so the item's budget counts provider calls
// only. With limits set, the call is counted once the limiter has let it go
// (StartCall), as it always is for a second call after a shrink.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/llmfleet/llmfleet/agent"
	"github.com/llmfleet/llmfleet/checkpoint"
	"github.com/llmfleet/llmfleet/models"
	"github.com/llmfleet/llmfleet/provider"
	"github.com/llmfleet/llmfleet/tasks"
)

// ProcessTask runs one attempt of an item.
func (h *Handler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	p, err := tasks.ParseItemPayload(t.Payload())
	if err != nil {
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	a := &attempt{h: h, job: p.Job, id: p.Item, token: newToken()}
	c, err := a.begin(ctx, false)
	if err != nil {
		return err
	}
	switch c.Verdict {
	case checkpoint.VerdictClaimed:
	case checkpoint.VerdictFailed:
		return h.failedItemRun(ctx, a)
	case checkpoint.VerdictDone:
		// Already finished (a re-dispatch, a rerun): nothing to do.
		h.metrics.skipped.Inc()
		return nil
	default:
		h.log.Debug("dropping task of unknown job or item", "job", a.job, "item", a.id, "verdict", c.Verdict)
		return nil
	}
	a.claimed = c
	return a.run(ctx)
}

// failedItemRun handles a task whose item already failed. If asynq ran it
// from its archive (asynqmon's Run button, the Inspector's RunTask), it is a
// replay: a fresh attempt budget, as `producer replay` gives. Otherwise it
// is a re-dispatch of a task whose failure was recorded but whose move to
// the archive never happened (a worker killed in between): it goes back to
// the archive without a call.
func (h *Handler) failedItemRun(ctx context.Context, a *attempt) error {
	v, err := h.store.Item(ctx, a.job, a.id)
	if err != nil {
		return err
	}
	if v.Failure == nil || !v.Failure.Archived {
		// Ended by a sweep (cancelled, expired): its record is final.
		h.metrics.skipped.Inc()
		return nil
	}
	if !h.ranFromArchive(ctx) {
		return fmt.Errorf("%s: %s: %w", v.Failure.Class, v.Failure.Reason, asynq.SkipRetry)
	}
	c, err := a.begin(ctx, true)
	if err != nil {
		return err
	}
	if c.Verdict != checkpoint.VerdictClaimed {
		return nil
	}
	h.log.Info("item replayed from the archive with a fresh attempt budget", "job", a.job, "item", a.id)
	a.claimed = c
	return a.run(ctx)
}

// ranFromArchive reports whether the running task came out of asynq's
// archive: its last error is still the SkipRetry that archived it. A task
// re-dispatched after a lost lease carries asynq's lease error instead.
func (h *Handler) ranFromArchive(ctx context.Context) bool {
	if h.inspector == nil {
		return false
	}
	id, _ := asynq.GetTaskID(ctx)
	queue, _ := asynq.GetQueueName(ctx)
	info, err := h.inspector.GetTaskInfo(queue, id)
	if err != nil {
		return false
	}
	return strings.HasSuffix(info.LastErr, asynq.SkipRetry.Error())
}

// attempt is one task run of one item, holding the item's claim.
type attempt struct {
	h       *Handler
	job, id string
	token   string
	claimed checkpoint.Claimed
	models  models.Table // see modelTable
	// unsent says a call is counted in the item's budget but has not gone
	// out: an attempt that ends now gives it back.
	unsent bool
	// prior is the provider calls an agent item's committed steps made,
	// added to the attempts its failure records.
	prior int
}

// begin claims the item. Without RPM/TPM limits it also counts the call
// (checkpoint's Begin: one script), since nothing but local checks stands
// between the claim and the call; with limits, the call is counted only
// once the limiter lets it go (StartCall), so that a worker dying in a
// limiter wait spends no attempt.
func (a *attempt) begin(ctx context.Context, replay bool) (checkpoint.Claimed, error) {
	var c checkpoint.Claimed
	var err error
	switch {
	case !a.h.guard.limited():
		c, err = a.h.store.Begin(ctx, a.job, a.id, a.token, replay)
	case replay:
		c, err = a.h.store.ClaimReplay(ctx, a.job, a.id, a.token)
	default:
		c, err = a.h.store.Claim(ctx, a.job, a.id, a.token)
	}
	a.unsent = c.Call > 0
	return c, err
}

func (a *attempt) log() *slog.Logger { return a.h.log.With("job", a.job, "item", a.id) }

func (a *attempt) run(ctx context.Context) error {
	h := a.h
	c := a.claimed
	pol := c.Policy

	// 2. What ends the attempt before any call.
	if ended, err := a.endedBeforeCall(ctx); ended {
		return err
	}
	var it tasks.Item
	if err := json.Unmarshal(c.Input, &it); err != nil {
		return a.fail(ctx, a.newFailure(provider.BadRequest, "stored item is not valid: "+err.Error(), c.Calls, 0), true)
	}
	if reason := pol.OverBudget(c.Spend); reason != "" && !pol.Agent() {
		// Agent items check before each model call (runAgent).
		return a.pauseForBudget(ctx, reason)
	}
	if c.State == checkpoint.StatePaused {
		// The budget was raised: the job runs again.
		if resumed, err := h.store.Resume(ctx, a.job); err == nil && resumed {
			a.log().Info("job resumed: its budget allows more calls")
		}
	}
	model := it.Model
	if model == "" {
		model = pol.Model
	}

	if it.IsEmbedding() {
		if it.Model == "" {
			model = pol.EmbeddingModelOrDefault()
		}
		return a.runEmbedding(ctx, &it, model)
	}
	if pol.Agent() {
		return a.runAgent(ctx, &it, model)
	}
	ans, err := a.callModel(ctx, &it, model, nil)
	if ans == nil {
		return err
	}
	return a.commit(context.WithoutCancel(ctx), &it, ans.comp, ans.calls, &ans.fit, model)
}

// answered is a model call that succeeded.
type answered struct {
	comp  *provider.Completion
	fit   fitted
	calls int // the step's provider calls, this one included
}

// callModel makes the item's model call, steps 3 to 7 but the commit:
// the window, the guards, the call, and what follows a failure. It returns
// the answer, or nil and what ProcessTask returns when the attempt ended
// without one (recorded already: a retry, a failure, a wait, a release).
func (a *attempt) callModel(ctx context.Context, it *tasks.Item, model string, tools []agent.Tool) (*answered, error) {
	h := a.h
	c := a.claimed
	pol := c.Policy

	// 3. The context window.
	fit, err := a.preflight(it, model)
	if err != nil {
		return nil, a.fail(ctx, a.newFailure(provider.ContextOverflow, err.Error(), c.Calls, 0), true)
	}
	send := *it
	send.Messages = fit.messages

	calls := c.Call // counted by Begin, or by StartCall below
	for {
		// 4. The fleet's limiter and breaker.
		pass, wait, err := h.guard.admit(ctx, a, &send, fit.tokens, model, pol.Timeout)
		if err != nil {
			return nil, a.release(ctx, err, nil, time.Second)
		}
		if wait > 0 {
			return nil, a.release(ctx, errWaiting, nil, wait)
		}
		if !a.unsent {
			// With limits, the call is counted once the limiter let it go.
			n, ok, err := a.startCall(ctx)
			if !ok {
				h.guard.abandon(context.WithoutCancel(ctx), a, pass)
				return nil, err
			}
			calls = n
		}
		if ctx.Err() != nil {
			// Stopping before the call went out: it is given back.
			h.guard.abandon(context.WithoutCancel(ctx), a, pass)
			return nil, a.release(ctx, ctx.Err(), nil, time.Second)
		}

		// 5. The call.
		comp, pe := a.call(ctx, &send, pol, tools)
		a.unsent = false
		stopping := ctx.Err() != nil
		bg := context.WithoutCancel(ctx) // what was paid for is recorded even when stopping
		if stopping && pe != nil {
			h.guard.abandon(bg, a, pass)
		} else {
			h.guard.settle(bg, a, pass, comp, pe)
		}

		// 6. What follows.
		n := decide(called{
			err: pe, stopping: stopping, calls: calls, maxCalls: pol.MaxAttempts,
			retriesLeft: retriesLeft(ctx), onOverflow: pol.OnOverflow, shrunk: fit.recovered,
			backoff: func(calls int, retryAfter time.Duration) time.Duration {
				return Backoff(pol.BackoffMin, pol.BackoffMax, calls, retryAfter)
			},
		})
		if pe != nil && !stopping {
			h.metrics.calls.WithLabelValues(string(pe.Class)).Inc()
			if comp != nil && comp.TokensIn+comp.TokensOut > 0 {
				// Answered but not kept (invalid output, filtered): it was paid.
				if err := h.store.AddUsage(bg, a.job, comp.Model, comp.TokensIn, comp.TokensOut, a.cost(comp, model)); err != nil {
					a.log().Warn("count the usage of a discarded answer", "err", err)
				}
			}
		}

		// 7. Carry it out.
		switch n.action {
		case actCommit:
			h.metrics.calls.WithLabelValues("ok").Inc()
			return &answered{comp: comp, fit: fit, calls: calls}, nil
		case actRelease:
			// The worker is shutting down (or asynq gave up on the task):
			// asynq requeues the task; the item goes back without a verdict.
			return nil, a.release(ctx, ctx.Err(), nil, time.Second)
		case actExpire:
			return nil, a.expire(ctx)
		case actFail:
			return nil, a.fail(ctx, a.failureOf(pe, n.reason, calls), true)
		case actRetry:
			return nil, a.retry(bg, pe, n, calls)
		case actReask:
			send.Messages = append(slices.Clip(send.Messages),
				tasks.Message{Role: "assistant", Content: comp.Content},
				tasks.Message{Role: "user", Content: reask(pe)})
			a.log().Debug("answer is not the JSON asked for: asking again", "attempt", calls, "reason", pe.Message)
			h.metrics.retries.WithLabelValues(string(pe.Class)).Inc()
			// The next turn of the loop counts the call (StartCall).
		case actShrink:
			if err := a.shrink(it, &send, model, &fit, pe); err != nil {
				return nil, a.fail(ctx, a.failureOf(pe, err.Error(), calls), true)
			}
			a.log().Info("context overflow reported by the provider: prompt shrunk, calling again", "tokens_dropped", fit.dropped)
			// The next turn of the loop counts the call (StartCall).
		}
	}
}

// startCall counts the attempt's next call against the item's budget
// (StartCall). When it cannot (the job ended, the budget is spent, the
// claim is lost, Redis failed), ok is false and err is what ProcessTask
// returns, the item's end already recorded.
func (a *attempt) startCall(ctx context.Context) (n int, ok bool, err error) {
	n, err = a.h.store.StartCall(ctx, a.job, a.id, a.token, a.claimed.Policy.MaxAttempts)
	switch {
	case errors.Is(err, checkpoint.ErrJobEnded):
		return 0, false, a.jobEnded(ctx)
	case errors.Is(err, checkpoint.ErrBudgetSpent):
		return 0, false, a.spent(ctx)
	case errors.Is(err, checkpoint.ErrClaimLost):
		return 0, false, nil
	case err != nil:
		return 0, false, a.release(ctx, err, nil, time.Second)
	}
	a.unsent = true
	return n, true, nil
}

// retry records a failed call as the item's last failure, releases it and
// asks asynq for a retry after n.delay.
func (a *attempt) retry(ctx context.Context, pe *provider.Error, n next, calls int) error {
	last := a.failureOf(pe, n.reason, calls)
	err := a.durably(ctx, func(ctx context.Context) error { return a.h.store.Release(ctx, a.job, a.id, a.token, last) })
	if err != nil && !errors.Is(err, checkpoint.ErrClaimLost) {
		return err
	}
	a.log().Debug("attempt failed, will retry", "class", pe.Class, "attempt", calls, "delay", n.delay)
	a.h.metrics.retries.WithLabelValues(string(pe.Class)).Inc()
	return &RetryError{Err: pe, Delay: n.delay}
}

// reask is the user message that asks again for an answer that is not the
// JSON asked for, the way instructor does: what is wrong, then the ask.
func reask(pe *provider.Error) string {
	return tasks.ReaskPrefix + pe.Message + ". Answer again with only the JSON asked for, correcting these errors."
}

// call makes the provider call under the attempt's timeout and the job's
// deadline. Every failure is classified.
func (a *attempt) call(ctx context.Context, send *tasks.Item, pol checkpoint.Policy, tools []agent.Tool) (*provider.Completion, *provider.Error) {
	callCtx, cancel := attemptContext(ctx, pol)
	defer cancel()
	start := a.h.now()
	comp, err := a.h.client.Complete(callCtx, send, pol.Model, tools...)
	secs := a.h.now().Sub(start).Seconds()
	a.h.metrics.callSeconds.Observe(secs)
	var pe *provider.Error
	if err != nil {
		pe = provider.Classify(callCtx, err, nil)
	}
	model, outcome := pol.Model, "ok"
	if send.Model != "" {
		model = send.Model
	}
	if pe != nil {
		outcome = string(pe.Class)
	}
	if comp != nil {
		a.h.metrics.called("chat", model, outcome, secs, comp.TokensIn, comp.TokensOut, a.cost(comp, model))
	} else {
		a.h.metrics.called("chat", model, outcome, secs, 0, 0, 0)
	}
	return comp, pe
}

// attemptContext bounds one call by the per-attempt timeout and the job
// deadline, each with its own cause so Classify can tell them apart.
func attemptContext(ctx context.Context, pol checkpoint.Policy) (context.Context, context.CancelFunc) {
	var cancels []context.CancelFunc
	if !pol.Deadline.IsZero() {
		var c context.CancelFunc
		ctx, c = context.WithDeadlineCause(ctx, pol.Deadline, provider.ErrJobDeadline)
		cancels = append(cancels, c)
	}
	timeout := pol.Timeout
	if timeout <= 0 {
		timeout = time.Minute
	}
	ctx, c := context.WithTimeoutCause(ctx, timeout, provider.ErrAttemptTimeout)
	cancels = append(cancels, c)
	return ctx, func() {
		for _, c := range cancels {
			c()
		}
	}
}

// endedBeforeCall ends the attempt before any call when the job was cancelled or is
// past its deadline, or the item's budget is spent: as Begin found it
// (Claimed.Refused), or, when the call is not counted yet (with limits),
// as the claim shows it.
func (a *attempt) endedBeforeCall(ctx context.Context) (bool, error) {
	c := a.claimed
	switch {
	case c.Refused == checkpoint.RefusedEnded:
		return true, a.jobEnded(ctx)
	case c.Refused == checkpoint.RefusedSpent:
		return true, a.spent(ctx)
	case a.unsent:
		return false, nil
	case c.State == checkpoint.StateCancelled || c.State == checkpoint.StateExpired ||
		(!c.Policy.Deadline.IsZero() && !a.h.now().Before(c.Policy.Deadline)):
		return true, a.jobEnded(ctx)
	case c.Calls >= c.Policy.MaxAttempts:
		// A worker died during the last allowed call, or the budget was
		// lowered: the budget is spent without a verdict from this attempt.
		return true, a.spent(ctx)
	}
	return false, nil
}

// jobEnded fails the item of a job that was cancelled or passed its
// deadline: cancelled when the job says so, else expired.
func (a *attempt) jobEnded(ctx context.Context) error {
	state := a.claimed.State
	if state != checkpoint.StateCancelled {
		// Cancelled since the claim, perhaps.
		if j, err := a.h.store.Job(ctx, a.job); err == nil {
			state = j.State
		}
	}
	if state == checkpoint.StateCancelled {
		return a.fail(ctx, a.newFailure(provider.Cancelled, "job cancelled", a.claimed.Calls, 0), false)
	}
	return a.expire(ctx)
}

// newFailure records a failure now, carrying over when the item first
// failed from its last retryable failure.
func (a *attempt) newFailure(class provider.Class, reason string, attempts, status int) *checkpoint.Failure {
	now := a.h.now()
	f := &checkpoint.Failure{Class: string(class), Reason: reason, Attempts: attempts + a.prior, Status: status, FirstFailed: now, LastFailed: now}
	if le := a.claimed.LastErr; le != nil && !le.FirstFailed.IsZero() {
		f.FirstFailed = le.FirstFailed
	}
	return f
}

// failureOf is the failure record of a classified call failure.
func (a *attempt) failureOf(pe *provider.Error, reason string, calls int) *checkpoint.Failure {
	return a.newFailure(pe.Class, reason, calls, pe.Status)
}

func (a *attempt) commit(ctx context.Context, it *tasks.Item, comp *provider.Completion, calls int, fit *fitted, model string) error {
	r := checkpoint.Result{
		ID: a.id, Output: comp.Content, Model: comp.Model, Attempts: calls,
		TokensIn: comp.TokensIn, TokensOut: comp.TokensOut, FinishedAt: a.h.now().UTC(), Metadata: it.Metadata,
		Truncated: fit.truncated, TokensDropped: fit.dropped,
		CostUSD: a.cost(comp, model), UsageEstimated: comp.UsageEstimated, FinishReason: comp.FinishReason,
	}
	if it.Batch {
		r.Body, r.RequestID = comp.Body, comp.RequestID
	}
	if it.WantsJSON() {
		var b bytes.Buffer
		if json.Compact(&b, []byte(comp.Content)) == nil {
			r.Parsed = b.Bytes()
		}
	}
	return a.record(ctx, func(ctx context.Context) (checkpoint.Committed, error) {
		return a.h.store.Commit(ctx, a.job, a.token, r)
	})
}

// record runs an item's commit durably and counts what it did.
func (a *attempt) record(ctx context.Context, commit func(context.Context) (checkpoint.Committed, error)) error {
	var out checkpoint.Committed
	err := a.durably(ctx, func(ctx context.Context) (err error) {
		out, err = commit(ctx)
		return err
	})
	if err != nil {
		return err
	}
	switch out {
	case checkpoint.CommitDuplicate:
		a.h.metrics.duplicates.Inc()
		a.log().Warn("item was already done: second result dropped")
	case checkpoint.Committed1:
		a.h.metrics.items.WithLabelValues("done").Inc()
		a.h.alerts.itemFinished(a.job, false)
	}
	return nil
}

// fail records the item's final failure. archive sends the task to asynq's
// archive (the dead-letter view in asynqmon) with the reason; job-level ends
// (cancelled, expired) complete the task instead, since the checkpoint
// already holds the record and a replay needs no archived task. A call
// counted but not sent is given back in the same step.
func (a *attempt) fail(ctx context.Context, f *checkpoint.Failure, archive bool) error {
	// The record says whether the task goes to the archive: running it from
	// there later (asynqmon's Run) is then a replay.
	f.Archived = archive
	store := a.h.store.Fail
	if a.unsent {
		store = a.h.store.FailUnsent
	}
	var ok bool
	err := a.durably(context.WithoutCancel(ctx), func(ctx context.Context) (err error) {
		ok, err = store(ctx, a.job, a.id, a.token, *f)
		return err
	})
	switch {
	case errors.Is(err, checkpoint.ErrClaimLost):
		return nil
	case err != nil:
		return err
	}
	a.unsent = false
	if ok {
		a.h.metrics.items.WithLabelValues("failed").Inc()
		if f.Class != string(provider.Cancelled) && f.Class != string(provider.Expired) {
			// A job that was cancelled or ran out of time is not an
			// error rate: job_finished and job_expired say so.
			a.h.alerts.itemFinished(a.job, true)
		}
		a.log().Info("item failed", "class", f.Class, "attempts", f.Attempts, "reason", f.Reason)
	}
	if !archive {
		return nil
	}
	return fmt.Errorf("%s: %s: %w", f.Class, f.Reason, asynq.SkipRetry)
}

// spent fails an item whose attempt budget is used up, with the class of its
// last failure.
func (a *attempt) spent(ctx context.Context) error {
	class, reason, status := provider.Timeout, "attempt budget spent; the last attempt ended without an answer (worker lost)", 0
	if le := a.claimed.LastErr; le != nil {
		class, reason, status = provider.Class(le.Class), le.Reason, le.Status
	}
	calls := a.claimed.Calls
	return a.fail(ctx, a.newFailure(class, fmt.Sprintf("%s (after %d attempts)", reason, calls), calls, status), true)
}

// expire fails this item and, once per process and job, every pending item
// of the job: a deadline never turns into a retry loop.
func (a *attempt) expire(ctx context.Context) error {
	if err := a.fail(ctx, a.newFailure(provider.Expired, "job deadline passed", a.claimed.Calls, 0), false); err != nil {
		return err
	}
	h := a.h
	h.mu.Lock()
	done := h.expired[a.job]
	h.expired[a.job] = true
	h.mu.Unlock()
	if done {
		return nil
	}
	n, err := h.store.Expire(context.WithoutCancel(ctx), a.job)
	if err != nil {
		return err
	}
	a.log().Info("job deadline passed: pending items failed as expired", "items", n+1)
	return nil
}

// errWaiting is the cause of a retry that waits for the breaker or the
// rate limiter.
var errWaiting = errors.New("waiting for the fleet's breaker or rate limiter")

// release hands the item back to pending (recording last, the call's
// failure, when not nil) and asks asynq for a retry that spends nothing,
// after wait. A call counted but not sent (a wait for the limiter, the
// breaker or a budget; a worker stopping) is given back in the same step.
func (a *attempt) release(ctx context.Context, cause error, last *checkpoint.Failure, wait time.Duration) error {
	bg := context.WithoutCancel(ctx)
	if retriesLeft(ctx) <= 0 {
		// asynq would archive the task whatever we return, leaving the item
		// pending with no task: record that instead.
		f := a.newFailure(provider.Timeout, fmt.Sprintf("%v; asynq's retry headroom for this task is used up: replay the item", cause), a.claimed.Calls, 0)
		return a.fail(bg, f, true)
	}
	err := a.durably(bg, func(ctx context.Context) error {
		if a.unsent {
			return a.h.store.ReleaseUnsent(ctx, a.job, a.id, a.token)
		}
		return a.h.store.Release(ctx, a.job, a.id, a.token, last)
	})
	if err != nil && !errors.Is(err, checkpoint.ErrClaimLost) {
		return err
	}
	a.unsent = false
	return &RetryError{Err: cause, Delay: wait, Wait: true}
}

// storeRetryFor bounds how long a step that ends an attempt retries while
// Redis cannot be reached.
const storeRetryFor = 30 * time.Second

// durably runs a step that ends the attempt (commit, fail, release),
// retrying while Redis cannot be reached (a restart, a failover): an answer
// that was paid for is kept, and asynq, which renews the task's lease while
// the handler runs, completes the task once Redis is back. Returning at once
// would leave the item active until asynq recovers the task a minute or two
// later, and call the provider again for it.
func (a *attempt) durably(ctx context.Context, step func(context.Context) error) error {
	deadline := a.h.now().Add(storeRetryFor)
	wait := 100 * time.Millisecond
	for {
		err := step(ctx)
		if err == nil || !unreachable(err) || !a.h.now().Before(deadline) {
			return err
		}
		a.log().Warn("Redis unreachable: retrying the attempt's last step", "in", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// unreachable reports an error that says Redis could not be reached or is
// not ready yet, as opposed to an answer.
func unreachable(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, redis.ErrPoolTimeout) ||
		// A restart (LOADING) or a failover (READONLY, MASTERDOWN,
		// TRYAGAIN, CLUSTERDOWN) in progress.
		redis.IsLoadingError(err) || redis.IsReadOnlyError(err) || redis.IsMasterDownError(err) ||
		redis.IsTryAgainError(err) || redis.IsClusterDownError(err)
}

// noteEndpoint records, once per process and job, which breaker guards the
// job's calls, so status can show its state.
func (a *attempt) noteEndpoint(ctx context.Context, p pass) {
	if p.breaker == nil {
		return
	}
	h := a.h
	key := a.job + "\x00" + p.breaker.Endpoint()
	h.mu.Lock()
	done := h.noted[key]
	h.noted[key] = true
	h.mu.Unlock()
	if done {
		return
	}
	if err := h.store.NoteEndpoint(ctx, a.job, p.breaker.Endpoint()); err != nil {
		a.log().Warn("note breaker endpoint", "err", err)
	}
}

func newToken() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
