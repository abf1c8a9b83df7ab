// Package e2e runs the real binaries (producer, worker, mockllm) as
// processes against a real redis-server, the way users run the fleet.
package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/llmfleet/llmfleet/internal/testredis"
)

var binDir string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "llmfleet-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	build := exec.Command("go", "build", "-o", dir+string(os.PathSeparator), "../cmd/producer", "../cmd/worker", "../cmd/mockllm")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build binaries:", err)
		return 1
	}
	binDir = dir
	return m.Run()
}

// proc is a background process of the test.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func start(t testing.TB, env []string, name string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(filepath.Join(binDir, name), args...)
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.signal(syscall.SIGKILL)
		<-p.done
		if t.Failed() {
			t.Logf("--- %s output ---\n%s", name, tail(p.out.String(), 3000))
		}
	})
	return p
}

func (p *proc) signal(s os.Signal) {
	select {
	case <-p.done:
	default:
		_ = p.cmd.Process.Signal(s)
	}
}

// stop sends SIGTERM and waits for the exit code.
func (p *proc) stop(t *testing.T, within time.Duration) int {
	t.Helper()
	p.signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(within):
		t.Fatalf("%s did not exit within %s of SIGTERM", p.name, within)
	}
	return p.cmd.ProcessState.ExitCode()
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// result of a command run to completion.
type result struct {
	code           int
	stdout, stderr string
}

func runCmd(t *testing.T, env []string, stdin io.Reader, name string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, name), args...)
	cmd.Env = env
	cmd.Stdin = stdin
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("run %s %v: %v", name, args, err)
		}
		r.code = ee.ExitCode()
	}
	return r
}

// fleet is a Redis, a simulator and the environment to reach them.
type fleet struct {
	redis   *testredis.Server
	mock    *proc
	mockURL string
	env     []string
}

func newFleet(t testing.TB, mockArgs ...string) *fleet {
	t.Helper()
	return newFleetOn(t, testredis.Start(t), mockArgs...)
}

// newFleetOn is newFleet on a Redis the test started itself (with
// persistence, say).
func newFleetOn(t testing.TB, rs *testredis.Server, mockArgs ...string) *fleet {
	t.Helper()
	f := &fleet{redis: rs}
	port := freePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	f.mock = start(t, os.Environ(), "mockllm", append([]string{"--addr", addr}, mockArgs...)...)
	f.mockURL = "http://" + addr
	waitHTTP(t, f.mockURL+"/v1/models")
	f.env = append(cleanEnv(), "REDIS_URL="+f.redis.URL, "OPENAI_BASE_URL="+f.mockURL+"/v1")
	return f
}

// cleanEnv is the process environment without anything that points the
// binaries elsewhere.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "REDIS_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL":
			continue
		}
		env = append(env, kv)
	}
	return env
}

func (f *fleet) worker(t *testing.T, args ...string) *proc {
	t.Helper()
	return start(t, f.env, "worker", append([]string{"--check-interval", "1s", "--shutdown-timeout", "5s"}, args...)...)
}

func (f *fleet) producer(t *testing.T, stdin io.Reader, args ...string) result {
	t.Helper()
	return runCmd(t, f.env, stdin, "producer", args...)
}

// simStats is the simulator's /admin/stats.
type simStats struct {
	Calls          int                 `json:"calls"`
	ByStatus       map[string]int      `json:"by_status"`
	ByContent      map[string]int      `json:"by_content"`
	TokensIn       int                 `json:"tokens_in"`
	TokensOut      int                 `json:"tokens_out"`
	TimesByContent map[string][]string `json:"times_by_content"`
}

func (f *fleet) stats(t testing.TB) simStats {
	t.Helper()
	resp, err := http.Get(f.mockURL + "/admin/stats?times=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s simStats
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

func (f *fleet) setFaults(t testing.TB, faults string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, f.mockURL+"/admin/faults", strings.NewReader(faults))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNoContent {
		t.Fatalf("PUT /admin/faults %q: %s", faults, resp.Status)
	}
}

// status is `producer status --json`.
type status struct {
	Job           string `json:"job"`
	State         string `json:"state"`
	Total         int    `json:"total"`
	Done          int    `json:"done"`
	Failed        int    `json:"failed"`
	Active        int    `json:"active"`
	Pending       int    `json:"pending"`
	ProviderCalls int    `json:"provider_calls"`
	Duplicates    int    `json:"duplicates"`
	AgentSteps    int    `json:"agent_steps"`
	AwaitingInput int    `json:"awaiting_input"`
	ToolRuns      int    `json:"tool_runs"`
}

func (f *fleet) status(t *testing.T, job string) status {
	t.Helper()
	r := f.producer(t, nil, "status", "--job", job, "--json")
	if r.code != 0 {
		t.Fatalf("status: exit %d: %s", r.code, r.stderr)
	}
	var s status
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
		t.Fatalf("status output %q: %v", r.stdout, err)
	}
	return s
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

type summary struct {
	Job                 string `json:"job"`
	Total               int    `json:"total"`
	Enqueued            int    `json:"enqueued"`
	SkippedDone         int    `json:"skipped_done"`
	SkippedFailed       int    `json:"skipped_failed"`
	AlreadyQueued       int    `json:"already_queued"`
	DuplicatesCollapsed int    `json:"duplicates_collapsed"`
	Rejected            int    `json:"rejected"`
	RejectedLines       []struct {
		Line  int    `json:"line"`
		Error string `json:"error"`
	} `json:"rejected_lines"`
}

func (f *fleet) submit(t *testing.T, file string, args ...string) (summary, result) {
	t.Helper()
	r := f.producer(t, nil, append(append([]string{"run", "--json"}, args...), file)...)
	var s summary
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
		t.Fatalf("run output %q (exit %d, stderr %s): %v", r.stdout, r.code, r.stderr, err)
	}
	return s, r
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitHTTP(t testing.TB, url string) {
	t.Helper()
	waitFor(t, 10*time.Second, url, func() bool {
		resp, err := http.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// key is the simulator's reply key of a prompt.
func key(prompt string) string {
	sum := sha256.Sum256([]byte(prompt))
	return hex.EncodeToString(sum[:])[:12]
}

// writeItems writes n JSONL items with ids and prompts from gen.
func writeItems(t *testing.T, n int, gen func(i int) (id, prompt string)) (string, []string, []string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "items.jsonl")
	var buf bytes.Buffer
	ids, prompts := make([]string, n), make([]string, n)
	for i := range n {
		ids[i], prompts[i] = gen(i)
		b, _ := json.Marshal(map[string]any{"id": ids[i], "prompt": prompts[i]})
		buf.Write(b)
		buf.WriteByte('\n')
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, ids, prompts
}

type exported struct {
	ID       string `json:"id"`
	Output   string `json:"output"`
	Attempts int    `json:"attempts"`
}

func (f *fleet) export(t *testing.T, job string) []exported {
	t.Helper()
	r := f.producer(t, nil, "export", "--job", job)
	if r.code != 0 {
		t.Fatalf("export: exit %d: %s", r.code, r.stderr)
	}
	var out []exported
	for line := range strings.SplitSeq(strings.TrimSpace(r.stdout), "\n") {
		if line == "" {
			continue
		}
		var e exported
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("export line %q: %v", line, err)
		}
		out = append(out, e)
	}
	return out
}

// checkExport asserts one line per item, in input order, each with the
// reply to its own prompt.
func checkExport(t *testing.T, got []exported, ids, prompts []string) {
	t.Helper()
	if len(got) != len(ids) {
		t.Fatalf("export has %d lines, want %d", len(got), len(ids))
	}
	for i := range ids {
		if got[i].ID != ids[i] {
			t.Fatalf("export line %d is item %q, want %q (input order)", i+1, got[i].ID, ids[i])
		}
		if want := "mock:" + key(prompts[i]); got[i].Output != want {
			t.Fatalf("item %s output %q, want %q", ids[i], got[i].Output, want)
		}
	}
}

// execIn runs the producer in dir and returns its result.
func execIn(ctx context.Context, dir string, env []string, args ...string) result {
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "producer"), args...)
	cmd.Dir, cmd.Env = dir, env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String(), code: cmd.ProcessState.ExitCode()}
	if err != nil && cmd.ProcessState == nil {
		r.code, r.stderr = -1, err.Error()
	}
	return r
}

func execCommand(dir string, env []string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(binDir, "producer"), args...)
	cmd.Dir, cmd.Env = dir, env
	return cmd
}
