package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/llmfleet/llmfleet/tasks"
)

func (f *fleet) inspector(t *testing.T) *asynq.Inspector {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: f.redis.Addr})
	t.Cleanup(func() { rdb.Close() })
	return asynq.NewInspectorFromRedisClient(rdb)
}

type failedList struct {
	Counts map[string]int `json:"counts"`
	Items  []struct {
		ID       string `json:"id"`
		Class    string `json:"class"`
		Reason   string `json:"reason"`
		Attempts int    `json:"attempts"`
	} `json:"items"`
}

func (f *fleet) failed(t *testing.T, args ...string) failedList {
	t.Helper()
	r := f.producer(t, nil, append([]string{"failed", "--json"}, args...)...)
	if r.code != 0 {
		t.Fatalf("failed: exit %d: %s", r.code, r.stderr)
	}
	var l failedList
	if err := json.Unmarshal([]byte(r.stdout), &l); err != nil {
		t.Fatalf("failed --json output: %v", err)
	}
	return l
}

// 12,000 items fail while the provider answers 400 to everything: asynq's
// archive keeps 9,999 of them, the checkpoint all 12,000; after the fault is
// cleared, replay --all brings every one to done exactly once.
func TestTwelveThousandFailuresAreKeptAndReplayed(t *testing.T) {
	if testing.Short() {
		t.Skip("12,000 items")
	}
	t.Parallel()
	const n = 12000
	f := newFleet(t, "--seed", "31")
	f.setFaults(t, "400=1")
	file, ids, prompts := writeItems(t, n, func(i int) (string, string) {
		return fmt.Sprintf("d%05d", i), fmt.Sprintf("dead letter %d", i)
	})
	if _, r := f.submit(t, file, "--job", "dl"); r.code != 0 {
		t.Fatalf("run exit %d", r.code)
	}
	f.worker(t, "--concurrency", "32")
	f.worker(t, "--concurrency", "32")
	if r := runCmdTimeout(t, f.env, 4*time.Minute, "status", "--job", "dl", "--wait", "--interval", "500ms"); r.code != 4 {
		t.Fatalf("status --wait: exit %d, want 4 (failed items)", r.code)
	}
	info, err := f.inspector(t).GetQueueInfo("default")
	if err != nil {
		t.Fatal(err)
	}
	if info.Archived != 9999 {
		t.Errorf("asynq's archive holds %d tasks, want its cap of 9,999", info.Archived)
	}
	l := f.failed(t, "--job", "dl")
	if len(l.Items) != n || l.Counts["bad_request"] != n {
		t.Fatalf("producer failed lists %d items (counts %v), want all %d as bad_request", len(l.Items), l.Counts, n)
	}

	f.setFaults(t, "")
	r := f.producer(t, nil, "replay", "--job", "dl", "--all", "--json")
	if r.code != 0 {
		t.Fatalf("replay: exit %d: %s", r.code, r.stderr)
	}
	var sum struct {
		Replayed    int `json:"replayed"`
		FromArchive int `json:"from_archive"`
		Reenqueued  int `json:"reenqueued"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &sum); err != nil {
		t.Fatalf("replay --json output %q: %v", r.stdout, err)
	}
	if sum.Replayed != n || sum.FromArchive != 9999 || sum.Reenqueued != n-9999 {
		t.Errorf("replay summary %s: want %d replayed, 9999 from the archive, %d enqueued again", r.stdout, n, n-9999)
	}
	if r := runCmdTimeout(t, f.env, 4*time.Minute, "status", "--job", "dl", "--wait", "--interval", "500ms"); r.code != 0 {
		t.Fatalf("status --wait after replay: exit %d, want 0", r.code)
	}
	checkExport(t, f.export(t, "dl"), ids, prompts)
	if s := f.stats(t); s.ByStatus["200"] != n {
		t.Errorf("simulator answered 200 %d times, want %d: each item done exactly once", s.ByStatus["200"], n)
	}
	// Replaying again finds nothing failed.
	r = f.producer(t, nil, "replay", "--job", "dl", "--all")
	if r.code != 0 || !strings.Contains(r.stdout, "replayed 0 failed items") {
		t.Errorf("second replay: exit %d: %s", r.code, r.stdout)
	}
}

// Replay by class replays only that class; --edit replaces a failed item's
// prompt and the item ends done; replaying an item that is not failed is a
// clear no-op.
func TestReplayByClassAndEdit(t *testing.T) {
	t.Parallel()
	f := newFleet(t, "--seed", "32")
	file, _, _ := writeItems(t, 6, func(i int) (string, string) {
		switch i {
		case 0, 1:
			return fmt.Sprintf("bad%d", i), fmt.Sprintf("bad %d #fail:400", i)
		case 2, 3:
			return fmt.Sprintf("nf%d", i), fmt.Sprintf("missing %d #fail:404", i)
		}
		return fmt.Sprintf("ok%d", i), fmt.Sprintf("fine %d", i)
	})
	if _, r := f.submit(t, file, "--job", "rc"); r.code != 0 {
		t.Fatal("run")
	}
	f.worker(t)
	if r := f.producer(t, nil, "status", "--job", "rc", "--wait", "--interval", "200ms"); r.code != 4 {
		t.Fatalf("status --wait exit %d, want 4", r.code)
	}
	r := f.producer(t, nil, "replay", "--job", "rc", "--class", "not_found")
	if r.code != 0 || !strings.Contains(r.stdout, "replayed 2 failed items") {
		t.Fatalf("replay --class: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	if r := f.producer(t, nil, "status", "--job", "rc", "--wait", "--interval", "200ms"); r.code != 4 {
		t.Fatalf("status --wait exit %d, want 4", r.code)
	}
	s := f.stats(t)
	for p, want := range map[string]int{"missing 2 #fail:404": 2, "bad 0 #fail:400": 1} {
		if got := s.ByContent[key(p)]; got != want {
			t.Errorf("%q called %d times, want %d (replay by class)", p, got, want)
		}
	}

	edit := filepath.Join(t.TempDir(), "fix.jsonl")
	os.WriteFile(edit, []byte(`{"id":"bad0","prompt":"bad 0, fixed"}`+"\n"), 0o644)
	r = f.producer(t, nil, "replay", "--job", "rc", "--edit", edit)
	if r.code != 0 || !strings.Contains(r.stdout, "edited 1 items") || !strings.Contains(r.stdout, "replayed 1 failed items") {
		t.Fatalf("replay --edit: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	waitFor(t, 30*time.Second, "the edited item to be done", func() bool {
		for _, e := range f.export(t, "rc") {
			if e.ID == "bad0" {
				return e.Output == "mock:"+key("bad 0, fixed")
			}
		}
		return false
	})
	r = f.producer(t, nil, "replay", "--job", "rc", "--item", "ok4", "--item", "bad0")
	if r.code != 0 || !strings.Contains(r.stdout, "replayed 0 failed items") || !strings.Contains(r.stdout, "ok4: not failed (it is done)") {
		t.Errorf("replay of items that are not failed: exit %d: %s", r.code, r.stdout)
	}
}

// Running an archived task through asynq's Inspector (as asynqmon's Run
// button does) replays the item with a fresh budget; the job's counts add up
// at every moment observed.
func TestInspectorRunTaskIsAReplay(t *testing.T) {
	t.Parallel()
	f := newFleet(t, "--seed", "33", "--latency", "20ms")
	file, _, _ := writeItems(t, 40, func(i int) (string, string) {
		if i < 10 {
			return fmt.Sprintf("r%d", i), fmt.Sprintf("flaky %d #fail-first:1:400", i)
		}
		return fmt.Sprintf("p%d", i), fmt.Sprintf("plain %d", i)
	})
	if _, r := f.submit(t, file, "--job", "rt", "--max-attempts", "1"); r.code != 0 {
		t.Fatal("run")
	}
	f.worker(t)
	if r := f.producer(t, nil, "status", "--job", "rt", "--wait", "--interval", "200ms"); r.code != 4 {
		t.Fatalf("status --wait exit %d, want 4", r.code)
	}

	// Watch the counts while the archived tasks are run from outside.
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var bad []string
	var mu sync.Mutex
	wg.Go(func() {
		for ctx.Err() == nil {
			st := f.status(t, "rt")
			if st.Done+st.Failed+st.Pending+st.Active != st.Total {
				mu.Lock()
				bad = append(bad, fmt.Sprintf("%+v", st))
				mu.Unlock()
			}
		}
	})
	insp := f.inspector(t)
	for i := range 10 {
		if err := insp.RunTask("default", tasks.TaskID("rt", fmt.Sprintf("r%d", i))); err != nil {
			t.Fatalf("RunTask: %v", err)
		}
	}
	// Until a worker picks a task up, the checkpoint still says failed: the
	// run becomes a replay when the handler claims it.
	waitFor(t, 30*time.Second, "the run tasks to end done", func() bool { return f.status(t, "rt").Done == 40 })
	cancel()
	wg.Wait()
	if len(bad) > 0 {
		t.Errorf("counts did not add up: %v", bad)
	}
	if st := f.status(t, "rt"); st.Done != 40 || st.Failed != 0 {
		t.Errorf("status %+v, want 40 done", st)
	}
}
