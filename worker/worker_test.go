package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/llmfleet/llmfleet/breaker"
	"github.com/llmfleet/llmfleet/checkpoint"
	"github.com/llmfleet/llmfleet/internal/testredis"
	"github.com/llmfleet/llmfleet/jobs"
	"github.com/llmfleet/llmfleet/provider"
	"github.com/llmfleet/llmfleet/redisconn"
	"github.com/llmfleet/llmfleet/simulator"
	"github.com/llmfleet/llmfleet/tasks"
	"github.com/llmfleet/llmfleet/worker"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// go-redis' pool reaper and asynq's shared-connection goroutines end
		// with their clients, but net/http keeps idle keep-alive readers for
		// a moment after a transport is dropped.
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}

type bundle struct {
	store  *checkpoint.Store
	client *asynq.Client
	sim    *simulator.Running
	url    string
	deps   jobs.Deps
}

func setup(t *testing.T, sim simulator.Config) *bundle {
	t.Helper()
	srv := testredis.Start(t)
	rdb := srv.Client(t)
	s, err := simulator.Start(context.Background(), sim, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	b := &bundle{store: checkpoint.New(rdb), client: asynq.NewClientFromRedisClient(rdb), sim: s, url: srv.URL}
	b.deps = jobs.Deps{Store: b.store, Client: b.client, Inspector: asynq.NewInspectorFromRedisClient(rdb)}
	return b
}

func testClient(t *testing.T, url string) redis.UniversalClient {
	t.Helper()
	rdb, err := redisconn.Open(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// startWorker runs an in-process worker against the bundle's Redis and
// simulator until the test ends.
func (b *bundle) startWorker(t *testing.T, concurrency int) *worker.Worker {
	t.Helper()
	rdb := testClient(t, b.url)
	w, err := worker.New(rdb, worker.Config{
		Concurrency:     concurrency,
		ShutdownTimeout: 2 * time.Second,
		CheckInterval:   time.Second,
		Provider:        provider.Config{BaseURL: b.sim.URL()},
		// These tests fail many items on purpose; the fleet-wide breaker
		// (tested in breaker/ and e2e/) must not pause them for minutes.
		Breaker: breaker.Settings{ConsecutiveItems: 1000, MinItems: 1000, RateLimitedItems: 1000},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Shutdown)
	return w
}

func testPolicy() checkpoint.Policy {
	return checkpoint.Policy{
		Model: "gpt-4o-mini", Queue: "default", MaxAttempts: 3,
		BackoffMin: time.Second, BackoffMax: 2 * time.Second, Timeout: 3 * time.Second,
		Retention: time.Hour,
	}
}

func (b *bundle) submit(t *testing.T, job string, pol checkpoint.Policy, lines ...string) jobs.Summary {
	t.Helper()
	sum, err := jobs.Submit(context.Background(), b.deps, jobs.SubmitOptions{
		Job: job, Input: strings.NewReader(strings.Join(lines, "\n") + "\n"), InputName: "items.jsonl", Policy: pol,
	})
	if err != nil {
		t.Fatalf("submit: %v", err)
	}
	return sum
}

// wait polls the job until it ends or the timeout passes.
func (b *bundle) wait(t *testing.T, job string, timeout time.Duration) jobs.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	s, err := jobs.Wait(ctx, b.store, job, 100*time.Millisecond, nil)
	if err != nil {
		t.Fatalf("job %s did not end within %s: %v (last: %+v)", job, timeout, err, s)
	}
	return s
}

func item(id, prompt string) string {
	b, _ := json.Marshal(map[string]any{"id": id, "prompt": prompt})
	return string(b)
}

func (b *bundle) view(t *testing.T, job, id string) checkpoint.View {
	t.Helper()
	v, err := b.store.Item(context.Background(), job, id)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func (b *bundle) calls(prompt string) int {
	return b.sim.Server().Stats().ByContent[simulator.Key(prompt)]
}

func TestDirectivesEndWithTheirClass(t *testing.T) {
	t.Parallel()
	b := setup(t, simulator.Config{Seed: 1})
	b.startWorker(t, 8)
	cases := []struct {
		id, prompt string
		status     checkpoint.ItemStatus
		class      provider.Class
		calls      int
	}{
		{"b400", "bad #fail:400", checkpoint.ItemFailed, provider.BadRequest, 1},
		{"a401", "auth #fail:401", checkpoint.ItemFailed, provider.Auth, 1},
		{"n404", "model #fail:404", checkpoint.ItemFailed, provider.NotFound, 1},
		{"q", "quota #fail:quota", checkpoint.ItemFailed, provider.Quota, 1},
		{"flt", "filtered #fail:filter", checkpoint.ItemFailed, provider.ContentFilter, 1},
		{"ovf", "too long #fail:overflow", checkpoint.ItemFailed, provider.ContextOverflow, 1},
		{"ff", "flaky #fail-first:2:500", checkpoint.ItemDone, "", 3},
		{"h502", "proxy #fail-first:1:html502", checkpoint.ItemDone, "", 2},
		{"s500", "down #fail:500", checkpoint.ItemFailed, provider.ServerError, 3},
		{"o529", "busy #fail:529", checkpoint.ItemFailed, provider.Overloaded, 3},
		{"h200", "garbage #fail:html200", checkpoint.ItemFailed, provider.UpstreamInvalid, 3},
		{"ok", "fine", checkpoint.ItemDone, "", 1},
	}
	var lines []string
	for _, c := range cases {
		lines = append(lines, item(c.id, c.prompt))
	}
	b.submit(t, "dir", testPolicy(), lines...)
	s := b.wait(t, "dir", 60*time.Second)
	if s.Done != 3 || s.Failed != 9 {
		t.Errorf("done=%d failed=%d, want 3 and 9", s.Done, s.Failed)
	}
	for _, c := range cases {
		t.Run(c.id, func(t *testing.T) {
			v := b.view(t, "dir", c.id)
			if v.Status != c.status {
				t.Fatalf("status %s, want %s", v.Status, c.status)
			}
			if got := b.calls(c.prompt); got != c.calls {
				t.Errorf("simulator saw %d calls, want %d", got, c.calls)
			}
			if v.Calls != c.calls {
				t.Errorf("checkpoint counted %d calls, want %d", v.Calls, c.calls)
			}
			switch c.status {
			case checkpoint.ItemFailed:
				if v.Failure == nil || v.Failure.Class != string(c.class) || v.Failure.Attempts != c.calls {
					t.Errorf("failure %+v, want class %s after %d attempts", v.Failure, c.class, c.calls)
				}
			case checkpoint.ItemDone:
				var r checkpoint.Result
				if err := json.Unmarshal(v.Result, &r); err != nil {
					t.Fatal(err)
				}
				if want := "mock:" + simulator.Key(c.prompt); r.Output != want || r.Attempts != c.calls {
					t.Errorf("result %q after %d attempts, want %q after %d", r.Output, r.Attempts, want, c.calls)
				}
			}
		})
	}
}

func TestJSONOutputIsReaskedUntilValid(t *testing.T) {
	t.Parallel()
	b := setup(t, simulator.Config{Seed: 2})
	b.startWorker(t, 4)
	pol := testPolicy()
	pol.JSONOutput = true
	b.submit(t, "js", pol, item("good", "json please #fail-first:2:badjson"), item("bad", "never json #fail:badjson"))
	b.wait(t, "js", 60*time.Second)

	good := b.view(t, "js", "good")
	var r checkpoint.Result
	if err := json.Unmarshal(good.Result, &r); err != nil || good.Status != checkpoint.ItemDone {
		t.Fatalf("good item: status %s, result %s", good.Status, good.Result)
	}
	if !json.Valid([]byte(r.Output)) || r.Attempts != 3 {
		t.Errorf("good item: output %q after %d attempts, want valid JSON after 3", r.Output, r.Attempts)
	}
	bad := b.view(t, "js", "bad")
	if bad.Status != checkpoint.ItemFailed || bad.Failure.Class != string(provider.InvalidOutput) || bad.Failure.Attempts != 3 {
		t.Errorf("bad item: %s %+v, want failed invalid_output after 3 attempts", bad.Status, bad.Failure)
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	t.Parallel()
	b := setup(t, simulator.Config{Seed: 3})
	b.startWorker(t, 4)
	pol := testPolicy()
	pol.MaxAttempts = 2
	prompt := "slow down #fail:429 #retry-after:3"
	b.submit(t, "ra", pol, item("x", prompt))
	b.wait(t, "ra", 60*time.Second)
	times := b.sim.Server().Stats().TimesByContent[simulator.Key(prompt)]
	if len(times) != 2 {
		t.Fatalf("simulator saw %d calls, want 2", len(times))
	}
	if gap := times[1].Sub(times[0]); gap < 3*time.Second {
		t.Errorf("second call %s after the first, want at least the 3s Retry-After", gap)
	}
	v := b.view(t, "ra", "x")
	if v.Failure == nil || v.Failure.Class != string(provider.RateLimited) {
		t.Errorf("failure %+v, want rate_limited", v.Failure)
	}
}

func TestDeadlineExpiresRemainingItemsWithoutCalls(t *testing.T) {
	t.Parallel()
	b := setup(t, simulator.Config{Seed: 4})
	b.startWorker(t, 4)
	pol := testPolicy()
	pol.MaxAttempts = 10
	pol.BackoffMin, pol.BackoffMax = 2*time.Second, 2*time.Second
	deadline := time.Now().Add(3 * time.Second)
	pol.Deadline = deadline
	var lines []string
	for i := range 20 {
		lines = append(lines, item(fmt.Sprintf("e%02d", i), fmt.Sprintf("always down %d #fail:503", i)))
	}
	b.submit(t, "dl", pol, lines...)
	s := b.wait(t, "dl", 30*time.Second)
	if s.State != string(checkpoint.StateExpired) || s.ExitCode() != jobs.ExitEnded {
		t.Errorf("state %s exit %d, want expired and %d", s.State, s.ExitCode(), jobs.ExitEnded)
	}
	// Let any task still in flight or scheduled come round.
	time.Sleep(3 * time.Second)
	st := b.sim.Server().Stats()
	for k, ts := range st.TimesByContent {
		for _, at := range ts {
			if at.After(deadline.Add(100 * time.Millisecond)) {
				t.Errorf("call for %s at %s, after the deadline %s", k, at.Format(time.StampMilli), deadline.Format(time.StampMilli))
			}
		}
	}
	err := b.store.Walk(context.Background(), "dl", checkpoint.Want{Failure: true}, func(vs []checkpoint.View) error {
		for _, v := range vs {
			if v.Status != checkpoint.ItemFailed || v.Failure.Class != string(provider.Expired) {
				t.Errorf("item %s: %s %+v, want failed expired", v.ID, v.Status, v.Failure)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestCancelStopsCalls(t *testing.T) {
	t.Parallel()
	b := setup(t, simulator.Config{Seed: 5, Latency: "50ms"})
	b.startWorker(t, 4)
	var lines []string
	for i := range 200 {
		lines = append(lines, item(fmt.Sprintf("c%03d", i), fmt.Sprintf("work %d", i)))
	}
	b.submit(t, "cx", testPolicy(), lines...)
	deadline := time.Now().Add(20 * time.Second)
	for b.sim.Server().Stats().Calls < 20 {
		if time.Now().After(deadline) {
			t.Fatal("workers never started")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := jobs.Cancel(context.Background(), b.store, "cx"); err != nil {
		t.Fatal(err)
	}
	atCancel := b.sim.Server().Stats().Calls
	s := b.wait(t, "cx", 20*time.Second)
	time.Sleep(time.Second)
	after := b.sim.Server().Stats().Calls
	if after-atCancel > 4 {
		t.Errorf("%d calls after cancel, want at most the 4 in flight", after-atCancel)
	}
	if s.State != string(checkpoint.StateCancelled) || s.Done+s.Failed != 200 || s.ExitCode() != jobs.ExitEnded {
		t.Errorf("status %+v, want cancelled with every item ended", s)
	}
	if s.Failed < 150 {
		t.Errorf("only %d items cancelled", s.Failed)
	}
}

// A failed item's task that runs again without coming from the archive (a
// re-dispatch after a lost lease, after the failure was recorded) goes back
// to the archive without a provider call and without a fresh budget.
func TestRedispatchOfFailedItemIsNotAReplay(t *testing.T) {
	t.Parallel()
	b := setup(t, simulator.Config{Seed: 6})
	b.startWorker(t, 2)
	prompt := "broken #fail:400"
	b.submit(t, "rd", testPolicy(), item("x", prompt))
	b.wait(t, "rd", 30*time.Second)
	insp := b.deps.Inspector
	tid := tasks.TaskID("rd", "x")
	// Stand in for asynq's recoverer: the same task, not from the archive.
	if err := insp.DeleteTask("default", tid); err != nil {
		t.Fatal(err)
	}
	task, err := tasks.NewItemTask("rd", "x", jobs.TaskOptions(testPolicy())...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.client.Enqueue(task); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		info, err := insp.GetTaskInfo("default", tid)
		if err == nil && info.State == asynq.TaskStateArchived {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the re-dispatched task did not go back to the archive: %+v %v", info, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := b.calls(prompt); n != 1 {
		t.Errorf("the provider saw %d calls, want 1: a re-dispatch is not a replay", n)
	}
	v := b.view(t, "rd", "x")
	if v.Status != checkpoint.ItemFailed || v.Calls != 1 {
		t.Errorf("item %s after %d calls, want still failed after 1", v.Status, v.Calls)
	}
}

// blockingReader serves head, then waits for release before serving tail.
type blockingReader struct {
	head, tail *strings.Reader
	release    chan struct{}
}

func (r *blockingReader) Read(p []byte) (int, error) {
	if r.head.Len() > 0 {
		return r.head.Read(p)
	}
	<-r.release
	return r.tail.Read(p)
}

// Workers that finish the first batches while the producer is still
// reading the input must not finish the job early.
func TestJobIsNotDoneWhileItsItemsAreStillBeingRecorded(t *testing.T) {
	t.Parallel()
	b := setup(t, simulator.Config{Seed: 7})
	b.startWorker(t, 16)
	var head, tail strings.Builder
	for i := range 500 {
		head.WriteString(item(fmt.Sprintf("a%d", i), fmt.Sprintf("first %d", i)) + "\n")
	}
	for i := range 10 {
		tail.WriteString(item(fmt.Sprintf("b%d", i), fmt.Sprintf("late %d", i)) + "\n")
	}
	in := &blockingReader{head: strings.NewReader(head.String()), tail: strings.NewReader(tail.String()), release: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		_, err := jobs.Submit(context.Background(), b.deps, jobs.SubmitOptions{Job: "slow", Input: in, InputName: "stdin", Format: "jsonl", Policy: testPolicy()})
		done <- err
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s, err := jobs.Load(context.Background(), b.store, "slow")
		if err == nil && s.Done == 500 {
			if s.Ended() || s.FinishedAt != nil || s.State != string(checkpoint.StateRunning) {
				t.Fatalf("the job looks finished while the producer is still reading: %+v", s)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the first 500 items were not done in time: %+v %v", s, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	close(in.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if s := b.wait(t, "slow", 30*time.Second); s.Done != 510 || s.FinishedAt == nil {
		t.Errorf("status %+v, want all 510 done and the job finished", s)
	}
}

// A provider that sends no usage still has its tokens counted: results say
// usage_estimated with the simulator's own count, and the job's token
// budget pauses the job with the rest of its items pending.
func TestTokenBudgetHoldsWithoutUsage(t *testing.T) {
	t.Parallel()
	b := setup(t, simulator.Config{Seed: 5})
	pol := testPolicy()
	pol.BudgetTokens = 150
	var lines []string
	for i := range 30 {
		lines = append(lines, item(fmt.Sprint("n", i), fmt.Sprintf("no usage from this server, item %d #fail:nousage", i)))
	}
	b.submit(t, "nu", pol, lines...)
	b.startWorker(t, 2)

	deadline := time.Now().Add(30 * time.Second)
	var j checkpoint.Job
	for {
		var err error
		if j, err = b.store.Job(context.Background(), "nu"); err != nil {
			t.Fatal(err)
		}
		if j.State == checkpoint.StatePaused && j.Active == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job not paused by its 150-token budget after 30 s: %+v", j)
		}
		time.Sleep(50 * time.Millisecond)
	}
	stats := b.sim.Server().Stats()
	if j.Done == 0 || j.Done >= 30 || j.Failed != 0 || j.TokensIn+j.TokensOut < 150 {
		t.Fatalf("paused job: %d done, %d failed, %d tokens; want some done, none failed, at least the 150 budgeted", j.Done, j.Failed, j.TokensIn+j.TokensOut)
	}
	if j.TokensIn != int64(stats.TokensIn) || j.TokensOut != int64(stats.TokensOut) {
		t.Errorf("job counted %d/%d tokens, the simulator consumed %d/%d", j.TokensIn, j.TokensOut, stats.TokensIn, stats.TokensOut)
	}
	err := b.store.Walk(context.Background(), "nu", checkpoint.Want{Result: true, Status: []checkpoint.ItemStatus{checkpoint.ItemDone}}, func(vs []checkpoint.View) error {
		for _, v := range vs {
			var r checkpoint.Result
			if err := json.Unmarshal(v.Result, &r); err != nil {
				return err
			}
			if !r.UsageEstimated || r.TokensIn == 0 || r.FinishReason != "stop" {
				t.Errorf("result %s: usage_estimated %v, tokens_in %d, finish_reason %q; want estimated, counted, stop", v.ID, r.UsageEstimated, r.TokensIn, r.FinishReason)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A cluster of bad items at the end of a job (2 x 401, 3 that fail twice
// with 500, 2 that always 500) cannot trip the breaker with its default
// settings: the job finishes without a pause, and the breaker never opened.
func TestBadItemsAtTheEndDoNotTripTheDefaultBreaker(t *testing.T) {
	t.Parallel()
	b := setup(t, simulator.Config{Seed: 9})
	rdb := testClient(t, b.url)
	w, err := worker.New(rdb, worker.Config{
		Concurrency: 8, ShutdownTimeout: 2 * time.Second, CheckInterval: time.Second,
		Provider: provider.Config{BaseURL: b.sim.URL()},
	})
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for i := range 406 {
		lines = append(lines, item(fmt.Sprint("g", i), fmt.Sprintf("good item %d", i)))
	}
	for i := range 2 {
		lines = append(lines, item(fmt.Sprint("auth", i), fmt.Sprintf("bad key %d #fail:401", i)))
	}
	for i := range 3 {
		lines = append(lines, item(fmt.Sprint("flaky", i), fmt.Sprintf("flaky %d #fail-first:2:500", i)))
	}
	for i := range 2 {
		lines = append(lines, item(fmt.Sprint("down", i), fmt.Sprintf("always down %d #fail:500", i)))
	}
	pol := testPolicy()
	pol.MaxAttempts = 5
	b.submit(t, "cluster", pol, lines...)
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Shutdown)

	st := b.wait(t, "cluster", 90*time.Second)
	if st.Done != 409 || st.Failed != 4 {
		t.Fatalf("job ended %d done, %d failed; want 409 and 4 (2 auth, 2 always 500)", st.Done, st.Failed)
	}
	j, err := b.store.Job(context.Background(), "cluster")
	if err != nil || j.Endpoint == "" {
		t.Fatalf("job %+v, %v: want its breaker endpoint noted", j, err)
	}
	snap, err := breaker.Read(context.Background(), rdb, j.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Transitions) != 0 {
		t.Fatalf("the breaker moved %+v for 7 bad items among 413, want never", snap.Transitions)
	}
	if n := b.calls("always down 0 #fail:500"); n != 5 {
		t.Errorf("an always-500 item was called %d times, want its 5 attempts (never held by the breaker)", n)
	}
}
