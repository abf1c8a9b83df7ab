package breaker_test

import (
	"strings"
	"testing"
	"time"

	"github.com/llmfleet/llmfleet/breaker"
)

// Closed → open, one trip rule at a time.

func TestConsecutiveItemsRule(t *testing.T) {
	t.Parallel()

	t.Run("DefaultTenDistinctItems", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		br := b.breaker(breaker.Settings{MinItems: 100})
		its := items("a", 10)
		b.reportMany(t, br, breaker.Failure, its[:9]...)
		b.requireState(t, "closed")
		tr := b.report(t, br, breaker.Decision{Allowed: true}, breaker.Failure, its[9])
		requireTransition(t, tr, "closed", "open", t0)
		if !strings.Contains(tr.Reason, "in a row") {
			t.Errorf("reason = %q, want the consecutive-items rule", tr.Reason)
		}
		b.requireState(t, "open")
	})

	t.Run("CustomThree", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		br := b.breaker(breaker.Settings{ConsecutiveItems: 3, MinItems: 100})
		its := items("a", 3)
		b.reportMany(t, br, breaker.Failure, its[:2]...)
		requireTransition(t, b.report(t, br, breaker.Decision{Allowed: true}, breaker.Failure, its[2]), "closed", "open", t0)
	})

	t.Run("SameItemNeverTrips", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		br := b.breaker(breaker.Settings{})
		for range 10 {
			b.reportMany(t, br, breaker.Failure, "job/one-bad-item")
		}
		b.requireState(t, "closed")
	})

	t.Run("SuccessBreaksTheStreak", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		br := b.breaker(breaker.Settings{MinItems: 100})
		b.reportMany(t, br, breaker.Failure, items("a", 4)...)
		b.reportMany(t, br, breaker.Success, "job/ok")
		b.reportMany(t, br, breaker.Failure, items("b", 4)...)
		b.requireState(t, "closed")
	})

	t.Run("NeutralBreaksTheStreak", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		br := b.breaker(breaker.Settings{MinItems: 100})
		b.reportMany(t, br, breaker.Failure, items("a", 4)...)
		b.reportMany(t, br, breaker.Neutral, "job/bad-request")
		b.reportMany(t, br, breaker.Failure, items("b", 4)...)
		b.requireState(t, "closed")
	})

	t.Run("AbandonedDoesNotBreakTheStreak", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		br := b.breaker(breaker.Settings{MinItems: 100})
		b.reportMany(t, br, breaker.Failure, items("a", 9)...)
		b.reportMany(t, br, breaker.Abandoned, items("shutdown", 10)...)
		requireTransition(t, b.report(t, br, breaker.Decision{Allowed: true}, breaker.Failure, "job/tenth"), "closed", "open", t0)
	})
}

func TestFailureRatioRule(t *testing.T) {
	t.Parallel()

	// alternate reports ok and fail for n distinct items, starting with ok,
	// so that no streak builds up.
	alternate := func(t *testing.T, b *testBundle, br *breaker.Breaker, prefix string, n int) {
		t.Helper()
		for i, it := range items(prefix, n) {
			o := breaker.Success
			if i%2 == 1 {
				o = breaker.Failure
			}
			b.reportMany(t, br, o, it)
		}
	}

	t.Run("DefaultHalfOfTenItems", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		br := b.breaker(breaker.Settings{})
		alternate(t, b, br, "a", 9) // 5 ok, 4 failed
		b.requireState(t, "closed")
		tr := b.report(t, br, breaker.Decision{Allowed: true}, breaker.Failure, "job/tenth")
		requireTransition(t, tr, "closed", "open", t0)
		if !strings.Contains(tr.Reason, "5 of 10 items failed") {
			t.Errorf("reason = %q, want the failure-ratio rule over 5 of 10 items", tr.Reason)
		}
	})

	t.Run("BelowMinItemsNeverTrips", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		br := b.breaker(breaker.Settings{ConsecutiveItems: 1000})
		its := items("a", 10)
		b.reportMany(t, br, breaker.Failure, its[:9]...) // a ratio of 1, but 9 items
		b.requireState(t, "closed")
		requireTransition(t, b.report(t, br, breaker.Decision{Allowed: true}, breaker.Failure, its[9]), "closed", "open", t0)
	})

	t.Run("Custom", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		br := b.breaker(breaker.Settings{ConsecutiveItems: 1000, MinItems: 4, FailureRatio: 0.75})
		b.reportMany(t, br, breaker.Success, "job/ok")
		b.reportMany(t, br, breaker.Failure, "job/f1", "job/f2") // 2 of 3 items: below MinItems
		tr := b.report(t, br, breaker.Decision{Allowed: true}, breaker.Failure, "job/f3")
		requireTransition(t, tr, "closed", "open", t0)
		if !strings.Contains(tr.Reason, "3 of 4 items failed") {
			t.Errorf("reason = %q, want 3 of 4 items", tr.Reason)
		}
	})

	t.Run("CustomBelowRatio", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		br := b.breaker(breaker.Settings{ConsecutiveItems: 1000, MinItems: 4, FailureRatio: 0.75})
		b.reportMany(t, br, breaker.Success, "job/ok1", "job/ok2")
		b.reportMany(t, br, breaker.Failure, items("f", 5)...) // 5 of 7 < 0.75
		b.requireState(t, "closed")
	})

	t.Run("SameItemCountsOnce", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		br := b.breaker(breaker.Settings{ConsecutiveItems: 1000})
		b.reportMany(t, br, breaker.Success, items("ok", 9)...)
		for range 20 {
			b.reportMany(t, br, breaker.Failure, "job/one-bad-item")
		}
		b.requireState(t, "closed") // 1 of 10 items failed
	})

	t.Run("OutcomesOlderThanWindowForgotten", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		br := b.breaker(breaker.Settings{}) // window 1m
		alternate(t, b, br, "a", 9)
		b.clock.Advance(time.Minute + time.Millisecond)
		b.reportMany(t, br, breaker.Failure, "job/after-window")
		b.requireState(t, "closed")
	})

	t.Run("OutcomesWithinWindowKept", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		br := b.breaker(breaker.Settings{})
		alternate(t, b, br, "a", 9)
		at := b.clock.Advance(59 * time.Second)
		requireTransition(t, b.report(t, br, breaker.Decision{Allowed: true}, breaker.Failure, "job/within"), "closed", "open", at)
	})

	t.Run("CustomWindow", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		br := b.breaker(breaker.Settings{Window: 10 * time.Second})
		alternate(t, b, br, "a", 9)
		b.clock.Advance(11 * time.Second)
		b.reportMany(t, br, breaker.Failure, "job/after-window")
		b.requireState(t, "closed")
	})
}

func TestSustainedRateLimitRule(t *testing.T) {
	t.Parallel()

	t.Run("DefaultTwentyItems", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		br := b.breaker(breaker.Settings{})
		its := items("rl", 20)
		b.reportMany(t, br, breaker.RateLimited, its[:19]...)
		b.requireState(t, "closed")
		tr := b.report(t, br, breaker.Decision{Allowed: true}, breaker.RateLimited, its[19])
		requireTransition(t, tr, "closed", "open", t0)
		if !strings.Contains(tr.Reason, "sustained 429s") {
			t.Errorf("reason = %q, want the sustained-429 rule", tr.Reason)
		}
	})

	t.Run("FewAmongManySuccessesNeverTrip", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		br := b.breaker(breaker.Settings{})
		b.reportMany(t, br, breaker.Success, items("ok", 100)...)
		b.reportMany(t, br, breaker.RateLimited, items("rl", 30)...) // 30 items ≥ 20, but 30 of 130
		b.requireState(t, "closed")
	})

	t.Run("SameItemNeverTrips", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		br := b.breaker(breaker.Settings{})
		for range 50 {
			b.reportMany(t, br, breaker.RateLimited, "job/hot-item")
		}
		b.requireState(t, "closed")
	})

	t.Run("NotAFailure", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		// 429s feed only their own rule: 100 of them are no failure streak
		// and no failure ratio.
		br := b.breaker(breaker.Settings{RateLimitedItems: 1000})
		b.reportMany(t, br, breaker.RateLimited, items("rl", 100)...)
		b.requireState(t, "closed")
	})

	t.Run("Custom", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		br := b.breaker(breaker.Settings{RateLimitedItems: 3, RateLimitedRatio: 0.5})
		b.reportMany(t, br, breaker.Success, "job/ok1", "job/ok2")
		b.reportMany(t, br, breaker.RateLimited, "job/rl1", "job/rl2")
		requireTransition(t, b.report(t, br, breaker.Decision{Allowed: true}, breaker.RateLimited, "job/rl3"), "closed", "open", t0) // 3 of 5
	})

	t.Run("CustomBelowRatio", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		br := b.breaker(breaker.Settings{RateLimitedItems: 3, RateLimitedRatio: 0.5})
		b.reportMany(t, br, breaker.Success, items("ok", 4)...)
		b.reportMany(t, br, breaker.RateLimited, items("rl", 3)...) // 3 of 7
		b.requireState(t, "closed")
	})

	t.Run("ItemsRetriedAfter429CountOnce", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		br := b.breaker(breaker.Settings{})
		b.reportMany(t, br, breaker.Success, items("ok", 10)...)
		var opened bool
		for _, it := range items("retried", 20) {
			for _, o := range []breaker.Outcome{breaker.RateLimited, breaker.Success} {
				if tr := b.report(t, br, breaker.Decision{Allowed: true}, o, it); tr != nil {
					opened = true
				}
			}
		}
		if !opened {
			t.Fatalf("20 of 30 distinct items rate-limited: state %q, want open", b.read(t).StateName())
		}
	})
}

func TestBadItemsNeverTrip(t *testing.T) {
	t.Parallel()

	t.Run("HundredNeutralItems", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		br := b.breaker(breaker.Settings{})
		b.reportMany(t, br, breaker.Neutral, items("bad", 100)...)
		for range 100 {
			b.reportMany(t, br, breaker.Neutral, "job/same-bad-item")
		}
		s := b.requireState(t, "closed")
		if len(s.Transitions) != 0 {
			t.Fatalf("transitions = %+v, want none", s.Transitions)
		}
	})

	t.Run("NeutralNotInFailureRatio", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		br := b.breaker(breaker.Settings{ConsecutiveItems: 1000, MinItems: 4, FailureRatio: 0.5})
		b.reportMany(t, br, breaker.Success, items("ok", 3)...)
		b.reportMany(t, br, breaker.Neutral, items("bad", 100)...)
		b.reportMany(t, br, breaker.Failure, "job/f1", "job/f2") // 2 of 5, the bad items do not count
		b.requireState(t, "closed")
	})

	t.Run("HundredAbandoned", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		br := b.breaker(breaker.Settings{ConsecutiveItems: 1, MinItems: 1, RateLimitedItems: 1})
		b.reportMany(t, br, breaker.Abandoned, items("shutdown", 100)...)
		b.requireState(t, "closed")
	})
}
