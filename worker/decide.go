package worker

import (
	"fmt"
	"time"

	"github.com/llmfleet/llmfleet/checkpoint"
	"github.com/llmfleet/llmfleet/provider"
)

// action is what an attempt does once its call has returned.
type action int

const (
	// actCommit records the answer.
	actCommit action = iota + 1
	// actShrink cuts the prompt with the limit the provider reported and
	// calls again at once, within this attempt.
	actShrink
	// actRetry records the failure as the item's last and asks asynq for a
	// retry after next.delay.
	actRetry
	// actFail ends the item with next.class and next.reason and sends its
	// task to asynq's archive.
	actFail
	// actExpire ends the item, and the job's pending items, as expired.
	actExpire
	// actRelease hands the item back without a verdict: the worker is
	// stopping, and asynq requeues the task.
	actRelease
	// actReask calls again at once, within this attempt, showing the model
	// its answer that is not the JSON asked for and what is wrong with it.
	actReask
)

func (a action) String() string {
	switch a {
	case actCommit:
		return "commit"
	case actShrink:
		return "shrink"
	case actRetry:
		return "retry"
	case actFail:
		return "fail"
	case actExpire:
		return "expire"
	case actRelease:
		return "release"
	case actReask:
		return "reask"
	}
	return fmt.Sprintf("action(%d)", int(a))
}

// called is what decide needs to know of a call that was made.
type called struct {
	// err is the classified failure; nil for an answer worth keeping.
	err *provider.Error
	// stopping says the worker's own context ended during the call.
	stopping bool
	// calls is the item's provider calls, this one included; maxCalls is
	// its budget.
	calls, maxCalls int
	// retriesLeft is asynq's retry headroom for the task.
	retriesLeft int
	// onOverflow is the job's --on-overflow; shrunk says the prompt was
	// already shrunk once after the provider reported an overflow.
	onOverflow checkpoint.Overflow
	shrunk     bool
	// backoff returns the delay before the next call (Backoff with the
	// job's bounds); tests pass a fixed one.
	backoff func(calls int, retryAfter time.Duration) time.Duration
}

// next is decide's answer.
type next struct {
	action action
	// class and reason are the failure's, for actRetry and actFail.
	class  provider.Class
	reason string
	// delay is how long asynq waits before the retry (actRetry).
	delay time.Duration
}

// decide says what follows a call. It is the whole retry policy of the
// per-item path and has no side effects: the attempt carries out its
// answer.
func decide(c called) next {
	pe := c.err
	switch {
	case pe == nil:
		return next{action: actCommit}
	case c.stopping:
		return next{action: actRelease}
	}
	reason := failureReason(pe)
	fail := func(reason string) next { return next{action: actFail, class: pe.Class, reason: reason} }
	switch {
	case pe.Class == provider.ContextOverflow:
		// Our count and the provider's differ: shrink once more with the
		// limit it reported and call again at once, which costs the one
		// call already spent and never more.
		if c.onOverflow != checkpoint.OverflowFail && !c.shrunk && c.calls < c.maxCalls {
			return next{action: actShrink, class: pe.Class, reason: reason}
		}
		return fail(reason)
	case pe.Class == provider.Expired:
		return next{action: actExpire}
	case !pe.Class.Retryable():
		return fail(reason)
	case c.calls >= c.maxCalls:
		return fail(fmt.Sprintf("%s (after %d attempts)", reason, c.calls))
	case pe.Reask:
		// The answer came but is not the JSON asked for: ask again now,
		// with the answer and its errors in the conversation.
		return next{action: actReask, class: pe.Class, reason: reason}
	case c.retriesLeft <= 0:
		return fail(reason + " (asynq's retry headroom for this task is used up; replay the item)")
	}
	return next{action: actRetry, class: pe.Class, reason: reason, delay: c.backoff(c.calls, pe.Wait())}
}

// failureReason is how a classified failure reads in failure records.
func failureReason(pe *provider.Error) string {
	if pe.Status == 0 {
		return pe.Message
	}
	code := ""
	if pe.Code != "" {
		code = " " + pe.Code
	}
	return fmt.Sprintf("HTTP %d%s: %s", pe.Status, code, pe.Message)
}
