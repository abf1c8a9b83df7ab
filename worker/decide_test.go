package worker

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/llmfleet/llmfleet/checkpoint"
	"github.com/llmfleet/llmfleet/provider"
)

// fixedBackoff is decide's backoff in the table: it shows which call count
// and Retry-After it was given.
func fixedBackoff(calls int, retryAfter time.Duration) time.Duration {
	return time.Duration(calls)*time.Second + retryAfter
}

func TestDecide(t *testing.T) {
	t.Parallel()
	perr := func(class provider.Class, status int, msg string) *provider.Error {
		return &provider.Error{Class: class, Status: status, Message: msg}
	}
	base := called{calls: 2, maxCalls: 5, retriesLeft: 100, backoff: fixedBackoff}
	with := func(f func(*called)) called {
		c := base
		f(&c)
		return c
	}
	tests := []struct {
		name   string
		in     called
		action action
		class  provider.Class
		reason string // substring
		delay  time.Duration
	}{
		{name: "answer is committed", in: base, action: actCommit},
		{name: "answer while stopping is still committed", in: with(func(c *called) { c.stopping = true }), action: actCommit},
		{name: "failure while stopping releases without verdict",
			in:     with(func(c *called) { c.err, c.stopping = perr(provider.ServerError, 500, "boom"), true }),
			action: actRelease},
		{name: "server error is retried with backoff",
			in:     with(func(c *called) { c.err = perr(provider.ServerError, 503, "busy") }),
			action: actRetry, class: provider.ServerError, reason: "HTTP 503: busy", delay: 2 * time.Second},
		{name: "rate limit waits for Retry-After",
			in: with(func(c *called) {
				c.err = perr(provider.RateLimited, 429, "slow down")
				c.err.RetryAfter = 7 * time.Second
			}),
			action: actRetry, class: provider.RateLimited, reason: "HTTP 429: slow down", delay: 9 * time.Second},
		{name: "code is part of the reason",
			in: with(func(c *called) {
				c.err = perr(provider.Overloaded, 529, "overloaded")
				c.err.Code = "overloaded_error"
			}),
			action: actRetry, class: provider.Overloaded, reason: "HTTP 529 overloaded_error: overloaded", delay: 2 * time.Second},
		{name: "timeout without status keeps its message",
			in:     with(func(c *called) { c.err = perr(provider.Timeout, 0, "attempt timed out after 1s") }),
			action: actRetry, class: provider.Timeout, reason: "attempt timed out after 1s", delay: 2 * time.Second},
		{name: "invalid output is re-asked",
			in:     with(func(c *called) { c.err = perr(provider.InvalidOutput, 200, "not JSON") }),
			action: actRetry, class: provider.InvalidOutput, reason: "not JSON"},
		{name: "an answer that is not the JSON asked for is re-asked at once",
			in: with(func(c *called) {
				c.err = perr(provider.InvalidOutput, 200, "does not match the JSON Schema: at /: missing property 'sentiment'")
				c.err.Reask = true
			}),
			action: actReask, class: provider.InvalidOutput, reason: "missing property"},
		{name: "re-asking stops when the budget is spent: the errors are the reason",
			in: with(func(c *called) {
				c.err = perr(provider.InvalidOutput, 200, "does not match the JSON Schema: at /: missing property 'sentiment'")
				c.err.Reask = true
				c.calls = 5
			}),
			action: actFail, class: provider.InvalidOutput, reason: "missing property 'sentiment'"},
		{name: "retryable failure on the last allowed call fails",
			in:     with(func(c *called) { c.err, c.calls = perr(provider.ServerError, 500, "boom"), 5 }),
			action: actFail, class: provider.ServerError, reason: "HTTP 500: boom (after 5 attempts)"},
		{name: "asynq headroom spent fails instead of a retry asynq would archive",
			in:     with(func(c *called) { c.err, c.retriesLeft = perr(provider.Connection, 0, "refused"), 0 }),
			action: actFail, class: provider.Connection, reason: "retry headroom"},
		{name: "bad request fails at once",
			in:     with(func(c *called) { c.err, c.calls = perr(provider.BadRequest, 400, "bad"), 1 }),
			action: actFail, class: provider.BadRequest, reason: "HTTP 400: bad"},
		{name: "auth fails at once",
			in:     with(func(c *called) { c.err = perr(provider.Auth, 401, "no key") }),
			action: actFail, class: provider.Auth},
		{name: "quota fails at once",
			in:     with(func(c *called) { c.err = perr(provider.Quota, 429, "insufficient_quota") }),
			action: actFail, class: provider.Quota},
		{name: "content filter fails at once",
			in:     with(func(c *called) { c.err = perr(provider.ContentFilter, 200, "filtered") }),
			action: actFail, class: provider.ContentFilter},
		{name: "job deadline expires the job",
			in:     with(func(c *called) { c.err = perr(provider.Expired, 0, "job deadline passed") }),
			action: actExpire},
		{name: "provider overflow shrinks once",
			in:     with(func(c *called) { c.err = perr(provider.ContextOverflow, 400, "maximum context length is 10 tokens") }),
			action: actShrink, class: provider.ContextOverflow},
		{name: "provider overflow after a shrink fails",
			in: with(func(c *called) {
				c.err, c.shrunk = perr(provider.ContextOverflow, 400, "too long"), true
			}),
			action: actFail, class: provider.ContextOverflow, reason: "HTTP 400: too long"},
		{name: "provider overflow with --on-overflow fail fails",
			in: with(func(c *called) {
				c.err, c.onOverflow = perr(provider.ContextOverflow, 400, "too long"), checkpoint.OverflowFail
			}),
			action: actFail, class: provider.ContextOverflow},
		{name: "provider overflow on the last call fails",
			in:     with(func(c *called) { c.err, c.calls = perr(provider.ContextOverflow, 400, "too long"), 5 }),
			action: actFail, class: provider.ContextOverflow},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			n := decide(tt.in)
			if n.action != tt.action {
				t.Fatalf("action = %s, want %s (%+v)", n.action, tt.action, n)
			}
			if tt.class != "" && n.class != tt.class {
				t.Errorf("class = %q, want %q", n.class, tt.class)
			}
			if !strings.Contains(n.reason, tt.reason) {
				t.Errorf("reason = %q, want it to contain %q", n.reason, tt.reason)
			}
			if tt.delay != 0 && n.delay != tt.delay {
				t.Errorf("delay = %s, want %s", n.delay, tt.delay)
			}
			if n.action != actRetry && n.delay != 0 {
				t.Errorf("delay = %s on %s, want none", n.delay, n.action)
			}
		})
	}
}

// Every class either retries or fails: decide never loses a failure.
func TestDecideCoversEveryClass(t *testing.T) {
	t.Parallel()
	for _, class := range []provider.Class{
		provider.RateLimited, provider.Quota, provider.Overloaded, provider.ServerError, provider.Timeout,
		provider.Connection, provider.UpstreamInvalid, provider.InvalidOutput, provider.ContextOverflow,
		provider.BadRequest, provider.Auth, provider.NotFound, provider.ContentFilter, provider.Expired, provider.Cancelled,
	} {
		n := decide(called{err: &provider.Error{Class: class}, calls: 1, maxCalls: 3, retriesLeft: 10, backoff: fixedBackoff})
		want := actFail
		switch {
		case class == provider.Expired:
			want = actExpire
		case class == provider.ContextOverflow:
			want = actShrink
		case class.Retryable():
			want = actRetry
		}
		if n.action != want {
			t.Errorf("%s: action %s, want %s", class, n.action, want)
		}
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	tests := []struct {
		min, max   time.Duration
		n          int
		retryAfter time.Duration
		lo, hi     time.Duration // inclusive bounds of the result
	}{
		{time.Second, time.Minute, 1, 0, 2 * time.Second, 2 * time.Second},                       // ceil 1s: 1s, rounded up + 1s
		{time.Second, time.Minute, 2, 0, 2 * time.Second, 3 * time.Second},                       // [1s, 2s]
		{time.Second, time.Minute, 4, 0, 5 * time.Second, 9 * time.Second},                       // [4s, 8s]
		{time.Second, time.Minute, 30, 0, 31 * time.Second, 61 * time.Second},                    // capped at max: [30s, 60s]
		{time.Second, time.Minute, 1, 10 * time.Second, 11 * time.Second, 11 * time.Second},      // Retry-After wins
		{time.Second, time.Minute, 1, 2500 * time.Millisecond, 4 * time.Second, 4 * time.Second}, // a fraction rounds up
		{0, 0, 3, 0, 2 * time.Second, 2 * time.Second},                                           // zero bounds mean 1s
		{5 * time.Second, time.Second, 3, 0, 6 * time.Second, 6 * time.Second},                   // max below min is min
	}
	for _, tt := range tests {
		for range 50 {
			d := Backoff(tt.min, tt.max, tt.n, tt.retryAfter)
			if d < tt.lo || d > tt.hi {
				t.Fatalf("Backoff(%s, %s, %d, %s) = %s, want within [%s, %s]", tt.min, tt.max, tt.n, tt.retryAfter, d, tt.lo, tt.hi)
			}
			if d%time.Second != 0 {
				t.Fatalf("Backoff(%s, %s, %d, %s) = %s, want whole seconds (asynq truncates)", tt.min, tt.max, tt.n, tt.retryAfter, d)
			}
		}
	}
}

func TestRetryDelay(t *testing.T) {
	t.Parallel()
	if d := RetryDelay(3, &RetryError{Err: errors.New("x"), Delay: 17 * time.Second}, nil); d != 17*time.Second {
		t.Errorf("RetryDelay of a RetryError = %s, want its own 17s", d)
	}
	wrapped := fmt.Errorf("outer: %w", &RetryError{Err: errors.New("x"), Delay: 4 * time.Second})
	if d := RetryDelay(0, wrapped, nil); d != 4*time.Second {
		t.Errorf("RetryDelay of a wrapped RetryError = %s, want 4s", d)
	}
	// asynq's own timeout: exponential fallback within 1s..1m.
	for n := range 10 {
		d := RetryDelay(n, context.DeadlineExceeded, nil)
		if d < 2*time.Second || d > 61*time.Second {
			t.Errorf("RetryDelay(%d, deadline exceeded) = %s, want within [2s, 61s]", n, d)
		}
	}
}

func TestIsFailure(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"classified retry", &RetryError{Err: errors.New("500"), Delay: time.Second}, true},
		{"wait for breaker or limiter", &RetryError{Err: errWaiting, Delay: time.Second, Wait: true}, false},
		{"wrapped wait", fmt.Errorf("x: %w", &RetryError{Err: errWaiting, Wait: true}), false},
		{"shutdown", context.Canceled, false},
		{"lease expired", asynq.ErrLeaseExpired, false},
		{"asynq timeout", context.DeadlineExceeded, true},
		{"other", errors.New("redis down"), true},
	}
	for _, tt := range tests {
		if got := IsFailure(tt.err); got != tt.want {
			t.Errorf("%s: IsFailure = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestRetriesLeftOutsideATaskIsUnbounded(t *testing.T) {
	t.Parallel()
	if n := retriesLeft(context.Background()); n != math.MaxInt {
		t.Errorf("retriesLeft outside a task = %d, want unbounded", n)
	}
}
