package breaker_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/llmfleet/llmfleet/breaker"
	"github.com/llmfleet/llmfleet/checkpoint"
	"github.com/llmfleet/llmfleet/internal/testredis"
)

// scripts returns how many scripts Redis has run so far.
func (b *testBundle) scripts(t *testing.T) int {
	t.Helper()
	return int(testredis.CommandStats(t, b.rdb)["evalsha"])
}

// successes sums the per-second success counts the breaker keeps.
func (b *testBundle) successes(t *testing.T) int {
	t.Helper()
	vals, err := b.rdb.HVals(b.ctx, checkpoint.BreakerKeys(b.endpoint)[2]).Result()
	if err != nil {
		t.Fatalf("HVALS: %v", err)
	}
	n := 0
	for _, v := range vals {
		x, _ := strconv.Atoi(v)
		n += x
	}
	return n
}

func TestWorkerView(t *testing.T) {
	t.Parallel()

	t.Run("ClosedIsAnsweredLocallyWithinRefresh", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		s := breaker.Settings{Refresh: 250 * time.Millisecond}
		br := b.breaker(s)
		b.allow(t, br) // first look: asks Redis
		before := b.scripts(t)
		for range 100 {
			if d := b.allow(t, br); !d.Allowed || d.Probe {
				t.Fatalf("Allow = %+v, want allowed", d)
			}
		}
		if n := b.scripts(t) - before; n != 0 {
			t.Fatalf("100 Allows of a closed breaker ran %d scripts, want 0", n)
		}

		// Another worker opens it: this one may call on for at most Refresh.
		b.trip(t, b.breaker(s), 10)
		b.clock.Advance(249 * time.Millisecond)
		if d := b.allow(t, br); !d.Allowed {
			t.Fatalf("Allow within Refresh of the last look = %+v, want the stale allow", d)
		}
		b.clock.Advance(time.Millisecond)
		if d := b.allow(t, br); d.Allowed || d.Wait <= 0 {
			t.Fatalf("Allow once Refresh has passed = %+v, want denied with a wait", d)
		}
	})

	t.Run("OpenIsAnsweredLocallyUntilCooldown", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		br := b.breaker(breaker.Settings{Cooldown: time.Minute, FirstCooldown: time.Minute})
		b.trip(t, br, 10)
		before := b.scripts(t)
		b.clock.Advance(30 * time.Second)
		for range 50 {
			if d := b.allow(t, br); d.Allowed || d.Wait != 30*time.Second {
				t.Fatalf("Allow while open = %+v, want denied for the 30 s left", d)
			}
		}
		if n := b.scripts(t) - before; n != 0 {
			t.Fatalf("50 Allows of an open breaker ran %d scripts, want 0", n)
		}
		b.clock.Advance(30 * time.Second)
		if d := b.allow(t, br); !d.Probe {
			t.Fatalf("Allow after the cooldown = %+v, want a probe", d)
		}
	})

	t.Run("SuccessesAreBatched", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		br := b.breaker(breaker.Settings{Refresh: 250 * time.Millisecond})
		b.reportMany(t, br, breaker.Success, "job/first") // unknown view: sent at once
		if n := b.successes(t); n != 1 {
			t.Fatalf("first success: %d recorded, want 1", n)
		}
		before := b.scripts(t)
		b.reportMany(t, br, breaker.Success, items("ok", 100)...)
		if n := b.scripts(t) - before; n != 0 {
			t.Fatalf("100 successes within Refresh ran %d scripts, want 0 (batched)", n)
		}
		b.clock.Advance(250 * time.Millisecond)
		b.reportMany(t, br, breaker.Success, "job/last")
		if n, s := b.successes(t), b.scripts(t)-before; n != 102 || s != 1 {
			t.Fatalf("after Refresh: %d successes recorded by %d scripts, want 102 by 1", n, s)
		}
	})

	t.Run("FailureSendsTheBatchFirst", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		br := b.breaker(breaker.Settings{ConsecutiveItems: 3, MinItems: 10, FailureRatio: 0.5})
		b.reportMany(t, br, breaker.Success, "job/first")
		b.reportMany(t, br, breaker.Failure, "job/f1", "job/f2")
		// Batched successes between failures break the streak, and count in
		// the ratio, before the failure that follows them.
		b.reportMany(t, br, breaker.Success, items("ok", 9)...)
		b.reportMany(t, br, breaker.Failure, "job/f3", "job/f4")
		b.requireState(t, "closed") // streak 2 after the successes; 4 of 14 failed
		if n := b.successes(t); n != 10 {
			t.Fatalf("%d successes recorded, want 10", n)
		}
	})

	t.Run("FlushSendsWhatIsLeft", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		br := b.breaker(breaker.Settings{})
		b.reportMany(t, br, breaker.Success, "job/first")
		b.reportMany(t, br, breaker.Success, items("ok", 7)...)
		if err := br.Flush(b.ctx); err != nil {
			t.Fatalf("Flush: %v", err)
		}
		if n := b.successes(t); n != 8 {
			t.Fatalf("after Flush: %d successes recorded, want 8", n)
		}
	})
}
