package checkpoint_test

import (
	"encoding/json"
	"errors"
	"maps"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llmfleet/llmfleet/agent"
	"github.com/llmfleet/llmfleet/checkpoint"
)

// parkCounts is counts with the items awaiting a person.
type parkCounts struct{ total, done, failed, active, awaiting, pending int64 }

// requireParkCounts checks the job's counters, that total = done + failed +
// active + awaiting_input + pending, and that they agree with the items'
// statuses.
func (b *testBundle) requireParkCounts(t *testing.T, name string, want parkCounts) checkpoint.Job {
	t.Helper()
	j := b.job(t, name)
	got := parkCounts{j.Total, j.Done, j.Failed, j.Active, j.AwaitingInput, j.Pending()}
	if got != want {
		t.Fatalf("job %q counts = %+v, want %+v", name, got, want)
	}
	byStatus := b.statusCounts(t, name)
	fromItems := parkCounts{
		done:     int64(byStatus[checkpoint.ItemDone]),
		failed:   int64(byStatus[checkpoint.ItemFailed]),
		active:   int64(byStatus[checkpoint.ItemActive]),
		awaiting: int64(byStatus[checkpoint.ItemAwaiting]),
		pending:  int64(byStatus[checkpoint.ItemPending]),
	}
	for _, n := range byStatus {
		fromItems.total += int64(n)
	}
	if fromItems != want {
		t.Fatalf("job %q item statuses %v count %+v, want %+v", name, byStatus, fromItems, want)
	}
	if sum := j.Done + j.Failed + j.Active + j.AwaitingInput + fromItems.pending; sum != j.Total {
		t.Fatalf("job %q: done+failed+active+awaiting_input+pending = %d, total %d", name, sum, j.Total)
	}
	return j
}

// dump returns every field of every key of the job ("key field" → value;
// a list's elements by index), to check that a refused call wrote nothing.
func (b *testBundle) dump(t *testing.T, name string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, k := range b.jobKeys(t, name) {
		short := strings.TrimPrefix(k, "llmfleet:{"+name+"}:")
		switch typ := b.rdb.Type(b.ctx, k).Val(); typ {
		case "hash":
			for f, v := range b.rdb.HGetAll(b.ctx, k).Val() {
				out[short+" "+f] = v
			}
		case "list":
			for i, v := range b.rdb.LRange(b.ctx, k, 0, -1).Val() {
				out[short+" "+strconv.Itoa(i)] = v
			}
		default:
			t.Fatalf("key %s has type %q", k, typ)
		}
	}
	return out
}

func (b *testBundle) requireUnchanged(t *testing.T, name, what string, before map[string]string) {
	t.Helper()
	if after := b.dump(t, name); !maps.Equal(after, before) {
		t.Fatalf("after %s the job's keys are\n%v\nwant them unchanged\n%v", what, after, before)
	}
}

func (b *testBundle) park(t *testing.T, job, id, token string, reqs []agent.Request, unsent bool) {
	t.Helper()
	if err := b.store.Park(b.ctx, job, id, token, reqs, unsent); err != nil {
		t.Fatalf("Park(%q, %q): %v", id, token, err)
	}
}

func (b *testBundle) requests(t *testing.T, job, id string) ([]agent.Request, string) {
	t.Helper()
	reqs, raw, err := b.store.Requests(b.ctx, job, id)
	if err != nil {
		t.Fatalf("Requests(%q): %v", id, err)
	}
	return reqs, raw
}

func (b *testBundle) decide(t *testing.T, job, id, read string, reqs []agent.Request) {
	t.Helper()
	if err := b.store.Decide(b.ctx, job, id, read, reqs); err != nil {
		t.Fatalf("Decide(%q): %v", id, err)
	}
}

// sameRequests compares requests as their JSON, the form they are stored in.
func sameRequests(a, b []agent.Request) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

func (b *testBundle) requireRequests(t *testing.T, job, id string, want []agent.Request) string {
	t.Helper()
	got, raw := b.requests(t, job, id)
	if !sameRequests(got, want) {
		t.Fatalf("Requests(%q) = %+v, want %+v", id, got, want)
	}
	return raw
}

func (b *testBundle) status(t *testing.T, job, id string) checkpoint.ItemStatus {
	t.Helper()
	return b.item(t, job, id).Status
}

// askingStep is a model step calling a tool that needs no person, one that
// needs approval and a human tool.
func askingStep(n int) checkpoint.Step {
	return modelStep(n,
		toolCall("call_1", "check_disk", `{}`),
		toolCall("call_2", "clean_logs", `{"days":7}`),
		toolCall("call_3", "ask_human", `{"question":"which volume?"}`))
}

// personRequests are the requests askingStep(step) makes: an approval of
// clean_logs and a question for ask_human.
func personRequests(step int) []agent.Request {
	p := agentPolicy()
	return []agent.Request{
		agent.NewRequest(&p.Tools[1], toolCall("call_2", "clean_logs", `{"days":7}`), step, t0),
		agent.NewRequest(&p.Tools[2], toolCall("call_3", "ask_human", `{"question":"which volume?"}`), step, t0),
	}
}

func decided(r agent.Request, d agent.DecisionKind) agent.Request {
	r.Decision = &agent.Decision{Decision: d, At: t0.Add(time.Minute)}
	if d == agent.DecideAnswer {
		r.Decision.Answer = "/var"
	}
	return r
}

// resumedAtPerson opens j1 with agent items a, b and c, runs a's step 1
// (askingStep) and step 2 (check_disk's result) under "t1", releases it and
// begins it again under "t2": the attempt resumes at the calls that need a
// person, with a call Begin counted that it does not make.
func resumedAtPerson(t *testing.T, b *testBundle) []checkpoint.Step {
	t.Helper()
	b.open(t, "j1", agentPolicy())
	b.record(t, "j1", "a", "b", "c")
	b.begin(t, "j1", "a", "t1")
	steps := []checkpoint.Step{askingStep(1), toolStep(2, "call_1", "83% used", 1)}
	for _, st := range steps {
		b.appendStep(t, "j1", "a", "t1", st)
	}
	if err := b.store.Release(b.ctx, "j1", "a", "t1", nil); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if c := b.begin(t, "j1", "a", "t2"); c.Call != 1 || c.Calls != 0 {
		t.Fatalf("Begin(t2) = %+v, want call 1 after 0", c)
	}
	if v, j := b.item(t, "j1", "a"), b.job(t, "j1"); v.Calls != 1 || j.ProviderCalls != 2 {
		t.Fatalf("before Park: calls %d provider_calls %d, want 1 and 2", v.Calls, j.ProviderCalls)
	}
	return steps
}

// parkedA is resumedAtPerson with a parked under t2, its call given back.
func parkedA(t *testing.T, b *testBundle) []checkpoint.Step {
	t.Helper()
	steps := resumedAtPerson(t, b)
	b.park(t, "j1", "a", "t2", personRequests(1), true)
	return steps
}

func TestPark(t *testing.T) {
	t.Parallel()

	t.Run("ParksUnderTheClaim", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		steps := resumedAtPerson(t, b)
		b.requireParkCounts(t, "j1", parkCounts{total: 3, active: 1, pending: 2})
		reqs := personRequests(1)
		b.park(t, "j1", "a", "t2", reqs, true)

		j := b.requireParkCounts(t, "j1", parkCounts{total: 3, awaiting: 1, pending: 2})
		if got := b.jobHash(t, "j1")["awaiting_input"]; got != "1" {
			t.Fatalf("job hash awaiting_input = %q, want 1", got)
		}
		// The call Begin counted never went out: given back.
		v := b.item(t, "j1", "a")
		if v.Status != checkpoint.ItemAwaiting || v.Calls != 0 || j.ProviderCalls != 1 {
			t.Fatalf("after Park: status %s calls %d provider_calls %d, want awaiting_input, 0, 1", v.Status, v.Calls, j.ProviderCalls)
		}
		if j.Finished() || !j.FinishedAt.IsZero() || j.State != checkpoint.StateRunning {
			t.Fatalf("job after Park: finished %t at %v state %s, want running", j.Finished(), j.FinishedAt, j.State)
		}
		// The requests read back, with the text they are stored as.
		raw := b.requireRequests(t, "j1", "a", reqs)
		stored, err := b.rdb.HGet(b.ctx, "llmfleet:{j1}:awaiting", "a").Result()
		if err != nil || raw != stored {
			t.Fatalf("Requests text = %q, stored %q (%v): want the stored text", raw, stored, err)
		}
		if got, _ := b.requests(t, "j1", "a"); got[0].Kind != agent.KindApproval || got[1].Kind != agent.KindQuestion ||
			got[1].Question != "which volume?" || string(got[0].Arguments) != `{"days":7}` || !got[0].Since.Equal(t0) {
			t.Fatalf("Requests = %+v, want the approval and the question as parked", got)
		}
		// Items without requests have none.
		if got, raw := b.requests(t, "j1", "b"); got != nil || raw != "" {
			t.Fatalf("Requests(b) = %+v, %q, want none", got, raw)
		}
		if got, raw := b.requests(t, "nosuchjob", "a"); got != nil || raw != "" {
			t.Fatalf("Requests in a missing job = %+v, %q, want none", got, raw)
		}
		// Its steps stay: the item resumes at its parked step.
		b.requireSteps(t, "j1", "a", steps)
		// Recording it again says it waits for a person.
		if got, err := b.store.Record(b.ctx, "j1", entries("a")); err != nil || len(got) != 1 || got[0] != checkpoint.RecordedAwaiting {
			t.Fatalf("Record(a) again = %v, %v, want %q", got, err, checkpoint.RecordedAwaiting)
		}

		// The claim is dropped: the attempt that parked it writes nothing more.
		before := b.dump(t, "j1")
		if _, err := b.store.AppendStep(b.ctx, "j1", "a", "t2", toolStep(3, "call_2", "deleted", 1)); !errors.Is(err, checkpoint.ErrClaimLost) {
			t.Fatalf("AppendStep with the parking token = %v, want ErrClaimLost", err)
		}
		if err := b.store.Release(b.ctx, "j1", "a", "t2", &checkpoint.Failure{Class: "server_error"}); !errors.Is(err, checkpoint.ErrClaimLost) {
			t.Fatalf("Release with the parking token = %v, want ErrClaimLost", err)
		}
		if err := b.store.ReleaseUnsent(b.ctx, "j1", "a", "t2"); !errors.Is(err, checkpoint.ErrClaimLost) {
			t.Fatalf("ReleaseUnsent with the parking token = %v, want ErrClaimLost", err)
		}
		if ok, err := b.store.Fail(b.ctx, "j1", "a", "t2", checkpoint.Failure{Class: "tool_error"}); ok || !errors.Is(err, checkpoint.ErrClaimLost) {
			t.Fatalf("Fail with the parking token = %v, %v, want ErrClaimLost", ok, err)
		}
		if _, err := b.store.StartCall(b.ctx, "j1", "a", "t2", 3); !errors.Is(err, checkpoint.ErrClaimLost) {
			t.Fatalf("StartCall with the parking token = %v, want ErrClaimLost", err)
		}
		if err := b.store.Unsend(b.ctx, "j1", "a", "t2"); !errors.Is(err, checkpoint.ErrClaimLost) {
			t.Fatalf("Unsend with the parking token = %v, want ErrClaimLost", err)
		}
		if err := b.store.Park(b.ctx, "j1", "a", "t2", reqs, true); !errors.Is(err, checkpoint.ErrClaimLost) {
			t.Fatalf("Park again with the parking token = %v, want ErrClaimLost", err)
		}
		b.requireUnchanged(t, "j1", "writes with the parking token", before)
		if b.rdb.HExists(b.ctx, "llmfleet:{j1}:claim", "a").Val() {
			t.Fatal("claim of a is still held after Park")
		}
	})

	t.Run("SentCallIsKept", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		resumedAtPerson(t, b)
		b.park(t, "j1", "a", "t2", personRequests(1), false)
		j := b.requireParkCounts(t, "j1", parkCounts{total: 3, awaiting: 1, pending: 2})
		if v := b.item(t, "j1", "a"); v.Calls != 1 || j.ProviderCalls != 2 {
			t.Fatalf("after Park (sent): calls %d provider_calls %d, want 1 and 2", v.Calls, j.ProviderCalls)
		}
	})

	t.Run("UnsentWithoutCallsGivesNothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", agentPolicy())
		b.record(t, "j1", "a")
		b.begin(t, "j1", "a", "t1")
		b.appendStep(t, "j1", "a", "t1", askingStep(1)) // the model step ends the call count
		b.park(t, "j1", "a", "t1", personRequests(1), true)
		j := b.requireParkCounts(t, "j1", parkCounts{total: 1, awaiting: 1})
		if v := b.item(t, "j1", "a"); v.Calls != 0 || j.ProviderCalls != 1 {
			t.Fatalf("after Park: calls %d provider_calls %d, want 0 and 1", v.Calls, j.ProviderCalls)
		}
	})

	t.Run("OnlyTheClaimHolderParks", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		resumedAtPerson(t, b)
		before := b.dump(t, "j1")
		lost := func(what, id, token string) {
			t.Helper()
			if err := b.store.Park(b.ctx, "j1", id, token, personRequests(1), true); !errors.Is(err, checkpoint.ErrClaimLost) {
				t.Fatalf("Park %s = %v, want ErrClaimLost", what, err)
			}
			b.requireUnchanged(t, "j1", "Park "+what, before)
		}
		lost("with another token", "a", "other")
		lost("with the released attempt's token", "a", "t1")
		lost("of a pending item", "b", "t2")
		lost("of an unknown item", "zzz", "t2")
		if err := b.store.Park(b.ctx, "nosuchjob", "a", "t2", personRequests(1), true); !errors.Is(err, checkpoint.ErrClaimLost) {
			t.Fatalf("Park in a missing job = %v, want ErrClaimLost", err)
		}
		if keys := b.jobKeys(t, "nosuchjob"); len(keys) != 0 {
			t.Fatalf("Park in a missing job created %v", keys)
		}
		b.requireParkCounts(t, "j1", parkCounts{total: 3, active: 1, pending: 2})
		// The holder still parks it.
		b.park(t, "j1", "a", "t2", personRequests(1), true)
		b.requireParkCounts(t, "j1", parkCounts{total: 3, awaiting: 1, pending: 2})
	})
}

// A parked item's task wakes (an answer, its input timeout, the recheck):
// claiming it makes it active again.
func TestClaimParked(t *testing.T) {
	t.Parallel()

	t.Run("Begin", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		steps := parkedA(t, b)
		c := b.begin(t, "j1", "a", "t3")
		if c.Verdict != checkpoint.VerdictClaimed || c.Call != 1 || c.Calls != 0 {
			t.Fatalf("Begin(parked) = %+v, want claimed, call 1 after 0", c)
		}
		j := b.requireParkCounts(t, "j1", parkCounts{total: 3, active: 1, pending: 2})
		if got := b.jobHash(t, "j1")["awaiting_input"]; got != "0" {
			t.Fatalf("job hash awaiting_input = %q, want 0", got)
		}
		if j.ProviderCalls != 2 {
			t.Fatalf("provider_calls = %d, want 2", j.ProviderCalls)
		}
		// The attempt resumes from the steps and the requests.
		b.requireSteps(t, "j1", "a", steps)
		b.requireRequests(t, "j1", "a", personRequests(1))
		// It holds the item: it may give the call back and park it again.
		if err := b.store.Unsend(b.ctx, "j1", "a", "t3"); err != nil {
			t.Fatalf("Unsend: %v", err)
		}
		b.park(t, "j1", "a", "t3", personRequests(1), false)
		j = b.requireParkCounts(t, "j1", parkCounts{total: 3, awaiting: 1, pending: 2})
		if j.ProviderCalls != 1 {
			t.Fatalf("provider_calls = %d, want 1", j.ProviderCalls)
		}
	})

	t.Run("Claim", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		parkedA(t, b)
		c := b.claim(t, "j1", "a", "t3")
		if c.Call != 0 || c.Calls != 0 {
			t.Fatalf("Claim(parked) = %+v, want no call started", c)
		}
		b.requireParkCounts(t, "j1", parkCounts{total: 3, active: 1, pending: 2})
		if out := b.appendStep(t, "j1", "a", "t3", toolStep(3, "call_2", "deleted 12 files", 1)); out != checkpoint.StepAppended {
			t.Fatalf("AppendStep(step 3) under the new claim = %q", out)
		}
		// A release after the resumed step: pending, not awaiting.
		if err := b.store.Release(b.ctx, "j1", "a", "t3", nil); err != nil {
			t.Fatalf("Release: %v", err)
		}
		b.requireParkCounts(t, "j1", parkCounts{total: 3, pending: 3})
	})

	t.Run("CoalescedBegins", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		parkedA(t, b)
		b.begin(t, "j1", "c", "tc")
		b.park(t, "j1", "c", "tc", personRequests(1), true)
		b.requireParkCounts(t, "j1", parkCounts{total: 3, awaiting: 2, pending: 1})
		// Concurrent Begins of the job share script runs: each transition
		// is applied whole.
		var wg sync.WaitGroup
		errs := make([]error, 3)
		got := make([]checkpoint.Claimed, 3)
		for i, id := range []string{"a", "b", "c"} {
			wg.Go(func() {
				got[i], errs[i] = b.store.Begin(b.ctx, "j1", id, "w-"+id, false)
			})
		}
		wg.Wait()
		for i := range got {
			if errs[i] != nil || got[i].Verdict != checkpoint.VerdictClaimed || got[i].Call != 1 {
				t.Fatalf("Begin #%d = %+v, %v, want claimed with call 1", i, got[i], errs[i])
			}
		}
		b.requireParkCounts(t, "j1", parkCounts{total: 3, active: 3})
	})
}

func TestDecide(t *testing.T) {
	t.Parallel()

	t.Run("CompareAndSet", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		parkedA(t, b)
		reqs, raw := b.requests(t, "j1", "a")

		// The first answer: one request is still undecided, the item stays
		// parked.
		first := append([]agent.Request(nil), reqs...)
		first[0] = decided(first[0], agent.DecideApprove)
		b.decide(t, "j1", "a", raw, first)
		raw1 := b.requireRequests(t, "j1", "a", first)
		if raw1 == raw {
			t.Fatal("the stored text did not change with the decision")
		}
		if st := b.status(t, "j1", "a"); st != checkpoint.ItemAwaiting {
			t.Fatalf("status with a request undecided = %s, want awaiting_input", st)
		}
		b.requireParkCounts(t, "j1", parkCounts{total: 3, awaiting: 1, pending: 2})

		// Someone who read them before that answer is refused.
		stale := append([]agent.Request(nil), reqs...)
		stale[1] = decided(stale[1], agent.DecideAnswer)
		before := b.dump(t, "j1")
		if err := b.store.Decide(b.ctx, "j1", "a", raw, stale); !errors.Is(err, checkpoint.ErrRequestsChanged) {
			t.Fatalf("Decide with stale text = %v, want ErrRequestsChanged", err)
		}
		if err := b.store.Decide(b.ctx, "j1", "a", "", stale); !errors.Is(err, checkpoint.ErrRequestsChanged) {
			t.Fatalf("Decide with no text read = %v, want ErrRequestsChanged", err)
		}
		b.requireUnchanged(t, "j1", "a stale Decide", before)

		// The last answer, on what is stored now: pending again, in the
		// same step.
		last := append([]agent.Request(nil), first...)
		last[1] = decided(last[1], agent.DecideAnswer)
		b.decide(t, "j1", "a", raw1, last)
		raw2 := b.requireRequests(t, "j1", "a", last)
		if st := b.status(t, "j1", "a"); st != checkpoint.ItemPending {
			t.Fatalf("status with every request decided = %s, want pending", st)
		}
		j := b.requireParkCounts(t, "j1", parkCounts{total: 3, pending: 3})
		if got := b.jobHash(t, "j1")["awaiting_input"]; got != "0" {
			t.Fatalf("job hash awaiting_input = %q, want 0", got)
		}
		if j.Finished() {
			t.Fatal("job finished with items pending")
		}
		// Answered: no further decision until it parks again.
		before = b.dump(t, "j1")
		err := b.store.Decide(b.ctx, "j1", "a", raw2, last)
		if !errors.Is(err, checkpoint.ErrNotAwaiting) || !strings.Contains(err.Error(), "pending") {
			t.Fatalf("Decide of an answered item = %v, want ErrNotAwaiting saying pending", err)
		}
		b.requireUnchanged(t, "j1", "Decide of an answered item", before)
		// The resumed attempt finds the decisions.
		b.begin(t, "j1", "a", "t3")
		b.requireRequests(t, "j1", "a", last)
		b.requireParkCounts(t, "j1", parkCounts{total: 3, active: 1, pending: 2})
	})

	t.Run("AllAtOnce", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		parkedA(t, b)
		reqs, raw := b.requests(t, "j1", "a")
		reqs[0] = decided(reqs[0], agent.DecideReject)
		reqs[1] = decided(reqs[1], agent.DecideAnswer)
		b.decide(t, "j1", "a", raw, reqs)
		b.requireParkCounts(t, "j1", parkCounts{total: 3, pending: 3})
		b.requireRequests(t, "j1", "a", reqs)
	})

	t.Run("NotAwaiting", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", agentPolicy())
		b.record(t, "j1", "pend", "act", "done", "fail")
		b.begin(t, "j1", "act", "ta")
		b.finishItem(t, "j1", "done")
		b.failItem(t, "j1", "fail", checkpoint.Failure{Class: "tool_error"})
		before := b.dump(t, "j1")
		reqs := personRequests(1)
		reqs[0] = decided(reqs[0], agent.DecideApprove)
		for _, id := range []string{"pend", "act", "done", "fail"} {
			err := b.store.Decide(b.ctx, "j1", id, "", reqs)
			if !errors.Is(err, checkpoint.ErrNotAwaiting) || errors.Is(err, checkpoint.ErrItemNotFound) {
				t.Fatalf("Decide(%s item) = %v, want ErrNotAwaiting", id, err)
			}
		}
		b.requireUnchanged(t, "j1", "Decide of items not parked", before)
		for _, job := range []string{"j1", "nosuchjob"} {
			if err := b.store.Decide(b.ctx, job, "zzz", "", reqs); !errors.Is(err, checkpoint.ErrItemNotFound) {
				t.Fatalf("Decide(unknown item of %s) = %v, want ErrItemNotFound", job, err)
			}
		}
		b.requireUnchanged(t, "j1", "Decide of an unknown item", before)
		if keys := b.jobKeys(t, "nosuchjob"); len(keys) != 0 {
			t.Fatalf("Decide in a missing job created %v", keys)
		}
	})
}

// A job is not done while an item awaits a person; a sweep (cancel,
// deadline) fails a parked item and lets the job finish.
func TestParkedItemHoldsTheJob(t *testing.T) {
	t.Parallel()

	// parkedLast leaves a parked and b and c done.
	parkedLast := func(t *testing.T, b *testBundle) {
		t.Helper()
		parkedA(t, b)
		b.finishItem(t, "j1", "b")
		b.finishItem(t, "j1", "c")
		j := b.requireParkCounts(t, "j1", parkCounts{total: 3, done: 2, awaiting: 1})
		if j.Finished() || j.Done+j.Failed >= j.Total {
			t.Fatalf("job with a parked item: done %d failed %d total %d, want unfinished", j.Done, j.Failed, j.Total)
		}
		requireUnfinished(t, b, "j1")
	}

	for _, tc := range []struct {
		name  string
		sweep func(*testBundle) (int, error)
		state checkpoint.State
		class string
	}{
		{"Cancel", func(b *testBundle) (int, error) { return b.store.Cancel(b.ctx, "j1") }, checkpoint.StateCancelled, "cancelled"},
		{"Expire", func(b *testBundle) (int, error) { return b.store.Expire(b.ctx, "j1") }, checkpoint.StateExpired, "expired"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			parkedLast(t, b)
			now := b.clock.Advance(time.Minute)
			n, err := tc.sweep(b)
			if err != nil || n != 1 {
				t.Fatalf("%s = %d, %v, want the parked item failed", tc.name, n, err)
			}
			b.requireParkCounts(t, "j1", parkCounts{total: 3, done: 2, failed: 1})
			if got := b.jobHash(t, "j1")["awaiting_input"]; got != "0" {
				t.Fatalf("job hash awaiting_input = %q, want 0", got)
			}
			j := requireFinishedAt(t, b, "j1", now, tc.state)
			if !j.Finished() {
				t.Fatal("Finished() = false")
			}
			v := b.item(t, "j1", "a")
			if v.Status != checkpoint.ItemFailed || v.Failure == nil || v.Failure.Class != tc.class {
				t.Fatalf("parked item after %s = %s %+v, want failed %s", tc.name, v.Status, v.Failure, tc.class)
			}
			// Nobody can answer it now.
			reqs, raw := b.requests(t, "j1", "a")
			reqs[0] = decided(reqs[0], agent.DecideApprove)
			if err := b.store.Decide(b.ctx, "j1", "a", raw, reqs); !errors.Is(err, checkpoint.ErrNotAwaiting) {
				t.Fatalf("Decide after %s = %v, want ErrNotAwaiting", tc.name, err)
			}
			// A second sweep finds nothing.
			if n, err := b.store.SweepCancelled(b.ctx, "j1"); err != nil || n != 0 {
				t.Fatalf("second sweep = %d, %v, want 0", n, err)
			}
			b.requireParkCounts(t, "j1", parkCounts{total: 3, done: 2, failed: 1})
		})
	}

	t.Run("SweepFailsParkedAndPending", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		parkedA(t, b) // b and c pending
		b.begin(t, "j1", "c", "tc")
		if _, err := b.store.Cancel(b.ctx, "j1"); err != nil {
			t.Fatal(err)
		}
		// c is active: it ends on its own; the job waits for it.
		b.requireParkCounts(t, "j1", parkCounts{total: 3, failed: 2, active: 1})
		if j := b.job(t, "j1"); !j.FinishedAt.IsZero() {
			t.Fatalf("job finished at %v with an item active", j.FinishedAt)
		}
		if ok, err := b.store.FailUnsent(b.ctx, "j1", "c", "tc", checkpoint.Failure{Class: "cancelled"}); err != nil || !ok {
			t.Fatalf("FailUnsent(c) = %v, %v", ok, err)
		}
		b.requireParkCounts(t, "j1", parkCounts{total: 3, failed: 3})
		requireFinishedAt(t, b, "j1", t0, checkpoint.StateCancelled)
	})

	t.Run("AnsweredThenFinished", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		parkedLast(t, b)
		reqs, raw := b.requests(t, "j1", "a")
		reqs[0] = decided(reqs[0], agent.DecideApprove)
		reqs[1] = decided(reqs[1], agent.DecideAnswer)
		b.decide(t, "j1", "a", raw, reqs)
		requireUnfinished(t, b, "j1")
		b.finishItem(t, "j1", "a")
		b.requireParkCounts(t, "j1", parkCounts{total: 3, done: 3})
		requireFinishedAt(t, b, "j1", t0, checkpoint.StateDone)
	})
}

// A result committed for a parked item (a stale attempt's success: a result
// is a result) takes the item out of awaiting_input.
func TestCommitOfParkedItem(t *testing.T) {
	t.Parallel()
	b := setup(t)
	parkedA(t, b)
	b.finishItem(t, "j1", "b")
	b.finishItem(t, "j1", "c")
	out, err := b.store.CommitRun(b.ctx, "j1", "t1", checkpoint.Result{ID: "a", Output: "late", Model: "gpt-x", FinishedAt: t0})
	if err != nil || out != checkpoint.Committed1 {
		t.Fatalf("CommitRun(parked) = %q, %v, want committed", out, err)
	}
	b.requireParkCounts(t, "j1", parkCounts{total: 3, done: 3})
	if got := b.jobHash(t, "j1")["awaiting_input"]; got != "0" {
		t.Fatalf("job hash awaiting_input = %q, want 0", got)
	}
	requireFinishedAt(t, b, "j1", t0, checkpoint.StateDone)
}

func TestInbox(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.open(t, "j1", agentPolicy())
	ids := []string{"a", "b", "c", "d", "e", "f", "g"}
	b.record(t, "j1", ids...)
	reqsOf := func(id string) []agent.Request {
		r := personRequests(1)
		r[0].ID = "call_" + id
		return r
	}
	// Parked in another order than the input's.
	for _, id := range []string{"e", "c", "a", "d"} {
		b.begin(t, "j1", id, "t-"+id)
		b.park(t, "j1", id, "t-"+id, reqsOf(id), true)
	}
	// d is answered, not resumed; e is answered and resuming; b waits in
	// the queue without requests; f is active without requests; g is done.
	for _, id := range []string{"d", "e"} {
		reqs, raw := b.requests(t, "j1", id)
		reqs[0] = decided(reqs[0], agent.DecideApprove)
		reqs[1] = decided(reqs[1], agent.DecideAnswer)
		b.decide(t, "j1", id, raw, reqs)
	}
	b.begin(t, "j1", "e", "t-e2")
	b.begin(t, "j1", "f", "t-f")
	b.finishItem(t, "j1", "g")
	b.requireParkCounts(t, "j1", parkCounts{total: 7, done: 1, active: 2, awaiting: 2, pending: 2})

	collect := func(t *testing.T, list func(func([]checkpoint.Waiting) error) error) []checkpoint.Waiting {
		t.Helper()
		var out []checkpoint.Waiting
		calls := 0
		if err := list(func(ws []checkpoint.Waiting) error {
			calls++
			if len(ws) == 0 {
				t.Errorf("fn called with an empty batch")
			}
			out = append(out, ws...)
			return nil
		}); err != nil {
			t.Fatalf("list: %v", err)
		}
		if len(out) == 0 && calls != 0 {
			t.Fatalf("fn called %d times with nothing", calls)
		}
		return out
	}
	requireWaiting := func(t *testing.T, got []checkpoint.Waiting, want ...string) {
		t.Helper()
		var ids []string
		for _, w := range got {
			ids = append(ids, w.Item)
		}
		if strings.Join(ids, ",") != strings.Join(want, ",") {
			t.Fatalf("listed %v, want %v", ids, want)
		}
		for _, w := range got {
			stored, _ := b.requests(t, "j1", w.Item)
			if !sameRequests(w.Requests, stored) || w.Requests[0].ID != "call_"+w.Item {
				t.Fatalf("item %s listed with %+v, want its requests %+v", w.Item, w.Requests, stored)
			}
		}
	}

	t.Run("Inbox", func(t *testing.T) {
		got := collect(t, func(fn func([]checkpoint.Waiting) error) error { return b.store.Inbox(b.ctx, "j1", fn) })
		requireWaiting(t, got, "a", "c")
		for _, w := range got {
			if len(agent.Undecided(w.Requests)) != 2 {
				t.Fatalf("item %s: %d undecided requests, want 2", w.Item, len(agent.Undecided(w.Requests)))
			}
		}
	})

	t.Run("AnsweredNotFinished", func(t *testing.T) {
		got := collect(t, func(fn func([]checkpoint.Waiting) error) error {
			return b.store.WithRequests(b.ctx, "j1", []checkpoint.ItemStatus{checkpoint.ItemPending, checkpoint.ItemActive}, fn)
		})
		requireWaiting(t, got, "d", "e")
		for _, w := range got {
			if len(agent.Undecided(w.Requests)) != 0 {
				t.Fatalf("item %s: undecided requests %+v, want none", w.Item, agent.Undecided(w.Requests))
			}
		}
		got = collect(t, func(fn func([]checkpoint.Waiting) error) error {
			return b.store.WithRequests(b.ctx, "j1", []checkpoint.ItemStatus{checkpoint.ItemAwaiting, checkpoint.ItemPending, checkpoint.ItemActive}, fn)
		})
		requireWaiting(t, got, "a", "c", "d", "e")
	})

	t.Run("NothingWaits", func(t *testing.T) {
		for _, st := range []checkpoint.ItemStatus{checkpoint.ItemDone, checkpoint.ItemFailed} {
			got := collect(t, func(fn func([]checkpoint.Waiting) error) error {
				return b.store.WithRequests(b.ctx, "j1", []checkpoint.ItemStatus{st}, fn)
			})
			requireWaiting(t, got)
		}
		got := collect(t, func(fn func([]checkpoint.Waiting) error) error { return b.store.Inbox(b.ctx, "nosuchjob", fn) })
		requireWaiting(t, got)
	})

	t.Run("ErrorStopsTheWalk", func(t *testing.T) {
		stop := errors.New("stop")
		if err := b.store.Inbox(b.ctx, "j1", func([]checkpoint.Waiting) error { return stop }); !errors.Is(err, stop) {
			t.Fatalf("Inbox = %v, want fn's error", err)
		}
	})
}

// Many parked items are listed across Walk's batches, in input order.
func TestInboxBatches(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.open(t, "j1", agentPolicy())
	ids := itemIDs(2100)
	b.record(t, "j1", ids...)
	var want []string
	for i, id := range ids {
		if i%500 != 7 && i != len(ids)-1 {
			continue
		}
		b.claim(t, "j1", id, "t")
		b.park(t, "j1", id, "t", personRequests(1), false)
		want = append(want, id)
	}
	var got []string
	if err := b.store.Inbox(b.ctx, "j1", func(ws []checkpoint.Waiting) error {
		for _, w := range ws {
			got = append(got, w.Item)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("Inbox listed %v, want %v", got, want)
	}
	b.requireParkCounts(t, "j1", parkCounts{total: 2100, awaiting: int64(len(want)), pending: 2100 - int64(len(want))})
}

func TestRestoreParked(t *testing.T) {
	t.Parallel()

	saved := func() []checkpoint.Step {
		return []checkpoint.Step{askingStep(1), toolStep(2, "call_1", "83% used", 1)}
	}
	restore := func(t *testing.T, b *testBundle, id string, steps []checkpoint.Step, reqs []agent.Request) checkpoint.Restored {
		t.Helper()
		out, err := b.store.RestoreParked(b.ctx, "j1", id, steps, reqs)
		if err != nil {
			t.Fatalf("RestoreParked(%q): %v", id, err)
		}
		return out
	}

	t.Run("Parks", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", agentPolicy())
		b.record(t, "j1", "a", "b")
		// The first request was answered before the earlier process ended.
		reqs := personRequests(1)
		reqs[0] = decided(reqs[0], agent.DecideApprove)
		if out := restore(t, b, "a", saved(), reqs); out != checkpoint.RestoredParked {
			t.Fatalf("RestoreParked = %q, want %q", out, checkpoint.RestoredParked)
		}
		b.requireParkCounts(t, "j1", parkCounts{total: 2, awaiting: 1, pending: 1})
		b.requireSteps(t, "j1", "a", saved())
		if h := b.stepsHash(t, "j1"); h["c:a"] != "2" || len(h) != 3 {
			t.Fatalf("steps hash = %v, want c:a 2 and steps 1:a, 2:a", h)
		}
		raw := b.requireRequests(t, "j1", "a", reqs)
		var inbox []string
		if err := b.store.Inbox(b.ctx, "j1", func(ws []checkpoint.Waiting) error {
			for _, w := range ws {
				inbox = append(inbox, w.Item)
			}
			return nil
		}); err != nil || strings.Join(inbox, ",") != "a" {
			t.Fatalf("Inbox = %v, %v, want a", inbox, err)
		}
		// Restored once: a second restore changes nothing.
		before := b.dump(t, "j1")
		if out := restore(t, b, "a", saved(), personRequests(1)); out != "" {
			t.Fatalf("second RestoreParked = %q, want nothing done", out)
		}
		b.requireUnchanged(t, "j1", "a second RestoreParked", before)
		// It is answered and resumes at its parked step.
		reqs[1] = decided(reqs[1], agent.DecideAnswer)
		b.decide(t, "j1", "a", raw, reqs)
		b.requireParkCounts(t, "j1", parkCounts{total: 2, pending: 2})
		b.begin(t, "j1", "a", "t1")
		if out := b.appendStep(t, "j1", "a", "t1", toolStep(3, "call_2", "deleted 12 files", 1)); out != checkpoint.StepAppended {
			t.Fatalf("AppendStep(step 3) after the restore = %q", out)
		}
		if got := b.steps(t, "j1", "a"); len(got) != 3 {
			t.Fatalf("Steps = %d, want 3", len(got))
		}
	})

	t.Run("Ready", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", agentPolicy())
		b.record(t, "j1", "a", "b")
		reqs := personRequests(1)
		reqs[0] = decided(reqs[0], agent.DecideEdit)
		reqs[0].Decision.Arguments = json.RawMessage(`{"days":30}`)
		reqs[1] = decided(reqs[1], agent.DecideAnswer)
		if out := restore(t, b, "a", saved(), reqs); out != checkpoint.RestoredReady {
			t.Fatalf("RestoreParked = %q, want %q", out, checkpoint.RestoredReady)
		}
		b.requireParkCounts(t, "j1", parkCounts{total: 2, pending: 2})
		if st := b.status(t, "j1", "a"); st != checkpoint.ItemPending {
			t.Fatalf("status = %s, want pending", st)
		}
		b.requireSteps(t, "j1", "a", saved())
		b.requireRequests(t, "j1", "a", reqs)
		var listed []string
		if err := b.store.WithRequests(b.ctx, "j1", []checkpoint.ItemStatus{checkpoint.ItemPending}, func(ws []checkpoint.Waiting) error {
			for _, w := range ws {
				listed = append(listed, w.Item)
			}
			return nil
		}); err != nil || strings.Join(listed, ",") != "a" {
			t.Fatalf("WithRequests(pending) = %v, %v, want a", listed, err)
		}
		// It already has steps: a second restore changes nothing.
		before := b.dump(t, "j1")
		if out := restore(t, b, "a", saved(), personRequests(1)); out != "" {
			t.Fatalf("second RestoreParked = %q, want nothing done", out)
		}
		b.requireUnchanged(t, "j1", "a second RestoreParked", before)
	})

	t.Run("OnlyPendingWithoutSteps", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", agentPolicy())
		b.record(t, "j1", "act", "done", "fail", "parked", "stepped")
		b.begin(t, "j1", "act", "ta")
		b.finishItem(t, "j1", "done")
		b.failItem(t, "j1", "fail", checkpoint.Failure{Class: "tool_error"})
		b.begin(t, "j1", "parked", "tp")
		b.park(t, "j1", "parked", "tp", personRequests(1), true)
		b.begin(t, "j1", "stepped", "ts")
		b.appendStep(t, "j1", "stepped", "ts", modelStep(1))
		if err := b.store.Release(b.ctx, "j1", "stepped", "ts", nil); err != nil {
			t.Fatal(err)
		}
		want := parkCounts{total: 5, done: 1, failed: 1, active: 1, awaiting: 1, pending: 1}
		b.requireParkCounts(t, "j1", want)
		before := b.dump(t, "j1")
		for _, id := range []string{"act", "done", "fail", "parked", "stepped", "zzz"} {
			if out := restore(t, b, id, saved(), personRequests(1)); out != "" {
				t.Fatalf("RestoreParked(%s) = %q, want nothing done", id, out)
			}
		}
		b.requireUnchanged(t, "j1", "RestoreParked of items it may not restore", before)
		b.requireParkCounts(t, "j1", want)
		if out, err := b.store.RestoreParked(b.ctx, "nosuchjob", "a", saved(), personRequests(1)); err != nil || out != "" {
			t.Fatalf("RestoreParked in a missing job = %q, %v, want nothing done", out, err)
		}
		if keys := b.jobKeys(t, "nosuchjob"); len(keys) != 0 {
			t.Fatalf("RestoreParked in a missing job created %v", keys)
		}
	})

	t.Run("StepsNumberedWrongly", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", agentPolicy())
		b.record(t, "j1", "a")
		before := b.dump(t, "j1")
		for name, steps := range map[string][]checkpoint.Step{
			"gap":       {askingStep(1), toolStep(3, "call_1", "x", 1)},
			"from zero": {askingStep(0), toolStep(1, "call_1", "x", 1)},
			"from two":  {askingStep(2)},
			"repeated":  {askingStep(1), toolStep(1, "call_1", "x", 1)},
		} {
			out, err := b.store.RestoreParked(b.ctx, "j1", "a", steps, personRequests(1))
			if err == nil || out != "" || !strings.Contains(err.Error(), "numbered") {
				t.Fatalf("RestoreParked with steps %s = %q, %v, want an error about numbering", name, out, err)
			}
		}
		b.requireUnchanged(t, "j1", "RestoreParked with steps numbered wrongly", before)
		b.requireParkCounts(t, "j1", parkCounts{total: 1, pending: 1})
	})
}

// A replay or an edit starts an agent item over: the requests of its
// earlier run go with its steps.
func TestRequestsStartOver(t *testing.T) {
	t.Parallel()

	// failedParked leaves a failed after it was parked (its task woke past
	// the input timeout), with its steps and requests, and c parked.
	failedParked := func(t *testing.T, b *testBundle) {
		t.Helper()
		parkedA(t, b)
		b.begin(t, "j1", "c", "tc")
		b.appendStep(t, "j1", "c", "tc", askingStep(1))
		b.park(t, "j1", "c", "tc", personRequests(1), true)
		b.claim(t, "j1", "a", "t3")
		if ok, err := b.store.Fail(b.ctx, "j1", "a", "t3", checkpoint.Failure{Class: "input_timeout"}); err != nil || !ok {
			t.Fatalf("Fail(a) = %v, %v", ok, err)
		}
		b.requireParkCounts(t, "j1", parkCounts{total: 3, failed: 1, awaiting: 1, pending: 1})
		if reqs, _ := b.requests(t, "j1", "a"); len(reqs) != 2 {
			t.Fatalf("Requests of the failed item = %+v, want its 2 requests kept", reqs)
		}
	}
	requireStartedOver := func(t *testing.T, b *testBundle) {
		t.Helper()
		if reqs, raw := b.requests(t, "j1", "a"); reqs != nil || raw != "" {
			t.Fatalf("Requests(a) = %+v, %q, want none", reqs, raw)
		}
		if b.rdb.HExists(b.ctx, "llmfleet:{j1}:awaiting", "a").Val() {
			t.Fatal("awaiting hash still holds a")
		}
		if got := b.steps(t, "j1", "a"); len(got) != 0 {
			t.Fatalf("Steps(a) = %+v, want none", got)
		}
		// c's are untouched.
		b.requireRequests(t, "j1", "c", personRequests(1))
		if got := b.steps(t, "j1", "c"); len(got) != 1 {
			t.Fatalf("Steps(c) = %d, want 1", len(got))
		}
		var listed []string
		if err := b.store.WithRequests(b.ctx, "j1", nil, func(ws []checkpoint.Waiting) error {
			for _, w := range ws {
				listed = append(listed, w.Item)
			}
			return nil
		}); err != nil || strings.Join(listed, ",") != "c" {
			t.Fatalf("WithRequests(any status) = %v, %v, want c only", listed, err)
		}
	}

	t.Run("Replay", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		failedParked(t, b)
		res, err := b.store.Replay(b.ctx, "j1", []string{"a"})
		if err != nil || len(res) != 1 || res[0].Outcome != checkpoint.Replayed {
			t.Fatalf("Replay = %+v, %v", res, err)
		}
		requireStartedOver(t, b)
		b.requireParkCounts(t, "j1", parkCounts{total: 3, awaiting: 1, pending: 2})
	})

	t.Run("ClaimReplay", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		failedParked(t, b)
		c, err := b.store.Begin(b.ctx, "j1", "a", "t4", true)
		if err != nil || c.Verdict != checkpoint.VerdictClaimed || !c.Replayed {
			t.Fatalf("Begin(replay) = %+v, %v, want claimed and replayed", c, err)
		}
		requireStartedOver(t, b)
		b.requireParkCounts(t, "j1", parkCounts{total: 3, active: 1, awaiting: 1, pending: 1})
	})

	t.Run("Edit", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		failedParked(t, b)
		// A parked item is not editable: its requests stay.
		if _, err := b.store.ReplaceInput(b.ctx, "j1", checkpoint.Entry{ID: "c", Canonical: []byte(`{"id":"c"}`)}); !errors.Is(err, checkpoint.ErrNotEditable) {
			t.Fatalf("ReplaceInput(parked) = %v, want ErrNotEditable", err)
		}
		st, err := b.store.ReplaceInput(b.ctx, "j1", checkpoint.Entry{ID: "a", Canonical: []byte(`{"id":"a","prompt":"edited"}`)})
		if err != nil || st != checkpoint.ItemFailed {
			t.Fatalf("ReplaceInput(failed) = %q, %v", st, err)
		}
		requireStartedOver(t, b)
	})
}
