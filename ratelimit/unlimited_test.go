package ratelimit_test

import (
	"testing"
	"time"

	"github.com/llmfleet/llmfleet/internal/testredis"
	"github.com/llmfleet/llmfleet/ratelimit"
)

// Without RPM or TPM limits a reservation only honours the fleet-wide hold,
// which each worker reads at most every HoldRefresh: a call costs no round
// trip, and a hold still reaches every worker.
func TestUnlimitedHold(t *testing.T) {
	t.Parallel()
	b := setup(t)
	l1, l2 := b.worker(t, ratelimit.Limits{}), b.worker(t, ratelimit.Limits{})
	if l1.Limited() {
		t.Fatal("Limited() = true without limits")
	}
	scripts := func() int { return int(testredis.CommandStats(t, b.rdb)["evalsha"]) }

	before, start := scripts(), time.Now()
	for range 1000 {
		b.mustAllow(t, l1, 100_000) // no TPM: any size passes
	}
	ran, elapsed := scripts()-before, time.Since(start)
	if most := int(elapsed/ratelimit.HoldRefresh) + 1; ran > most {
		t.Fatalf("1000 reservations in %s ran %d scripts, want at most %d (one per HoldRefresh)", elapsed, ran, most)
	}

	// The worker that got the 429 holds back at once; the others within
	// HoldRefresh.
	if err := l1.Hold(b.ctx, 3*time.Second); err != nil {
		t.Fatalf("Hold: %v", err)
	}
	b.mustWait(t, l1, 1, 2800*time.Millisecond, 3*time.Second)
	seen := time.Now()
	deadline := seen.Add(2 * time.Second)
	for {
		_, wait := b.reserve(t, l2, 1)
		if wait > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the other worker did not see the hold within 2 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if lag := time.Since(seen); lag > ratelimit.HoldRefresh+500*time.Millisecond {
		t.Errorf("the other worker saw the hold after %s, want within about HoldRefresh (%s)", lag, ratelimit.HoldRefresh)
	}
	// Settle and Cancel have nothing to do.
	if err := l1.Settle(b.ctx, ratelimit.Reservation{}, 500); err != nil {
		t.Fatalf("Settle: %v", err)
	}
	if err := l1.Cancel(b.ctx, ratelimit.Reservation{}); err != nil {
		t.Fatalf("Cancel: %v", err)
	}
}
