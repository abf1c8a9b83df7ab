package checkpoint_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/llmfleet/llmfleet/checkpoint"
)

func (b *testBundle) pause(t *testing.T, name, reason string) {
	t.Helper()
	ok, err := b.store.Pause(b.ctx, name, reason)
	if err != nil || !ok {
		t.Fatalf("Pause(%q) = %v, %v, want true, nil", name, ok, err)
	}
}

func (b *testBundle) storedState(t *testing.T, name string) string {
	t.Helper()
	return b.rdb.HGet(b.ctx, "llmfleet:{"+name+"}:job", "state").Val()
}

func (b *testBundle) hasPausedReason(t *testing.T, name string) bool {
	t.Helper()
	return b.rdb.HExists(b.ctx, "llmfleet:{"+name+"}:job", "paused_reason").Val()
}

func TestPausedJob(t *testing.T) {
	t.Parallel()

	const reason = "token budget reached: 100 of 100 tokens used"

	withDeadline := func() checkpoint.Policy {
		p := testPolicy()
		p.Deadline = t0.Add(time.Hour)
		return p
	}

	t.Run("PastDeadlineReportsExpired", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", withDeadline())
		b.record(t, "j1", "a")
		b.pause(t, "j1", reason)
		if j := b.job(t, "j1"); j.State != checkpoint.StatePaused || j.PausedReason != reason {
			t.Fatalf("after Pause: state %q reason %q, want paused %q", j.State, j.PausedReason, reason)
		}

		b.clock.Advance(time.Hour + time.Millisecond)
		if j := b.job(t, "j1"); j.State != checkpoint.StateExpired {
			t.Fatalf("paused job past its deadline: state %q, want expired", j.State)
		}
		jobs, err := b.store.Jobs(b.ctx)
		if err != nil || len(jobs) != 1 || jobs[0].State != checkpoint.StateExpired {
			t.Fatalf("Jobs = %+v, %v, want one expired job", jobs, err)
		}
		if got := b.storedState(t, "j1"); got != "paused" {
			t.Fatalf("stored state = %q, want paused (only reads report expired)", got)
		}
	})

	t.Run("MarkExpiredTurnsPausedIntoExpired", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", withDeadline())
		b.record(t, "j1", "a")
		b.pause(t, "j1", reason)
		b.clock.Advance(2 * time.Hour)

		if err := b.store.MarkExpired(b.ctx, "j1"); err != nil {
			t.Fatalf("MarkExpired: %v", err)
		}
		if got := b.storedState(t, "j1"); got != "expired" {
			t.Fatalf("stored state after MarkExpired = %q, want expired", got)
		}
		j := b.job(t, "j1")
		if j.State != checkpoint.StateExpired || j.PausedReason != "" || b.hasPausedReason(t, "j1") {
			t.Fatalf("after MarkExpired: state %q reason %q, want expired and no reason", j.State, j.PausedReason)
		}
		// An expired job is not paused: Resume leaves it alone.
		if ok, err := b.store.Resume(b.ctx, "j1"); err != nil || ok {
			t.Fatalf("Resume(expired job) = %v, %v, want false, nil", ok, err)
		}
		if got := b.storedState(t, "j1"); got != "expired" {
			t.Fatalf("stored state after Resume = %q, want expired", got)
		}
	})

	t.Run("EndingAfterDeadlineWithFailuresIsExpired", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", withDeadline())
		b.record(t, "j1", "a", "b", "c")
		b.pause(t, "j1", reason)

		at := b.clock.Advance(2 * time.Hour)
		b.failItem(t, "j1", "a", checkpoint.Failure{Class: "deadline", Reason: "job deadline passed"})
		b.finishItem(t, "j1", "b")
		b.finishItem(t, "j1", "c")
		b.requireCounts(t, "j1", counts{total: 3, done: 2, failed: 1})
		j := requireFinishedAt(t, b, "j1", at, checkpoint.StateExpired)
		if got := b.storedState(t, "j1"); got != "expired" {
			t.Fatalf("stored state = %q, want expired", got)
		}
		if j.PausedReason != "" || b.hasPausedReason(t, "j1") {
			t.Fatalf("PausedReason of an ended job = %q, want none", j.PausedReason)
		}
	})

	t.Run("EndingAfterDeadlineWithoutFailuresIsDone", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", withDeadline())
		b.record(t, "j1", "a", "b")
		b.pause(t, "j1", reason)

		at := b.clock.Advance(2 * time.Hour)
		b.finishItem(t, "j1", "a")
		b.finishItem(t, "j1", "b")
		j := requireFinishedAt(t, b, "j1", at, checkpoint.StateDone)
		if j.PausedReason != "" || b.hasPausedReason(t, "j1") {
			t.Fatalf("PausedReason of an ended job = %q, want none", j.PausedReason)
		}
	})

	t.Run("EndingBeforeDeadlineIsDone", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", withDeadline())
		b.record(t, "j1", "a", "b")
		b.pause(t, "j1", reason)

		// Attempts that were already running when it paused end the job,
		// one of them failing, before the deadline.
		at := b.clock.Advance(30 * time.Minute)
		b.failItem(t, "j1", "a", checkpoint.Failure{Class: "bad_request"})
		b.finishItem(t, "j1", "b")
		j := requireFinishedAt(t, b, "j1", at, checkpoint.StateDone)
		if j.PausedReason != "" || b.hasPausedReason(t, "j1") {
			t.Fatalf("PausedReason of an ended job = %q, want none", j.PausedReason)
		}

		// Past the deadline it still reads done.
		b.clock.Advance(time.Hour)
		if j := b.job(t, "j1"); j.State != checkpoint.StateDone {
			t.Fatalf("state past the deadline = %q, want done", j.State)
		}
	})

	t.Run("EndingWithoutDeadlineIsDone", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", testPolicy())
		b.record(t, "j1", "a")
		b.pause(t, "j1", reason)
		at := b.clock.Advance(48 * time.Hour)
		b.failItem(t, "j1", "a", checkpoint.Failure{Class: "bad_request"})
		if j := requireFinishedAt(t, b, "j1", at, checkpoint.StateDone); j.PausedReason != "" {
			t.Fatalf("PausedReason = %q, want none", j.PausedReason)
		}
	})
}

func TestPauseResume(t *testing.T) {
	t.Parallel()

	t.Run("RunningPausedRunning", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", testPolicy())
		b.record(t, "j1", "a")
		b.pause(t, "j1", "first")

		// Pausing a paused job does nothing, and keeps the first reason.
		if ok, err := b.store.Pause(b.ctx, "j1", "second"); err != nil || ok {
			t.Fatalf("Pause(paused job) = %v, %v, want false, nil", ok, err)
		}
		if j := b.job(t, "j1"); j.State != checkpoint.StatePaused || j.PausedReason != "first" {
			t.Fatalf("state %q reason %q, want paused with the first reason", j.State, j.PausedReason)
		}

		if ok, err := b.store.Resume(b.ctx, "j1"); err != nil || !ok {
			t.Fatalf("Resume(paused job) = %v, %v, want true, nil", ok, err)
		}
		j := b.job(t, "j1")
		if j.State != checkpoint.StateRunning || j.PausedReason != "" || b.hasPausedReason(t, "j1") {
			t.Fatalf("after Resume: state %q reason %q, want running and no reason", j.State, j.PausedReason)
		}
		if ok, err := b.store.Resume(b.ctx, "j1"); err != nil || ok {
			t.Fatalf("Resume(running job) = %v, %v, want false, nil", ok, err)
		}
		if j := b.job(t, "j1"); j.State != checkpoint.StateRunning {
			t.Fatalf("state after a second Resume = %q, want running", j.State)
		}
	})

	t.Run("ResumeLeavesOtherStates", func(t *testing.T) {
		t.Parallel()
		b := setup(t)

		b.open(t, "cancelled", testPolicy())
		b.record(t, "cancelled", "a")
		if _, err := b.store.Cancel(b.ctx, "cancelled"); err != nil {
			t.Fatalf("Cancel: %v", err)
		}

		b.open(t, "done", testPolicy())
		b.record(t, "done", "a")
		b.finishItem(t, "done", "a")

		p := testPolicy()
		p.Deadline = t0.Add(time.Minute)
		b.open(t, "expired", p)
		b.record(t, "expired", "a")
		b.clock.Advance(time.Hour)
		if err := b.store.MarkExpired(b.ctx, "expired"); err != nil {
			t.Fatalf("MarkExpired: %v", err)
		}

		for name, want := range map[string]string{"cancelled": "cancelled", "done": "done", "expired": "expired"} {
			if ok, err := b.store.Resume(b.ctx, name); err != nil || ok {
				t.Fatalf("Resume(%s job) = %v, %v, want false, nil", name, ok, err)
			}
			if got := b.storedState(t, name); got != want {
				t.Fatalf("stored state of %s after Resume = %q, want %q", name, got, want)
			}
			// Pause acts only on running jobs too.
			if ok, err := b.store.Pause(b.ctx, name, "budget"); err != nil || ok {
				t.Fatalf("Pause(%s job) = %v, %v, want false, nil", name, ok, err)
			}
			if got := b.storedState(t, name); got != want || b.hasPausedReason(t, name) {
				t.Fatalf("stored state of %s after Pause = %q (reason kept %v), want %q and no reason", name, got, b.hasPausedReason(t, name), want)
			}
		}
	})

	t.Run("MissingJob", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		if ok, err := b.store.Pause(b.ctx, "nope", "budget"); err != nil || ok {
			t.Fatalf("Pause(missing job) = %v, %v, want false, nil", ok, err)
		}
		if ok, err := b.store.Resume(b.ctx, "nope"); err != nil || ok {
			t.Fatalf("Resume(missing job) = %v, %v, want false, nil", ok, err)
		}
		if keys := b.jobKeys(t, "nope"); len(keys) != 0 {
			t.Fatalf("Pause and Resume on a missing job wrote %v", keys)
		}
	})
}

func TestCancelEnded(t *testing.T) {
	t.Parallel()

	t.Run("FinishedJobStaysDone", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", testPolicy())
		b.record(t, "j1", "a", "b")
		b.finishItem(t, "j1", "a")
		b.failItem(t, "j1", "b", checkpoint.Failure{Class: "bad_request"})
		before := requireFinishedAt(t, b, "j1", t0, checkpoint.StateDone)

		b.clock.Advance(time.Minute)
		n, err := b.store.Cancel(b.ctx, "j1")
		if !errors.Is(err, checkpoint.ErrJobFinished) || n != 0 {
			t.Fatalf("Cancel(finished job) = %d, %v, want 0, ErrJobFinished", n, err)
		}
		if errors.Is(err, checkpoint.ErrJobNotFound) {
			t.Fatalf("Cancel(finished job) = %v, must not be ErrJobNotFound", err)
		}
		j := requireFinishedAt(t, b, "j1", before.FinishedAt, checkpoint.StateDone)
		if countsOf(j) != countsOf(before) {
			t.Fatalf("counts after Cancel = %+v, want %+v", countsOf(j), countsOf(before))
		}
	})

	t.Run("CancelledJobThatFinishedRefusesSecondCancel", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", testPolicy())
		b.record(t, "j1", "a", "b")
		if n, err := b.store.Cancel(b.ctx, "j1"); err != nil || n != 2 {
			t.Fatalf("Cancel = %d, %v, want 2, nil", n, err)
		}
		requireFinishedAt(t, b, "j1", t0, checkpoint.StateCancelled)
		if _, err := b.store.Cancel(b.ctx, "j1"); !errors.Is(err, checkpoint.ErrJobFinished) {
			t.Fatalf("second Cancel = %v, want ErrJobFinished", err)
		}
		requireFinishedAt(t, b, "j1", t0, checkpoint.StateCancelled)
	})

	t.Run("PausedJobLosesReason", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", testPolicy())
		b.record(t, "j1", "a", "b")
		b.claim(t, "j1", "a", "ta")
		b.pause(t, "j1", "cost budget reached")
		if n, err := b.store.Cancel(b.ctx, "j1"); err != nil || n != 1 {
			t.Fatalf("Cancel(paused job) = %d, %v, want 1, nil", n, err)
		}
		j := b.job(t, "j1")
		if j.State != checkpoint.StateCancelled || j.PausedReason != "" || b.hasPausedReason(t, "j1") {
			t.Fatalf("after Cancel: state %q reason %q, want cancelled and no reason", j.State, j.PausedReason)
		}
	})

	t.Run("MissingJob", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, err := b.store.Cancel(b.ctx, "nope")
		if !errors.Is(err, checkpoint.ErrJobNotFound) || errors.Is(err, checkpoint.ErrJobFinished) {
			t.Fatalf("Cancel(missing job) = %v, want ErrJobNotFound only", err)
		}
		if keys := b.jobKeys(t, "nope"); len(keys) != 0 {
			t.Fatalf("Cancel on a missing job wrote %v", keys)
		}
	})
}

func TestStartCallJobEnded(t *testing.T) {
	t.Parallel()

	t.Run("AfterCancel", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", testPolicy())
		b.record(t, "j1", "a", "b")
		b.claim(t, "j1", "a", "ta")
		if n, err := b.store.StartCall(b.ctx, "j1", "a", "ta", 3); err != nil || n != 1 {
			t.Fatalf("StartCall before Cancel = %d, %v, want 1, nil", n, err)
		}
		if n, err := b.store.Cancel(b.ctx, "j1"); err != nil || n != 1 {
			t.Fatalf("Cancel = %d, %v, want 1, nil", n, err)
		}

		if n, err := b.store.StartCall(b.ctx, "j1", "a", "ta", 3); !errors.Is(err, checkpoint.ErrJobEnded) || n != 0 {
			t.Fatalf("StartCall after Cancel = %d, %v, want 0, ErrJobEnded", n, err)
		}
		// A stale token is still told it lost the claim.
		if _, err := b.store.StartCall(b.ctx, "j1", "a", "other", 3); !errors.Is(err, checkpoint.ErrClaimLost) {
			t.Fatalf("StartCall by a stale attempt after Cancel = %v, want ErrClaimLost", err)
		}
		j := b.requireCounts(t, "j1", counts{total: 2, failed: 1, active: 1})
		if j.ProviderCalls != 1 {
			t.Fatalf("ProviderCalls = %d, want 1 (the call before Cancel)", j.ProviderCalls)
		}
		if v := b.item(t, "j1", "a"); v.Calls != 1 {
			t.Fatalf("calls of a = %d, want 1", v.Calls)
		}
	})

	t.Run("PastDeadline", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		p := testPolicy()
		p.Deadline = t0.Add(time.Hour)
		b.open(t, "j1", p)
		b.record(t, "j1", "a")
		b.claim(t, "j1", "a", "ta")

		if n, err := b.store.StartCall(b.ctx, "j1", "a", "ta", 5); err != nil || n != 1 {
			t.Fatalf("StartCall at t0 = %d, %v, want 1, nil", n, err)
		}
		b.clock.Advance(time.Hour - time.Millisecond)
		if n, err := b.store.StartCall(b.ctx, "j1", "a", "ta", 5); err != nil || n != 2 {
			t.Fatalf("StartCall just before the deadline = %d, %v, want 2, nil", n, err)
		}
		b.clock.Advance(time.Second)
		if n, err := b.store.StartCall(b.ctx, "j1", "a", "ta", 5); !errors.Is(err, checkpoint.ErrJobEnded) || n != 0 {
			t.Fatalf("StartCall past the deadline = %d, %v, want 0, ErrJobEnded", n, err)
		}
		j := b.job(t, "j1")
		if j.ProviderCalls != 2 {
			t.Fatalf("ProviderCalls = %d, want 2", j.ProviderCalls)
		}
		if v := b.item(t, "j1", "a"); v.Calls != 2 {
			t.Fatalf("calls of a = %d, want 2", v.Calls)
		}
	})

	t.Run("ExpiredUntilDeadlineMoves", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		p := testPolicy()
		p.Deadline = t0.Add(time.Hour)
		b.open(t, "j1", p)
		b.record(t, "j1", "a")
		b.claim(t, "j1", "a", "ta")
		b.clock.Advance(2 * time.Hour)
		if err := b.store.MarkExpired(b.ctx, "j1"); err != nil {
			t.Fatalf("MarkExpired: %v", err)
		}
		if _, err := b.store.StartCall(b.ctx, "j1", "a", "ta", 5); !errors.Is(err, checkpoint.ErrJobEnded) {
			t.Fatalf("StartCall on an expired job = %v, want ErrJobEnded", err)
		}

		p.Deadline = b.clock.Now().Add(time.Hour)
		if err := b.store.UpdatePolicy(b.ctx, "j1", p); err != nil {
			t.Fatalf("UpdatePolicy: %v", err)
		}
		if n, err := b.store.StartCall(b.ctx, "j1", "a", "ta", 5); err != nil || n != 1 {
			t.Fatalf("StartCall after the deadline moved = %d, %v, want 1, nil", n, err)
		}
	})

	t.Run("NoDeadlineNeverEnds", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", testPolicy())
		b.record(t, "j1", "a")
		b.claim(t, "j1", "a", "ta")
		b.clock.Advance(365 * 24 * time.Hour)
		if n, err := b.store.StartCall(b.ctx, "j1", "a", "ta", 5); err != nil || n != 1 {
			t.Fatalf("StartCall a year later without a deadline = %d, %v, want 1, nil", n, err)
		}
	})
}

func TestNoteEndpoint(t *testing.T) {
	t.Parallel()

	t.Run("ExistingJob", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", testPolicy())
		if j := b.job(t, "j1"); j.Endpoint != "" {
			t.Fatalf("Endpoint of a new job = %q, want empty", j.Endpoint)
		}
		for _, ep := range []string{"0123456789abcdef", "fedcba9876543210"} {
			if err := b.store.NoteEndpoint(b.ctx, "j1", ep); err != nil {
				t.Fatalf("NoteEndpoint(%q): %v", ep, err)
			}
			if j := b.job(t, "j1"); j.Endpoint != ep {
				t.Fatalf("Endpoint = %q, want %q", j.Endpoint, ep)
			}
		}
	})

	t.Run("DeletedJobNotRecreated", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", testPolicy())
		b.record(t, "j1", "a")
		if err := b.store.Delete(b.ctx, "j1"); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		// A late worker notes the endpoint of the job it was processing.
		if err := b.store.NoteEndpoint(b.ctx, "j1", "0123456789abcdef"); err != nil {
			t.Fatalf("NoteEndpoint(deleted job) = %v, want nil", err)
		}
		if n := b.rdb.Exists(b.ctx, "llmfleet:{j1}:job").Val(); n != 0 {
			t.Fatal("NoteEndpoint recreated the deleted job's hash")
		}
		if keys := b.jobKeys(t, "j1"); len(keys) != 0 {
			t.Fatalf("NoteEndpoint on a deleted job wrote %v", keys)
		}
		if _, err := b.store.Job(b.ctx, "j1"); !errors.Is(err, checkpoint.ErrJobNotFound) {
			t.Fatalf("Job after NoteEndpoint = %v, want ErrJobNotFound", err)
		}
	})
}

func TestJobsWithDamagedJob(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.open(t, "alpha", testPolicy())
	b.open(t, "beta", testPolicy())
	b.record(t, "beta", "x", "y")
	if err := b.rdb.HSet(b.ctx, "llmfleet:{bad}:job", "state", "running", "policy", "not json", "total", 3).Err(); err != nil {
		t.Fatal(err)
	}
	if err := b.rdb.SAdd(b.ctx, "llmfleet:jobs", "bad").Err(); err != nil {
		t.Fatal(err)
	}

	jobs, err := b.store.Jobs(b.ctx)
	if err != nil {
		t.Fatalf("Jobs with a damaged job = %v, want the others listed", err)
	}
	byName := map[string]checkpoint.Job{}
	for _, j := range jobs {
		byName[j.Name] = j
	}
	if len(jobs) != 3 || len(byName) != 3 {
		t.Fatalf("Jobs = %+v, want alpha, beta and bad", jobs)
	}
	if j := byName["alpha"]; j.State != checkpoint.StateRunning || j.Total != 0 || j.Policy.Model != "gpt-test" {
		t.Fatalf("alpha = %+v, want running, empty, its policy", j)
	}
	if j := byName["beta"]; j.State != checkpoint.StateRunning || j.Total != 2 {
		t.Fatalf("beta = %+v, want running with 2 items", j)
	}
	bad, ok := byName["bad"]
	if !ok || !strings.HasPrefix(string(bad.State), "damaged") {
		t.Fatalf("bad = %+v, want a state starting with damaged", bad)
	}
	if !b.rdb.SIsMember(b.ctx, "llmfleet:jobs", "bad").Val() {
		t.Fatal("Jobs forgot the damaged job's name: its data still exists")
	}

	// Loading it alone reports the damage.
	if _, err := b.store.Job(b.ctx, "bad"); err == nil || errors.Is(err, checkpoint.ErrJobNotFound) {
		t.Fatalf("Job(damaged) = %v, want a decode error", err)
	}
}
