package checkpoint_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/llmfleet/llmfleet/checkpoint"
)

func TestValidateJobName(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name    string
		job     string
		wantErr bool
	}{
		{"one letter", "a", false},
		{"one digit", "7", false},
		{"dashes dots underscores", "Batch_2030-03.v2", false},
		{"100 characters", strings.Repeat("a", 100), false},
		{"empty", "", true},
		{"101 characters", strings.Repeat("a", 101), true},
		{"open brace", "a{b", true},
		{"close brace", "a}b", true},
		{"hash tag", "{job}", true},
		{"colon", "a:b", true},
		{"space", "a b", true},
		{"trailing newline", "a\n", true},
		{"leading dash", "-a", true},
		{"leading dot", ".a", true},
		{"non-ASCII", "jöb", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := checkpoint.ValidateJobName(tt.job)
			if tt.wantErr {
				if !errors.Is(err, checkpoint.ErrBadJobName) {
					t.Fatalf("ValidateJobName(%q) = %v, want ErrBadJobName", tt.job, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ValidateJobName(%q) = %v, want nil", tt.job, err)
			}
		})
	}
}

func TestOpen(t *testing.T) {
	t.Parallel()

	t.Run("CreatesRunningJobWithPolicy", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		p := testPolicy()
		p.Deadline = t0.Add(time.Hour)

		j := b.open(t, "j1", p)
		if j.Name != "j1" || j.State != checkpoint.StateRunning {
			t.Fatalf("Open = name %q state %q, want j1 running", j.Name, j.State)
		}
		if !samePolicy(j.Policy, p) {
			t.Fatalf("Open policy = %+v, want %+v", j.Policy, p)
		}
		if !j.CreatedAt.Equal(t0) {
			t.Fatalf("CreatedAt = %v, want %v", j.CreatedAt, t0)
		}
		if !j.StartedAt.IsZero() || !j.FinishedAt.IsZero() {
			t.Fatalf("StartedAt, FinishedAt = %v, %v, want zero", j.StartedAt, j.FinishedAt)
		}
		if got := countsOf(j); got != (counts{}) {
			t.Fatalf("counts = %+v, want zero", got)
		}
		if j.Finished() {
			t.Fatal("an empty job reports Finished")
		}
	})

	t.Run("SecondOpenReturnsStoredPolicy", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		p := testPolicy()
		b.open(t, "j1", p)

		other := testPolicy()
		other.Model = "another-model"
		other.MaxAttempts = 9
		j, created, err := b.store.Open(b.ctx, "j1", other)
		if err != nil {
			t.Fatalf("second Open: %v", err)
		}
		if created {
			t.Fatal("second Open: created = true")
		}
		if !samePolicy(j.Policy, p) {
			t.Fatalf("second Open policy = %+v, want the stored %+v", j.Policy, p)
		}
	})

	t.Run("BadName", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, _, err := b.store.Open(b.ctx, "a:{b}", testPolicy())
		if !errors.Is(err, checkpoint.ErrBadJobName) {
			t.Fatalf("Open(bad name) = %v, want ErrBadJobName", err)
		}
		if keys := b.rdb.Keys(b.ctx, "*").Val(); len(keys) != 0 {
			t.Fatalf("Open(bad name) wrote keys %v", keys)
		}
	})

	t.Run("JobsListsIt", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "alpha", testPolicy())
		b.open(t, "beta", testPolicy())
		b.record(t, "beta", "x", "y")

		jobs, err := b.store.Jobs(b.ctx)
		if err != nil {
			t.Fatalf("Jobs: %v", err)
		}
		got := map[string]int64{}
		for _, j := range jobs {
			got[j.Name] = j.Total
		}
		want := map[string]int64{"alpha": 0, "beta": 2}
		if len(got) != len(want) || got["alpha"] != 0 || got["beta"] != 2 {
			t.Fatalf("Jobs = %v (name → total), want %v", got, want)
		}
	})

	t.Run("JobsForgetsExpiredData", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "gone", testPolicy())
		b.open(t, "kept", testPolicy())
		// What the retention TTL does, without waiting for it.
		if err := b.rdb.Del(b.ctx, "llmfleet:{gone}:job").Err(); err != nil {
			t.Fatal(err)
		}

		jobs, err := b.store.Jobs(b.ctx)
		if err != nil {
			t.Fatalf("Jobs: %v", err)
		}
		if len(jobs) != 1 || jobs[0].Name != "kept" {
			t.Fatalf("Jobs = %v, want only kept", jobs)
		}
		if b.rdb.SIsMember(b.ctx, "llmfleet:jobs", "gone").Val() {
			t.Fatal("Jobs did not forget the expired job's name")
		}
	})

	t.Run("JobNotFound", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		if _, err := b.store.Job(b.ctx, "nope"); !errors.Is(err, checkpoint.ErrJobNotFound) {
			t.Fatalf("Job(missing) = %v, want ErrJobNotFound", err)
		}
	})

	t.Run("UpdatePolicyChangesDeadline", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		p := testPolicy()
		p.Deadline = t0.Add(time.Hour)
		b.open(t, "j1", p)

		p.Deadline = t0.Add(48 * time.Hour)
		p.MaxAttempts = 7
		if err := b.store.UpdatePolicy(b.ctx, "j1", p); err != nil {
			t.Fatalf("UpdatePolicy: %v", err)
		}
		j := b.job(t, "j1")
		if !samePolicy(j.Policy, p) {
			t.Fatalf("policy = %+v, want %+v", j.Policy, p)
		}
		// Past the old deadline, before the new one: still running.
		b.clock.Advance(2 * time.Hour)
		if j := b.job(t, "j1"); j.State != checkpoint.StateRunning {
			t.Fatalf("state after the old deadline = %q, want running", j.State)
		}
	})

	t.Run("RunningJobPastDeadlineReportsExpired", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		p := testPolicy()
		p.Deadline = t0.Add(time.Hour)
		b.open(t, "j1", p)
		b.record(t, "j1", "a")

		b.clock.Advance(time.Hour - time.Millisecond)
		if j := b.job(t, "j1"); j.State != checkpoint.StateRunning {
			t.Fatalf("state just before the deadline = %q, want running", j.State)
		}
		// At the deadline itself no call may start (StartCall agrees).
		b.clock.Advance(time.Millisecond)
		if j := b.job(t, "j1"); j.State != checkpoint.StateExpired {
			t.Fatalf("state at the deadline = %q, want expired", j.State)
		}
		jobs, err := b.store.Jobs(b.ctx)
		if err != nil || len(jobs) != 1 || jobs[0].State != checkpoint.StateExpired {
			t.Fatalf("Jobs = %+v, %v, want one expired job", jobs, err)
		}
	})

	t.Run("FinishedJobPastDeadlineReportsDone", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		p := testPolicy()
		p.Deadline = t0.Add(time.Hour)
		b.open(t, "j1", p)
		b.record(t, "j1", "a")
		b.finishItem(t, "j1", "a")

		b.clock.Advance(2 * time.Hour)
		if j := b.job(t, "j1"); j.State != checkpoint.StateDone {
			t.Fatalf("state of a finished job past its deadline = %q, want done", j.State)
		}
	})

	t.Run("ExpiredJobWithFutureDeadlineRunsAgain", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		p := testPolicy()
		p.Deadline = t0.Add(time.Hour)
		b.open(t, "j1", p)
		b.record(t, "j1", "a")

		b.clock.Advance(2 * time.Hour)
		if err := b.store.MarkExpired(b.ctx, "j1"); err != nil {
			t.Fatalf("MarkExpired: %v", err)
		}
		if got := b.rdb.HGet(b.ctx, "llmfleet:{j1}:job", "state").Val(); got != "expired" {
			t.Fatalf("stored state after MarkExpired = %q, want expired", got)
		}

		// A deadline that is still in the past keeps it expired.
		p.Deadline = t0.Add(90 * time.Minute)
		if err := b.store.UpdatePolicy(b.ctx, "j1", p); err != nil {
			t.Fatalf("UpdatePolicy: %v", err)
		}
		if j := b.job(t, "j1"); j.State != checkpoint.StateExpired {
			t.Fatalf("state with a past deadline = %q, want expired", j.State)
		}

		p.Deadline = b.clock.Now().Add(time.Hour)
		if err := b.store.UpdatePolicy(b.ctx, "j1", p); err != nil {
			t.Fatalf("UpdatePolicy: %v", err)
		}
		j := b.job(t, "j1")
		if j.State != checkpoint.StateRunning {
			t.Fatalf("state with a future deadline = %q, want running", j.State)
		}
		if !j.Policy.Deadline.Equal(p.Deadline) {
			t.Fatalf("deadline = %v, want %v", j.Policy.Deadline, p.Deadline)
		}
	})

	t.Run("ExpiredJobWithoutDeadlineRunsAgain", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		p := testPolicy()
		p.Deadline = t0.Add(time.Hour)
		b.open(t, "j1", p)
		b.clock.Advance(2 * time.Hour)
		if err := b.store.MarkExpired(b.ctx, "j1"); err != nil {
			t.Fatalf("MarkExpired: %v", err)
		}
		p.Deadline = time.Time{}
		if err := b.store.UpdatePolicy(b.ctx, "j1", p); err != nil {
			t.Fatalf("UpdatePolicy: %v", err)
		}
		if j := b.job(t, "j1"); j.State != checkpoint.StateRunning {
			t.Fatalf("state with the deadline removed = %q, want running", j.State)
		}
	})

	t.Run("MarkExpiredLeavesOtherStates", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", testPolicy())
		if _, err := b.store.Cancel(b.ctx, "j1"); err != nil {
			t.Fatalf("Cancel: %v", err)
		}
		if err := b.store.MarkExpired(b.ctx, "j1"); err != nil {
			t.Fatalf("MarkExpired: %v", err)
		}
		if j := b.job(t, "j1"); j.State != checkpoint.StateCancelled {
			t.Fatalf("state = %q, want cancelled", j.State)
		}
	})

	t.Run("MergeFieldsAndSetRejected", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", testPolicy())
		if err := b.store.MergeFields(b.ctx, "j1", []string{"text", "lang"}); err != nil {
			t.Fatalf("MergeFields: %v", err)
		}
		if err := b.store.MergeFields(b.ctx, "j1", []string{"lang", "topic", "text"}); err != nil {
			t.Fatalf("MergeFields: %v", err)
		}
		if err := b.store.SetRejected(b.ctx, "j1", 4); err != nil {
			t.Fatalf("SetRejected: %v", err)
		}
		j := b.job(t, "j1")
		if want := []string{"text", "lang", "topic"}; !slices.Equal(j.Fields, want) {
			t.Fatalf("Fields = %v, want %v", j.Fields, want)
		}
		if j.Rejected != 4 {
			t.Fatalf("Rejected = %d, want 4", j.Rejected)
		}
		if err := b.store.MergeFields(b.ctx, "missing", []string{"x"}); !errors.Is(err, checkpoint.ErrJobNotFound) {
			t.Fatalf("MergeFields(missing job) = %v, want ErrJobNotFound", err)
		}
	})
}

func TestRecord(t *testing.T) {
	t.Parallel()

	t.Run("NewItemsCountedInInputOrder", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", testPolicy())
		ids := []string{"zeta", "alpha", "mu", "beta", "omega"}
		b.record(t, "j1", ids...)
		b.record(t, "j1", "gamma")

		b.requireCounts(t, "j1", counts{total: 6, pending: 6})
		if got, want := walkIDs(t, b, "j1", checkpoint.Want{}), append(ids, "gamma"); !slices.Equal(got, want) {
			t.Fatalf("order = %v, want %v", got, want)
		}
		v := b.item(t, "j1", "mu")
		if v.Status != checkpoint.ItemPending || !bytes.Equal(v.Input, canonical("mu")) {
			t.Fatalf("Item(mu) = status %q input %s, want pending %s", v.Status, v.Input, canonical("mu"))
		}
	})

	t.Run("RecordingAgainReturnsStatus", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", testPolicy())
		ids := []string{"p", "a", "d", "f"}
		b.record(t, "j1", ids...)
		b.claim(t, "j1", "a", "tok")
		b.finishItem(t, "j1", "d")
		b.failItem(t, "j1", "f", checkpoint.Failure{Class: "bad_request", Reason: "400"})

		got, err := b.store.Record(b.ctx, "j1", entries(ids...))
		if err != nil {
			t.Fatalf("Record again: %v", err)
		}
		want := []checkpoint.Recorded{checkpoint.RecordedPending, checkpoint.RecordedActive, checkpoint.RecordedDone, checkpoint.RecordedFailed}
		if !slices.Equal(got, want) {
			t.Fatalf("Record again = %v, want %v", got, want)
		}
		b.requireCounts(t, "j1", counts{total: 4, done: 1, failed: 1, active: 1, pending: 1})
		if got := walkIDs(t, b, "j1", checkpoint.Want{}); !slices.Equal(got, ids) {
			t.Fatalf("order after re-recording = %v, want %v", got, ids)
		}
	})

	t.Run("DuplicateWithinOneBatch", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", testPolicy())
		got, err := b.store.Record(b.ctx, "j1", entries("a", "b", "a"))
		if err != nil {
			t.Fatalf("Record: %v", err)
		}
		want := []checkpoint.Recorded{checkpoint.RecordedNew, checkpoint.RecordedNew, checkpoint.RecordedPending}
		if !slices.Equal(got, want) {
			t.Fatalf("Record = %v, want %v", got, want)
		}
		b.requireCounts(t, "j1", counts{total: 2, pending: 2})
	})

	t.Run("SameIDDifferentContentConflicts", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", testPolicy())
		b.record(t, "j1", "a")

		changed := []checkpoint.Entry{{ID: "a", Canonical: []byte(`{"id":"a","prompt":"something else"}`)}}
		got, err := b.store.Record(b.ctx, "j1", changed)
		if err != nil {
			t.Fatalf("Record: %v", err)
		}
		if !slices.Equal(got, []checkpoint.Recorded{checkpoint.RecordedConflict}) {
			t.Fatalf("Record(changed a) = %v, want [conflict]", got)
		}
		b.requireCounts(t, "j1", counts{total: 1, pending: 1})
		if v := b.item(t, "j1", "a"); !bytes.Equal(v.Input, canonical("a")) {
			t.Fatalf("input of a = %s, want the first content %s", v.Input, canonical("a"))
		}
		if got := walkIDs(t, b, "j1", checkpoint.Want{}); !slices.Equal(got, []string{"a"}) {
			t.Fatalf("order = %v, want [a]", got)
		}
	})

	t.Run("LargerThanOneScriptBatch", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", testPolicy())
		// 3000 × 2 KiB ≈ 6 MiB: more than one 4 MiB script call.
		ids := itemIDs(3000)
		pad := strings.Repeat("x", 2048)
		es := make([]checkpoint.Entry, len(ids))
		for i, id := range ids {
			es[i] = checkpoint.Entry{ID: id, Canonical: []byte(`{"id":"` + id + `","prompt":"` + pad + `"}`)}
		}
		got, err := b.store.Record(b.ctx, "j1", es)
		if err != nil {
			t.Fatalf("Record: %v", err)
		}
		if len(got) != len(es) {
			t.Fatalf("Record returned %d outcomes, want %d", len(got), len(es))
		}
		for i, r := range got {
			if r != checkpoint.RecordedNew {
				t.Fatalf("outcome %d = %q, want new", i, r)
			}
		}
		b.requireCounts(t, "j1", counts{total: 3000, pending: 3000})
		if order := walkIDs(t, b, "j1", checkpoint.Want{}); !slices.Equal(order, ids) {
			t.Fatalf("order of %d items differs from the input order", len(order))
		}
		if v := b.item(t, "j1", ids[2999]); !bytes.Equal(v.Input, es[2999].Canonical) {
			t.Fatalf("last item's input was not stored intact")
		}

		again, err := b.store.Record(b.ctx, "j1", es)
		if err != nil {
			t.Fatalf("Record again: %v", err)
		}
		for i, r := range again {
			if r != checkpoint.RecordedPending {
				t.Fatalf("outcome %d on re-record = %q, want pending", i, r)
			}
		}
		b.requireCounts(t, "j1", counts{total: 3000, pending: 3000})
	})

	t.Run("MissingJob", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for _, n := range []int{1, 3} {
			_, err := b.store.Record(b.ctx, "nope", entries(itemIDs(n)...))
			if !errors.Is(err, checkpoint.ErrJobNotFound) {
				t.Fatalf("Record(%d items, missing job) = %v, want ErrJobNotFound", n, err)
			}
		}
		if keys := b.jobKeys(t, "nope"); len(keys) != 0 {
			t.Fatalf("Record on a missing job wrote %v", keys)
		}
	})
}

func TestClaim(t *testing.T) {
	t.Parallel()

	t.Run("PendingItem", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		p := testPolicy()
		b.open(t, "j1", p)
		b.record(t, "j1", "a", "b", "c")

		b.clock.Advance(time.Minute)
		c := b.claim(t, "j1", "b", "tok1")
		if !bytes.Equal(c.Input, canonical("b")) {
			t.Fatalf("Claim input = %s, want %s", c.Input, canonical("b"))
		}
		if !samePolicy(c.Policy, p) {
			t.Fatalf("Claim policy = %+v, want %+v", c.Policy, p)
		}
		if c.State != checkpoint.StateRunning || c.Calls != 0 || c.LastErr != nil {
			t.Fatalf("Claim = state %q calls %d lasterr %v, want running 0 nil", c.State, c.Calls, c.LastErr)
		}
		j := b.requireCounts(t, "j1", counts{total: 3, active: 1, pending: 2})
		if j.Pending() != j.Total-j.Done-j.Failed-j.Active {
			t.Fatalf("Pending() = %d, want Total-Done-Failed-Active", j.Pending())
		}
		if want := t0.Add(time.Minute); !j.StartedAt.Equal(want) {
			t.Fatalf("StartedAt = %v, want %v", j.StartedAt, want)
		}
		if v := b.item(t, "j1", "b"); v.Status != checkpoint.ItemActive {
			t.Fatalf("status of b = %q, want active", v.Status)
		}

		// StartedAt is the first claim's time.
		b.clock.Advance(time.Minute)
		b.claim(t, "j1", "c", "tok2")
		j = b.requireCounts(t, "j1", counts{total: 3, active: 2, pending: 1})
		if want := t0.Add(time.Minute); !j.StartedAt.Equal(want) {
			t.Fatalf("StartedAt after a second claim = %v, want %v", j.StartedAt, want)
		}
	})

	t.Run("ReclaimOfActiveItemCountsOnce", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", testPolicy())
		b.record(t, "j1", "a")
		b.claim(t, "j1", "a", "old")
		b.claim(t, "j1", "a", "new")
		b.requireCounts(t, "j1", counts{total: 1, active: 1})
	})

	t.Run("DoneAndFailedReturnVerdict", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", testPolicy())
		b.record(t, "j1", "d", "f", "p")
		b.finishItem(t, "j1", "d")
		b.failItem(t, "j1", "f", checkpoint.Failure{Class: "bad_request"})

		for id, want := range map[string]checkpoint.Verdict{"d": checkpoint.VerdictDone, "f": checkpoint.VerdictFailed} {
			c, err := b.store.Claim(b.ctx, "j1", id, "tok-again")
			if err != nil {
				t.Fatalf("Claim(%q): %v", id, err)
			}
			if c.Verdict != want || c.Input != nil {
				t.Fatalf("Claim(%q) = verdict %q input %q, want %q and no input", id, c.Verdict, c.Input, want)
			}
		}
		b.requireCounts(t, "j1", counts{total: 3, done: 1, failed: 1, pending: 1})
	})

	t.Run("DeletedJobIsMissing", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", testPolicy())
		b.record(t, "j1", "a")
		if err := b.store.Delete(b.ctx, "j1"); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		c, err := b.store.Claim(b.ctx, "j1", "a", "tok")
		if err != nil || c.Verdict != "missing" {
			t.Fatalf("Claim on a deleted job = %+v, %v, want verdict missing", c, err)
		}
		if keys := b.jobKeys(t, "j1"); len(keys) != 0 {
			t.Fatalf("Claim on a deleted job wrote %v", keys)
		}
	})

	t.Run("UnknownItem", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", testPolicy())
		b.record(t, "j1", "a")
		c, err := b.store.Claim(b.ctx, "j1", "zzz", "tok")
		if err != nil || c.Verdict != "unknown" {
			t.Fatalf("Claim(unknown item) = %+v, %v, want verdict unknown", c, err)
		}
		b.requireCounts(t, "j1", counts{total: 1, pending: 1})
	})

	t.Run("ReturnsCallsAndLastError", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", testPolicy())
		b.record(t, "j1", "a")
		b.claim(t, "j1", "a", "t1")
		for range 2 {
			if _, err := b.store.StartCall(b.ctx, "j1", "a", "t1", 3); err != nil {
				t.Fatalf("StartCall: %v", err)
			}
		}
		last := &checkpoint.Failure{Class: "rate_limited", Reason: "429 slow down", Attempts: 2, Status: 429, LastFailed: t0}
		if err := b.store.Release(b.ctx, "j1", "a", "t1", last); err != nil {
			t.Fatalf("Release: %v", err)
		}
		c := b.claim(t, "j1", "a", "t2")
		if c.Calls != 2 {
			t.Fatalf("Claim calls = %d, want 2", c.Calls)
		}
		if c.LastErr == nil || *c.LastErr != *last {
			t.Fatalf("Claim LastErr = %+v, want %+v", c.LastErr, last)
		}
	})

	t.Run("ReportsStoredState", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", testPolicy())
		b.record(t, "j1", "a", "b")
		b.claim(t, "j1", "a", "t1")
		if _, err := b.store.Cancel(b.ctx, "j1"); err != nil {
			t.Fatalf("Cancel: %v", err)
		}
		// The active item's attempt learns of the cancellation on its next claim.
		c := b.claim(t, "j1", "a", "t2")
		if c.State != checkpoint.StateCancelled {
			t.Fatalf("Claim state = %q, want cancelled", c.State)
		}
	})
}

func TestStartCall(t *testing.T) {
	t.Parallel()

	t.Run("CountsCallsUntilBudgetSpent", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", testPolicy())
		b.record(t, "j1", "a", "b")
		b.claim(t, "j1", "a", "ta")
		b.claim(t, "j1", "b", "tb")

		for want := 1; want <= 3; want++ {
			n, err := b.store.StartCall(b.ctx, "j1", "a", "ta", 3)
			if err != nil || n != want {
				t.Fatalf("StartCall #%d = %d, %v, want %d, nil", want, n, err, want)
			}
		}
		if _, err := b.store.StartCall(b.ctx, "j1", "a", "ta", 3); !errors.Is(err, checkpoint.ErrBudgetSpent) {
			t.Fatalf("StartCall past the budget = %v, want ErrBudgetSpent", err)
		}
		if n, err := b.store.StartCall(b.ctx, "j1", "b", "tb", 3); err != nil || n != 1 {
			t.Fatalf("StartCall on b = %d, %v, want 1, nil (budgets are per item)", n, err)
		}
		if j := b.job(t, "j1"); j.ProviderCalls != 4 {
			t.Fatalf("ProviderCalls = %d, want 4", j.ProviderCalls)
		}
		if v := b.item(t, "j1", "a"); v.Calls != 3 {
			t.Fatalf("Item(a).Calls = %d, want 3", v.Calls)
		}
	})

	t.Run("BudgetSurvivesReclaim", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", testPolicy())
		b.record(t, "j1", "a")
		b.claim(t, "j1", "a", "t1")
		if _, err := b.store.StartCall(b.ctx, "j1", "a", "t1", 2); err != nil {
			t.Fatalf("StartCall: %v", err)
		}
		b.claim(t, "j1", "a", "t2")
		if n, err := b.store.StartCall(b.ctx, "j1", "a", "t2", 2); err != nil || n != 2 {
			t.Fatalf("StartCall after re-claim = %d, %v, want 2, nil", n, err)
		}
		if _, err := b.store.StartCall(b.ctx, "j1", "a", "t2", 2); !errors.Is(err, checkpoint.ErrBudgetSpent) {
			t.Fatalf("StartCall = %v, want ErrBudgetSpent", err)
		}
	})

	t.Run("WrongTokenLosesClaim", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", testPolicy())
		b.record(t, "j1", "a", "b")
		b.claim(t, "j1", "a", "old")
		b.claim(t, "j1", "a", "new")

		for _, tc := range []struct{ id, token string }{{"a", "old"}, {"a", "never"}, {"b", "new"}} {
			if _, err := b.store.StartCall(b.ctx, "j1", tc.id, tc.token, 3); !errors.Is(err, checkpoint.ErrClaimLost) {
				t.Fatalf("StartCall(%q, %q) = %v, want ErrClaimLost", tc.id, tc.token, err)
			}
		}
		if j := b.job(t, "j1"); j.ProviderCalls != 0 {
			t.Fatalf("ProviderCalls = %d, want 0", j.ProviderCalls)
		}
		if n, err := b.store.StartCall(b.ctx, "j1", "a", "new", 3); err != nil || n != 1 {
			t.Fatalf("StartCall by the holder = %d, %v, want 1, nil", n, err)
		}
	})
}

func TestCommit(t *testing.T) {
	t.Parallel()

	t.Run("CountsDoneAndTokens", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", testPolicy())
		b.record(t, "j1", "a", "b", "c")

		b.claim(t, "j1", "a", "ta")
		ra := result("a", "hello a")
		ra.TokensIn, ra.TokensOut = 11, 22
		ra.Metadata = json.RawMessage(`{"k":"v"}`)
		if out := b.commit(t, "j1", "ta", ra); out != checkpoint.Committed1 {
			t.Fatalf("Commit(a) = %q, want committed", out)
		}
		b.requireCounts(t, "j1", counts{total: 3, done: 1, pending: 2})

		b.claim(t, "j1", "b", "tb")
		rb := result("b", "hello b")
		rb.TokensIn, rb.TokensOut = 5, 7
		if out := b.commit(t, "j1", "tb", rb); out != checkpoint.Committed1 {
			t.Fatalf("Commit(b) = %q, want committed", out)
		}
		j := b.requireCounts(t, "j1", counts{total: 3, done: 2, pending: 1})
		if j.TokensIn != 16 || j.TokensOut != 29 {
			t.Fatalf("tokens in/out = %d/%d, want 16/29", j.TokensIn, j.TokensOut)
		}
		if j.Duplicates != 0 {
			t.Fatalf("Duplicates = %d, want 0", j.Duplicates)
		}

		v := b.item(t, "j1", "a")
		var got checkpoint.Result
		if err := json.Unmarshal(v.Result, &got); err != nil {
			t.Fatalf("stored result %s: %v", v.Result, err)
		}
		if got.ID != "a" || got.Output != "hello a" || got.TokensIn != 11 || !got.FinishedAt.Equal(t0) || string(got.Metadata) != `{"k":"v"}` {
			t.Fatalf("stored result = %+v, want %+v", got, ra)
		}
		if v.Status != checkpoint.ItemDone {
			t.Fatalf("status of a = %q, want done", v.Status)
		}
	})

	t.Run("SecondCommitIsDuplicate", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", testPolicy())
		b.record(t, "j1", "a", "b")
		b.claim(t, "j1", "a", "t1")
		first := result("a", "first")
		b.commit(t, "j1", "t1", first)

		second := result("a", "second")
		second.TokensIn, second.TokensOut = 1000, 1000
		if out := b.commit(t, "j1", "t1", second); out != checkpoint.CommitDuplicate {
			t.Fatalf("second Commit = %q, want duplicate", out)
		}
		j := b.requireCounts(t, "j1", counts{total: 2, done: 1, pending: 1})
		if j.Duplicates != 1 {
			t.Fatalf("Duplicates = %d, want 1", j.Duplicates)
		}
		if j.TokensIn != int64(first.TokensIn) || j.TokensOut != int64(first.TokensOut) {
			t.Fatalf("tokens = %d/%d, want the first commit's %d/%d", j.TokensIn, j.TokensOut, first.TokensIn, first.TokensOut)
		}
		if got := storedOutput(t, b, "j1", "a"); got != "first" {
			t.Fatalf("stored output = %q, want the first commit's", got)
		}
	})

	t.Run("CommitAfterReclaimCommitsOnce", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", testPolicy())
		b.record(t, "j1", "a")
		b.claim(t, "j1", "a", "old")
		b.claim(t, "j1", "a", "new") // the task was re-dispatched

		// The old attempt's success is kept: a result is a result.
		if out := b.commit(t, "j1", "old", result("a", "from old")); out != checkpoint.Committed1 {
			t.Fatalf("Commit by the old attempt = %q, want committed", out)
		}
		if _, err := b.store.StartCall(b.ctx, "j1", "a", "new", 3); !errors.Is(err, checkpoint.ErrClaimLost) {
			t.Fatalf("StartCall by the new attempt after the commit = %v, want ErrClaimLost", err)
		}
		if out := b.commit(t, "j1", "new", result("a", "from new")); out != checkpoint.CommitDuplicate {
			t.Fatalf("Commit by the new attempt = %q, want duplicate", out)
		}
		j := b.requireCounts(t, "j1", counts{total: 1, done: 1})
		if j.Duplicates != 1 {
			t.Fatalf("Duplicates = %d, want 1", j.Duplicates)
		}
		if got := storedOutput(t, b, "j1", "a"); got != "from old" {
			t.Fatalf("stored output = %q, want %q", got, "from old")
		}
	})

	t.Run("CommitOfReleasedItem", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", testPolicy())
		b.record(t, "j1", "a")
		b.claim(t, "j1", "a", "t1")
		if err := b.store.Release(b.ctx, "j1", "a", "t1", &checkpoint.Failure{Class: "timeout"}); err != nil {
			t.Fatalf("Release: %v", err)
		}
		if out := b.commit(t, "j1", "stale", result("a", "late")); out != checkpoint.Committed1 {
			t.Fatalf("Commit of a pending item = %q, want committed", out)
		}
		b.requireCounts(t, "j1", counts{total: 1, done: 1})
		if v := b.item(t, "j1", "a"); v.LastErr != nil {
			t.Fatalf("LastErr of a done item = %+v, want nil", v.LastErr)
		}
	})

	t.Run("CommitOfFailedItemKeepsResult", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", testPolicy())
		b.record(t, "j1", "a", "b")
		b.claim(t, "j1", "a", "old")
		b.claim(t, "j1", "a", "new")
		if ok, err := b.store.Fail(b.ctx, "j1", "a", "new", checkpoint.Failure{Class: "timeout"}); err != nil || !ok {
			t.Fatalf("Fail = %v, %v", ok, err)
		}
		if out := b.commit(t, "j1", "old", result("a", "late success")); out != checkpoint.Committed1 {
			t.Fatalf("Commit of a failed item = %q, want committed", out)
		}
		b.requireCounts(t, "j1", counts{total: 2, done: 1, pending: 1})
		if v := b.item(t, "j1", "a"); v.Failure != nil {
			t.Fatalf("Failure of a done item = %+v, want nil", v.Failure)
		}
	})

	t.Run("UnknownItemAndMissingJob", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", testPolicy())
		b.record(t, "j1", "a")
		if _, err := b.store.Commit(b.ctx, "j1", "t", result("zzz", "x")); !errors.Is(err, checkpoint.ErrItemNotFound) {
			t.Fatalf("Commit(unknown item) = %v, want ErrItemNotFound", err)
		}
		if out, err := b.store.Commit(b.ctx, "nope", "t", result("a", "x")); err != nil || out != checkpoint.CommitJobMissing {
			t.Fatalf("Commit(missing job) = %q, %v, want missing", out, err)
		}
		if keys := b.jobKeys(t, "nope"); len(keys) != 0 {
			t.Fatalf("Commit on a missing job wrote %v", keys)
		}
		b.requireCounts(t, "j1", counts{total: 1, pending: 1})
	})
}

func storedOutput(t *testing.T, b *testBundle, job, id string) string {
	t.Helper()
	var r checkpoint.Result
	v := b.item(t, job, id)
	if err := json.Unmarshal(v.Result, &r); err != nil {
		t.Fatalf("stored result of %q %q: %v", id, v.Result, err)
	}
	return r.Output
}

func TestFail(t *testing.T) {
	t.Parallel()

	t.Run("StoresFinalRecord", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", testPolicy())
		b.record(t, "j1", "a", "b")
		b.claim(t, "j1", "a", "t1")
		f := checkpoint.Failure{Class: "bad_request", Reason: "400 invalid model", Attempts: 2, Status: 400, FirstFailed: t0, LastFailed: t0.Add(time.Second)}
		ok, err := b.store.Fail(b.ctx, "j1", "a", "t1", f)
		if err != nil || !ok {
			t.Fatalf("Fail = %v, %v, want true, nil", ok, err)
		}
		b.requireCounts(t, "j1", counts{total: 2, failed: 1, pending: 1})
		v := b.item(t, "j1", "a")
		if v.Status != checkpoint.ItemFailed {
			t.Fatalf("status = %q, want failed", v.Status)
		}
		if v.Failure == nil || *v.Failure != f {
			t.Fatalf("Failure = %+v, want %+v", v.Failure, f)
		}
		if _, err := b.store.StartCall(b.ctx, "j1", "a", "t1", 5); !errors.Is(err, checkpoint.ErrClaimLost) {
			t.Fatalf("StartCall after Fail = %v, want ErrClaimLost", err)
		}
	})

	t.Run("DoneItemIsNoop", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", testPolicy())
		b.record(t, "j1", "a", "b")
		b.finishItem(t, "j1", "a")
		ok, err := b.store.Fail(b.ctx, "j1", "a", "tok-a", checkpoint.Failure{Class: "timeout"})
		if err != nil || ok {
			t.Fatalf("Fail(done item) = %v, %v, want false, nil", ok, err)
		}
		b.requireCounts(t, "j1", counts{total: 2, done: 1, pending: 1})
		v := b.item(t, "j1", "a")
		if v.Status != checkpoint.ItemDone || v.Failure != nil || v.Result == nil {
			t.Fatalf("Item(a) = %+v, want done with its result and no failure", v)
		}
	})

	t.Run("FailedItemKeepsFirstRecord", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", testPolicy())
		b.record(t, "j1", "a", "b")
		b.failItem(t, "j1", "a", checkpoint.Failure{Class: "bad_request", Reason: "first"})
		ok, err := b.store.Fail(b.ctx, "j1", "a", "tok-a", checkpoint.Failure{Class: "timeout", Reason: "second"})
		if err != nil || ok {
			t.Fatalf("Fail(failed item) = %v, %v, want false, nil", ok, err)
		}
		b.requireCounts(t, "j1", counts{total: 2, failed: 1, pending: 1})
		if v := b.item(t, "j1", "a"); v.Failure == nil || v.Failure.Reason != "first" {
			t.Fatalf("Failure = %+v, want the first record", v.Failure)
		}
	})

	t.Run("StaleTokenLosesClaim", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", testPolicy())
		b.record(t, "j1", "a")
		b.claim(t, "j1", "a", "old")
		b.claim(t, "j1", "a", "new")
		ok, err := b.store.Fail(b.ctx, "j1", "a", "old", checkpoint.Failure{Class: "timeout"})
		if !errors.Is(err, checkpoint.ErrClaimLost) || ok {
			t.Fatalf("Fail by the stale attempt = %v, %v, want false, ErrClaimLost", ok, err)
		}
		b.requireCounts(t, "j1", counts{total: 1, active: 1})
		v := b.item(t, "j1", "a")
		if v.Status != checkpoint.ItemActive || v.Failure != nil {
			t.Fatalf("Item(a) = %+v, want active with no failure", v)
		}
		if n, err := b.store.StartCall(b.ctx, "j1", "a", "new", 3); err != nil || n != 1 {
			t.Fatalf("StartCall by the holder = %d, %v, want 1, nil", n, err)
		}
	})

	t.Run("UnknownItemAndMissingJob", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", testPolicy())
		b.record(t, "j1", "a")
		for _, tc := range []struct{ job, id string }{{"j1", "zzz"}, {"nope", "a"}} {
			ok, err := b.store.Fail(b.ctx, tc.job, tc.id, "t", checkpoint.Failure{Class: "timeout"})
			if err != nil || ok {
				t.Fatalf("Fail(%q, %q) = %v, %v, want false, nil", tc.job, tc.id, ok, err)
			}
		}
		b.requireCounts(t, "j1", counts{total: 1, pending: 1})
		if keys := b.jobKeys(t, "nope"); len(keys) != 0 {
			t.Fatalf("Fail on a missing job wrote %v", keys)
		}
	})
}

func TestRelease(t *testing.T) {
	t.Parallel()

	t.Run("BackToPendingWithLastErr", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", testPolicy())
		b.record(t, "j1", "a", "b")
		b.claim(t, "j1", "a", "t1")
		last := checkpoint.Failure{Class: "server_error", Reason: "503", Attempts: 1, Status: 503, FirstFailed: t0, LastFailed: t0}
		if err := b.store.Release(b.ctx, "j1", "a", "t1", &last); err != nil {
			t.Fatalf("Release: %v", err)
		}
		b.requireCounts(t, "j1", counts{total: 2, pending: 2})
		v := b.item(t, "j1", "a")
		if v.Status != checkpoint.ItemPending {
			t.Fatalf("status = %q, want pending", v.Status)
		}
		if v.LastErr == nil || *v.LastErr != last {
			t.Fatalf("LastErr = %+v, want %+v", v.LastErr, last)
		}
		if v.Failure != nil {
			t.Fatalf("Failure of a pending item = %+v, want nil", v.Failure)
		}
		if _, err := b.store.StartCall(b.ctx, "j1", "a", "t1", 3); !errors.Is(err, checkpoint.ErrClaimLost) {
			t.Fatalf("StartCall after Release = %v, want ErrClaimLost", err)
		}
	})

	t.Run("NilLastErrKeepsPrevious", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", testPolicy())
		b.record(t, "j1", "a")
		b.claim(t, "j1", "a", "t1")
		last := checkpoint.Failure{Class: "rate_limited", Reason: "429"}
		if err := b.store.Release(b.ctx, "j1", "a", "t1", &last); err != nil {
			t.Fatalf("Release: %v", err)
		}
		b.claim(t, "j1", "a", "t2")
		if err := b.store.Release(b.ctx, "j1", "a", "t2", nil); err != nil {
			t.Fatalf("Release(nil): %v", err)
		}
		if v := b.item(t, "j1", "a"); v.LastErr == nil || *v.LastErr != last {
			t.Fatalf("LastErr = %+v, want the previous %+v", v.LastErr, last)
		}
	})

	t.Run("WrongTokenLosesClaim", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", testPolicy())
		b.record(t, "j1", "a", "b")
		b.claim(t, "j1", "a", "old")
		b.claim(t, "j1", "a", "new")
		err := b.store.Release(b.ctx, "j1", "a", "old", &checkpoint.Failure{Class: "shutdown"})
		if !errors.Is(err, checkpoint.ErrClaimLost) {
			t.Fatalf("Release by the stale attempt = %v, want ErrClaimLost", err)
		}
		b.requireCounts(t, "j1", counts{total: 2, active: 1, pending: 1})
		if v := b.item(t, "j1", "a"); v.Status != checkpoint.ItemActive || v.LastErr != nil {
			t.Fatalf("Item(a) = %+v, want active, no last error", v)
		}
		// Releasing an item nobody holds is also refused.
		if err := b.store.Release(b.ctx, "j1", "b", "old", nil); !errors.Is(err, checkpoint.ErrClaimLost) {
			t.Fatalf("Release(pending item) = %v, want ErrClaimLost", err)
		}
		b.requireCounts(t, "j1", counts{total: 2, active: 1, pending: 1})
	})
}

func TestFinish(t *testing.T) {
	t.Parallel()

	const retention = time.Hour

	// finishedJob runs a job to its end: a done after a retry, b failed, c
	// done. Every per-item key exists when it finishes.
	finishedJob := func(t *testing.T, b *testBundle) {
		t.Helper()
		p := testPolicy()
		p.Retention = retention
		b.open(t, "j1", p)
		b.record(t, "j1", "a", "b", "c")

		b.claim(t, "j1", "a", "t1")
		if _, err := b.store.StartCall(b.ctx, "j1", "a", "t1", 3); err != nil {
			t.Fatalf("StartCall: %v", err)
		}
		if err := b.store.Release(b.ctx, "j1", "a", "t1", &checkpoint.Failure{Class: "timeout"}); err != nil {
			t.Fatalf("Release: %v", err)
		}
		b.claim(t, "j1", "b", "tb")
		if err := b.store.Release(b.ctx, "j1", "b", "tb", &checkpoint.Failure{Class: "server_error"}); err != nil {
			t.Fatalf("Release: %v", err)
		}
		b.finishItem(t, "j1", "a")
		b.failItem(t, "j1", "b", checkpoint.Failure{Class: "bad_request"})
		b.claim(t, "j1", "c", "tc") // holds a claim key until c commits

		j := b.requireCounts(t, "j1", counts{total: 3, done: 1, failed: 1, active: 1})
		if !j.FinishedAt.IsZero() || j.Finished() {
			t.Fatalf("job finished early: FinishedAt %v", j.FinishedAt)
		}
		for k, ttl := range b.ttls(t, "j1") {
			if ttl != -1 {
				t.Fatalf("key %s of a running job has TTL %v, want none", k, ttl)
			}
		}

		b.clock.Advance(time.Minute)
		if out := b.commit(t, "j1", "tc", result("c", "out-c")); out != checkpoint.Committed1 {
			t.Fatalf("Commit(c) = %q", out)
		}
	}

	requireTTLs := func(t *testing.T, b *testBundle, want map[string]bool) {
		t.Helper()
		ttls := b.ttls(t, "j1")
		for k := range want {
			if _, ok := ttls[k]; !ok {
				t.Fatalf("key %s missing; keys: %v", k, ttls)
			}
		}
		for k, ttl := range ttls {
			if ttl <= retention-time.Minute || ttl > retention {
				t.Fatalf("key %s has TTL %v, want about %v", k, ttl, retention)
			}
		}
	}

	t.Run("SetsFinishedAtStateAndTTL", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		finishedJob(t, b)

		j := b.requireCounts(t, "j1", counts{total: 3, done: 2, failed: 1})
		if !j.Finished() {
			t.Fatal("Finished() = false")
		}
		if want := t0.Add(time.Minute); !j.FinishedAt.Equal(want) {
			t.Fatalf("FinishedAt = %v, want %v", j.FinishedAt, want)
		}
		if j.State != checkpoint.StateDone {
			t.Fatalf("state = %q, want done", j.State)
		}
		requireTTLs(t, b, map[string]bool{"job": true, "input": true, "status": true, "order": true, "calls": true, "result": true, "failure": true, "lasterr": true})

		// A duplicate commit after the end changes nothing and keeps the TTLs.
		if out := b.commit(t, "j1", "x", result("a", "again")); out != checkpoint.CommitDuplicate {
			t.Fatalf("Commit after finish = %q, want duplicate", out)
		}
		if j2 := b.job(t, "j1"); !j2.FinishedAt.Equal(j.FinishedAt) || j2.Duplicates != 1 {
			t.Fatalf("after a duplicate: FinishedAt %v duplicates %d, want %v 1", j2.FinishedAt, j2.Duplicates, j.FinishedAt)
		}
		requireTTLs(t, b, nil)
	})

	t.Run("RecordReopens", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		finishedJob(t, b)

		// Re-recording known items does not reopen.
		if _, err := b.store.Record(b.ctx, "j1", entries("a", "b", "c")); err != nil {
			t.Fatalf("Record: %v", err)
		}
		if j := b.job(t, "j1"); j.FinishedAt.IsZero() || j.State != checkpoint.StateDone {
			t.Fatalf("re-recording known items reopened the job: %+v", j)
		}

		b.record(t, "j1", "d")
		j := b.requireCounts(t, "j1", counts{total: 4, done: 2, failed: 1, pending: 1})
		if !j.FinishedAt.IsZero() || j.Finished() {
			t.Fatalf("FinishedAt = %v after a new item, want zero", j.FinishedAt)
		}
		if j.State != checkpoint.StateRunning {
			t.Fatalf("state = %q after a new item, want running", j.State)
		}
		for k, ttl := range b.ttls(t, "j1") {
			if ttl != -1 {
				t.Fatalf("key %s has TTL %v after reopening, want none (-1)", k, ttl)
			}
		}

		// It finishes again when the new item ends.
		b.clock.Advance(time.Hour)
		b.finishItem(t, "j1", "d")
		j = b.job(t, "j1")
		if j.State != checkpoint.StateDone || !j.FinishedAt.Equal(b.clock.Now()) {
			t.Fatalf("after the new item: state %q FinishedAt %v, want done %v", j.State, j.FinishedAt, b.clock.Now())
		}
		requireTTLs(t, b, nil)
	})

	t.Run("ZeroRetentionKeepsKeys", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		p := testPolicy()
		p.Retention = 0
		b.open(t, "j1", p)
		b.record(t, "j1", "a")
		b.finishItem(t, "j1", "a")
		j := b.job(t, "j1")
		if j.State != checkpoint.StateDone || j.FinishedAt.IsZero() {
			t.Fatalf("state %q FinishedAt %v, want done and set", j.State, j.FinishedAt)
		}
		for k, ttl := range b.ttls(t, "j1") {
			if ttl != -1 {
				t.Fatalf("key %s has TTL %v with zero retention, want none", k, ttl)
			}
		}
	})

	t.Run("LateCommitOfFailedItemKeepsTTL", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		p := testPolicy()
		p.Retention = retention
		b.open(t, "j1", p)
		b.record(t, "j1", "a")
		// The task was re-dispatched; the new attempt fails the item, which
		// ends the job, then the old attempt's provider call succeeds.
		b.claim(t, "j1", "a", "old")
		b.claim(t, "j1", "a", "new")
		if ok, err := b.store.Fail(b.ctx, "j1", "a", "new", checkpoint.Failure{Class: "timeout"}); err != nil || !ok {
			t.Fatalf("Fail = %v, %v", ok, err)
		}
		if j := b.job(t, "j1"); j.FinishedAt.IsZero() {
			t.Fatal("job not finished after its only item failed")
		}
		requireTTLs(t, b, nil)

		if out := b.commit(t, "j1", "old", result("a", "late")); out != checkpoint.Committed1 {
			t.Fatalf("late Commit = %q, want committed", out)
		}
		b.requireCounts(t, "j1", counts{total: 1, done: 1})
		requireTTLs(t, b, map[string]bool{"result": true})
	})
}

func TestSweep(t *testing.T) {
	t.Parallel()

	deadline := checkpoint.Failure{Class: "deadline", Reason: "job deadline passed"}

	t.Run("FailsOnlyPendingItems", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", testPolicy())
		b.record(t, "j1", "act", "done", "fail", "p1", "p2", "p3")
		b.finishItem(t, "j1", "done")
		b.failItem(t, "j1", "fail", checkpoint.Failure{Class: "bad_request"})
		b.claim(t, "j1", "act", "ta")
		b.claim(t, "j1", "p3", "t3")
		if err := b.store.Release(b.ctx, "j1", "p3", "t3", &checkpoint.Failure{Class: "rate_limited"}); err != nil {
			t.Fatalf("Release: %v", err)
		}

		b.clock.Advance(time.Minute)
		n, err := b.store.Sweep(b.ctx, "j1", deadline)
		if err != nil || n != 3 {
			t.Fatalf("Sweep = %d, %v, want 3, nil", n, err)
		}
		j := b.requireCounts(t, "j1", counts{total: 6, done: 1, failed: 4, active: 1})
		if !j.FinishedAt.IsZero() || j.State != checkpoint.StateRunning {
			t.Fatalf("job with an active item: FinishedAt %v state %q, want unfinished running", j.FinishedAt, j.State)
		}
		now := b.clock.Now()
		for _, id := range []string{"p1", "p2", "p3"} {
			v := b.item(t, "j1", id)
			if v.Status != checkpoint.ItemFailed || v.Failure == nil || v.Failure.Class != "deadline" || v.Failure.Reason != deadline.Reason {
				t.Fatalf("Item(%q) = %+v / failure %+v, want failed with class deadline", id, v, v.Failure)
			}
			if !v.Failure.FirstFailed.Equal(now) || !v.Failure.LastFailed.Equal(now) {
				t.Fatalf("Item(%q) failure times = %v, %v, want %v", id, v.Failure.FirstFailed, v.Failure.LastFailed, now)
			}
		}
		if v := b.item(t, "j1", "fail"); v.Failure == nil || v.Failure.Class != "bad_request" {
			t.Fatalf("already failed item's record = %+v, want bad_request", v.Failure)
		}
		if v := b.item(t, "j1", "done"); v.Status != checkpoint.ItemDone || v.Failure != nil {
			t.Fatalf("done item = %+v, want untouched", v)
		}
		if v := b.item(t, "j1", "act"); v.Status != checkpoint.ItemActive {
			t.Fatalf("active item status = %q, want active", v.Status)
		}

		// A second sweep finds nothing; the active item ending finishes the job.
		if n, err := b.store.Sweep(b.ctx, "j1", deadline); err != nil || n != 0 {
			t.Fatalf("second Sweep = %d, %v, want 0, nil", n, err)
		}
		b.commit(t, "j1", "ta", result("act", "made it"))
		j = b.requireCounts(t, "j1", counts{total: 6, done: 2, failed: 4})
		if j.FinishedAt.IsZero() || j.State != checkpoint.StateDone {
			t.Fatalf("FinishedAt %v state %q, want finished done", j.FinishedAt, j.State)
		}
	})

	t.Run("FinishesJobWhenNothingRemains", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		p := testPolicy()
		p.Deadline = t0.Add(time.Hour)
		b.open(t, "j1", p)
		b.record(t, "j1", "a", "b", "c")
		b.finishItem(t, "j1", "a")

		b.clock.Advance(2 * time.Hour)
		if err := b.store.MarkExpired(b.ctx, "j1"); err != nil {
			t.Fatalf("MarkExpired: %v", err)
		}
		n, err := b.store.Sweep(b.ctx, "j1", deadline)
		if err != nil || n != 2 {
			t.Fatalf("Sweep = %d, %v, want 2, nil", n, err)
		}
		j := b.requireCounts(t, "j1", counts{total: 3, done: 1, failed: 2})
		if !j.FinishedAt.Equal(b.clock.Now()) {
			t.Fatalf("FinishedAt = %v, want %v", j.FinishedAt, b.clock.Now())
		}
		if j.State != checkpoint.StateExpired {
			t.Fatalf("state = %q, want expired (kept)", j.State)
		}
		for k, ttl := range b.ttls(t, "j1") {
			if ttl <= 0 || ttl > p.Retention {
				t.Fatalf("key %s TTL %v, want about %v", k, ttl, p.Retention)
			}
		}
	})

	t.Run("ManyItems", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", testPolicy())
		ids := itemIDs(2500)
		b.record(t, "j1", ids...)
		for _, id := range ids[:10] {
			b.finishItem(t, "j1", id)
		}
		n, err := b.store.Sweep(b.ctx, "j1", deadline)
		if err != nil || n != 2490 {
			t.Fatalf("Sweep = %d, %v, want 2490, nil", n, err)
		}
		j := b.requireCounts(t, "j1", counts{total: 2500, done: 10, failed: 2490})
		if j.FinishedAt.IsZero() {
			t.Fatal("job not finished")
		}
	})

	t.Run("MissingJob", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		if n, err := b.store.Sweep(b.ctx, "nope", deadline); err != nil || n != 0 {
			t.Fatalf("Sweep(missing job) = %d, %v, want 0, nil", n, err)
		}
	})
}

func TestCancel(t *testing.T) {
	t.Parallel()

	t.Run("CancelsPendingItems", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", testPolicy())
		b.record(t, "j1", "a", "b", "c", "d")
		b.finishItem(t, "j1", "a")
		b.claim(t, "j1", "b", "tb")

		n, err := b.store.Cancel(b.ctx, "j1")
		if err != nil || n != 2 {
			t.Fatalf("Cancel = %d, %v, want 2, nil", n, err)
		}
		j := b.requireCounts(t, "j1", counts{total: 4, done: 1, failed: 2, active: 1})
		if j.State != checkpoint.StateCancelled {
			t.Fatalf("state = %q, want cancelled", j.State)
		}
		if v := b.item(t, "j1", "c"); v.Failure == nil || v.Failure.Class != "cancelled" {
			t.Fatalf("failure of c = %+v, want class cancelled", v.Failure)
		}

		// The active attempt sees the cancellation and ends the item; the
		// job finishes but stays cancelled.
		ok, err := b.store.Fail(b.ctx, "j1", "b", "tb", checkpoint.Failure{Class: "cancelled", Reason: "job cancelled"})
		if err != nil || !ok {
			t.Fatalf("Fail = %v, %v", ok, err)
		}
		j = b.requireCounts(t, "j1", counts{total: 4, done: 1, failed: 3})
		if j.State != checkpoint.StateCancelled || j.FinishedAt.IsZero() {
			t.Fatalf("state %q FinishedAt %v, want cancelled and finished", j.State, j.FinishedAt)
		}
	})

	t.Run("MissingJob", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		if _, err := b.store.Cancel(b.ctx, "nope"); !errors.Is(err, checkpoint.ErrJobNotFound) {
			t.Fatalf("Cancel(missing job) = %v, want ErrJobNotFound", err)
		}
		if keys := b.jobKeys(t, "nope"); len(keys) != 0 {
			t.Fatalf("Cancel on a missing job wrote %v", keys)
		}
	})
}

func TestDelete(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, name := range []string{"j1", "other"} {
		b.open(t, name, testPolicy())
		b.record(t, name, "a", "b", "c", "d")
		b.claim(t, name, "a", "ta")
		if _, err := b.store.StartCall(b.ctx, name, "a", "ta", 3); err != nil {
			t.Fatal(err)
		}
		b.finishItem(t, name, "b")
		b.failItem(t, name, "c", checkpoint.Failure{Class: "bad_request"})
		b.claim(t, name, "d", "td")
		if err := b.store.Release(b.ctx, name, "d", "td", &checkpoint.Failure{Class: "timeout"}); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(b.jobKeys(t, "j1")); n != 9 {
		t.Fatalf("job has %d keys before Delete, want all 9", n)
	}

	if err := b.store.Delete(b.ctx, "j1"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if keys := b.jobKeys(t, "j1"); len(keys) != 0 {
		t.Fatalf("keys left after Delete: %v", keys)
	}
	jobs, err := b.store.Jobs(b.ctx)
	if err != nil {
		t.Fatalf("Jobs: %v", err)
	}
	if len(jobs) != 1 || jobs[0].Name != "other" {
		t.Fatalf("Jobs after Delete = %+v, want only other", jobs)
	}
	if _, err := b.store.Job(b.ctx, "j1"); !errors.Is(err, checkpoint.ErrJobNotFound) {
		t.Fatalf("Job after Delete = %v, want ErrJobNotFound", err)
	}
	if _, err := b.store.Item(b.ctx, "j1", "b"); !errors.Is(err, checkpoint.ErrItemNotFound) {
		t.Fatalf("Item after Delete = %v, want ErrItemNotFound", err)
	}
	b.requireCounts(t, "other", counts{total: 4, done: 1, failed: 1, active: 1, pending: 1})

	// The name can be used again.
	b.open(t, "j1", testPolicy())
	b.requireCounts(t, "j1", counts{})
}
