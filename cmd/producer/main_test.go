package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/llmfleet/llmfleet/checkpoint"
	"github.com/llmfleet/llmfleet/internal/testredis"
	"github.com/llmfleet/llmfleet/provider"
	"github.com/llmfleet/llmfleet/redisconn"
	"github.com/llmfleet/llmfleet/simulator"
	"github.com/llmfleet/llmfleet/tasks"
	"github.com/llmfleet/llmfleet/worker"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// net/http keeps idle keep-alive readers (the worker's provider
		// client) for a moment after the transport is dropped.
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}

// testBundle is one test's world: its own redis-server, a client to look at
// it, and a directory for input and output files.
type testBundle struct {
	url  string
	rdb  *redis.Client
	insp *asynq.Inspector
	dir  string
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	srv := testredis.Start(t)
	rdb := srv.Client(t)
	return &testBundle{url: srv.URL, rdb: rdb, insp: asynq.NewInspectorFromRedisClient(rdb), dir: t.TempDir()}
}

// result is what one CLI invocation did.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
}

// cliAt runs the CLI in-process with REDIS_URL set to url.
func cliAt(t *testing.T, url string, stdin io.Reader, args ...string) result {
	t.Helper()
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	code := Main(ctx, Env{
		Args: args, Stdin: stdin, Stdout: &out, Stderr: &errb,
		Getenv: func(k string) string {
			if k == "REDIS_URL" {
				return url
			}
			return ""
		},
	})
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// cli runs the CLI against the bundle's Redis.
func (b *testBundle) cli(t *testing.T, args ...string) result {
	t.Helper()
	return cliAt(t, b.url, nil, args...)
}

// rejection and summary are the `run --json` contract, spelled here
// independently of the code under test.
type rejection struct {
	Line  int    `json:"line"`
	Error string `json:"error"`
}

type summary struct {
	Job                 string      `json:"job"`
	Total               int         `json:"total"`
	Enqueued            int         `json:"enqueued"`
	SkippedDone         int         `json:"skipped_done"`
	SkippedFailed       int         `json:"skipped_failed"`
	AlreadyQueued       int         `json:"already_queued"`
	DuplicatesCollapsed int         `json:"duplicates_collapsed"`
	Rejected            int         `json:"rejected"`
	RejectedLines       []rejection `json:"rejected_lines"`
}

var summaryKeys = []string{"job", "total", "enqueued", "skipped_done", "skipped_failed",
	"already_queued", "duplicates_collapsed", "rejected", "rejected_lines"}

// runJSON runs `producer run --json ARGS` with stdin and decodes its one
// JSON object, checking every contract field is there.
func (b *testBundle) runJSON(t *testing.T, stdin io.Reader, args ...string) (summary, result) {
	t.Helper()
	r := cliAt(t, b.url, stdin, append([]string{"run", "--json"}, args...)...)
	var s summary
	decodeOne(t, r, &s, summaryKeys...)
	if s.RejectedLines == nil {
		t.Fatalf("run --json: rejected_lines is null, want an array:\n%s", r)
	}
	return s, r
}

// decodeOne decodes stdout, which must hold exactly one JSON value, into v
// and checks the object has every key.
func decodeOne(t *testing.T, r result, v any, keys ...string) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, r)
	}
	if dec.More() {
		t.Fatalf("stdout holds more than one JSON value:\n%s", r)
	}
	if len(keys) > 0 {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("stdout is not a JSON object: %v\n%s", err, r)
		}
		for _, k := range keys {
			if _, ok := m[k]; !ok {
				t.Errorf("JSON output lacks %q:\n%s", k, r.stdout)
			}
		}
	}
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
}

// status is the `status --json` contract.
type status struct {
	Job           string     `json:"job"`
	State         string     `json:"state"`
	Total         int64      `json:"total"`
	Done          int64      `json:"done"`
	Failed        int64      `json:"failed"`
	Active        int64      `json:"active"`
	AwaitingInput int64      `json:"awaiting_input"`
	Pending       int64      `json:"pending"`
	Rejected      int64      `json:"rejected"`
	ProviderCalls int64      `json:"provider_calls"`
	TokensIn      int64      `json:"tokens_in"`
	TokensOut     int64      `json:"tokens_out"`
	SuccessRate   *float64   `json:"success_rate"`
	StartedAt     *time.Time `json:"started_at"`
	FinishedAt    *time.Time `json:"finished_at"`
	Deadline      *time.Time `json:"deadline"`
}

var statusKeys = []string{"job", "state", "total", "done", "failed", "active", "awaiting_input",
	"pending", "rejected", "provider_calls", "tokens_in", "tokens_out", "success_rate",
	"started_at", "finished_at"}

// status returns `status --job JOB --json`, which must succeed, and checks
// the pending invariant.
func (b *testBundle) status(t *testing.T, job string) status {
	t.Helper()
	r := b.cli(t, "status", "--job", job, "--json")
	if r.code != 0 {
		t.Fatalf("status --job %s: %s", job, r)
	}
	var s status
	decodeOne(t, r, &s, statusKeys...)
	if want := s.Total - s.Done - s.Failed - s.Active - s.AwaitingInput; s.Pending != want {
		t.Errorf("status %s: pending %d, want total-done-failed-active-awaiting_input = %d", job, s.Pending, want)
	}
	return s
}

// pending returns how many tasks wait in the queue, as asynq sees them.
func (b *testBundle) pending(t *testing.T, queue string) int {
	t.Helper()
	qs, err := b.insp.Queues()
	if err != nil {
		t.Fatalf("list queues: %v", err)
	}
	if !slices.Contains(qs, queue) {
		return 0
	}
	info, err := b.insp.GetQueueInfo(queue)
	if err != nil {
		t.Fatalf("queue %s: %v", queue, err)
	}
	return info.Pending
}

// taskIDs returns the ids of the tasks pending in the queue, sorted.
func (b *testBundle) taskIDs(t *testing.T, queue string) []string {
	t.Helper()
	if b.pending(t, queue) == 0 {
		return nil
	}
	ts, err := b.insp.ListPendingTasks(queue, asynq.PageSize(1000))
	if err != nil {
		t.Fatalf("list pending tasks: %v", err)
	}
	var ids []string
	for _, ti := range ts {
		ids = append(ids, ti.ID)
	}
	sort.Strings(ids)
	return ids
}

// file writes content to a file in the bundle's directory and returns its
// path.
func (b *testBundle) file(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(b.dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// storedItems returns the items the job recorded, by id, as the worker will
// read them.
func (b *testBundle) storedItems(t *testing.T, job string) map[string]tasks.Item {
	t.Helper()
	out := map[string]tasks.Item{}
	err := checkpoint.New(b.rdb).Walk(context.Background(), job, checkpoint.Want{Input: true}, func(vs []checkpoint.View) error {
		for _, v := range vs {
			var it tasks.Item
			if err := json.Unmarshal(v.Input, &it); err != nil {
				return err
			}
			out[v.ID] = it
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk job %s: %v", job, err)
	}
	return out
}

// lastUser returns the content of an item's last user message.
func lastUser(it tasks.Item) string {
	for i := len(it.Messages) - 1; i >= 0; i-- {
		if it.Messages[i].Role == "user" {
			return it.Messages[i].Content
		}
	}
	return ""
}

// startWorker runs an in-process worker and simulator against the bundle's
// Redis until the test ends.
func (b *testBundle) startWorker(t *testing.T) *simulator.Running {
	t.Helper()
	sim, err := simulator.Start(context.Background(), simulator.Config{}, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	rdb, err := redisconn.Open(b.url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	w, err := worker.New(rdb, worker.Config{
		Concurrency:     4,
		ShutdownTimeout: 2 * time.Second,
		CheckInterval:   time.Second,
		Provider:        provider.Config{BaseURL: sim.URL()},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Shutdown)
	return sim
}

// closedRedisURL returns a Redis URL with a password whose port nothing
// listens on.
func closedRedisURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "redis://user:s3cret@" + addr + "/0"
}

// jsonl joins lines into a JSONL file's content.
func jsonl(lines ...string) string { return strings.Join(lines, "\n") + "\n" }

// wantRejections checks rejected_lines: the given line numbers, in order,
// each error containing its fragments.
func wantRejections(t *testing.T, got []rejection, want ...rejection) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("rejected_lines = %+v, want %d entries %+v", got, len(want), want)
	}
	for i := range want {
		if got[i].Line != want[i].Line {
			t.Errorf("rejected_lines[%d].line = %d, want %d (%q)", i, got[i].Line, want[i].Line, got[i].Error)
		}
		for _, frag := range strings.Split(want[i].Error, "|") {
			if !strings.Contains(got[i].Error, frag) {
				t.Errorf("rejected_lines[%d] (line %d) error %q does not contain %q", i, got[i].Line, got[i].Error, frag)
			}
		}
	}
}
