package console_test

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
	"github.com/hibiken/asynq"

	"github.com/llmfleet/llmfleet/breaker"
	"github.com/llmfleet/llmfleet/checkpoint"
	"github.com/llmfleet/llmfleet/console"
	"github.com/llmfleet/llmfleet/internal/testredis"
	"github.com/llmfleet/llmfleet/jobs"
	"github.com/llmfleet/llmfleet/provider"
	"github.com/llmfleet/llmfleet/simulator"
	"github.com/llmfleet/llmfleet/tasks"
	"github.com/llmfleet/llmfleet/worker"
)

// chromium finds a Chromium or Chrome binary on PATH.
func chromium() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// browser starts a headless Chromium for the test; it is closed (and its
// process waited for) at cleanup.
func browser(t *testing.T) context.Context {
	t.Helper()
	bin := chromium()
	if bin == "" {
		t.Skip("no chromium, chromium-browser or google-chrome on PATH: the browser test is skipped (make test installs Debian's chromium when it can; or apt-get install chromium)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.NoSandbox, // tests often run as root, where Chromium's sandbox refuses to start
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1400, 1000),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelCtx()
		cancelAlloc()
	})
	// The first run starts the browser, which lives as long as its context:
	// no timeout there, one on the steps that follow.
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	ctx, cancelTimeout := context.WithTimeout(bctx, 2*time.Minute)
	t.Cleanup(cancelTimeout)
	return ctx
}

// pollDOM evaluates expr until ok accepts its value or the deadline passes.
func pollDOM(t *testing.T, ctx context.Context, what, expr string, ok func(string) bool) string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var last string
	for {
		s, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if ok(s) {
			return s
		}
		last = s
		if time.Now().After(deadline) {
			t.Fatalf("%s: still %q after 60s", what, last)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: %v", what, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// The whole console in a browser: log in through the form, watch a job
// progress on the jobs page, then run its archived task from asynqmon.
func TestBrowser(t *testing.T) {
	t.Parallel()
	ctx := browser(t)

	rs := testredis.Start(t)
	rdb := rs.Client(t)
	sim, err := simulator.Start(context.Background(), simulator.Config{Latency: "30ms", Seed: 1}, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	b := startConsole(t, rdb, console.Config{Token: testToken, Refresh: 200 * time.Millisecond})

	const n = 200
	var lines []string
	for i := range n {
		lines = append(lines, fmt.Sprintf(`{"id":"i%03d","prompt":"say hello %d"}`, i, i))
	}
	lines = append(lines, `{"id":"bad","prompt":"this one fails for good #fail:400"}`)
	pol := checkpoint.Policy{Model: "gpt-4o-mini", Queue: "default", MaxAttempts: 3, BackoffMin: time.Second, BackoffMax: time.Minute, Timeout: time.Minute, Retention: time.Hour}
	sum, err := jobs.Submit(context.Background(), b.deps, jobs.SubmitOptions{
		Job: "browse", Input: strings.NewReader(strings.Join(lines, "\n") + "\n"), InputName: "browse.jsonl",
		Policy: pol, Changed: func(string) bool { return false }, MaxItemBytes: 1 << 20,
	})
	if err != nil || sum.Enqueued != n+1 {
		t.Fatalf("submit: %+v %v", sum, err)
	}

	// Log in through the form: the page answers 401 with it.
	err = chromedp.Do(ctx,
		chromedp.Navigate(b.url+"/"),
		chromedp.WaitVisible(chromedp.CSS(`#token`)),
		chromedp.SendKeys(chromedp.CSS(`#token`), testToken),
		chromedp.Click(chromedp.CSS(`#login`)),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-job="browse"]`)),
	)
	if err != nil {
		t.Fatalf("log in: %v", err)
	}

	w, err := worker.New(rdb, worker.Config{
		Concurrency: 2, ShutdownTimeout: 2 * time.Second, CheckInterval: time.Second,
		Provider: provider.Config{BaseURL: sim.URL()},
		Breaker:  breaker.Settings{ConsecutiveItems: 1000, MinItems: 1000, RateLimitedItems: 1000},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			w.Shutdown()
		}
	}
	t.Cleanup(stop)

	// The done count, as the page shows it, goes up while the page refreshes.
	const doneCell = `(document.querySelector('tr[data-job="browse"] td.done') || {}).textContent || ""`
	num := func(s string) int { v, _ := strconv.Atoi(strings.TrimSpace(s)); return v }
	first := num(pollDOM(t, ctx, "first done count", doneCell, func(s string) bool { return num(s) > 0 }))
	second := num(pollDOM(t, ctx, "a higher done count", doneCell, func(s string) bool { return num(s) > first }))
	if second > n {
		t.Fatalf("done count %d > %d items", second, n)
	}
	t.Logf("the page showed done %d, then %d", first, second)
	pollDOM(t, ctx, "the job ends on the page", `(document.querySelector('tr[data-job="browse"] td.eta') || {}).textContent || ""`,
		func(s string) bool { return s == "ended" })
	row, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('tr[data-job="browse"]').innerText`))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(row, "bad_request") || !strings.Contains(row, strconv.Itoa(n)) {
		t.Errorf("the ended job's row %q: want %d done and the bad_request failure", row, n)
	}

	// The failed item's task is in asynq's archive. Stop the worker, so
	// that once run it stays pending rather than failing into the archive
	// again.
	stop()
	tid := tasks.TaskID("browse", "bad")
	if info, err := b.deps.Inspector.GetTaskInfo("default", tid); err != nil || info.State != asynq.TaskStateArchived {
		t.Fatalf("task %s: %+v %v, want archived", tid, info, err)
	}

	// asynqmon's archived tasks page: hovering the row's action cell shows
	// its Delete and Run buttons (material-ui Tooltips, which give the
	// button its title while closed); click Run.
	err = chromedp.Do(ctx,
		chromedp.Navigate(b.url+"/asynqmon/queues/default?status=archived"),
		chromedp.WaitVisible(chromedp.CSS(`tbody tr td:last-child button`)),
	)
	if err != nil {
		t.Fatalf("asynqmon archived tasks page: %v", err)
	}
	box, err := chromedp.Run(ctx, chromedp.Evaluate[[]float64](`(() => { const r = document.querySelector('tbody tr td:last-child').getBoundingClientRect(); return [r.left + r.width/2, r.top + r.height/2]; })()`))
	if err != nil || len(box) != 2 {
		t.Fatalf("action cell: %v %v", box, err)
	}
	const run = `tbody tr td:last-child button[title="Run"]`
	err = chromedp.Do(ctx,
		chromedp.MouseEvent(input.DispatchMouseEventTypeMouseMoved, box[0], box[1]),
		chromedp.WaitVisible(chromedp.CSS(run)),
		chromedp.Click(chromedp.CSS(run)),
	)
	if err != nil {
		t.Fatalf("click Run: %v", err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		info, err := b.deps.Inspector.GetTaskInfo("default", tid)
		if err == nil && info.State == asynq.TaskStatePending {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after clicking Run, task %s is %+v (%v), want pending (out of the archive)", tid, info, err)
		}
		time.Sleep(50 * time.Millisecond) // polling Redis with a deadline
	}
	if archived, err := b.deps.Inspector.ListArchivedTasks("default"); err != nil || len(archived) != 0 {
		t.Errorf("archive after Run: %d tasks (%v), want none", len(archived), err)
	}
}
