package worker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"

	"github.com/llmfleet/llmfleet/checkpoint"
	"github.com/llmfleet/llmfleet/models"
	"github.com/llmfleet/llmfleet/provider"
	"github.com/llmfleet/llmfleet/tasks"
)

// Completer makes one provider call for an item. *provider.Client is the
// implementation; every failure it returns is a *provider.Error.
type Completer interface {
	Complete(ctx context.Context, it *tasks.Item, model string) (*provider.Completion, error)
}

// Handler processes llm:item tasks: one attempt per run.
type Handler struct {
	store   *checkpoint.Store
	client  Completer
	log     *slog.Logger
	metrics *Metrics
	now     func() time.Time
	guard   *guard
	// inspector tells a task run from asynq's archive from a re-dispatch.
	inspector *asynq.Inspector

	mu      sync.Mutex
	expired map[string]bool // jobs this process already swept as expired
	noted   map[string]bool // jobs whose breaker endpoint this process noted
}

// NewHandler returns a Handler. g, when not nil, is the fleet-wide breaker
// and rate limiter the calls go through.
func NewHandler(store *checkpoint.Store, client Completer, log *slog.Logger, m *Metrics, g *guard) *Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if m == nil {
		m = NewMetrics(nil)
	}
	if g == nil {
		g = &guard{}
	}
	return &Handler{store: store, client: client, log: log, metrics: m, now: time.Now, guard: g,
		expired: map[string]bool{}, noted: map[string]bool{}}
}

// RetryError asks asynq to run the task again after Delay. Wait marks a
// retry that is not a failure (waiting for a breaker or the limiter, or a
// worker shutting down): it spends no asynq retry.
type RetryError struct {
	Err   error
	Delay time.Duration
	Wait  bool
}

func (e *RetryError) Error() string {
	return fmt.Sprintf("%v (retry in %s)", e.Err, e.Delay)
}

func (e *RetryError) Unwrap() error { return e.Err }

// RetryDelay is the asynq RetryDelayFunc: the delay the handler chose, or
// an exponential fallback for errors that did not come from the handler
// (asynq's own timeout).
func RetryDelay(n int, err error, _ *asynq.Task) time.Duration {
	var re *RetryError
	if errors.As(err, &re) {
		return re.Delay
	}
	return Backoff(time.Second, time.Minute, n+1, 0)
}

// IsFailure is the asynq IsFailure func: waits, shutdown requeues and lease
// expiry do not spend the task's retry headroom.
func IsFailure(err error) bool {
	var re *RetryError
	if errors.As(err, &re) && re.Wait {
		return false
	}
	return !errors.Is(err, context.Canceled) && !errors.Is(err, asynq.ErrLeaseExpired)
}

// Backoff returns the delay before attempt n+1: random ("equal jitter")
// exponential between min and max, never below retryAfter, rounded up to
// whole seconds plus one. asynq stores retry times in whole seconds,
// truncated, so a 3 s delay could otherwise fire after 2 s.
func Backoff(min, max time.Duration, n int, retryAfter time.Duration) time.Duration {
	if min <= 0 {
		min = time.Second
	}
	if max < min {
		max = min
	}
	ceil := float64(min) * math.Pow(2, float64(max0(n-1)))
	if ceil > float64(max) {
		ceil = float64(max)
	}
	lo := math.Max(float64(min), ceil/2)
	d := time.Duration(lo + mrand.Float64()*(ceil-lo))
	if retryAfter > d {
		d = retryAfter
	}
	return d.Truncate(time.Second) + time.Second + ceilFraction(d)
}

func max0(n int) int {
	if n < 0 {
		return 0
	}
	return n
}

func ceilFraction(d time.Duration) time.Duration {
	if d%time.Second != 0 {
		return time.Second
	}
	return 0
}

// ProcessTask runs one attempt of an item.
func (h *Handler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	p, err := tasks.ParseItemPayload(t.Payload())
	if err != nil {
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	token := newToken()
	c, err := h.store.Claim(ctx, p.Job, p.Item, token)
	if err != nil {
		return err
	}
	switch c.Verdict {
	case "ok":
	case "failed":
		return h.failedItemRun(ctx, p, token)
	case "done":
		// Already finished (a re-dispatch, a rerun): nothing to do.
		h.metrics.skipped.Inc()
		return nil
	default:
		h.log.Debug("dropping task of unknown job or item", "job", p.Job, "item", p.Item, "verdict", c.Verdict)
		return nil
	}
	a := &attempt{h: h, job: p.Job, id: p.Item, token: token, claimed: c}
	return a.run(ctx)
}

// failedItemRun handles a task whose item already failed. If asynq ran it
// from its archive (asynqmon's Run button, the Inspector's RunTask), it is a
// replay: a fresh attempt budget, as `producer replay` gives. Otherwise it
// is a re-dispatch of a task whose failure was recorded but whose move to
// the archive never happened (a worker killed in between): it goes back to
// the archive without a call.
func (h *Handler) failedItemRun(ctx context.Context, p tasks.ItemPayload, token string) error {
	v, err := h.store.Item(ctx, p.Job, p.Item)
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
	c, err := h.store.ClaimReplay(ctx, p.Job, p.Item, token)
	if err != nil {
		return err
	}
	if c.Verdict != "ok" {
		return nil
	}
	h.log.Info("item replayed from the archive with a fresh attempt budget", "job", p.Job, "item", p.Item)
	a := &attempt{h: h, job: p.Job, id: p.Item, token: token, claimed: c}
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

type attempt struct {
	h       *Handler
	job, id string
	token   string
	claimed checkpoint.Claimed
	models  models.Table // see modelTable
}

func (a *attempt) log() *slog.Logger { return a.h.log.With("job", a.job, "item", a.id) }

func (a *attempt) run(ctx context.Context) error {
	h := a.h
	pol := a.claimed.Policy
	now := h.now()
	if a.claimed.State == checkpoint.StateCancelled {
		return a.fail(ctx, provider.Cancelled, "job cancelled", nil, false)
	}
	if !pol.Deadline.IsZero() && !now.Before(pol.Deadline) {
		return a.expire(ctx)
	}
	var it tasks.Item
	if err := json.Unmarshal(a.claimed.Input, &it); err != nil {
		return a.fail(ctx, provider.BadRequest, "stored item is not valid: "+err.Error(), nil, true)
	}
	if a.claimed.Calls >= pol.MaxAttempts {
		// A worker died during the last allowed call, or the budget was
		// lowered: the budget is spent without a verdict from this attempt.
		return a.spent(ctx)
	}
	model := it.Model
	if model == "" {
		model = pol.Model
	}
	if reason := pol.OverBudget(a.claimed.Spend); reason != "" {
		return a.pauseForBudget(ctx, reason)
	}
	if a.claimed.State == checkpoint.StatePaused {
		// The budget was raised: the job runs again.
		if resumed, err := h.store.Resume(ctx, a.job); err == nil && resumed {
			a.log().Info("job resumed: its budget allows more calls")
		}
	}
	fit, err := a.preflight(&it, model)
	if err != nil {
		return a.fail(ctx, provider.ContextOverflow, err.Error(), nil, true)
	}
	send := it
	send.Messages = fit.messages
	for {
		retry, err := a.call(ctx, &it, &send, model, &fit, now)
		if !retry {
			return err
		}
	}
}

// call makes one provider call for the item (sending send, a possibly
// truncated copy of it) and returns the task's outcome. retry asks the
// caller to call again at once: the provider reported a context overflow
// and the prompt was shrunk.
func (a *attempt) call(ctx context.Context, it, send *tasks.Item, model string, fit *fitted, now time.Time) (retry bool, err error) {
	h := a.h
	pol := a.claimed.Policy
	// The rate limiter, then the breaker right before the call: once the
	// breaker is open, only calls past this point may still start.
	pass, wait, err := h.guard.admit(ctx, a, send, fit.tokens, model, pol.Timeout)
	if err != nil {
		return false, a.release(ctx, err, nil)
	}
	if wait > 0 {
		return false, a.release(ctx, errWaiting, nil, wait)
	}
	calls, err := h.store.StartCall(ctx, a.job, a.id, a.token, pol.MaxAttempts)
	if err != nil {
		h.guard.abandon(context.WithoutCancel(ctx), a, pass)
	}
	switch {
	case errors.Is(err, checkpoint.ErrJobEnded):
		// Cancelled or past its deadline while this attempt waited.
		if j, jerr := h.store.Job(ctx, a.job); jerr == nil && j.State == checkpoint.StateCancelled {
			return false, a.fail(ctx, provider.Cancelled, "job cancelled", nil, false)
		}
		return false, a.expire(ctx)
	case errors.Is(err, checkpoint.ErrBudgetSpent):
		return false, a.spent(ctx)
	case errors.Is(err, checkpoint.ErrClaimLost):
		return false, nil
	case err != nil:
		return false, a.release(ctx, err, nil)
	}

	callCtx, cancel := attemptContext(ctx, pol, now)
	start := h.now()
	comp, err := h.client.Complete(callCtx, send, pol.Model)
	cancel()
	h.metrics.callSeconds.Observe(h.now().Sub(start).Seconds())
	if err == nil {
		// A paid answer is kept even if the worker is being stopped now.
		bg := context.WithoutCancel(ctx)
		h.guard.settle(bg, a, pass, comp, nil)
		h.metrics.calls.WithLabelValues("ok").Inc()
		return false, a.commit(bg, it, comp, calls, fit, model)
	}
	if ctx.Err() != nil {
		// The worker is shutting down (or asynq gave up on the task): asynq
		// requeues the task; hand the item back without a verdict.
		h.guard.abandon(context.WithoutCancel(ctx), a, pass)
		return false, a.release(context.WithoutCancel(ctx), ctx.Err(), nil)
	}
	pe := provider.Classify(callCtx, err, nil)
	h.guard.settle(context.WithoutCancel(ctx), a, pass, comp, pe)
	if comp != nil && comp.TokensIn+comp.TokensOut > 0 {
		// Answered but not kept (invalid output, filtered): it was paid.
		if err := h.store.AddUsage(context.WithoutCancel(ctx), a.job, comp.Model, comp.TokensIn, comp.TokensOut, a.cost(comp, model)); err != nil {
			a.log().Warn("count the usage of a discarded answer", "err", err)
		}
	}
	h.metrics.calls.WithLabelValues(string(pe.Class)).Inc()
	f := a.failure(pe, calls)
	switch {
	case pe.Class == provider.ContextOverflow:
		// Our count and the provider's differ: shrink once more with the
		// limit it reported, and call again at once (this costs the one
		// attempt already spent, never more).
		if pol.OnOverflow != OverflowFail && !fit.recovered {
			if err := a.shrink(it, send, model, fit, pe); err != nil {
				f.Reason = err.Error()
				return false, a.fail(ctx, pe.Class, f.Reason, f, true)
			}
			if calls < pol.MaxAttempts {
				a.log().Info("context overflow reported by the provider: prompt shrunk, calling again", "tokens_dropped", fit.dropped)
				return true, nil
			}
		}
		return false, a.fail(ctx, pe.Class, f.Reason, f, true)
	case pe.Class == provider.Expired:
		return false, a.expire(ctx)
	case !pe.Class.Retryable():
		return false, a.fail(ctx, pe.Class, f.Reason, f, true)
	case calls >= pol.MaxAttempts:
		f.Reason = fmt.Sprintf("%s (after %d attempts)", f.Reason, calls)
		return false, a.fail(ctx, pe.Class, f.Reason, f, true)
	}
	if a.retriesLeft(ctx) <= 0 {
		f.Reason = fmt.Sprintf("%s (asynq's retry headroom for this task is used up; replay the item)", f.Reason)
		return false, a.fail(ctx, pe.Class, f.Reason, f, true)
	}
	delay := Backoff(pol.BackoffMin, pol.BackoffMax, calls, pe.RetryAfter)
	if err := h.store.Release(ctx, a.job, a.id, a.token, f); err != nil && !errors.Is(err, checkpoint.ErrClaimLost) {
		return false, err
	}
	a.log().Debug("attempt failed, will retry", "class", pe.Class, "attempt", calls, "delay", delay)
	h.metrics.retries.WithLabelValues(string(pe.Class)).Inc()
	return false, &RetryError{Err: pe, Delay: delay}
}

// attemptContext bounds one call by the per-attempt timeout and the job
// deadline, each with its own cause so Classify can tell them apart.
func attemptContext(ctx context.Context, pol checkpoint.Policy, now time.Time) (context.Context, context.CancelFunc) {
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

// newFailure records a failure now, carrying over when the item first
// failed from its last retryable failure.
func (a *attempt) newFailure(class provider.Class, reason string, attempts, status int) *checkpoint.Failure {
	now := a.h.now()
	f := &checkpoint.Failure{Class: string(class), Reason: reason, Attempts: attempts, Status: status, FirstFailed: now, LastFailed: now}
	if le := a.claimed.LastErr; le != nil && !le.FirstFailed.IsZero() {
		f.FirstFailed = le.FirstFailed
	}
	return f
}

// failure turns a classified provider error into a failure record.
func (a *attempt) failure(pe *provider.Error, calls int) *checkpoint.Failure {
	reason := pe.Message
	if pe.Status != 0 {
		code := ""
		if pe.Code != "" {
			code = " " + pe.Code
		}
		reason = fmt.Sprintf("HTTP %d%s: %s", pe.Status, code, pe.Message)
	}
	return a.newFailure(pe.Class, reason, calls, pe.Status)
}

func (a *attempt) commit(ctx context.Context, it *tasks.Item, comp *provider.Completion, calls int, fit *fitted, model string) error {
	r := checkpoint.Result{
		ID: a.id, Output: comp.Content, Model: comp.Model, Attempts: calls,
		TokensIn: comp.TokensIn, TokensOut: comp.TokensOut, FinishedAt: a.h.now().UTC(), Metadata: it.Metadata,
		Truncated: fit.truncated, TokensDropped: fit.dropped,
		CostUSD: a.cost(comp, model),
	}
	// The call succeeded: record it even if the worker is told to stop now.
	out, err := a.h.store.Commit(context.WithoutCancel(ctx), a.job, a.token, r)
	if err != nil {
		return err
	}
	switch out {
	case checkpoint.CommitDuplicate:
		a.h.metrics.duplicates.Inc()
		a.log().Warn("item was already done: second result dropped")
	case checkpoint.Committed1:
		a.h.metrics.items.WithLabelValues("done").Inc()
	}
	return nil
}

// fail records the item's final failure. archive sends the task to asynq's
// archive (the dead-letter view in asynqmon) with the reason; job-level ends
// (cancelled, expired) complete the task instead, since the checkpoint
// already holds the record and a replay needs no archived task.
func (a *attempt) fail(ctx context.Context, class provider.Class, reason string, f *checkpoint.Failure, archive bool) error {
	if f == nil {
		f = a.newFailure(class, reason, a.claimed.Calls, 0)
	}
	// The record says whether the task goes to the archive: running it from
	// there later (asynqmon's Run) is then a replay.
	f.Archived = archive
	ok, err := a.h.store.Fail(context.WithoutCancel(ctx), a.job, a.id, a.token, *f)
	switch {
	case errors.Is(err, checkpoint.ErrClaimLost):
		return nil
	case err != nil:
		return err
	}
	if ok {
		a.h.metrics.items.WithLabelValues("failed").Inc()
		a.log().Info("item failed", "class", class, "attempts", f.Attempts, "reason", reason)
	}
	if !archive {
		return nil
	}
	return fmt.Errorf("%s: %s: %w", class, reason, asynq.SkipRetry)
}

// spent fails an item whose attempt budget is used up, with the class of its
// last failure.
func (a *attempt) spent(ctx context.Context) error {
	class, reason, status := provider.Timeout, "attempt budget spent; the last attempt ended without an answer (worker lost)", 0
	if le := a.claimed.LastErr; le != nil {
		class, reason, status = provider.Class(le.Class), le.Reason, le.Status
	}
	f := a.newFailure(class, fmt.Sprintf("%s (after %d attempts)", reason, a.claimed.Calls), a.claimed.Calls, status)
	return a.fail(ctx, class, f.Reason, f, true)
}

// expire fails this item and, once per process and job, every pending item
// of the job: a deadline never turns into a retry loop.
func (a *attempt) expire(ctx context.Context) error {
	err := a.fail(ctx, provider.Expired, "job deadline passed", nil, false)
	if err != nil {
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

// retriesLeft is how many more retries asynq allows this task. asynq
// archives a task that returns an error past its MaxRetry whatever
// IsFailure says; outside a task run (tests) it is unbounded.
func (a *attempt) retriesLeft(ctx context.Context) int {
	n, ok1 := asynq.GetRetryCount(ctx)
	max, ok2 := asynq.GetMaxRetry(ctx)
	if !ok1 || !ok2 {
		return math.MaxInt
	}
	return max - n
}

// errWaiting is the cause of a retry that waits for the breaker or the
// rate limiter.
var errWaiting = errors.New("waiting for the fleet's breaker or rate limiter")

// release hands the item back to pending and asks asynq for a retry that
// spends nothing, after wait (default 1s).
func (a *attempt) release(ctx context.Context, cause error, last *checkpoint.Failure, wait ...time.Duration) error {
	if a.retriesLeft(ctx) <= 0 {
		// asynq would archive the task whatever we return, leaving the item
		// pending with no task: record that instead.
		return a.fail(ctx, provider.Timeout, fmt.Sprintf("%v; asynq's retry headroom for this task is used up: replay the item", cause), nil, true)
	}
	if err := a.h.store.Release(ctx, a.job, a.id, a.token, last); err != nil && !errors.Is(err, checkpoint.ErrClaimLost) {
		return err
	}
	d := time.Second
	if len(wait) > 0 {
		d = wait[0]
	}
	return &RetryError{Err: cause, Delay: d, Wait: true}
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
