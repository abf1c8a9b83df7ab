package checkpoint_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/llmfleet/llmfleet/checkpoint"
)

func (b *testBundle) addUsage(t *testing.T, job, model string, in, out int, costUSD float64) {
	t.Helper()
	if err := b.store.AddUsage(b.ctx, job, model, in, out, costUSD); err != nil {
		t.Fatalf("AddUsage(%q, %q): %v", job, model, err)
	}
}

func TestAddUsage(t *testing.T) {
	t.Parallel()

	t.Run("CountsTokensAndCostNotItems", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", testPolicy())
		b.record(t, "j1", "a")

		// An invalid answer was paid for but not kept.
		b.addUsage(t, "j1", "gpt-x", 100, 50, 0.25)
		j := b.job(t, "j1")
		if got, want := j.Spend(), (checkpoint.Spend{TokensIn: 100, TokensOut: 50, CostMicros: 250_000}); got != want {
			t.Fatalf("Spend after AddUsage = %+v, want %+v", got, want)
		}
		if got, want := j.Models["gpt-x"], (checkpoint.ModelUsage{TokensIn: 100, TokensOut: 50, CostUSD: 0.25}); got != want {
			t.Fatalf("Models[gpt-x] after AddUsage = %+v, want %+v (no item)", got, want)
		}
		if len(j.Models) != 1 {
			t.Fatalf("Models = %+v, want only gpt-x", j.Models)
		}
		b.requireCounts(t, "j1", counts{total: 1, pending: 1})

		// The retry's answer is kept: the item counts once, the usage adds up.
		c := b.claim(t, "j1", "a", "ta")
		if want := (checkpoint.Spend{TokensIn: 100, TokensOut: 50, CostMicros: 250_000}); c.Spend != want {
			t.Fatalf("Claim Spend = %+v, want %+v", c.Spend, want)
		}
		r := result("a", "ok")
		r.Model, r.TokensIn, r.TokensOut, r.CostUSD = "gpt-x", 10, 20, 0.5
		if out := b.commit(t, "j1", "ta", r); out != checkpoint.Committed1 {
			t.Fatalf("Commit = %q, want committed", out)
		}
		j = b.job(t, "j1")
		if got, want := j.Spend(), (checkpoint.Spend{TokensIn: 110, TokensOut: 70, CostMicros: 750_000}); got != want {
			t.Fatalf("Spend after Commit = %+v, want %+v", got, want)
		}
		if got, want := j.Models["gpt-x"], (checkpoint.ModelUsage{Items: 1, TokensIn: 110, TokensOut: 70, CostUSD: 0.75}); got != want {
			t.Fatalf("Models[gpt-x] after Commit = %+v, want %+v", got, want)
		}
		if got := j.Spend().CostUSD(); got != 0.75 {
			t.Fatalf("Spend().CostUSD() = %v, want 0.75", got)
		}

		// Usage after the end (a late invalid answer) still counts, without
		// an item.
		b.addUsage(t, "j1", "gpt-x", 1, 2, 0.000_001)
		if got, want := b.job(t, "j1").Models["gpt-x"], (checkpoint.ModelUsage{Items: 1, TokensIn: 111, TokensOut: 72, CostUSD: 0.750_001}); got != want {
			t.Fatalf("Models[gpt-x] after a late AddUsage = %+v, want %+v", got, want)
		}
	})

	t.Run("PerModel", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", testPolicy())
		b.record(t, "j1", "a", "b")
		b.addUsage(t, "j1", "small", 10, 1, 0.001)
		b.addUsage(t, "j1", "vendor:big:v2", 20, 2, 0.002) // colons in a model name
		b.addUsage(t, "j1", "small", 30, 3, 0.003)

		b.claim(t, "j1", "b", "tb")
		r := result("b", "ok")
		r.Model, r.TokensIn, r.TokensOut, r.CostUSD = "vendor:big:v2", 5, 6, 0.01
		b.commit(t, "j1", "tb", r)

		j := b.job(t, "j1")
		want := map[string]checkpoint.ModelUsage{
			"small":         {TokensIn: 40, TokensOut: 4, CostUSD: 0.004},
			"vendor:big:v2": {Items: 1, TokensIn: 25, TokensOut: 8, CostUSD: 0.012},
		}
		if len(j.Models) != len(want) {
			t.Fatalf("Models = %+v, want %+v", j.Models, want)
		}
		for m, w := range want {
			if got := j.Models[m]; got != w {
				t.Fatalf("Models[%q] = %+v, want %+v", m, got, w)
			}
		}
		if got, want := j.Spend(), (checkpoint.Spend{TokensIn: 65, TokensOut: 12, CostMicros: 16_000}); got != want {
			t.Fatalf("Spend = %+v, want %+v", got, want)
		}
	})

	t.Run("DuplicateCommitAddsNothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", testPolicy())
		b.record(t, "j1", "a")
		b.claim(t, "j1", "a", "ta")
		r := result("a", "first")
		r.CostUSD = 0.02
		b.commit(t, "j1", "ta", r)
		before := b.job(t, "j1")

		r.Output, r.CostUSD = "second", 5
		if out := b.commit(t, "j1", "ta", r); out != checkpoint.CommitDuplicate {
			t.Fatalf("second Commit = %q, want duplicate", out)
		}
		j := b.job(t, "j1")
		if j.Spend() != before.Spend() || j.Models["gpt-test"] != before.Models["gpt-test"] {
			t.Fatalf("after a duplicate: spend %+v models %+v, want %+v %+v", j.Spend(), j.Models, before.Spend(), before.Models)
		}
		if got := j.Models["gpt-test"]; got.Items != 1 || got.CostUSD != 0.02 {
			t.Fatalf("Models[gpt-test] = %+v, want 1 item costing 0.02", got)
		}
	})

	t.Run("MissingJob", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		if err := b.store.AddUsage(b.ctx, "nope", "gpt-x", 1, 2, 0.5); err != nil {
			t.Fatalf("AddUsage(missing job) = %v, want nil", err)
		}
		if keys := b.jobKeys(t, "nope"); len(keys) != 0 {
			t.Fatalf("AddUsage on a missing job wrote %v", keys)
		}
	})
}

func TestOverBudget(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name   string
		p      checkpoint.Policy
		s      checkpoint.Spend
		prefix string // "" = within budget
	}{
		{"no budgets", checkpoint.Policy{}, checkpoint.Spend{TokensIn: 1e12, TokensOut: 1e12, CostMicros: 1e12}, ""},
		{"tokens below", checkpoint.Policy{BudgetTokens: 100}, checkpoint.Spend{TokensIn: 60, TokensOut: 39}, ""},
		{"tokens reached", checkpoint.Policy{BudgetTokens: 100}, checkpoint.Spend{TokensIn: 60, TokensOut: 40}, "token budget reached: 100 of 100"},
		{"tokens passed", checkpoint.Policy{BudgetTokens: 100}, checkpoint.Spend{TokensIn: 0, TokensOut: 150}, "token budget reached: 150 of 100"},
		{"cost ignored by token budget", checkpoint.Policy{BudgetTokens: 100}, checkpoint.Spend{TokensIn: 1, CostMicros: 1e12}, ""},
		{"usd below", checkpoint.Policy{BudgetUSD: 0.3}, checkpoint.Spend{CostMicros: 299_999}, ""},
		{"usd reached", checkpoint.Policy{BudgetUSD: 0.3}, checkpoint.Spend{CostMicros: 300_000}, "cost budget reached: $0.3000 of $0.3000"},
		{"usd passed", checkpoint.Policy{BudgetUSD: 2}, checkpoint.Spend{CostMicros: 2_500_000}, "cost budget reached: $2.5000 of $2.0000"},
		{"tokens ignored by usd budget", checkpoint.Policy{BudgetUSD: 1}, checkpoint.Spend{TokensIn: 1e12, CostMicros: 1}, ""},
		{"both, tokens reached", checkpoint.Policy{BudgetTokens: 10, BudgetUSD: 1}, checkpoint.Spend{TokensIn: 10}, "token budget"},
		{"both, usd reached", checkpoint.Policy{BudgetTokens: 10, BudgetUSD: 1}, checkpoint.Spend{TokensIn: 9, CostMicros: 1_000_000}, "cost budget"},
		{"both, below", checkpoint.Policy{BudgetTokens: 10, BudgetUSD: 1}, checkpoint.Spend{TokensIn: 9, CostMicros: 999_999}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := tt.p.OverBudget(tt.s)
			if tt.prefix == "" {
				if got != "" {
					t.Fatalf("OverBudget(%+v) = %q, want \"\"", tt.s, got)
				}
				return
			}
			if !strings.HasPrefix(got, tt.prefix) {
				t.Fatalf("OverBudget(%+v) = %q, want it to start with %q", tt.s, got, tt.prefix)
			}
		})
	}

	t.Run("UsdBudgetReachedBySmallCalls", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		p := testPolicy()
		p.BudgetUSD = 0.3
		b.open(t, "j1", p)
		// Costs add up in micro-dollars: three calls of $0.1 reach $0.3
		// exactly, where float sums would fall short.
		for i := range 3 {
			if reason := b.job(t, "j1").Policy.OverBudget(b.job(t, "j1").Spend()); reason != "" {
				t.Fatalf("after %d calls of $0.1: OverBudget = %q, want \"\"", i, reason)
			}
			b.addUsage(t, "j1", "gpt-test", 1, 1, 0.1)
		}
		j := b.job(t, "j1")
		if reason := j.Policy.OverBudget(j.Spend()); !strings.HasPrefix(reason, "cost budget reached") {
			t.Fatalf("after 3 calls of $0.1 (spend %+v): OverBudget = %q, want the cost budget", j.Spend(), reason)
		}
	})

	t.Run("TokenBudgetReachedByCommits", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		p := testPolicy()
		p.BudgetTokens = 60 // result() uses 10 in + 20 out
		b.open(t, "j1", p)
		b.record(t, "j1", "a", "b")
		b.finishItem(t, "j1", "a")
		if j := b.job(t, "j1"); j.Policy.OverBudget(j.Spend()) != "" {
			t.Fatalf("30 of 60 tokens: OverBudget = %q, want \"\"", j.Policy.OverBudget(j.Spend()))
		}
		b.finishItem(t, "j1", "b")
		if j := b.job(t, "j1"); !strings.HasPrefix(j.Policy.OverBudget(j.Spend()), "token budget reached: 60 of 60") {
			t.Fatalf("60 of 60 tokens: OverBudget = %q, want the token budget", j.Policy.OverBudget(j.Spend()))
		}
	})
}

func TestClaimReplay(t *testing.T) {
	t.Parallel()

	// failedJob runs a one-item job to its end: a's attempts made two
	// calls, left a last error, and failed with an archived task. The job
	// finished.
	failedJob := func(t *testing.T, b *testBundle) checkpoint.Job {
		t.Helper()
		b.open(t, "j1", testPolicy())
		b.record(t, "j1", "a")
		b.claim(t, "j1", "a", "t1")
		if _, err := b.store.StartCall(b.ctx, "j1", "a", "t1", 3); err != nil {
			t.Fatalf("StartCall: %v", err)
		}
		if err := b.store.Release(b.ctx, "j1", "a", "t1", &checkpoint.Failure{Class: "server_error", Reason: "503"}); err != nil {
			t.Fatalf("Release: %v", err)
		}
		b.claim(t, "j1", "a", "t2")
		if _, err := b.store.StartCall(b.ctx, "j1", "a", "t2", 3); err != nil {
			t.Fatalf("StartCall: %v", err)
		}
		f := checkpoint.Failure{Class: "server_error", Reason: "503 again", Attempts: 2, Archived: true}
		if ok, err := b.store.Fail(b.ctx, "j1", "a", "t2", f); err != nil || !ok {
			t.Fatalf("Fail = %v, %v", ok, err)
		}
		j := requireFinishedAt(t, b, "j1", t0, checkpoint.StateDone)
		if j.Failed != 1 {
			t.Fatalf("Failed = %d, want 1", j.Failed)
		}
		return j
	}

	t.Run("ClaimNeverReplays", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		before := failedJob(t, b)

		b.clock.Advance(time.Minute)
		c, err := b.store.Claim(b.ctx, "j1", "a", "t3")
		if err != nil {
			t.Fatalf("Claim(failed item): %v", err)
		}
		if c.Verdict != "failed" || c.Replayed || c.Input != nil {
			t.Fatalf("Claim(failed item) = %+v, want verdict failed, not replayed", c)
		}
		b.requireCounts(t, "j1", counts{total: 1, failed: 1})
		requireFinishedAt(t, b, "j1", before.FinishedAt, checkpoint.StateDone)
		v := b.item(t, "j1", "a")
		if v.Status != checkpoint.ItemFailed || v.Calls != 2 || v.Failure == nil || !v.Failure.Archived || v.LastErr == nil {
			t.Fatalf("Item(a) = %+v (failure %+v), want failed with its 2 calls, record and last error", v, v.Failure)
		}
		if _, err := b.store.StartCall(b.ctx, "j1", "a", "t3", 3); !errors.Is(err, checkpoint.ErrClaimLost) {
			t.Fatalf("StartCall after a refused Claim = %v, want ErrClaimLost", err)
		}
	})

	t.Run("ReplaysFailedItem", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		failedJob(t, b)

		b.clock.Advance(time.Minute)
		c, err := b.store.ClaimReplay(b.ctx, "j1", "a", "t3")
		if err != nil {
			t.Fatalf("ClaimReplay: %v", err)
		}
		if c.Verdict != "ok" || !c.Replayed || c.Calls != 0 || c.LastErr != nil || c.State != checkpoint.StateRunning {
			t.Fatalf("ClaimReplay = verdict %q replayed %v calls %d lasterr %+v state %q, want ok, replayed, 0 calls, no last error, running",
				c.Verdict, c.Replayed, c.Calls, c.LastErr, c.State)
		}
		j := b.requireCounts(t, "j1", counts{total: 1, active: 1})
		if !j.FinishedAt.IsZero() || j.State != checkpoint.StateRunning {
			t.Fatalf("job after ClaimReplay: FinishedAt %v state %q, want reopened and running", j.FinishedAt, j.State)
		}
		requireKeysPersist(t, b, "j1")
		v := b.item(t, "j1", "a")
		if v.Status != checkpoint.ItemActive || v.Calls != 0 || v.Failure != nil || v.LastErr != nil {
			t.Fatalf("Item(a) = %+v (failure %+v), want active, no calls, no failure, no last error", v, v.Failure)
		}

		// A fresh budget, held by the replaying attempt.
		if n, err := b.store.StartCall(b.ctx, "j1", "a", "t3", 3); err != nil || n != 1 {
			t.Fatalf("StartCall after the replay = %d, %v, want 1, nil", n, err)
		}
		if _, err := b.store.StartCall(b.ctx, "j1", "a", "t2", 3); !errors.Is(err, checkpoint.ErrClaimLost) {
			t.Fatalf("StartCall by the old attempt = %v, want ErrClaimLost", err)
		}
		at := b.clock.Advance(time.Second)
		if out := b.commit(t, "j1", "t3", result("a", "second time lucky")); out != checkpoint.Committed1 {
			t.Fatalf("Commit = %q, want committed", out)
		}
		b.requireCounts(t, "j1", counts{total: 1, done: 1})
		requireFinishedAt(t, b, "j1", at, checkpoint.StateDone)
	})

	t.Run("ReplayOfExpiredJobRunsAgain", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		p := testPolicy()
		p.Deadline = t0.Add(time.Hour)
		b.open(t, "j1", p)
		b.record(t, "j1", "a")
		b.clock.Advance(2 * time.Hour)
		b.failItem(t, "j1", "a", checkpoint.Failure{Class: "timeout", Archived: true})
		requireFinishedAt(t, b, "j1", b.clock.Now(), checkpoint.StateExpired)

		c, err := b.store.ClaimReplay(b.ctx, "j1", "a", "t9")
		if err != nil || c.Verdict != "ok" || !c.Replayed {
			t.Fatalf("ClaimReplay = %+v, %v, want ok and replayed", c, err)
		}
		if got := b.storedState(t, "j1"); got != "running" {
			t.Fatalf("stored state after the replay = %q, want running", got)
		}
		requireKeysPersist(t, b, "j1")
	})

	t.Run("DoneItem", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", testPolicy())
		b.record(t, "j1", "a", "b")
		b.finishItem(t, "j1", "a")
		c, err := b.store.ClaimReplay(b.ctx, "j1", "a", "t2")
		if err != nil || c.Verdict != "done" || c.Replayed || c.Input != nil {
			t.Fatalf("ClaimReplay(done item) = %+v, %v, want verdict done, not replayed", c, err)
		}
		j := b.requireCounts(t, "j1", counts{total: 2, done: 1, pending: 1})
		if j.Duplicates != 0 {
			t.Fatalf("Duplicates = %d, want 0", j.Duplicates)
		}
		if got := storedOutput(t, b, "j1", "a"); got != "out-a" {
			t.Fatalf("stored output = %q, want out-a", got)
		}
	})

	t.Run("PendingItemIsPlainClaim", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", testPolicy())
		b.record(t, "j1", "a", "b")
		c, err := b.store.ClaimReplay(b.ctx, "j1", "a", "t1")
		if err != nil || c.Verdict != "ok" || c.Replayed {
			t.Fatalf("ClaimReplay(pending item) = %+v, %v, want ok, not replayed", c, err)
		}
		b.requireCounts(t, "j1", counts{total: 2, active: 1, pending: 1})
	})

	t.Run("UnknownItemAndMissingJob", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", testPolicy())
		b.record(t, "j1", "a")
		if c, err := b.store.ClaimReplay(b.ctx, "j1", "zzz", "t"); err != nil || c.Verdict != "unknown" {
			t.Fatalf("ClaimReplay(unknown item) = %+v, %v, want verdict unknown", c, err)
		}
		if c, err := b.store.ClaimReplay(b.ctx, "nope", "a", "t"); err != nil || c.Verdict != "missing" {
			t.Fatalf("ClaimReplay(missing job) = %+v, %v, want verdict missing", c, err)
		}
		if keys := b.jobKeys(t, "nope"); len(keys) != 0 {
			t.Fatalf("ClaimReplay on a missing job wrote %v", keys)
		}
		b.requireCounts(t, "j1", counts{total: 1, pending: 1})
	})
}
