package breaker_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/llmfleet/llmfleet/breaker"
	"github.com/llmfleet/llmfleet/checkpoint"
)

func TestRead(t *testing.T) {
	t.Parallel()

	t.Run("Fresh", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		s := b.read(t)
		if s.State != gobreaker.StateClosed || s.StateName() != "closed" || !s.Until.IsZero() || len(s.Transitions) != 0 {
			t.Fatalf("Read of an unused endpoint = %+v, want closed, no until, no transitions", s)
		}
	})

	t.Run("Lifecycle", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		br := b.breaker(breaker.Settings{})
		b.trip(t, br, 10)
		s := b.read(t)
		if s.State != gobreaker.StateOpen || s.StateName() != "open" || !s.Until.Equal(t0.Add(15*time.Second)) {
			t.Fatalf("Read after tripping = %+v, want open until %s", s, t0.Add(15*time.Second))
		}
		if len(s.Transitions) != 1 {
			t.Fatalf("transitions = %+v, want 1", s.Transitions)
		}
		requireTransition(t, &s.Transitions[0], "closed", "open", t0)

		t1 := b.clock.Advance(5 * time.Minute)
		probe := b.allow(t, br)
		s = b.read(t)
		if s.State != gobreaker.StateHalfOpen || s.StateName() != "half-open" || !s.Until.IsZero() {
			t.Fatalf("Read while half-open = %+v, want half-open without until", s)
		}

		t2 := b.clock.Advance(time.Second)
		b.report(t, br, probe, breaker.Success, "job/probe")
		s = b.read(t)
		if s.StateName() != "closed" || !s.Until.IsZero() {
			t.Fatalf("Read after the probe = %+v, want closed without until", s)
		}
		want := []struct {
			from, to string
			at       time.Time
		}{{"half-open", "closed", t2}, {"open", "half-open", t1}, {"closed", "open", t0}}
		if len(s.Transitions) != len(want) {
			t.Fatalf("transitions = %+v, want %d, newest first", s.Transitions, len(want))
		}
		for i, w := range want {
			requireTransition(t, &s.Transitions[i], w.from, w.to, w.at)
		}
	})

	t.Run("KeepsNewestHundred", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		br := b.breaker(breaker.Settings{ConsecutiveItems: 1, Cooldown: time.Second})
		const cycles = 40 // 120 transitions
		var last time.Time
		for i := range cycles {
			b.report(t, br, breaker.Decision{Allowed: true}, breaker.Failure, fmt.Sprintf("job/%d", i))
			b.clock.Advance(time.Second)
			d := b.allow(t, br)
			last = b.clock.Advance(time.Millisecond)
			if tr := b.report(t, br, d, breaker.Success, "job/probe"); tr == nil || tr.To != "closed" {
				t.Fatalf("cycle %d: probe success made %+v, want closed", i, tr)
			}
		}
		s := b.read(t)
		if len(s.Transitions) != 100 {
			t.Fatalf("Read returned %d transitions after %d, want the newest 100", len(s.Transitions), 3*cycles)
		}
		requireTransition(t, &s.Transitions[0], "half-open", "closed", last)
		for i := 1; i < len(s.Transitions); i++ {
			if s.Transitions[i].At.After(s.Transitions[i-1].At) {
				t.Fatalf("transition %d at %s is newer than %d at %s: want newest first", i, s.Transitions[i].At, i-1, s.Transitions[i-1].At)
			}
		}
		if n := b.rdb.LLen(b.ctx, checkpoint.BreakerKeys(b.endpoint)[6]).Val(); n > 100 {
			t.Fatalf("transition log holds %d entries, want at most 100", n)
		}
	})

	t.Run("KeysFollowSchema", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		br := b.breaker(breaker.Settings{MinItems: 100})
		b.reportMany(t, br, breaker.Success, "job/ok")
		b.reportMany(t, br, breaker.RateLimited, "job/rl")
		b.trip(t, br, 10)
		b.clock.Advance(5 * time.Minute)
		b.allow(t, br)

		allowed := map[string]bool{}
		for _, k := range checkpoint.BreakerKeys(b.endpoint) {
			allowed[k] = true
		}
		keys, err := b.rdb.Keys(b.ctx, "*").Result()
		if err != nil {
			t.Fatalf("KEYS: %v", err)
		}
		if len(keys) == 0 {
			t.Fatal("no keys written")
		}
		for _, k := range keys {
			if !allowed[k] || !strings.Contains(k, "{"+b.endpoint+"}") {
				t.Errorf("key %q is not one of checkpoint.BreakerKeys(%q)", k, b.endpoint)
			}
		}
	})
}

func TestConcurrentReports(t *testing.T) {
	t.Parallel()

	// failConcurrently reports failures of n distinct items from n
	// goroutines, each with its own Breaker, and returns the transitions.
	failConcurrently := func(t *testing.T, b *testBundle, s breaker.Settings, prefix string, n int) []*breaker.Transition {
		t.Helper()
		trs := make([]*breaker.Transition, n)
		errs := make([]error, n)
		its := items(prefix, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				br := b.breaker(s)
				<-start
				trs[i], errs[i] = br.Report(b.ctx, breaker.Decision{Allowed: true}, breaker.Failure, its[i])
			})
		}
		close(start)
		wg.Wait()
		var out []*breaker.Transition
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("Report: %v", errs[i])
			}
			if trs[i] != nil {
				out = append(out, trs[i])
			}
		}
		return out
	}
	ratioOnly := breaker.Settings{ConsecutiveItems: 1000, MinItems: 50, FailureRatio: 1.0}

	t.Run("FiftiethDistinctFailureOpensOnce", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		trs := failConcurrently(t, b, ratioOnly, "a", 50)
		if len(trs) != 1 {
			t.Fatalf("%d callers got a transition, want exactly 1: %+v", len(trs), trs)
		}
		requireTransition(t, trs[0], "closed", "open", t0)
		if !strings.Contains(trs[0].Reason, "50 of 50") {
			t.Errorf("reason = %q, want 50 of 50 items: no count lost", trs[0].Reason)
		}
		if s := b.requireState(t, "open"); len(s.Transitions) != 1 {
			t.Fatalf("transition log = %+v, want one", s.Transitions)
		}
	})

	t.Run("FortyNineDoNotOpen", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		if trs := failConcurrently(t, b, ratioOnly, "a", 49); len(trs) != 0 {
			t.Fatalf("49 failures made transitions %+v, want none", trs)
		}
		b.requireState(t, "closed")
		requireTransition(t, b.report(t, b.breaker(ratioOnly), breaker.Decision{Allowed: true}, breaker.Failure, "job/fiftieth"), "closed", "open", t0)
	})

	t.Run("DefaultsOpenOnce", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		if trs := failConcurrently(t, b, breaker.Settings{}, "a", 50); len(trs) != 1 {
			t.Fatalf("%d callers got a transition, want exactly 1: %+v", len(trs), trs)
		}
		if s := b.requireState(t, "open"); len(s.Transitions) != 1 {
			t.Fatalf("transition log = %+v, want one", s.Transitions)
		}
	})
}
