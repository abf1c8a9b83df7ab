package checkpoint_test

import (
	"encoding/json"
	"errors"
	"maps"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/llmfleet/llmfleet/agent"
	"github.com/llmfleet/llmfleet/checkpoint"
	"github.com/llmfleet/llmfleet/tasks"
)

// agentPolicy is testPolicy with tools: the job's items are agent runs.
// Parameters are compact JSON, as a stored policy keeps them.
func agentPolicy() checkpoint.Policy {
	p := testPolicy()
	p.Tools = []agent.Tool{
		{
			Name: "check_disk", Description: "Check current disk usage",
			Parameters: json.RawMessage(`{"type":"object","properties":{}}`),
			URL:        "http://tools.internal:8080/check_disk",
			Headers:    map[string]string{"Authorization": "Bearer ${TOOLS_TOKEN}"},
			Timeout:    agent.Duration(30 * time.Second), MaxAttempts: 3, Approval: agent.ApprovalNever,
		},
		{Name: "clean_logs", Description: "Delete old logs", Parameters: json.RawMessage(`{"type":"object"}`),
			URL: "http://tools.internal:8080/clean_logs", Approval: agent.ApprovalAlways},
		{Name: "ask_human", Description: "Ask the operator a question", Executor: agent.ExecutorHuman},
	}
	p.MaxSteps = 4
	p.MaxTranscriptBytes = 64 << 10
	return p
}

func toolCall(id, name, args string) tasks.ToolCall {
	return tasks.ToolCall{ID: id, Type: "function", Function: tasks.FunctionCall{Name: name, Arguments: args}}
}

// modelStep is step n, a model answer calling tools, with every field set.
func modelStep(n int, calls ...tasks.ToolCall) checkpoint.Step {
	return checkpoint.Step{
		N: n, Kind: checkpoint.StepModel,
		Message: tasks.Message{Role: "assistant", Content: "let me check", ToolCalls: calls},
		Model:   "gpt-x", Calls: 2, TokensIn: 100, TokensOut: 20, CostUSD: 0.25,
		FinishReason: "tool_calls", Truncated: true, TokensDropped: 7, UsageEstimated: true,
		At: t0.Add(time.Duration(n) * time.Second),
	}
}

// toolStep is step n, the result of call id after runs runs.
func toolStep(n int, id, content string, runs int) checkpoint.Step {
	return checkpoint.Step{
		N: n, Kind: checkpoint.StepTool, Runs: runs,
		Message: tasks.Message{Role: "tool", ToolCallID: id, Content: content},
		At:      t0.Add(time.Duration(n) * time.Second),
	}
}

func (b *testBundle) appendStep(t *testing.T, job, id, token string, st checkpoint.Step) checkpoint.Appended {
	t.Helper()
	out, err := b.store.AppendStep(b.ctx, job, id, token, st)
	if err != nil {
		t.Fatalf("AppendStep(%q, step %d): %v", id, st.N, err)
	}
	return out
}

func (b *testBundle) steps(t *testing.T, job, id string) []checkpoint.Step {
	t.Helper()
	st, err := b.store.Steps(b.ctx, job, id)
	if err != nil {
		t.Fatalf("Steps(%q): %v", id, err)
	}
	return st
}

// requireSteps checks that the item's committed steps are want, field by
// field (times compared as instants).
func (b *testBundle) requireSteps(t *testing.T, job, id string, want []checkpoint.Step) {
	t.Helper()
	got := b.steps(t, job, id)
	if len(got) != len(want) {
		t.Fatalf("Steps(%q) = %d steps %+v, want %d", id, len(got), got, len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if !g.At.Equal(w.At) {
			t.Errorf("step %d At = %v, want %v", i+1, g.At, w.At)
		}
		g.At, w.At = time.Time{}, time.Time{}
		if !reflect.DeepEqual(g, w) {
			t.Errorf("step %d = %+v, want %+v", i+1, g, w)
		}
	}
}

// Raw hashes, spelled as the other tests spell the job's keys.
func stepsKey(job string) string { return "llmfleet:{" + job + "}:steps" }

func (b *testBundle) jobHash(t *testing.T, job string) map[string]string {
	t.Helper()
	m, err := b.rdb.HGetAll(b.ctx, "llmfleet:{"+job+"}:job").Result()
	if err != nil {
		t.Fatalf("HGETALL job %q: %v", job, err)
	}
	return m
}

func (b *testBundle) stepsHash(t *testing.T, job string) map[string]string {
	t.Helper()
	m, err := b.rdb.HGetAll(b.ctx, stepsKey(job)).Result()
	if err != nil {
		t.Fatalf("HGETALL steps of %q: %v", job, err)
	}
	return m
}

// threeSteps opens an agent job with items a and b, begins a under "t1" and
// commits its steps 1-3: a model step calling two tools, then their results.
func threeSteps(t *testing.T, b *testBundle) []checkpoint.Step {
	t.Helper()
	b.open(t, "j1", agentPolicy())
	b.record(t, "j1", "a", "b")
	if c := b.begin(t, "j1", "a", "t1"); c.Call != 1 {
		t.Fatalf("Begin = %+v, want call 1", c)
	}
	steps := []checkpoint.Step{
		modelStep(1, toolCall("call_1", "check_disk", `{}`), toolCall("call_2", "clean_logs", `{"days":7}`)),
		toolStep(2, "call_1", "83% used", 1),
		toolStep(3, "call_2", "deleted 12 files", 2),
	}
	for _, st := range steps {
		if out := b.appendStep(t, "j1", "a", "t1", st); out != checkpoint.StepAppended {
			t.Fatalf("AppendStep(step %d) = %q, want %q", st.N, out, checkpoint.StepAppended)
		}
	}
	return steps
}

func TestAppendStep(t *testing.T) {
	t.Parallel()

	t.Run("StepsReadBackInOrder", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		steps := threeSteps(t, b)
		b.requireSteps(t, "j1", "a", steps)
		if got := b.steps(t, "j1", "b"); len(got) != 0 {
			t.Fatalf("Steps(b) = %+v, want none: steps are the item's", got)
		}
		if got := b.steps(t, "nosuchjob", "a"); len(got) != 0 {
			t.Fatalf("Steps in a missing job = %+v, want none", got)
		}
		// The stored layout: a count and one field per step.
		h := b.stepsHash(t, "j1")
		if h["c:a"] != "3" || len(h) != 4 {
			t.Fatalf("steps hash = %v, want c:a 3 and steps 1:a..3:a", h)
		}
		for _, f := range []string{"1:a", "2:a", "3:a"} {
			if _, ok := h[f]; !ok {
				t.Fatalf("steps hash = %v, want field %s", h, f)
			}
		}

		input := []tasks.Message{{Role: "system", Content: "be brief"}, {Role: "user", Content: "free some disk"}}
		got := checkpoint.Transcript(input, b.steps(t, "j1", "a"))
		want := append(append([]tasks.Message{}, input...), steps[0].Message, steps[1].Message, steps[2].Message)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("Transcript = %+v, want %+v", got, want)
		}
		if got := checkpoint.Transcript(input, nil); !reflect.DeepEqual(got, input) {
			t.Fatalf("Transcript without steps = %+v, want the input", got)
		}
	})

	t.Run("RetriedStepChangesNothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		steps := threeSteps(t, b)
		beforeSteps, beforeJob := b.stepsHash(t, "j1"), b.jobHash(t, "j1")

		// A retry after a lost reply, of a tool step and of a model step
		// (whose usage must not count twice), even with other content.
		again := toolStep(2, "call_1", "a different answer", 5)
		if out := b.appendStep(t, "j1", "a", "t1", again); out != checkpoint.StepExists {
			t.Fatalf("AppendStep(step 2 again) = %q, want %q", out, checkpoint.StepExists)
		}
		m := modelStep(1)
		m.TokensIn, m.CostUSD = 999, 9
		if out := b.appendStep(t, "j1", "a", "t1", m); out != checkpoint.StepExists {
			t.Fatalf("AppendStep(step 1 again) = %q, want %q", out, checkpoint.StepExists)
		}
		if after := b.stepsHash(t, "j1"); !maps.Equal(after, beforeSteps) {
			t.Fatalf("steps hash after retries = %v, want it unchanged %v", after, beforeSteps)
		}
		if after := b.jobHash(t, "j1"); !maps.Equal(after, beforeJob) {
			t.Fatalf("job hash after retries = %v, want it unchanged %v", after, beforeJob)
		}
		b.requireSteps(t, "j1", "a", steps)
	})

	t.Run("GapIsRefused", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		steps := threeSteps(t, b)
		beforeSteps, beforeJob := b.stepsHash(t, "j1"), b.jobHash(t, "j1")
		_, err := b.store.AppendStep(b.ctx, "j1", "a", "t1", toolStep(5, "call_9", "x", 1))
		if err == nil || !strings.Contains(err.Error(), "missing") || errors.Is(err, checkpoint.ErrClaimLost) {
			t.Fatalf("AppendStep(step 5 of 3) = %v, want an error saying steps are missing", err)
		}
		if after := b.stepsHash(t, "j1"); !maps.Equal(after, beforeSteps) {
			t.Fatalf("steps hash after a gap = %v, want it unchanged", after)
		}
		if after := b.jobHash(t, "j1"); !maps.Equal(after, beforeJob) {
			t.Fatalf("job hash after a gap = %v, want it unchanged", after)
		}
		b.requireSteps(t, "j1", "a", steps)
		// The next step still goes in.
		if out := b.appendStep(t, "j1", "a", "t1", modelStep(4)); out != checkpoint.StepAppended {
			t.Fatalf("AppendStep(step 4) = %q", out)
		}
	})

	t.Run("StepsAreNumberedFromOne", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", agentPolicy())
		b.record(t, "j1", "a")
		b.begin(t, "j1", "a", "t1")
		before := b.jobHash(t, "j1")
		for _, n := range []int{0, -1} {
			st := modelStep(n)
			out, err := b.store.AppendStep(b.ctx, "j1", "a", "t1", st)
			if err == nil || out == checkpoint.StepExists {
				t.Fatalf("AppendStep(step %d) = %q, %v; want an error, not a step said to be committed", n, out, err)
			}
		}
		if h := b.stepsHash(t, "j1"); len(h) != 0 {
			t.Fatalf("steps hash = %v, want none", h)
		}
		if after := b.jobHash(t, "j1"); !maps.Equal(after, before) {
			t.Fatalf("job hash = %v, want it unchanged %v", after, before)
		}
	})

	t.Run("OnlyTheClaimHolderWrites", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		threeSteps(t, b)
		before := b.stepsHash(t, "j1")
		lost := func(what, id, token string) {
			t.Helper()
			if out, err := b.store.AppendStep(b.ctx, "j1", id, token, toolStep(4, "call_3", "x", 1)); !errors.Is(err, checkpoint.ErrClaimLost) {
				t.Fatalf("AppendStep %s = %q, %v, want ErrClaimLost", what, out, err)
			}
		}
		lost("with another token", "a", "stale")
		// A retry of a committed step by a stale attempt is refused too,
		// not reported as committed.
		if out, err := b.store.AppendStep(b.ctx, "j1", "a", "stale", toolStep(2, "call_1", "x", 1)); !errors.Is(err, checkpoint.ErrClaimLost) {
			t.Fatalf("AppendStep(step 2) with another token = %q, %v, want ErrClaimLost", out, err)
		}
		lost("of a pending item", "b", "t1")
		lost("of an unknown item", "zzz", "t1")
		if err := b.store.Release(b.ctx, "j1", "a", "t1", nil); err != nil {
			t.Fatal(err)
		}
		lost("after its release", "a", "t1")
		b.claim(t, "j1", "a", "t2")
		if ok, err := b.store.Fail(b.ctx, "j1", "a", "t2", checkpoint.Failure{Class: "tool_error"}); err != nil || !ok {
			t.Fatalf("Fail = %v, %v", ok, err)
		}
		lost("of a failed item", "a", "t2")
		if after := b.stepsHash(t, "j1"); !maps.Equal(after, before) {
			t.Fatalf("steps hash = %v, want it unchanged %v", after, before)
		}
		b.finishItem(t, "j1", "b")
		lost("of a done item", "b", "tok-b")
		if h := b.stepsHash(t, "j1"); !maps.Equal(h, before) {
			t.Fatalf("steps hash = %v, want it unchanged %v", h, before)
		}
	})
}

// A model step's usage counts for the job at once; the item's call count
// restarts for the next step; a tool step counts its runs.
func TestAppendStepUsage(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.open(t, "j1", agentPolicy()) // 3 attempts
	b.record(t, "j1", "a")

	// Two calls for step 1: the first failed and was retried.
	if c := b.begin(t, "j1", "a", "t1"); c.Call != 1 {
		t.Fatalf("Begin = %+v, want call 1", c)
	}
	if err := b.store.Release(b.ctx, "j1", "a", "t1", &checkpoint.Failure{Class: "server_error"}); err != nil {
		t.Fatal(err)
	}
	c := b.begin(t, "j1", "a", "t2")
	if c.Call != 2 || c.LastErr == nil {
		t.Fatalf("Begin = %+v, want call 2 with the last error", c)
	}
	j := b.job(t, "j1")
	if j.ProviderCalls != 2 {
		t.Fatalf("provider_calls = %d, want 2", j.ProviderCalls)
	}

	b.appendStep(t, "j1", "a", "t2", modelStep(1, toolCall("c1", "check_disk", `{}`), toolCall("c2", "check_disk", `{"path":"/var"}`)))
	j = b.job(t, "j1")
	if got, want := j.Spend(), (checkpoint.Spend{TokensIn: 100, TokensOut: 20, CostMicros: 250_000}); got != want {
		t.Fatalf("Spend after a model step = %+v, want %+v", got, want)
	}
	if got, want := j.Models["gpt-x"], (checkpoint.ModelUsage{TokensIn: 100, TokensOut: 20, CostUSD: 0.25}); got != want {
		t.Fatalf("Models[gpt-x] after a model step = %+v, want %+v (the item counts at its commit)", got, want)
	}
	if j.ProviderCalls != 2 {
		t.Fatalf("provider_calls after a model step = %d, want 2: Begin counted the calls", j.ProviderCalls)
	}
	if got := b.jobHash(t, "j1")["model_steps"]; got != "1" {
		t.Fatalf("model_steps = %q, want 1", got)
	}
	if v := b.item(t, "j1", "a"); v.Calls != 0 || v.LastErr != nil || v.Status != checkpoint.ItemActive {
		t.Fatalf("item after a model step = calls %d, last error %+v, status %s; want 0, none, active", v.Calls, v.LastErr, v.Status)
	}

	// Tool steps: their runs count; usage, calls and provider_calls do not
	// move.
	b.appendStep(t, "j1", "a", "t2", toolStep(2, "c1", "ok", 3))
	b.appendStep(t, "j1", "a", "t2", toolStep(3, "c2", "bad arguments", 0)) // refused without a run
	h := b.jobHash(t, "j1")
	if h["tool_runs"] != "3" || h["model_steps"] != "1" {
		t.Fatalf("tool_runs %q model_steps %q, want 3 and 1", h["tool_runs"], h["model_steps"])
	}
	j = b.job(t, "j1")
	if got, want := j.Spend(), (checkpoint.Spend{TokensIn: 100, TokensOut: 20, CostMicros: 250_000}); got != want || j.ProviderCalls != 2 {
		t.Fatalf("after tool steps: Spend %+v provider_calls %d, want %+v and 2", got, j.ProviderCalls, want)
	}
	if v := b.item(t, "j1", "a"); v.Calls != 0 {
		t.Fatalf("item calls after tool steps = %d, want 0", v.Calls)
	}

	// The next model call is the first of its step: the budget of 3 is
	// whole again.
	for want := 1; want <= 3; want++ {
		if n, err := b.store.StartCall(b.ctx, "j1", "a", "t2", 3); err != nil || n != want {
			t.Fatalf("StartCall #%d = %d, %v, want %d", want, n, err, want)
		}
	}
	if _, err := b.store.StartCall(b.ctx, "j1", "a", "t2", 3); !errors.Is(err, checkpoint.ErrBudgetSpent) {
		t.Fatalf("StartCall #4 = %v, want ErrBudgetSpent", err)
	}
	if j := b.job(t, "j1"); j.ProviderCalls != 5 {
		t.Fatalf("provider_calls = %d, want 5", j.ProviderCalls)
	}
	// A second model step adds up, per model too.
	st := modelStep(4)
	st.Model, st.TokensIn, st.TokensOut, st.CostUSD = "gpt-y", 50, 5, 0.000_001
	b.appendStep(t, "j1", "a", "t2", st)
	j = b.job(t, "j1")
	if got, want := j.Spend(), (checkpoint.Spend{TokensIn: 150, TokensOut: 25, CostMicros: 250_001}); got != want {
		t.Fatalf("Spend after two model steps = %+v, want %+v", got, want)
	}
	if got, want := j.Models["gpt-y"], (checkpoint.ModelUsage{TokensIn: 50, TokensOut: 5, CostUSD: 0.000_001}); got != want {
		t.Fatalf("Models[gpt-y] = %+v, want %+v", got, want)
	}
	if n, err := b.store.StartCall(b.ctx, "j1", "a", "t2", 3); err != nil || n != 1 {
		t.Fatalf("StartCall after the second model step = %d, %v, want 1", n, err)
	}
}

func TestCommitRun(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.open(t, "j1", agentPolicy())
	b.record(t, "j1", "a", "b")
	b.begin(t, "j1", "a", "ta")
	b.appendStep(t, "j1", "a", "ta", modelStep(1, toolCall("c1", "check_disk", `{}`)))
	b.appendStep(t, "j1", "a", "ta", toolStep(2, "c1", "ok", 1))
	last := modelStep(3)
	last.Message = tasks.Message{Role: "assistant", Content: "disk is fine"}
	last.FinishReason = "stop"
	b.appendStep(t, "j1", "a", "ta", last)
	spent := checkpoint.Spend{TokensIn: 200, TokensOut: 40, CostMicros: 500_000}
	if got := b.job(t, "j1").Spend(); got != spent {
		t.Fatalf("Spend after the steps = %+v, want %+v", got, spent)
	}

	// The run's result carries the sums of its steps: they are not added
	// again.
	r := checkpoint.Result{
		ID: "a", Output: "disk is fine", Model: "gpt-x", Attempts: 4,
		TokensIn: 200, TokensOut: 40, CostUSD: 0.5, FinishReason: "stop",
		Steps: 2, ToolCalls: 1, FinishedAt: t0,
	}
	out, err := b.store.CommitRun(b.ctx, "j1", "ta", r)
	if err != nil || out != checkpoint.Committed1 {
		t.Fatalf("CommitRun = %q, %v, want committed", out, err)
	}
	j := b.requireCounts(t, "j1", counts{total: 2, done: 1, pending: 1})
	if got := j.Spend(); got != spent {
		t.Fatalf("Spend after CommitRun = %+v, want %+v: the steps counted it", got, spent)
	}
	if got, want := j.Models["gpt-x"], (checkpoint.ModelUsage{Items: 1, TokensIn: 200, TokensOut: 40, CostUSD: 0.5}); got != want {
		t.Fatalf("Models[gpt-x] after CommitRun = %+v, want %+v", got, want)
	}
	line, _ := json.Marshal(r)
	if v := b.item(t, "j1", "a"); v.Status != checkpoint.ItemDone || string(v.Result) != string(line) {
		t.Fatalf("item a = %s %s, want done with %s", v.Status, v.Result, line)
	}
	// Its steps stay, for export --transcripts.
	if got := b.steps(t, "j1", "a"); len(got) != 3 {
		t.Fatalf("Steps after CommitRun = %d, want 3", len(got))
	}
	// A second CommitRun is a duplicate.
	if out, err := b.store.CommitRun(b.ctx, "j1", "ta", r); err != nil || out != checkpoint.CommitDuplicate {
		t.Fatalf("second CommitRun = %q, %v, want duplicate", out, err)
	}
	if got := b.job(t, "j1").Spend(); got != spent {
		t.Fatalf("Spend after a duplicate CommitRun = %+v, want %+v", got, spent)
	}

	// Commit (a single-prompt item) adds its usage.
	b.claim(t, "j1", "b", "tb")
	if out := b.commit(t, "j1", "tb", result("b", "out-b")); out != checkpoint.Committed1 {
		t.Fatalf("Commit(b) = %q", out)
	}
	j = b.requireCounts(t, "j1", counts{total: 2, done: 2})
	if got, want := j.Spend(), (checkpoint.Spend{TokensIn: 210, TokensOut: 60, CostMicros: 500_000}); got != want {
		t.Fatalf("Spend after Commit = %+v, want %+v", got, want)
	}
	if j.State != checkpoint.StateDone {
		t.Fatalf("state = %q, want done", j.State)
	}
	if _, err := b.store.CommitRun(b.ctx, "j1", "t", checkpoint.Result{ID: "zzz"}); !errors.Is(err, checkpoint.ErrItemNotFound) {
		t.Fatalf("CommitRun(unknown item) = %v, want ErrItemNotFound", err)
	}
}

func TestUnsend(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.open(t, "j1", agentPolicy())
	b.record(t, "j1", "a")
	b.begin(t, "j1", "a", "t1")
	b.appendStep(t, "j1", "a", "t1", modelStep(1, toolCall("c1", "check_disk", `{}`)))
	if err := b.store.Release(b.ctx, "j1", "a", "t1", nil); err != nil {
		t.Fatal(err)
	}

	// The next attempt resumes at the tool run: Begin counted a call it
	// does not make.
	if c := b.begin(t, "j1", "a", "t2"); c.Call != 1 {
		t.Fatalf("Begin = %+v, want call 1", c)
	}
	if j := b.job(t, "j1"); j.ProviderCalls != 2 {
		t.Fatalf("provider_calls = %d, want 2", j.ProviderCalls)
	}
	if err := b.store.Unsend(b.ctx, "j1", "a", "other"); !errors.Is(err, checkpoint.ErrClaimLost) {
		t.Fatalf("Unsend with another token = %v, want ErrClaimLost", err)
	}
	if v, j := b.item(t, "j1", "a"), b.job(t, "j1"); v.Calls != 1 || j.ProviderCalls != 2 {
		t.Fatalf("after a refused Unsend: calls %d provider_calls %d, want 1 and 2", v.Calls, j.ProviderCalls)
	}
	if err := b.store.Unsend(b.ctx, "j1", "a", "t2"); err != nil {
		t.Fatalf("Unsend: %v", err)
	}
	if v, j := b.item(t, "j1", "a"), b.job(t, "j1"); v.Calls != 0 || j.ProviderCalls != 1 || v.Status != checkpoint.ItemActive {
		t.Fatalf("after Unsend: calls %d provider_calls %d status %s, want 0, 1, active", v.Calls, j.ProviderCalls, v.Status)
	}
	// Nothing more to give back.
	if err := b.store.Unsend(b.ctx, "j1", "a", "t2"); err != nil {
		t.Fatalf("second Unsend: %v", err)
	}
	if v, j := b.item(t, "j1", "a"), b.job(t, "j1"); v.Calls != 0 || j.ProviderCalls != 1 {
		t.Fatalf("after a second Unsend: calls %d provider_calls %d, want 0 and 1", v.Calls, j.ProviderCalls)
	}
	// The claim is kept: the attempt goes on with the tool run.
	if out := b.appendStep(t, "j1", "a", "t2", toolStep(2, "c1", "ok", 1)); out != checkpoint.StepAppended {
		t.Fatalf("AppendStep after Unsend = %q", out)
	}
	if n, err := b.store.StartCall(b.ctx, "j1", "a", "t2", 3); err != nil || n != 1 {
		t.Fatalf("StartCall after Unsend = %d, %v, want 1", n, err)
	}
	b.requireCounts(t, "j1", counts{total: 1, active: 1})
}

// A replay or an edit starts an agent item over from its first step; a
// failure keeps its steps (its transcript is exported).
func TestStepsStartOver(t *testing.T) {
	t.Parallel()

	// failedWithSteps leaves item a failed with 2 steps and item b active
	// with 1.
	failedWithSteps := func(t *testing.T, b *testBundle) {
		t.Helper()
		b.open(t, "j1", agentPolicy())
		b.record(t, "j1", "a", "b")
		b.begin(t, "j1", "a", "ta")
		b.appendStep(t, "j1", "a", "ta", modelStep(1, toolCall("c1", "check_disk", `{}`)))
		b.appendStep(t, "j1", "a", "ta", toolStep(2, "c1", "ok", 1))
		if ok, err := b.store.Fail(b.ctx, "j1", "a", "ta", checkpoint.Failure{Class: "max_steps", Reason: "too many"}); err != nil || !ok {
			t.Fatalf("Fail = %v, %v", ok, err)
		}
		b.begin(t, "j1", "b", "tb")
		b.appendStep(t, "j1", "b", "tb", modelStep(1, toolCall("c1", "check_disk", `{}`)))
		if got := b.steps(t, "j1", "a"); len(got) != 2 {
			t.Fatalf("Steps of the failed item = %d, want 2 (kept for its transcript)", len(got))
		}
	}
	requireStartedOver := func(t *testing.T, b *testBundle) {
		t.Helper()
		if got := b.steps(t, "j1", "a"); len(got) != 0 {
			t.Fatalf("Steps(a) = %+v, want none", got)
		}
		h := b.stepsHash(t, "j1")
		for f := range h {
			if strings.HasSuffix(f, ":a") {
				t.Fatalf("steps hash = %v, want no field of a", h)
			}
		}
		if len(b.steps(t, "j1", "b")) != 1 || h["c:b"] != "1" {
			t.Fatalf("steps of b = %v, want its 1 step untouched", h)
		}
	}

	t.Run("Replay", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		failedWithSteps(t, b)
		res, err := b.store.Replay(b.ctx, "j1", []string{"a"})
		if err != nil || len(res) != 1 || res[0].Outcome != checkpoint.Replayed {
			t.Fatalf("Replay = %+v, %v", res, err)
		}
		requireStartedOver(t, b)
		// The run starts again at step 1.
		b.begin(t, "j1", "a", "ta2")
		if out := b.appendStep(t, "j1", "a", "ta2", modelStep(1)); out != checkpoint.StepAppended {
			t.Fatalf("AppendStep(step 1) after replay = %q, want appended", out)
		}
		if got := b.steps(t, "j1", "a"); len(got) != 1 || got[0].N != 1 {
			t.Fatalf("Steps after replay and a new step = %+v, want the new step 1", got)
		}
	})

	t.Run("ClaimReplay", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		failedWithSteps(t, b)
		c, err := b.store.Begin(b.ctx, "j1", "a", "ta2", true)
		if err != nil || c.Verdict != checkpoint.VerdictClaimed || !c.Replayed {
			t.Fatalf("Begin(replay) = %+v, %v, want claimed and replayed", c, err)
		}
		requireStartedOver(t, b)
	})

	t.Run("EditOfFailedItem", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		failedWithSteps(t, b)
		st, err := b.store.ReplaceInput(b.ctx, "j1", checkpoint.Entry{ID: "a", Canonical: []byte(`{"id":"a","prompt":"edited"}`)})
		if err != nil || st != checkpoint.ItemFailed {
			t.Fatalf("ReplaceInput(failed) = %q, %v", st, err)
		}
		requireStartedOver(t, b)
	})

	t.Run("EditOfPendingItem", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", agentPolicy())
		b.record(t, "j1", "a", "b")
		b.begin(t, "j1", "b", "tb")
		b.appendStep(t, "j1", "b", "tb", modelStep(1, toolCall("c1", "check_disk", `{}`)))
		b.begin(t, "j1", "a", "ta")
		b.appendStep(t, "j1", "a", "ta", modelStep(1, toolCall("c1", "check_disk", `{}`)))
		// Active: not editable, its steps stay.
		if _, err := b.store.ReplaceInput(b.ctx, "j1", checkpoint.Entry{ID: "a", Canonical: []byte(`{"id":"a"}`)}); !errors.Is(err, checkpoint.ErrNotEditable) {
			t.Fatalf("ReplaceInput(active) = %v, want ErrNotEditable", err)
		}
		if got := b.steps(t, "j1", "a"); len(got) != 1 {
			t.Fatalf("Steps after a refused edit = %d, want 1", len(got))
		}
		if err := b.store.Release(b.ctx, "j1", "a", "ta", nil); err != nil {
			t.Fatal(err)
		}
		st, err := b.store.ReplaceInput(b.ctx, "j1", checkpoint.Entry{ID: "a", Canonical: []byte(`{"id":"a","prompt":"edited"}`)})
		if err != nil || st != checkpoint.ItemPending {
			t.Fatalf("ReplaceInput(pending) = %q, %v", st, err)
		}
		requireStartedOver(t, b)
	})

	t.Run("DeleteLeavesNoSteps", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		failedWithSteps(t, b)
		if n := b.rdb.Exists(b.ctx, stepsKey("j1")).Val(); n != 1 {
			t.Fatalf("steps key exists = %d before Delete, want 1", n)
		}
		if err := b.store.Delete(b.ctx, "j1"); err != nil {
			t.Fatal(err)
		}
		if n := b.rdb.Exists(b.ctx, stepsKey("j1")).Val(); n != 0 {
			t.Fatalf("steps key exists = %d after Delete, want 0", n)
		}
		if keys := b.jobKeys(t, "j1"); len(keys) != 0 {
			t.Fatalf("keys after Delete: %v", keys)
		}
		if got := b.steps(t, "j1", "a"); len(got) != 0 {
			t.Fatalf("Steps after Delete = %+v, want none", got)
		}
	})

	t.Run("FinishedJobExpiresSteps", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		failedWithSteps(t, b)
		if ttl := b.rdb.TTL(b.ctx, stepsKey("j1")).Val(); ttl != -1 {
			t.Fatalf("steps TTL of a running job = %v, want none", ttl)
		}
		out, err := b.store.CommitRun(b.ctx, "j1", "tb", checkpoint.Result{ID: "b", Output: "done", Model: "gpt-x", FinishedAt: t0})
		if err != nil || out != checkpoint.Committed1 {
			t.Fatalf("CommitRun = %q, %v", out, err)
		}
		j := b.requireCounts(t, "j1", counts{total: 2, done: 1, failed: 1})
		if j.FinishedAt.IsZero() {
			t.Fatal("job not finished")
		}
		retention := agentPolicy().Retention
		ttls := b.ttls(t, "j1")
		if ttl, ok := ttls["steps"]; !ok || ttl <= 0 || ttl > retention {
			t.Fatalf("steps TTL = %v (present %t), want the retention %v; all: %v", ttl, ok, retention, ttls)
		}
		for k, ttl := range ttls {
			if ttl <= 0 {
				t.Fatalf("key %s has TTL %v, want the retention", k, ttl)
			}
		}
		// A replay reopens the job: the keys persist again.
		if _, err := b.store.Replay(b.ctx, "j1", []string{"a"}); err != nil {
			t.Fatal(err)
		}
		if ttl := b.rdb.TTL(b.ctx, stepsKey("j1")).Val(); ttl != -1 {
			t.Fatalf("steps TTL after a replay reopened the job = %v, want none", ttl)
		}
	})
}

func TestPolicyAgentLimits(t *testing.T) {
	t.Parallel()
	var p checkpoint.Policy
	if p.Agent() || p.StepLimit() != checkpoint.DefaultMaxSteps || p.TranscriptLimit() != checkpoint.DefaultMaxTranscriptBytes {
		t.Fatalf("zero policy: Agent %t StepLimit %d TranscriptLimit %d, want false, %d, %d",
			p.Agent(), p.StepLimit(), p.TranscriptLimit(), checkpoint.DefaultMaxSteps, checkpoint.DefaultMaxTranscriptBytes)
	}
	if checkpoint.DefaultMaxSteps != 10 || checkpoint.DefaultMaxTranscriptBytes != 1<<20 {
		t.Fatalf("defaults %d and %d, want 10 and 1 MiB (DESIGN.md)", checkpoint.DefaultMaxSteps, checkpoint.DefaultMaxTranscriptBytes)
	}
	p = agentPolicy()
	if !p.Agent() || p.StepLimit() != 4 || p.TranscriptLimit() != 64<<10 {
		t.Fatalf("agent policy: Agent %t StepLimit %d TranscriptLimit %d, want true, 4, 65536", p.Agent(), p.StepLimit(), p.TranscriptLimit())
	}
}

// The tools are stored with the policy: every worker sees them.
func TestPolicyToolsRoundTrip(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p := agentPolicy()
	if err := p.Validate(); err != nil {
		t.Fatalf("Validate(agent policy) = %v", err)
	}
	j := b.open(t, "j1", p)
	if !samePolicy(j.Policy, p) {
		t.Fatalf("Open policy = %+v, want %+v", j.Policy, p)
	}
	if got := b.job(t, "j1").Policy; !samePolicy(got, p) || !got.Agent() {
		t.Fatalf("Job policy = %+v, want %+v", got, p)
	}
	b.record(t, "j1", "a")
	c := b.begin(t, "j1", "a", "t1")
	if !samePolicy(c.Policy, p) {
		t.Fatalf("Begin policy = %+v, want %+v", c.Policy, p)
	}
	if got := c.Policy.Tools[0]; got.TimeoutOrDefault() != 30*time.Second || got.Headers["Authorization"] != "Bearer ${TOOLS_TOKEN}" {
		t.Fatalf("tool after the round trip = %+v, want its timeout and its header unexpanded", got)
	}
	if !c.Policy.Tools[1].NeedsPerson() || !c.Policy.Tools[2].NeedsPerson() || c.Policy.Tools[0].NeedsPerson() {
		t.Fatalf("tools' approval and executor lost: %+v", c.Policy.Tools)
	}
	// The stored policy spells the tools as DESIGN.md does.
	raw := b.jobHash(t, "j1")["policy"]
	for _, s := range []string{`"tools":[`, `"timeout":"30s"`, `"executor":"human"`, `"approval":"always"`, `"max_steps":4`, `"max_transcript_bytes":65536`} {
		if !strings.Contains(raw, s) {
			t.Errorf("stored policy %s lacks %s", raw, s)
		}
	}
}
