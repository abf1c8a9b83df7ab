package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/llmfleet/llmfleet/internal/testredis"
)

// A redis-server SIGKILLed mid-job (AOF on, appendfsync everysec) and started
// again on the same port and directory loses no item: every item ends done
// exactly once, with its own reply, and every item got a 200 from the
// provider.
//
// A process crash loses nothing Redis acknowledged (it writes the AOF
// before it replies and the kernel keeps what was written; everysec's lost
// second is a machine crash's), so no done item may go back.
//
// The calls in flight at the crash are answered while Redis is down: the
// worker keeps retrying the commit (and any release or failure) until Redis
// is back, so their answers are kept and asynq, which renews the tasks'
// leases meanwhile, completes them. Were the worker to give up instead, the
// items would stay active until asynq's recoverer took their tasks back a
// minute or two later, and be called again. Should the job still not finish
// in time, the documented recovery is a rerun, which must enqueue only what
// is missing.
func TestRedisKilledMidJobLosesNoItem(t *testing.T) {
	t.Parallel()
	rs := testredis.StartConfig(t, "", "--appendonly", "yes", "--appendfsync", "everysec", "--save", "")
	// 16 calls at once at 100 ms each: the 600 items take about 4 s.
	f := newFleetOn(t, rs, "--seed", "11", "--latency", "100ms")
	const n, concurrency = 600, 8
	file, ids, prompts := writeItems(t, n, func(i int) (string, string) {
		return fmt.Sprintf("c%03d", i), fmt.Sprintf("crash %d", i)
	})
	sum, r := f.submit(t, file, "--job", "crash")
	if r.code != 0 || sum.Total != n || sum.Enqueued != n {
		t.Fatalf("run: exit %d, %+v, want %d enqueued", r.code, sum, n)
	}
	workers := []*proc{
		f.worker(t, "--concurrency", fmt.Sprint(concurrency)),
		f.worker(t, "--concurrency", fmt.Sprint(concurrency)),
	}

	var before status
	waitFor(t, 60*time.Second, "100 items done", func() bool {
		before = f.status(t, "crash")
		return before.Done >= 100
	})
	if before.Done == n {
		t.Fatalf("the job finished before the crash: the test proves nothing")
	}
	rs.Kill()
	killed := time.Now()
	for _, w := range workers {
		waitFor(t, 10*time.Second, "the worker to see Redis down", func() bool {
			return strings.Contains(w.out.String(), "connection refused")
		})
	}
	if d := 2*time.Second - time.Since(killed); d > 0 {
		time.Sleep(d) // the outage lasts 2 s
	}
	rs.Restart(t)
	restarted := time.Now()

	after := f.status(t, "crash")
	if after.Total != n || after.Done < before.Done {
		t.Fatalf("after the restart: %+v; %d were done before the crash: acknowledged writes were lost", after, before.Done)
	}
	finished := func() bool {
		st := f.status(t, "crash")
		return st.State == "done" && st.Done == n
	}
	deadline := time.Now().Add(20 * time.Second)
	for !finished() && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	if !finished() {
		// What a user does with a stalled job: the same command again. It
		// enqueues only items without a task, and accounts for every item.
		st := f.status(t, "crash")
		rerun := time.Now()
		sum, r := f.submit(t, file, "--job", "crash")
		t.Logf("not done %s after the restart: %+v; rerun (%s): %+v", rerun.Sub(restarted).Round(time.Millisecond), st,
			time.Since(rerun).Round(time.Millisecond), sum)
		if r.code != 0 || sum.Total != n || sum.SkippedDone < st.Done || sum.Enqueued > n-st.Done ||
			sum.SkippedDone+sum.AlreadyQueued+sum.Enqueued != n {
			t.Fatalf("rerun: exit %d, %+v, want at most the %d items not done enqueued, every item accounted for", r.code, sum, n-st.Done)
		}
	}
	w := runCmdTimeout(t, f.env, 3*time.Minute, "status", "--job", "crash", "--wait", "--interval", "200ms")
	if w.code != 0 {
		t.Fatalf("status --wait: exit %d: %s %s", w.code, w.stdout, w.stderr)
	}
	recovered := time.Since(restarted)

	st := f.status(t, "crash")
	if st.State != "done" || st.Total != n || st.Done != n || st.Failed != 0 {
		t.Fatalf("status %+v, want done with %d of %d done, none failed", st, n, n)
	}
	checkExport(t, f.export(t, "crash"), ids, prompts)

	stats := f.stats(t)
	if stats.ByStatus["200"] != stats.Calls {
		t.Errorf("simulator answers %v: the simulator injects no fault, every call should be a 200", stats.ByStatus)
	}
	repeated := 0
	for i, p := range prompts {
		switch c := stats.ByContent[key(p)]; {
		case c == 0:
			t.Errorf("item %s never reached the provider", ids[i])
		case c > 1:
			repeated++
		}
	}
	if extra := stats.Calls - n; extra < 0 || extra > len(workers)*concurrency {
		t.Errorf("%d provider calls for %d items: %d extra, want at most the %d that can be in flight", stats.Calls, n, extra, len(workers)*concurrency)
	}
	t.Logf("%d done before the crash, %d after the restart, all %d done %s after the restart; "+
		"%d provider calls for %d items: %d extra, %d items called more than once; the job counted %d calls and %d duplicate commits",
		before.Done, after.Done, n, recovered.Round(time.Millisecond),
		stats.Calls, n, stats.Calls-n, repeated, st.ProviderCalls, st.Duplicates)
}
