package worker

import (
	"context"
	"errors"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"time"

	"github.com/hibiken/asynq"
)

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

// jitter spreads delayed tasks so they do not all come back at once.
func jitter(d time.Duration) time.Duration {
	extra := min(d/5, 10*time.Second)
	if extra < 500*time.Millisecond {
		extra = 500 * time.Millisecond
	}
	return d + time.Duration(mrand.Int64N(int64(extra)))
}

// retriesLeft is how many more retries asynq allows this task. asynq
// archives a task that returns an error past its MaxRetry whatever
// IsFailure says; outside a task run (tests) it is unbounded.
func retriesLeft(ctx context.Context) int {
	n, ok1 := asynq.GetRetryCount(ctx)
	max, ok2 := asynq.GetMaxRetry(ctx)
	if !ok1 || !ok2 {
		return math.MaxInt
	}
	return max - n
}
