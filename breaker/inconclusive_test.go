package breaker_test

import (
	"strings"
	"testing"
	"time"

	"github.com/llmfleet/llmfleet/breaker"
)

// Inconclusive outcomes (a timeout, a garbled answer) say nothing about the
// provider's health while closed, but are no success for a probe.

func TestInconclusive(t *testing.T) {
	t.Parallel()

	t.Run("HundredItemsNeverTrip", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		// The most sensitive rules: any counted outcome could trip them.
		br := b.breaker(breaker.Settings{ConsecutiveItems: 1, MinItems: 1, RateLimitedItems: 1})
		b.reportMany(t, br, breaker.Inconclusive, items("slow", 100)...)
		for range 20 {
			b.reportMany(t, br, breaker.Inconclusive, "job/same-slow-item")
		}
		s := b.requireState(t, "closed")
		if len(s.Transitions) != 0 {
			t.Fatalf("transitions = %+v, want none", s.Transitions)
		}
	})

	t.Run("HundredItemsWithDefaults", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		br := b.breaker(breaker.Settings{})
		b.reportMany(t, br, breaker.Inconclusive, items("slow", 100)...)
		b.requireState(t, "closed")
	})

	t.Run("DoesNotBreakTheStreak", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		br := b.breaker(breaker.Settings{ConsecutiveItems: 5, MinItems: 100})
		b.reportMany(t, br, breaker.Failure, items("a", 4)...)
		b.reportMany(t, br, breaker.Inconclusive, "job/timed-out")
		b.requireState(t, "closed")
		at := b.clock.Advance(time.Second)
		tr := b.report(t, br, breaker.Decision{Allowed: true}, breaker.Failure, "job/fifth")
		requireTransition(t, tr, "closed", "open", at)
		if !strings.Contains(tr.Reason, "5 different items failed in a row") {
			t.Errorf("reason = %q, want 5 different items in a row (the inconclusive one not counted)", tr.Reason)
		}
		b.requireState(t, "open")
	})

	t.Run("DoesNotBreakTheStreakWithDefaults", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		br := b.breaker(breaker.Settings{})
		b.reportMany(t, br, breaker.Failure, items("a", 9)...)
		b.reportMany(t, br, breaker.Inconclusive, items("slow", 10)...)
		requireTransition(t, b.report(t, br, breaker.Decision{Allowed: true}, breaker.Failure, "job/tenth"), "closed", "open", t0)
	})

	t.Run("NotInFailureRatio", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		br := b.breaker(breaker.Settings{ConsecutiveItems: 1000, MinItems: 4, FailureRatio: 0.5})
		b.reportMany(t, br, breaker.Success, items("ok", 3)...)
		b.reportMany(t, br, breaker.Inconclusive, items("slow", 100)...)
		b.reportMany(t, br, breaker.Failure, "job/f1", "job/f2") // 2 of 5: the inconclusive items do not count
		b.requireState(t, "closed")
		// Nor do they dilute it.
		requireTransition(t, b.report(t, br, breaker.Decision{Allowed: true}, breaker.Failure, "job/f3"), "closed", "open", t0) // 3 of 6
	})

	t.Run("KeepsEarlierOutcomeOfSameItem", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		br := b.breaker(breaker.Settings{ConsecutiveItems: 1000, MinItems: 2, FailureRatio: 0.5})
		b.reportMany(t, br, breaker.Failure, "job/x")
		// Its retry times out: it is still a failed item.
		b.reportMany(t, br, breaker.Inconclusive, "job/x")
		requireTransition(t, b.report(t, br, breaker.Decision{Allowed: true}, breaker.Success, "job/y"), "closed", "open", t0) // 1 of 2
	})

	t.Run("NotInRateLimitedShare", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		br := b.breaker(breaker.Settings{RateLimitedItems: 3, RateLimitedRatio: 0.5})
		b.reportMany(t, br, breaker.Inconclusive, items("slow", 10)...)
		b.reportMany(t, br, breaker.Success, "job/ok1", "job/ok2")
		b.reportMany(t, br, breaker.RateLimited, "job/rl1", "job/rl2")
		requireTransition(t, b.report(t, br, breaker.Decision{Allowed: true}, breaker.RateLimited, "job/rl3"), "closed", "open", t0) // 3 of 5
	})

	t.Run("WhileOpenIgnored", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		br := b.breaker(breaker.Settings{})
		early := b.allow(t, br)
		b.trip(t, br, 10)
		b.clock.Advance(time.Minute)
		if tr := b.report(t, br, early, breaker.Inconclusive, "job/late"); tr != nil {
			t.Fatalf("inconclusive report while open made %+v, want none", *tr)
		}
		if s := b.requireState(t, "open"); !s.Until.Equal(t0.Add(15*time.Second)) || len(s.Transitions) != 1 {
			t.Fatalf("after the report: until %s transitions %+v, want %s and only the opening", s.Until, s.Transitions, t0.Add(15*time.Second))
		}
	})
}

func TestInconclusiveProbe(t *testing.T) {
	t.Parallel()

	settings := breaker.Settings{Cooldown: time.Minute, FirstCooldown: time.Minute, ConsecutiveItems: 2, MinItems: 100}

	// halfOpen trips the breaker, lets the cooldown pass and returns the
	// probe decision that made it half-open.
	halfOpen := func(t *testing.T, b *testBundle, br *breaker.Breaker) breaker.Decision {
		t.Helper()
		b.trip(t, br, 2)
		b.clock.Advance(time.Minute)
		d := b.allow(t, br)
		if !d.Allowed || !d.Probe || d.Transition == nil {
			t.Fatalf("Allow after cooldown = %+v, want the probe that half-opens", d)
		}
		return d
	}

	t.Run("Reopens", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		br := b.breaker(settings)
		probe := halfOpen(t, b, br)
		at := b.clock.Advance(30 * time.Second)
		// The probe timed out: no sign the provider is back.
		requireTransition(t, b.report(t, br, probe, breaker.Inconclusive, "job/probe"), "half-open", "open", at)
		s := b.requireState(t, "open")
		if want := at.Add(time.Minute); !s.Until.Equal(want) {
			t.Fatalf("Until = %s, want a new cooldown until %s", s.Until, want)
		}
		if d := b.allow(t, br); d.Allowed || d.Wait != time.Minute {
			t.Fatalf("Allow after reopening = %+v, want denied with Wait 1m", d)
		}
	})

	t.Run("UnlikeNeutral", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			o  breaker.Outcome
			to string
		}{{breaker.Neutral, "closed"}, {breaker.Inconclusive, "open"}, {breaker.Success, "closed"}, {breaker.Failure, "open"}} {
			b := setup(t)
			br := b.breaker(settings)
			probe := halfOpen(t, b, br)
			tr := b.report(t, br, probe, tc.o, "job/probe")
			if tr == nil || tr.From != "half-open" || tr.To != tc.to {
				t.Fatalf("probe reporting %s: transition %+v, want half-open → %s", tc.o, tr, tc.to)
			}
			b.requireState(t, tc.to)
		}
	})

	t.Run("NonProbeReportIgnored", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		br := b.breaker(settings)
		early := b.allow(t, br) // allowed while closed
		probe := halfOpen(t, b, br)
		if tr := b.report(t, br, early, breaker.Inconclusive, "job/early"); tr != nil {
			t.Fatalf("closed-era inconclusive report while half-open made %+v, want none", *tr)
		}
		b.requireState(t, "half-open")
		// The real probe still decides.
		requireTransition(t, b.report(t, br, probe, breaker.Success, "job/probe"), "half-open", "closed", b.clock.Now())
	})
}
