package breaker_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/llmfleet/llmfleet/breaker"
	"github.com/llmfleet/llmfleet/internal/testredis"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeClock is the breaker's injected clock: tests move it instead of
// sleeping.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	return c.now
}

// t0 has whole milliseconds, the precision the breaker keeps.
var t0 = time.Date(2030, 3, 4, 5, 6, 7, 8_000_000, time.UTC)

const (
	testURL   = "http://127.0.0.1:8089/v1"
	testModel = "gpt-4o-2024-08-06"
	lease     = 2 * time.Minute
)

type testBundle struct {
	ctx      context.Context
	rdb      *redis.Client
	clock    *fakeClock
	endpoint string
}

// setup starts a fresh redis-server, so every (parallel) test is isolated.
func setup(t *testing.T) *testBundle {
	t.Helper()
	srv := testredis.Start(t)
	return &testBundle{
		ctx:      t.Context(),
		rdb:      srv.Client(t),
		clock:    &fakeClock{now: t0},
		endpoint: breaker.Endpoint(testURL, testModel),
	}
}

// breaker returns a breaker of the bundle's endpoint on the fake clock; two
// calls return two instances sharing the state, like two workers.
func (b *testBundle) breaker(s breaker.Settings) *breaker.Breaker {
	return breaker.New(b.rdb, b.endpoint, s).WithClock(b.clock.Now)
}

func (b *testBundle) allow(t *testing.T, br *breaker.Breaker) breaker.Decision {
	t.Helper()
	d, err := br.Allow(b.ctx, lease)
	if err != nil {
		t.Fatalf("Allow: %v", err)
	}
	return d
}

func (b *testBundle) report(t *testing.T, br *breaker.Breaker, d breaker.Decision, o breaker.Outcome, item string) *breaker.Transition {
	t.Helper()
	tr, err := br.Report(b.ctx, d, o, item)
	if err != nil {
		t.Fatalf("Report(%s, %s): %v", o, item, err)
	}
	return tr
}

// reportMany reports o for each item as a call allowed while closed, and
// fails the test if any of them makes a transition.
func (b *testBundle) reportMany(t *testing.T, br *breaker.Breaker, o breaker.Outcome, items ...string) {
	t.Helper()
	for _, it := range items {
		if tr := b.report(t, br, breaker.Decision{Allowed: true}, o, it); tr != nil {
			t.Fatalf("Report(%s, %s) made transition %+v, want none", o, it, *tr)
		}
	}
}

func (b *testBundle) read(t *testing.T) breaker.Snapshot {
	t.Helper()
	s, err := breaker.Read(b.ctx, b.rdb, b.endpoint)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	return s
}

func (b *testBundle) requireState(t *testing.T, want string) breaker.Snapshot {
	t.Helper()
	s := b.read(t)
	if got := s.StateName(); got != want {
		t.Fatalf("state = %q, want %q (transitions %+v)", got, want, s.Transitions)
	}
	return s
}

// trip opens the breaker with ConsecutiveItems failures of distinct items
// and returns the transition.
func (b *testBundle) trip(t *testing.T, br *breaker.Breaker, consecutive int) *breaker.Transition {
	t.Helper()
	b.reportMany(t, br, breaker.Failure, items("trip", consecutive-1)...)
	tr := b.report(t, br, breaker.Decision{Allowed: true}, breaker.Failure, fmt.Sprintf("trip-last-%d", b.clock.Now().UnixMilli()))
	if tr == nil || tr.To != "open" {
		t.Fatalf("failure %d of distinct items: transition %+v, want to open", consecutive, tr)
	}
	return tr
}

// items returns n distinct item ids with prefix.
func items(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("job-%s/item-%04d", prefix, i)
	}
	return out
}

func requireTransition(t *testing.T, tr *breaker.Transition, from, to string, at time.Time) {
	t.Helper()
	if tr == nil {
		t.Fatalf("no transition, want %s → %s", from, to)
	}
	if tr.From != from || tr.To != to || !tr.At.Equal(at) || tr.Reason == "" {
		t.Fatalf("transition = %+v, want %s → %s at %s with a reason", *tr, from, to, at)
	}
}
