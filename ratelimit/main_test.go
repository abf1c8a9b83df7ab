package ratelimit_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/llmfleet/llmfleet/internal/testredis"
	"github.com/llmfleet/llmfleet/ratelimit"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	testURL    = "http://127.0.0.1:8089/v1"
	testAPIKey = "sk-test-SECRET-0123456789"
)

// The limiter keeps time with the Redis server's clock, so these tests use
// short real windows instead of a fake clock.

type testBundle struct {
	ctx context.Context
	srv *testredis.Server
	rdb *redis.Client
	key string
}

// setup starts a fresh redis-server, so every (parallel) test is isolated.
func setup(t *testing.T) *testBundle {
	t.Helper()
	srv := testredis.Start(t)
	return &testBundle{ctx: t.Context(), srv: srv, rdb: srv.Client(t), key: ratelimit.ProviderKey(testURL, testAPIKey)}
}

// worker returns a limiter of the bundle's provider key on its own Redis
// client, as another worker process would have.
func (b *testBundle) worker(t *testing.T, lim ratelimit.Limits) *ratelimit.Limiter {
	t.Helper()
	return ratelimit.New(b.srv.Client(t), b.key, lim)
}

func (b *testBundle) reserve(t *testing.T, l *ratelimit.Limiter, tokens int) (ratelimit.Reservation, time.Duration) {
	t.Helper()
	r, wait, err := l.Reserve(b.ctx, tokens)
	if err != nil {
		t.Fatalf("Reserve(%d): %v", tokens, err)
	}
	if wait < 0 {
		t.Fatalf("Reserve(%d) wait = %s, want >= 0", tokens, wait)
	}
	return r, wait
}

// mustAllow reserves and fails the test unless the call may start now.
func (b *testBundle) mustAllow(t *testing.T, l *ratelimit.Limiter, tokens int) ratelimit.Reservation {
	t.Helper()
	r, wait := b.reserve(t, l, tokens)
	if wait != 0 {
		t.Fatalf("Reserve(%d) wait = %s, want allowed now", tokens, wait)
	}
	return r
}

// mustWait reserves and fails the test unless the wait is within [lo, hi].
func (b *testBundle) mustWait(t *testing.T, l *ratelimit.Limiter, tokens int, lo, hi time.Duration) time.Duration {
	t.Helper()
	r, wait := b.reserve(t, l, tokens)
	if wait < lo || wait > hi {
		t.Fatalf("Reserve(%d) wait = %s, want between %s and %s", tokens, wait, lo, hi)
	}
	if r != (ratelimit.Reservation{}) {
		t.Fatalf("Reserve(%d) denied but reserved %+v, want nothing", tokens, r)
	}
	return wait
}
