package checkpoint_test

import (
	"errors"
	"testing"
	"time"

	"github.com/llmfleet/llmfleet/checkpoint"
)

// requireKeysPersist checks that no key of the job has a TTL: the job is
// running (or was reopened).
func requireKeysPersist(t *testing.T, b *testBundle, name string) {
	t.Helper()
	ttls := b.ttls(t, name)
	if len(ttls) == 0 {
		t.Fatalf("job %q has no keys", name)
	}
	for k, ttl := range ttls {
		if ttl != -1 {
			t.Fatalf("key %s of job %q has TTL %v, want none (-1)", k, name, ttl)
		}
	}
}

// requireKeysExpire checks that every key of the job expires after about the
// retention: the job finished.
func requireKeysExpire(t *testing.T, b *testBundle, name string, retention time.Duration) {
	t.Helper()
	ttls := b.ttls(t, name)
	if _, ok := ttls["job"]; !ok {
		t.Fatalf("job %q has no job hash; keys: %v", name, ttls)
	}
	for k, ttl := range ttls {
		if ttl <= retention-time.Minute || ttl > retention {
			t.Fatalf("key %s of job %q has TTL %v, want about %v", k, name, ttl, retention)
		}
	}
}

// requireUnfinished checks that the job is running and not finished.
func requireUnfinished(t *testing.T, b *testBundle, name string) checkpoint.Job {
	t.Helper()
	j := b.job(t, name)
	if !j.FinishedAt.IsZero() || j.State != checkpoint.StateRunning {
		t.Fatalf("job %q: FinishedAt %v state %q, want unfinished and running", name, j.FinishedAt, j.State)
	}
	requireKeysPersist(t, b, name)
	return j
}

// requireFinishedAt checks that the job finished at the given time in state.
func requireFinishedAt(t *testing.T, b *testBundle, name string, at time.Time, state checkpoint.State) checkpoint.Job {
	t.Helper()
	j := b.job(t, name)
	if !j.FinishedAt.Equal(at) || j.State != state {
		t.Fatalf("job %q: FinishedAt %v state %q, want %v %q", name, j.FinishedAt, j.State, at, state)
	}
	requireKeysExpire(t, b, name, j.Policy.Retention)
	return j
}

func (b *testBundle) submitting(t *testing.T, name string, until time.Time) {
	t.Helper()
	if err := b.store.Submitting(b.ctx, name, until); err != nil {
		t.Fatalf("Submitting(%q, %v): %v", name, until, err)
	}
}

func (b *testBundle) seal(t *testing.T, name string) {
	t.Helper()
	if err := b.store.Seal(b.ctx, name); err != nil {
		t.Fatalf("Seal(%q): %v", name, err)
	}
}

func TestSubmitting(t *testing.T) {
	t.Parallel()

	t.Run("HoldKeepsJobOpenUntilSeal", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", testPolicy())
		until := t0.Add(time.Minute)
		b.submitting(t, "j1", until)
		if j := b.job(t, "j1"); !j.SubmittingUntil.Equal(until) {
			t.Fatalf("SubmittingUntil = %v, want %v", j.SubmittingUntil, until)
		}

		// Workers catch up with the first batch: every item ends, one of
		// them with the commit, one with the failure.
		b.record(t, "j1", "a", "b")
		b.failItem(t, "j1", "b", checkpoint.Failure{Class: "bad_request"})
		b.finishItem(t, "j1", "a")
		b.requireCounts(t, "j1", counts{total: 2, done: 1, failed: 1})
		requireUnfinished(t, b, "j1")

		at := b.clock.Advance(10 * time.Second) // still within the hold
		b.seal(t, "j1")
		j := requireFinishedAt(t, b, "j1", at, checkpoint.StateDone)
		if !j.SubmittingUntil.IsZero() {
			t.Fatalf("SubmittingUntil after Seal = %v, want zero", j.SubmittingUntil)
		}

		// A second Seal changes nothing.
		b.clock.Advance(time.Second)
		b.seal(t, "j1")
		requireFinishedAt(t, b, "j1", at, checkpoint.StateDone)
	})

	t.Run("RefreshedHoldKeepsHolding", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", testPolicy())
		b.submitting(t, "j1", t0.Add(time.Minute))
		b.record(t, "j1", "a", "b")
		b.finishItem(t, "j1", "a")

		b.clock.Advance(30 * time.Second)
		b.submitting(t, "j1", t0.Add(3*time.Minute)) // the producer refreshes it
		b.clock.Advance(90 * time.Second)            // past the first until, before the second
		b.finishItem(t, "j1", "b")
		j := requireUnfinished(t, b, "j1")
		if want := t0.Add(3 * time.Minute); !j.SubmittingUntil.Equal(want) {
			t.Fatalf("SubmittingUntil = %v, want the refreshed %v", j.SubmittingUntil, want)
		}
	})

	t.Run("LapsedHoldDoesNotBlockNextCommit", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", testPolicy())
		b.submitting(t, "j1", t0.Add(time.Minute))
		b.record(t, "j1", "a", "b")
		b.finishItem(t, "j1", "a")
		requireUnfinished(t, b, "j1")

		// The producer dies without sealing; the hold lapses.
		at := b.clock.Advance(2 * time.Minute)
		b.finishItem(t, "j1", "b")
		requireFinishedAt(t, b, "j1", at, checkpoint.StateDone)
	})

	t.Run("LapsedHoldDoesNotBlockNextFail", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", testPolicy())
		b.submitting(t, "j1", t0.Add(time.Minute))
		b.record(t, "j1", "a", "b")
		b.finishItem(t, "j1", "a")

		at := b.clock.Advance(2 * time.Minute)
		b.failItem(t, "j1", "b", checkpoint.Failure{Class: "bad_request"})
		requireFinishedAt(t, b, "j1", at, checkpoint.StateDone)
	})

	t.Run("LapsedHoldFinishedBySeal", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", testPolicy())
		b.submitting(t, "j1", t0.Add(time.Minute))
		b.record(t, "j1", "a", "b")
		b.finishItem(t, "j1", "a")
		b.finishItem(t, "j1", "b")
		requireUnfinished(t, b, "j1")

		// Every item ended while held, then the producer died: nothing
		// finishes the job by itself; a Seal (status does one) does.
		b.clock.Advance(2 * time.Minute)
		requireUnfinished(t, b, "j1")
		at := b.clock.Advance(time.Second)
		b.seal(t, "j1")
		requireFinishedAt(t, b, "j1", at, checkpoint.StateDone)
	})

	t.Run("SealOfUnfinishedJobOnlyEndsHold", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", testPolicy())
		b.submitting(t, "j1", t0.Add(time.Hour))
		b.record(t, "j1", "a", "b")
		b.finishItem(t, "j1", "a")
		b.seal(t, "j1")
		if j := requireUnfinished(t, b, "j1"); !j.SubmittingUntil.IsZero() {
			t.Fatalf("SubmittingUntil after Seal = %v, want zero", j.SubmittingUntil)
		}

		// With the hold gone, the last item finishes the job at once.
		at := b.clock.Advance(time.Second)
		b.finishItem(t, "j1", "b")
		requireFinishedAt(t, b, "j1", at, checkpoint.StateDone)
	})

	t.Run("MissingJob", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		if err := b.store.Submitting(b.ctx, "nope", t0.Add(time.Hour)); err != nil {
			t.Fatalf("Submitting(missing job) = %v, want nil", err)
		}
		if err := b.store.Seal(b.ctx, "nope"); err != nil {
			t.Fatalf("Seal(missing job) = %v, want nil", err)
		}
		if keys := b.jobKeys(t, "nope"); len(keys) != 0 {
			t.Fatalf("Submitting and Seal on a missing job wrote %v", keys)
		}
		if _, err := b.store.Job(b.ctx, "nope"); !errors.Is(err, checkpoint.ErrJobNotFound) {
			t.Fatalf("Job(missing) = %v, want ErrJobNotFound", err)
		}
	})
}
