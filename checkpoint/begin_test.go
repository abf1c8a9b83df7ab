package checkpoint_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llmfleet/llmfleet/checkpoint"
)

func (b *testBundle) begin(t *testing.T, job, id, token string) checkpoint.Claimed {
	t.Helper()
	c, err := b.store.Begin(b.ctx, job, id, token, false)
	if err != nil {
		t.Fatalf("Begin(%q, %q): %v", id, token, err)
	}
	return c
}

func TestBegin(t *testing.T) {
	t.Parallel()

	t.Run("ClaimsAndCountsTheCall", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", testPolicy())
		b.record(t, "j1", "a")
		c := b.begin(t, "j1", "a", "t1")
		if c.Verdict != checkpoint.VerdictClaimed || c.Calls != 0 || c.Call != 1 || string(c.Input) != string(canonical("a")) {
			t.Fatalf("Begin = %+v, want claimed, 0 calls before, call 1 and the input", c)
		}
		if c.Policy.Model != "gpt-test" || c.State != checkpoint.StateRunning {
			t.Fatalf("Begin policy %q state %q, want the job's", c.Policy.Model, c.State)
		}
		j := b.requireCounts(t, "j1", counts{total: 1, active: 1})
		if j.ProviderCalls != 1 || j.StartedAt.IsZero() {
			t.Fatalf("provider_calls %d started_at %s, want 1 and set", j.ProviderCalls, j.StartedAt)
		}
		// The claim is this attempt's: another token cannot release it.
		if err := b.store.ReleaseUnsent(b.ctx, "j1", "a", "other"); !errors.Is(err, checkpoint.ErrClaimLost) {
			t.Fatalf("ReleaseUnsent by another token = %v, want ErrClaimLost", err)
		}
	})

	t.Run("UnsentCallsAreGivenBack", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", testPolicy()) // 3 attempts
		b.record(t, "j1", "a", "f")
		// Waits (limiter, breaker, budget) never spend the budget.
		for i := range 10 {
			tok := fmt.Sprint("w", i)
			if c := b.begin(t, "j1", "a", tok); c.Call != 1 {
				t.Fatalf("Begin #%d: call %d, want 1 (waits spend nothing)", i, c.Call)
			}
			if err := b.store.ReleaseUnsent(b.ctx, "j1", "a", tok); err != nil {
				t.Fatalf("ReleaseUnsent: %v", err)
			}
		}
		j := b.requireCounts(t, "j1", counts{total: 2, pending: 2})
		if j.ProviderCalls != 0 {
			t.Fatalf("provider_calls = %d after waits only, want 0", j.ProviderCalls)
		}
		// A failure before the call (the prompt cannot fit) gives it back too.
		b.begin(t, "j1", "f", "tf")
		if ok, err := b.store.FailUnsent(b.ctx, "j1", "f", "tf", checkpoint.Failure{Class: "context_overflow"}); err != nil || !ok {
			t.Fatalf("FailUnsent = %v, %v", ok, err)
		}
		j = b.requireCounts(t, "j1", counts{total: 2, failed: 1, pending: 1})
		if v := b.item(t, "j1", "f"); v.Calls != 0 || j.ProviderCalls != 0 {
			t.Fatalf("after FailUnsent: item calls %d, provider_calls %d, want 0 and 0", v.Calls, j.ProviderCalls)
		}
	})

	t.Run("SpentBudgetStartsNothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", testPolicy()) // 3 attempts
		b.record(t, "j1", "a")
		for want := 1; want <= 3; want++ {
			tok := fmt.Sprint("t", want)
			if c := b.begin(t, "j1", "a", tok); c.Call != want || c.Calls != want-1 {
				t.Fatalf("Begin #%d = calls %d call %d, want %d and %d", want, c.Calls, c.Call, want-1, want)
			}
			if err := b.store.Release(b.ctx, "j1", "a", tok, &checkpoint.Failure{Class: "server_error"}); err != nil {
				t.Fatalf("Release: %v", err)
			}
		}
		c := b.begin(t, "j1", "a", "t4")
		if c.Verdict != checkpoint.VerdictClaimed || c.Call != 0 || c.Calls != 3 || c.LastErr == nil || c.LastErr.Class != "server_error" {
			t.Fatalf("Begin past the budget = %+v, want claimed without a call, 3 calls and the last error", c)
		}
		if j := b.job(t, "j1"); j.ProviderCalls != 3 {
			t.Fatalf("provider_calls = %d, want 3", j.ProviderCalls)
		}
	})

	t.Run("LoweredBudgetOnRerunIsHonoured", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		p := testPolicy()
		b.open(t, "j1", p)
		b.record(t, "j1", "a")
		b.begin(t, "j1", "a", "t1")
		if err := b.store.Release(b.ctx, "j1", "a", "t1", nil); err != nil {
			t.Fatal(err)
		}
		p.MaxAttempts = 1
		if err := b.store.UpdatePolicy(b.ctx, "j1", p); err != nil {
			t.Fatal(err)
		}
		if c := b.begin(t, "j1", "a", "t2"); c.Call != 0 {
			t.Fatalf("Begin after lowering --max-attempts to 1 = call %d, want none", c.Call)
		}
	})

	t.Run("CancelledOrPastDeadlineStartsNothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		p := testPolicy()
		p.Deadline = t0.Add(time.Minute)
		b.open(t, "late", p)
		b.record(t, "late", "a")
		b.clock.Advance(time.Minute)
		if c := b.begin(t, "late", "a", "t1"); c.Verdict != checkpoint.VerdictClaimed || c.Call != 0 {
			t.Fatalf("Begin at the deadline = %+v, want claimed without a call", c)
		}
		b.open(t, "gone", testPolicy())
		b.record(t, "gone", "a", "b")
		b.begin(t, "gone", "a", "ta") // active: cancel leaves it to its attempt
		if _, err := b.store.Cancel(b.ctx, "gone"); err != nil {
			t.Fatal(err)
		}
		c := b.begin(t, "gone", "a", "ta2")
		if c.Verdict != checkpoint.VerdictClaimed || c.Call != 0 || c.State != checkpoint.StateCancelled {
			t.Fatalf("Begin in a cancelled job = %+v, want claimed without a call, state cancelled", c)
		}
		if j := b.job(t, "gone"); j.ProviderCalls != 1 {
			t.Fatalf("provider_calls = %d, want the 1 call started before the cancel", j.ProviderCalls)
		}
	})

	t.Run("VerdictsOfDoneFailedUnknownAndMissing", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", testPolicy())
		b.record(t, "j1", "d", "f")
		b.finishItem(t, "j1", "d")
		b.failItem(t, "j1", "f", checkpoint.Failure{Class: "bad_request"})
		for id, want := range map[string]checkpoint.Verdict{"d": checkpoint.VerdictDone, "f": checkpoint.VerdictFailed, "zzz": checkpoint.VerdictUnknown} {
			if c := b.begin(t, "j1", id, "again"); c.Verdict != want || c.Call != 0 {
				t.Fatalf("Begin(%q) = %+v, want %q and no call", id, c, want)
			}
		}
		if c := b.begin(t, "nosuchjob", "a", "t"); c.Verdict != checkpoint.VerdictMissing {
			t.Fatalf("Begin in a deleted job = %q, want missing", c.Verdict)
		}
		b.requireCounts(t, "j1", counts{total: 2, done: 1, failed: 1})
	})
}

// Concurrent Begins and Commits of one job share script runs; every item is
// claimed once, committed once, and the counts add up.
func TestCoalescedTransitions(t *testing.T) {
	t.Parallel()
	for _, linger := range []time.Duration{0, checkpoint.DefaultLinger} {
		t.Run(fmt.Sprint("linger=", linger), func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			store := b.store.WithLinger(linger)
			b.open(t, "j1", testPolicy())
			ids := itemIDs(500)
			b.record(t, "j1", ids...)

			var wg sync.WaitGroup
			errs := make(chan error, len(ids))
			sem := make(chan struct{}, 64)
			for _, id := range ids {
				sem <- struct{}{}
				wg.Go(func() {
					defer func() { <-sem }()
					tok := "tok-" + id
					c, err := store.Begin(b.ctx, "j1", id, tok, false)
					switch {
					case err != nil:
						errs <- err
						return
					case c.Verdict != checkpoint.VerdictClaimed || c.Call != 1 || string(c.Input) != string(canonical(id)):
						errs <- fmt.Errorf("Begin(%q) = %+v, want claimed with call 1 and its own input", id, c)
						return
					}
					out, err := store.Commit(b.ctx, "j1", tok, result(id, "out-"+id))
					if err != nil || out != checkpoint.Committed1 {
						errs <- fmt.Errorf("Commit(%q) = %q, %v", id, out, err)
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			j := b.requireCounts(t, "j1", counts{total: 500, done: 500})
			if j.ProviderCalls != 500 || j.TokensIn != 500*10 || j.TokensOut != 500*20 || j.Models["gpt-test"].Items != 500 {
				t.Fatalf("job = calls %d, tokens %d/%d, model items %d; want 500, 5000/10000, 500", j.ProviderCalls, j.TokensIn, j.TokensOut, j.Models["gpt-test"].Items)
			}
			if j.FinishedAt.IsZero() || j.State != checkpoint.StateDone {
				t.Fatalf("job state %q finished %s, want done", j.State, j.FinishedAt)
			}
			// A second commit of the same items is a duplicate, batched or not.
			var dup sync.WaitGroup
			for _, id := range ids[:50] {
				dup.Go(func() {
					if out, err := store.Commit(b.ctx, "j1", "late", result(id, "again")); err != nil || out != checkpoint.CommitDuplicate {
						t.Errorf("second Commit(%q) = %q, %v, want duplicate", id, out, err)
					}
				})
			}
			dup.Wait()
			if j := b.requireCounts(t, "j1", counts{total: 500, done: 500}); j.Duplicates != 50 {
				t.Fatalf("duplicates = %d, want 50", j.Duplicates)
			}
			if v := b.item(t, "j1", ids[7]); !strings.Contains(string(v.Result), `"output":"out-`+ids[7]+`"`) {
				t.Fatalf("result of %q = %s, want the first commit's", ids[7], v.Result)
			}
		})
	}
}
