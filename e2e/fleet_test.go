package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/llmfleet/llmfleet/tasks"
)

// A job of 500 items under a random fault mix, on two worker processes,
// ends with every item done exactly once, each with its own reply, exported
// in input order; a rerun enqueues nothing and calls nothing.
func TestFleetFinishesEveryItemOnceUnderFaults(t *testing.T) {
	t.Parallel()
	f := newFleet(t, "--seed", "7", "--latency", "0ms-10ms", "--retry-after", "1",
		"--faults", "429=0.05,500=0.03,529=0.02,html502=0.02,timeout=0.01")
	file, ids, prompts := writeItems(t, 500, func(i int) (string, string) {
		return fmt.Sprintf("%04d", i), fmt.Sprintf("item %d: say something", i)
	})
	// A rare run of faults may trip the breaker: let it recover quickly.
	f.worker(t, "--concurrency", "16", "--breaker-cooldown", "3s")
	f.worker(t, "--concurrency", "16", "--breaker-cooldown", "3s")
	sum, r := f.submit(t, file, "--job", "big", "--max-attempts", "10", "--timeout", "2s", "--backoff-max", "2s")
	if r.code != 0 || sum.Total != 500 || sum.Enqueued != 500 {
		t.Fatalf("run: exit %d, %+v", r.code, sum)
	}
	w := f.producer(t, nil, "status", "--job", "big", "--wait", "--interval", "200ms")
	if w.code != 0 {
		t.Fatalf("status --wait: exit %d, want 0: %s %s", w.code, w.stdout, w.stderr)
	}
	st := f.status(t, "big")
	if st.Done != 500 || st.Failed != 0 || st.Duplicates != 0 {
		t.Fatalf("status %+v, want 500 done, none failed, no duplicate", st)
	}
	checkExport(t, f.export(t, "big"), ids, prompts)

	stats := f.stats(t)
	if stats.ByStatus["200"] != 500 {
		t.Errorf("simulator answered 200 %d times, want exactly 500 (one per item)", stats.ByStatus["200"])
	}
	faults := stats.Calls - stats.ByStatus["200"]
	if faults == 0 {
		t.Errorf("no fault was injected: the test proves nothing about retries")
	}
	if st.ProviderCalls != stats.Calls {
		t.Errorf("job counted %d provider calls, simulator saw %d", st.ProviderCalls, stats.Calls)
	}

	// Rerun: everything is done, nothing is enqueued, no call is made.
	sum, r = f.submit(t, file, "--job", "big")
	if r.code != 0 || sum.Enqueued != 0 || sum.SkippedDone != 500 {
		t.Fatalf("rerun: exit %d, %+v, want nothing enqueued and 500 skipped as done", r.code, sum)
	}
	if !strings.Contains(f.producer(t, nil, "run", "--job", "big", file).stdout, "nothing new to enqueue") {
		t.Errorf("rerun does not say that nothing was enqueued")
	}
	time.Sleep(2 * time.Second)
	if after := f.stats(t).Calls; after != stats.Calls {
		t.Errorf("rerun of a finished job made %d provider calls", after-stats.Calls)
	}
}

// Workers stopped mid-job (SIGTERM, graceful): a rerun enqueues only what is
// neither done nor queued (here, tasks deleted from asynq as a user could in
// asynqmon), and the job then completes exactly once.
func TestRerunOfHalfFinishedJobEnqueuesOnlyWhatIsMissing(t *testing.T) {
	t.Parallel()
	f := newFleet(t, "--seed", "8", "--latency", "40ms")
	file, ids, prompts := writeItems(t, 200, func(i int) (string, string) {
		return fmt.Sprintf("h%03d", i), fmt.Sprintf("half %d", i)
	})
	sum, r := f.submit(t, file, "--job", "half")
	if r.code != 0 || sum.Enqueued != 200 {
		t.Fatalf("run: exit %d %+v", r.code, sum)
	}
	w := f.worker(t, "--concurrency", "4")
	waitFor(t, 60*time.Second, "40 items done", func() bool { return f.status(t, "half").Done >= 40 })
	if code := w.stop(t, 20*time.Second); code != 0 {
		t.Fatalf("worker exit code %d after SIGTERM, want 0", code)
	}
	st := f.status(t, "half")
	if st.Active != 0 {
		t.Fatalf("after a graceful stop %d items are still active", st.Active)
	}

	// Delete 10 queued tasks, as a user might from asynqmon.
	rdb := redis.NewClient(&redis.Options{Addr: f.redis.Addr})
	defer rdb.Close()
	insp := asynq.NewInspectorFromRedisClient(rdb)
	deleted := 0
	for i := len(ids) - 1; i >= 0 && deleted < 10; i-- {
		if err := insp.DeleteTask("default", tasks.TaskID("half", ids[i])); err == nil {
			deleted++
		}
	}
	if deleted != 10 {
		t.Fatalf("deleted %d tasks, want 10", deleted)
	}
	callsBefore := f.stats(t).Calls
	sum, r = f.submit(t, file, "--job", "half")
	if r.code != 0 {
		t.Fatalf("rerun: exit %d: %s", r.code, r.stderr)
	}
	if sum.Enqueued != 10 || sum.SkippedDone != st.Done || sum.AlreadyQueued != 200-st.Done-10 {
		t.Fatalf("rerun %+v, want 10 enqueued, %d skipped as done, %d already queued", sum, st.Done, 200-st.Done-10)
	}
	if f.stats(t).Calls != callsBefore {
		t.Errorf("the rerun itself made provider calls")
	}
	f.worker(t, "--concurrency", "8")
	if w := f.producer(t, nil, "status", "--job", "half", "--wait", "--interval", "200ms"); w.code != 0 {
		t.Fatalf("status --wait exit %d", w.code)
	}
	checkExport(t, f.export(t, "half"), ids, prompts)
	stats := f.stats(t)
	if stats.ByStatus["200"] != 200 {
		t.Errorf("simulator answered 200 %d times, want 200 (each item once)", stats.ByStatus["200"])
	}
}

// A worker SIGKILLed with calls in flight and replaced: every item still ends
// done exactly once with its own result; the extra provider calls are within
// the killed worker's concurrency. asynq re-dispatches a dead worker's tasks
// only after its lease expires (about a minute).
func TestSIGKILLedWorkerLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for asynq's lease expiry (60-120 s)")
	}
	t.Parallel()
	f := newFleet(t, "--seed", "9", "--latency", "150ms")
	file, ids, prompts := writeItems(t, 300, func(i int) (string, string) {
		return fmt.Sprintf("k%03d", i), fmt.Sprintf("kill %d", i)
	})
	const killedConcurrency = 6
	if _, r := f.submit(t, file, "--job", "kill"); r.code != 0 {
		t.Fatalf("run exit %d", r.code)
	}
	victim := f.worker(t, "--concurrency", fmt.Sprint(killedConcurrency))
	f.worker(t, "--concurrency", "4")
	waitFor(t, 60*time.Second, "50 items done", func() bool { return f.status(t, "kill").Done >= 50 })
	victim.signal(syscall.SIGKILL)
	<-victim.done
	f.worker(t, "--concurrency", "6")

	w := runCmdTimeout(t, f.env, 4*time.Minute, "status", "--job", "kill", "--wait", "--interval", "500ms")
	if w.code != 0 {
		t.Fatalf("status --wait exit %d: %s", w.code, w.stderr)
	}
	checkExport(t, f.export(t, "kill"), ids, prompts)
	st := f.status(t, "kill")
	stats := f.stats(t)
	if extra := stats.Calls - 300; extra < 0 || extra > killedConcurrency {
		t.Errorf("%d provider calls for 300 items: %d extra, want at most the killed worker's %d in flight", stats.Calls, extra, killedConcurrency)
	}
	if st.Done != 300 || st.Failed != 0 {
		t.Errorf("status %+v, want 300 done", st)
	}
}

func runCmdTimeout(t *testing.T, env []string, timeout time.Duration, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	done := make(chan result, 1)
	go func() { done <- runCmd(t, env, nil, "producer", args...) }()
	select {
	case r := <-done:
		return r
	case <-ctx.Done():
		t.Fatalf("producer %v did not finish within %s", args, timeout)
	}
	return result{}
}

// status --wait exits 0 when every item is done, 4 when some failed and 5
// when the job was cancelled; delete leaves no key of the job in Redis.
func TestWaitExitCodesAndDelete(t *testing.T) {
	t.Parallel()
	f := newFleet(t, "--seed", "10")
	ok, _, _ := writeItems(t, 5, func(i int) (string, string) { return fmt.Sprint(i), fmt.Sprintf("fine %d", i) })
	some, _, _ := writeItems(t, 5, func(i int) (string, string) {
		if i == 2 {
			return "bad", "broken #fail:400"
		}
		return fmt.Sprint(i), fmt.Sprintf("also fine %d", i)
	})
	slow, _, _ := writeItems(t, 50, func(i int) (string, string) { return fmt.Sprint(i), fmt.Sprintf("never runs %d", i) })
	for job, file := range map[string]string{"ok": ok, "some": some, "cx": slow} {
		if _, r := f.submit(t, file, "--job", job, "--queue", job); r.code != 0 {
			t.Fatalf("run %s: exit %d", job, r.code)
		}
	}
	// The cancelled job's queue has no worker: its items end by the cancel.
	if r := f.producer(t, nil, "cancel", "--job", "cx"); r.code != 0 || !strings.Contains(r.stdout, "50 pending items ended cancelled") {
		t.Fatalf("cancel: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	f.worker(t, "--queues", "ok=1,some=1")
	for job, want := range map[string]int{"ok": 0, "some": 4, "cx": 5} {
		if r := f.producer(t, nil, "status", "--job", job, "--wait", "--interval", "200ms"); r.code != want {
			t.Errorf("status --wait --job %s: exit %d, want %d (%s)", job, r.code, want, r.stdout)
		}
	}
	failedCSV := filepath.Join(t.TempDir(), "failed.csv")
	if r := f.producer(t, nil, "export", "--job", "some", "--out", os.DevNull, "--failed", failedCSV); r.code != 0 {
		t.Fatalf("export: exit %d %s", r.code, r.stderr)
	}
	csvText, _ := os.ReadFile(failedCSV)
	if want := "bad,broken #fail:400,bad_request,"; !strings.Contains(string(csvText), want) {
		t.Errorf("failed CSV:\n%s\nwant a row starting %q", csvText, want)
	}
	if s := f.stats(t); s.ByContent[key("never runs 3")] != 0 {
		t.Errorf("a cancelled item reached the provider")
	}

	if r := f.producer(t, nil, "delete", "--job", "cx"); r.code != 0 {
		t.Fatalf("delete: exit %d: %s", r.code, r.stderr)
	}
	rdb := redis.NewClient(&redis.Options{Addr: f.redis.Addr})
	defer rdb.Close()
	keys, err := rdb.Keys(context.Background(), "llmfleet:{cx}:*").Result()
	if err != nil || len(keys) != 0 {
		t.Errorf("after delete, keys of the job remain: %v %v", keys, err)
	}
	if r := f.producer(t, nil, "status", "--job", "cx"); r.code != 1 || !strings.Contains(r.stderr, "not found") {
		t.Errorf("status of a deleted job: exit %d %q, want 1 and 'not found'", r.code, r.stderr)
	}
	r := f.producer(t, nil, "jobs", "--json")
	if r.code != 0 || strings.Contains(r.stdout, `"cx"`) || !strings.Contains(r.stdout, `"ok"`) {
		t.Errorf("jobs after delete: %s", r.stdout)
	}
}

// The README's first command works from a clean directory with no Redis and
// no provider: in-memory Redis, in-process workers and simulator.
func TestEmbeddedRunFromCleanDirectory(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	examples, err := filepath.Abs("../examples/reviews.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	env := append(cleanEnv(), "REDIS_URL=redis://127.0.0.1:1/0") // would fail if used
	cmd := func() result {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		c := execIn(ctx, dir, env, "run", "--embedded", "--job", "demo", examples)
		return c
	}
	r := cmd()
	if r.code != 0 {
		t.Fatalf("embedded run: exit %d\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "simulator") {
		t.Errorf("embedded run does not say it uses the simulator: %s", r.stderr)
	}
	results, err := os.ReadFile(filepath.Join(dir, "demo.results.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(results), "\n"); n != 300 {
		t.Errorf("demo.results.jsonl has %d lines, want 300", n)
	}
	if _, err := os.Stat(filepath.Join(dir, "demo.failed.csv")); err != nil {
		t.Errorf("demo.failed.csv: %v", err)
	}
	// A rerun keeps everything and calls nothing.
	r = cmd()
	if r.code != 0 || !strings.Contains(r.stderr, "300 already done") || !strings.Contains(r.stderr, ", 0 calls") {
		t.Errorf("embedded rerun: exit %d\n%s", r.code, r.stderr)
	}
	again, _ := os.ReadFile(filepath.Join(dir, "demo.results.jsonl"))
	if string(again) != string(results) {
		t.Errorf("rerun changed demo.results.jsonl")
	}
}

// Ctrl-C during an embedded run keeps what finished; the same command then
// finishes the rest without calling the provider again for it.
func TestEmbeddedRunResumesAfterInterrupt(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	examples, _ := filepath.Abs("../examples/reviews.jsonl")
	env := cleanEnv()
	args := []string{"run", "--embedded", "--job", "demo", "--concurrency", "1", "--sim-faults", "none", examples}
	p := &proc{name: "producer", out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = execCommand(dir, env, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	waitFor(t, 60*time.Second, "the job to start", func() bool { return strings.Contains(p.out.String(), "job demo created") })
	// One worker at 5-40 ms a call needs about 7 s for the 300 items.
	time.Sleep(2500 * time.Millisecond)
	p.signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.signal(syscall.SIGKILL)
		t.Fatal("embedded run did not stop within 30s of SIGINT")
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 130 {
		t.Fatalf("exit code %d after SIGINT, want 130\n%s", code, p.out.String())
	}
	partial, err := os.ReadFile(filepath.Join(dir, "demo.results.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	kept := strings.Count(string(partial), "\n")
	if kept == 0 || kept == 300 {
		t.Fatalf("interrupted run kept %d results, want some but not all", kept)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r := execIn(ctx, dir, env, args...)
	if r.code != 0 {
		t.Fatalf("resume: exit %d\n%s", r.code, r.stderr)
	}
	if want := fmt.Sprintf("%d already done", kept); !strings.Contains(r.stderr, want) {
		t.Errorf("resume output lacks %q:\n%s", want, r.stderr)
	}
	if want := fmt.Sprintf(", %d calls", 300-kept); !strings.Contains(r.stderr, want) {
		t.Errorf("resume should call the provider only for the %d missing items:\n%s", 300-kept, r.stderr)
	}
	full, _ := os.ReadFile(filepath.Join(dir, "demo.results.jsonl"))
	if n := strings.Count(string(full), "\n"); n != 300 {
		t.Errorf("results after resume: %d lines, want 300", n)
	}
	if !strings.HasPrefix(string(full), strings.SplitN(string(partial), "\n", 2)[0]) {
		t.Errorf("resumed file does not keep the first result")
	}
}
