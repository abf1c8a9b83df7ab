package breaker_test

import (
	"sync"
	"testing"
	"time"

	"github.com/llmfleet/llmfleet/breaker"
)

func TestClosedAllows(t *testing.T) {
	t.Parallel()
	b := setup(t)
	br := b.breaker(breaker.Settings{})
	for range 3 {
		d := b.allow(t, br)
		if !d.Allowed || d.Probe || d.Wait != 0 || d.Transition != nil {
			t.Fatalf("Allow while closed = %+v, want allowed, no probe, no wait, no transition", d)
		}
	}
}

func TestOpen(t *testing.T) {
	t.Parallel()

	t.Run("DeniesUntilCooldown", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		br := b.breaker(breaker.Settings{})
		b.trip(t, br, 10)
		until := t0.Add(15 * time.Second)
		if s := b.requireState(t, "open"); !s.Until.Equal(until) {
			t.Fatalf("Until = %s, want %s (default first cooldown 15s)", s.Until, until)
		}

		other := b.breaker(breaker.Settings{}) // a worker that never saw a failure
		for _, step := range []time.Duration{0, time.Second, 13*time.Second + 999*time.Millisecond} {
			now := b.clock.Advance(step)
			for _, x := range []*breaker.Breaker{br, other} {
				d := b.allow(t, x)
				if d.Allowed || d.Probe || d.Transition != nil {
					t.Fatalf("Allow at %s while open = %+v, want denied", now, d)
				}
				if want := until.Sub(now); d.Wait != want {
					t.Fatalf("Allow at %s: Wait = %s, want until - now = %s", now, d.Wait, want)
				}
			}
		}
		b.requireState(t, "open")
		b.clock.Advance(time.Millisecond)
		if d := b.allow(t, other); !d.Probe {
			t.Fatalf("Allow at the end of the first cooldown = %+v, want a probe", d)
		}
	})

	t.Run("EachFailedProbeDoublesTheCooldownUpToTheMost", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		s := breaker.Settings{FirstCooldown: 15 * time.Second, Cooldown: 2 * time.Minute}
		br := b.breaker(s)
		b.trip(t, br, 10)
		for _, want := range []time.Duration{15 * time.Second, 30 * time.Second, time.Minute, 2 * time.Minute, 2 * time.Minute} {
			snap := b.requireState(t, "open")
			if got := snap.Until.Sub(b.clock.Now()); got != want {
				t.Fatalf("open for %s, want %s", got, want)
			}
			b.clock.Advance(want)
			probe := b.allow(t, br)
			if !probe.Probe {
				t.Fatalf("Allow after %s = %+v, want a probe", want, probe)
			}
			requireTransition(t, b.report(t, br, probe, breaker.Failure, "job/probe"), "half-open", "open", b.clock.Now())
		}
		// A probe that succeeds closes it, and the next open is short again.
		b.clock.Advance(2 * time.Minute)
		probe := b.allow(t, br)
		requireTransition(t, b.report(t, br, probe, breaker.Success, "job/probe"), "half-open", "closed", b.clock.Now())
		b.trip(t, br, 10)
		if got := b.requireState(t, "open").Until.Sub(b.clock.Now()); got != 15*time.Second {
			t.Fatalf("open again after a close for %s, want the first cooldown 15s", got)
		}
	})

	t.Run("FirstCooldownIsAtMostTheCooldown", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		br := b.breaker(breaker.Settings{Cooldown: 7 * time.Second})
		b.trip(t, br, 10)
		if got := b.requireState(t, "open").Until.Sub(t0); got != 7*time.Second {
			t.Fatalf("open for %s with --breaker-cooldown 7s, want 7s", got)
		}
	})

	t.Run("CustomCooldown", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		br := b.breaker(breaker.Settings{Cooldown: 7 * time.Second})
		b.trip(t, br, 10)
		if d := b.allow(t, br); d.Allowed || d.Wait != 7*time.Second {
			t.Fatalf("Allow right after opening = %+v, want denied with Wait 7s", d)
		}
		b.clock.Advance(7 * time.Second)
		d := b.allow(t, br)
		if !d.Allowed || !d.Probe {
			t.Fatalf("Allow after the cooldown = %+v, want a probe", d)
		}
		requireTransition(t, d.Transition, "open", "half-open", t0.Add(7*time.Second))
	})

	t.Run("ClosedEraReportsIgnored", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		br := b.breaker(breaker.Settings{})
		// Calls that passed their check before the breaker opened.
		var passed []breaker.Decision
		for range 4 {
			passed = append(passed, b.allow(t, br))
		}
		b.trip(t, br, 10)
		b.clock.Advance(time.Minute)
		outcomes := []breaker.Outcome{breaker.Success, breaker.Failure, breaker.RateLimited, breaker.Neutral}
		for i, d := range passed {
			if tr := b.report(t, br, d, outcomes[i], items("late", 4)[i]); tr != nil {
				t.Fatalf("late %s report while open made transition %+v, want none", outcomes[i], *tr)
			}
		}
		s := b.requireState(t, "open")
		if want := t0.Add(15 * time.Second); !s.Until.Equal(want) {
			t.Fatalf("Until = %s after late reports, want %s unchanged", s.Until, want)
		}
		if len(s.Transitions) != 1 {
			t.Fatalf("transitions = %+v, want only the opening", s.Transitions)
		}
	})

	t.Run("HalfOpensOnceAmongConcurrentCallers", func(t *testing.T) {
		t.Parallel()
		for _, probes := range []int{1, 3} {
			b := setup(t)
			s := breaker.Settings{MaxProbes: probes}
			b.trip(t, b.breaker(s), 10)
			at := b.clock.Advance(5 * time.Minute)

			const callers = 20
			decisions := make([]breaker.Decision, callers)
			errs := make([]error, callers)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := range callers {
				wg.Go(func() {
					br := b.breaker(s) // every worker has its own instance
					<-start
					decisions[i], errs[i] = br.Allow(b.ctx, lease)
				})
			}
			close(start)
			wg.Wait()

			var transitions, allowed int
			for i, d := range decisions {
				if errs[i] != nil {
					t.Fatalf("Allow: %v", errs[i])
				}
				if d.Transition != nil {
					transitions++
					requireTransition(t, d.Transition, "open", "half-open", at)
				}
				switch {
				case d.Allowed && !d.Probe:
					t.Fatalf("Allow while half-open = %+v, want a probe or a denial", d)
				case d.Allowed:
					allowed++
				case d.Wait <= 0:
					t.Fatalf("denied while half-open with Wait %s, want a positive wait", d.Wait)
				}
			}
			if transitions != 1 {
				t.Fatalf("MaxProbes %d: %d callers got the open → half-open transition, want exactly 1", probes, transitions)
			}
			if allowed != probes {
				t.Fatalf("MaxProbes %d: %d probes allowed among %d concurrent callers, want %d", probes, allowed, callers, probes)
			}
			snap := b.requireState(t, "half-open")
			if len(snap.Transitions) != 2 {
				t.Fatalf("transitions = %+v, want opening and half-opening", snap.Transitions)
			}
		}
	})
}

func TestHalfOpen(t *testing.T) {
	t.Parallel()

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
	settings := breaker.Settings{Cooldown: time.Minute, FirstCooldown: time.Minute, ConsecutiveItems: 2, MinItems: 100}

	t.Run("ProbeSuccessClosesForEveryone", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		br, other := b.breaker(settings), b.breaker(settings)
		probe := halfOpen(t, b, br)
		if d := b.allow(t, other); d.Allowed || d.Wait <= 0 {
			t.Fatalf("second Allow with the probe out = %+v, want denied with a wait", d)
		}
		at := b.clock.Advance(2 * time.Second)
		requireTransition(t, b.report(t, br, probe, breaker.Success, "job/probe"), "half-open", "closed", at)
		b.requireState(t, "closed")

		for _, x := range []*breaker.Breaker{br, other} {
			if d := b.allow(t, x); !d.Allowed || d.Probe || d.Transition != nil {
				t.Fatalf("Allow after the probe succeeded = %+v, want allowed", d)
			}
		}
		// Windows start afresh: one failure is one, not the third in a row.
		b.reportMany(t, other, breaker.Failure, "job/new-failure")
		b.requireState(t, "closed")
		// And the rules work again.
		requireTransition(t, b.report(t, other, breaker.Decision{Allowed: true}, breaker.Failure, "job/another"), "closed", "open", at)
	})

	t.Run("NeutralProbeCloses", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		br := b.breaker(settings)
		probe := halfOpen(t, b, br)
		// The provider answered; the item was at fault.
		tr := b.report(t, br, probe, breaker.Neutral, "job/probe")
		requireTransition(t, tr, "half-open", "closed", b.clock.Now())
	})

	t.Run("ProbeFailureReopens", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		br := b.breaker(settings)
		probe := halfOpen(t, b, br)
		at := b.clock.Advance(10 * time.Second)
		requireTransition(t, b.report(t, br, probe, breaker.Failure, "job/probe"), "half-open", "open", at)
		s := b.requireState(t, "open")
		if want := at.Add(time.Minute); !s.Until.Equal(want) {
			t.Fatalf("Until = %s, want a new cooldown until %s", s.Until, want)
		}
		if d := b.allow(t, br); d.Allowed || d.Wait != time.Minute {
			t.Fatalf("Allow after reopening = %+v, want denied with Wait 1m", d)
		}
	})

	t.Run("ClosedEraReportsIgnored", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		br := b.breaker(settings)
		early := b.allow(t, br)
		halfOpen(t, b, br)
		for _, o := range []breaker.Outcome{breaker.Success, breaker.Failure} {
			if tr := b.report(t, br, early, o, "job/early"); tr != nil {
				t.Fatalf("closed-era %s report while half-open made %+v, want none", o, *tr)
			}
		}
		b.requireState(t, "half-open")
	})

	t.Run("UnreportedProbeFreesSlotAfterLease", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		br := b.breaker(settings)
		b.trip(t, br, 2)
		b.clock.Advance(time.Minute)
		const probeLease = 30 * time.Second
		if d, err := br.Allow(b.ctx, probeLease); err != nil || !d.Probe {
			t.Fatalf("Allow after cooldown = %+v, %v, want a probe", d, err)
		}
		// Its worker dies: no report.
		for _, step := range []time.Duration{0, probeLease - time.Millisecond} {
			b.clock.Advance(step)
			if d := b.allow(t, br); d.Allowed {
				t.Fatalf("Allow %s into the probe's lease = %+v, want denied", step, d)
			}
		}
		b.clock.Advance(time.Millisecond)
		d := b.allow(t, br)
		if !d.Allowed || !d.Probe || d.Transition != nil {
			t.Fatalf("Allow once the lease ended = %+v, want a new probe and no transition", d)
		}
		requireTransition(t, b.report(t, br, d, breaker.Success, "job/probe2"), "half-open", "closed", b.clock.Now())
	})

	t.Run("AbandonedProbeFreesSlotWithoutDeciding", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		br := b.breaker(settings)
		probe := halfOpen(t, b, br)
		if d := b.allow(t, br); d.Allowed {
			t.Fatalf("second Allow with the probe out = %+v, want denied", d)
		}
		if tr := b.report(t, br, probe, breaker.Abandoned, "job/probe"); tr != nil {
			t.Fatalf("abandoned probe made transition %+v, want none", *tr)
		}
		b.requireState(t, "half-open")
		if d := b.allow(t, br); !d.Allowed || !d.Probe {
			t.Fatalf("Allow after the probe was abandoned = %+v, want a new probe", d)
		}
	})
}
