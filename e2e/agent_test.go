package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/llmfleet/llmfleet/simulator"
)

// toolServer is a real HTTP tool server: it answers the tools of the
// agent tests and records every run it saw.
type toolServer struct {
	*httptest.Server
	mu   sync.Mutex
	runs []toolRun
	// hold, when set for a tool, keeps that tool's first run open until
	// it is closed (or the client goes away): a run in flight.
	hold    map[string]chan struct{}
	holding chan string // the tool being held, once its run arrived
	held    map[string]bool
	// flakyUp makes the flaky tool answer; until then it is down.
	flakyUp bool
}

type toolRun struct {
	Tool, Job, Item, CallID, Key, Auth string
	Args                               json.RawMessage
}

func newToolServer(t testing.TB) *toolServer {
	ts := &toolServer{hold: map[string]chan struct{}{}, holding: make(chan string, 4), held: map[string]bool{}}
	ts.Server = httptest.NewServer(http.HandlerFunc(ts.serve))
	t.Cleanup(func() {
		ts.mu.Lock()
		for name, c := range ts.hold {
			if !ts.held[name+"-released"] {
				close(c)
				ts.held[name+"-released"] = true
			}
		}
		ts.mu.Unlock()
		ts.Close()
	})
	return ts
}

// release lets a held run answer.
func (ts *toolServer) release(name string) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if c, ok := ts.hold[name]; ok && !ts.held[name+"-released"] {
		close(c)
		ts.held[name+"-released"] = true
	}
}

func (ts *toolServer) serve(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Job       string          `json:"job"`
		Item      string          `json:"item"`
		CallID    string          `json:"call_id"`
		Name      string          `json:"name"`
		Arguments json.RawMessage `json:"arguments"`
	}
	if r.Method != http.MethodPost || json.NewDecoder(r.Body).Decode(&body) != nil {
		http.Error(w, "want a POST with a JSON body", http.StatusBadRequest)
		return
	}
	tool := strings.TrimPrefix(r.URL.Path, "/")
	ts.mu.Lock()
	ts.runs = append(ts.runs, toolRun{Tool: tool, Job: body.Job, Item: body.Item, CallID: body.CallID,
		Key: r.Header.Get("Idempotency-Key"), Auth: r.Header.Get("Authorization"), Args: body.Arguments})
	hold, ok := ts.hold[tool]
	first := ok && !ts.held[tool]
	if first {
		ts.held[tool] = true
	}
	ts.mu.Unlock()
	if first {
		ts.holding <- tool
		select {
		case <-hold:
		case <-r.Context().Done():
			return
		}
	}
	switch tool {
	case "check_disk":
		fmt.Fprintf(w, `{"output": "disk of %s: 91%% used"}`, body.Item)
	case "clean_logs":
		fmt.Fprintf(w, "cleaned the logs of %s", body.Item)
	case "lookup":
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, "no such record")
	case "broken":
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "down for maintenance")
	case "flaky":
		ts.mu.Lock()
		up := ts.flakyUp
		ts.mu.Unlock()
		if !up {
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "not yet")
			return
		}
		fmt.Fprintf(w, "flaky answered %s", body.Item)
	case "big":
		io.WriteString(w, strings.Repeat("log line\n", 300))
	default:
		http.NotFound(w, r)
	}
}

// runsOf returns the runs of one item's tool, in arrival order.
func (ts *toolServer) runsOf(item, tool string) []toolRun {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	var out []toolRun
	for _, r := range ts.runs {
		if r.Item == item && r.Tool == tool {
			out = append(out, r)
		}
	}
	return out
}

func (ts *toolServer) count() int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return len(ts.runs)
}

// writeTools writes a tools file whose HTTP tools are served by ts; the
// token header comes from the workers' environment.
func writeTools(t *testing.T, ts *toolServer) string {
	t.Helper()
	doc := fmt.Sprintf(`{"tools": [
	  {"name": "check_disk", "description": "Check disk usage", "parameters": {"type": "object", "properties": {"host": {"type": "string"}}},
	   "url": "%[1]s/check_disk", "headers": {"Authorization": "Bearer ${TOOLS_TOKEN}"}, "timeout": "10s"},
	  {"name": "clean_logs", "description": "Delete old logs", "url": "%[1]s/clean_logs", "headers": {"Authorization": "Bearer ${TOOLS_TOKEN}"}},
	  {"name": "lookup", "description": "Look a record up", "url": "%[1]s/lookup"},
	  {"name": "broken", "description": "A tool that is down", "url": "%[1]s/broken", "max_attempts": 2, "timeout": "2s"},
	  {"name": "flaky", "description": "A tool that is down until the test says", "url": "%[1]s/flaky", "max_attempts": 2},
	  {"name": "big", "description": "A tool with a long answer", "url": "%[1]s/big"}
	]}`, ts.URL)
	path := filepath.Join(t.TempDir(), "tools.json")
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func writeJSONL(t *testing.T, lines ...map[string]any) string {
	t.Helper()
	var buf bytes.Buffer
	for _, l := range lines {
		b, _ := json.Marshal(l)
		buf.Write(b)
		buf.WriteByte('\n')
	}
	path := filepath.Join(t.TempDir(), "items.jsonl")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

type agentResult struct {
	ID        string `json:"id"`
	Output    string `json:"output"`
	Attempts  int    `json:"attempts"`
	Steps     int    `json:"steps"`
	ToolCalls int    `json:"tool_calls"`
	Finish    string `json:"finish_reason"`
}

func readLines[T any](t *testing.T, path string) []T {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []T
	for line := range strings.SplitSeq(strings.TrimSpace(string(b)), "\n") {
		if line == "" {
			continue
		}
		var v T
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("%s: line %q: %v", path, line, err)
		}
		out = append(out, v)
	}
	return out
}

const toolsSecret = "tok-5ecret-never-stored-9f2c"

// Agent items against real Redis, the simulator and a real HTTP tool
// server: items that call two tools finish in exactly 2 model calls and 2
// tool runs, with an answer that proves both results reached the model; a
// tool's 4xx goes back to the model; a tool that is down fails its item
// tool_error after its max_attempts; a loop ends max_steps after exactly
// --max-steps calls; and the tool token never reaches Redis, the logs or
// the exports.
func TestAgentItemsRunToolsAndFinish(t *testing.T) {
	t.Parallel()
	f := newFleet(t, "--seed", "41")
	ts := newToolServer(t)
	tools := writeTools(t, ts)
	const n = 12
	var lines []map[string]any
	for i := range n {
		lines = append(lines, map[string]any{"id": fmt.Sprintf("a%02d", i),
			"prompt": fmt.Sprintf("host %d is full: check it and clean it #tools:check_disk,clean_logs", i)})
	}
	lines = append(lines,
		map[string]any{"id": "narrow", "prompt": "only check #tools:check_disk", "tools": []string{"check_disk"}},
		map[string]any{"id": "refused", "prompt": "look it up #tools:lookup"},
		map[string]any{"id": "down", "prompt": "use the broken tool #tools:broken"},
		map[string]any{"id": "loop", "prompt": "check forever #tool-loop:check_disk"},
	)
	file := writeJSONL(t, lines...)
	if _, r := f.submit(t, file, "--job", "agents", "--tools", tools, "--max-steps", "3"); r.code != 0 {
		t.Fatalf("run exit %d: %s", r.code, r.stderr)
	}
	env := append(append([]string{}, f.env...), "TOOLS_TOKEN="+toolsSecret)
	w := start(t, env, "worker", "--check-interval", "1s", "--shutdown-timeout", "5s", "--concurrency", "8", "--log-level", "debug")

	wr := runCmdTimeout(t, f.env, 2*time.Minute, "status", "--job", "agents", "--wait", "--interval", "300ms")
	if wr.code != 4 {
		t.Fatalf("status --wait exit %d, want 4 (some failed): %s %s", wr.code, wr.stdout, wr.stderr)
	}
	dir := t.TempDir()
	resultsFile, transcriptsFile, failedFile := filepath.Join(dir, "r.jsonl"), filepath.Join(dir, "t.jsonl"), filepath.Join(dir, "f.csv")
	if r := f.producer(t, nil, "export", "--job", "agents", "--out", resultsFile, "--transcripts", transcriptsFile, "--failed", failedFile); r.code != 0 {
		t.Fatalf("export exit %d: %s", r.code, r.stderr)
	}
	results := map[string]agentResult{}
	for _, r := range readLines[agentResult](t, resultsFile) {
		results[r.ID] = r
	}
	stats := f.stats(t)

	for i := range n {
		id := fmt.Sprintf("a%02d", i)
		r, ok := results[id]
		if !ok {
			t.Fatalf("item %s not done", id)
		}
		want := simulator.ToolReply("disk of "+id+": 91% used", "cleaned the logs of "+id)
		if r.Output != want || r.Steps != 2 || r.ToolCalls != 2 || r.Attempts != 2 || r.Finish != "stop" {
			t.Errorf("item %s: %+v, want output %q (both tool results), 2 steps, 2 tool calls, 2 attempts, finish stop", id, r, want)
		}
		if c := stats.ByContent[key(lines[i]["prompt"].(string))]; c != 2 {
			t.Errorf("item %s: %d model calls, want 2", id, c)
		}
		for _, tool := range []string{"check_disk", "clean_logs"} {
			runs := ts.runsOf(id, tool)
			if len(runs) != 1 {
				t.Fatalf("item %s: %d runs of %s, want 1", id, len(runs), tool)
			}
			if runs[0].Auth != "Bearer "+toolsSecret || runs[0].Key == "" || runs[0].Job != "agents" || runs[0].CallID == "" {
				t.Errorf("item %s: %s run %+v: want the token from the worker's environment, a key, the job and the call id", id, tool, runs[0])
			}
		}
	}
	if r := results["narrow"]; r.Output != simulator.ToolReply("disk of narrow: 91% used") || r.ToolCalls != 1 {
		t.Errorf("narrowed item: %+v", r)
	}
	// A 4xx is not retried: its text is the tool's result, and the model
	// answered it.
	if r, want := results["refused"], simulator.ToolReply("tool lookup refused the call: HTTP 404: no such record"); r.Output != want {
		t.Errorf("item refused: output %q, want %q (the 404 reached the model)", r.Output, want)
	}
	if runs := ts.runsOf("refused", "lookup"); len(runs) != 1 {
		t.Errorf("lookup ran %d times, want 1 (a 4xx is not retried)", len(runs))
	}
	if runs := ts.runsOf("down", "broken"); len(runs) != 2 {
		t.Errorf("broken ran %d times, want its max_attempts 2", len(runs))
	} else if runs[0].Key != runs[1].Key {
		t.Errorf("a retried run sent key %q then %q, want the same", runs[0].Key, runs[1].Key)
	}
	if c := stats.ByContent[key("check forever #tool-loop:check_disk")]; c != 3 {
		t.Errorf("looping item: %d model calls, want exactly --max-steps 3", c)
	}
	if runs := ts.runsOf("loop", "check_disk"); len(runs) != 3 {
		t.Errorf("looping item: %d tool runs, want 3", len(runs))
	}

	fl := f.failed(t, "--job", "agents")
	classes := map[string]string{}
	for _, it := range fl.Items {
		classes[it.ID] = it.Class + ": " + it.Reason
	}
	if !strings.HasPrefix(classes["down"], "tool_error: ") || !strings.Contains(classes["down"], "after 2 attempts") || !strings.Contains(classes["down"], "HTTP 503") {
		t.Errorf("item down failed as %q, want tool_error after 2 attempts naming HTTP 503", classes["down"])
	}
	if !strings.HasPrefix(classes["loop"], "max_steps: ") {
		t.Errorf("item loop failed as %q, want max_steps", classes["loop"])
	}
	if len(fl.Items) != 2 || fl.Counts["tool_error"] != 1 || fl.Counts["max_steps"] != 1 {
		t.Errorf("failed: %+v, want one tool_error and one max_steps", fl)
	}
	st := f.status(t, "agents")
	if st.Done != n+2 || st.Failed != 2 || st.Total != n+4 {
		t.Errorf("status %+v, want %d done and 2 failed", st, n+2)
	}
	// Committed steps: a-items 2 answers and 2 results each, narrow and
	// refused 2 and 1, the loop 3 and 3; the down tool's run failed, so
	// only its call was committed.
	if wantSteps, wantRuns := 2*n+2+2+1+3, 2*n+1+1+3; st.AgentSteps != wantSteps || st.ToolRuns != wantRuns {
		t.Errorf("status shows %d agent steps and %d tool runs, want %d and %d", st.AgentSteps, st.ToolRuns, wantSteps, wantRuns)
	}
	if want := 2*n + 2 + 2 + 1 + 3; stats.Calls != want { // narrow 2, refused 2, down 1, loop 3
		t.Errorf("simulator saw %d calls, want %d", stats.Calls, want)
	}

	// Transcripts: the failed loop keeps its 3 calls and 3 results.
	type transcript struct {
		ID       string `json:"id"`
		Status   string `json:"status"`
		Messages []struct {
			Role       string            `json:"role"`
			ToolCalls  []json.RawMessage `json:"tool_calls"`
			ToolCallID string            `json:"tool_call_id"`
		} `json:"messages"`
	}
	trs := map[string]transcript{}
	for _, tr := range readLines[transcript](t, transcriptsFile) {
		trs[tr.ID] = tr
	}
	if tr := trs["loop"]; tr.Status != "failed" || len(tr.Messages) != 7 {
		t.Errorf("loop transcript: %+v, want failed with user + 3 × (call, result)", tr)
	}
	if tr := trs["a00"]; len(tr.Messages) != 5 || len(tr.Messages[1].ToolCalls) != 2 || tr.Messages[4].Role != "assistant" {
		t.Errorf("a00 transcript: %+v, want user, the calls, 2 results, the answer", tr)
	}

	// The token lives in the workers' environment only.
	w.stop(t, 15*time.Second)
	for _, file := range []string{resultsFile, transcriptsFile, failedFile} {
		if b, _ := os.ReadFile(file); bytes.Contains(b, []byte(toolsSecret)) {
			t.Errorf("%s holds the tool token", file)
		}
	}
	if strings.Contains(w.out.String(), toolsSecret) {
		t.Error("the worker's log holds the tool token")
	}
	if !strings.Contains(w.out.String(), "tool run failed, will retry") {
		t.Error("the debug log does not show the broken tool's retry: the log check above may be looking at nothing")
	}
	if where := redisHolds(t, f.redis.Addr, toolsSecret); where != "" {
		t.Errorf("Redis holds the tool token in %s", where)
	}
	if where := redisHolds(t, f.redis.Addr, "${TOOLS_TOKEN}"); where == "" {
		t.Error("the stored tools do not hold the ${TOOLS_TOKEN} reference: the Redis scan may be looking at nothing")
	}
}

// redisHolds returns the first key whose name or value contains s, or "".
func redisHolds(t *testing.T, addr, s string) string {
	t.Helper()
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	iter := rdb.Scan(ctx, 0, "*", 1000).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		var vals []string
		switch rdb.Type(ctx, k).Val() {
		case "string":
			vals = []string{rdb.Get(ctx, k).Val()}
		case "hash":
			for f, v := range rdb.HGetAll(ctx, k).Val() {
				vals = append(vals, f, v)
			}
		case "list":
			vals = rdb.LRange(ctx, k, 0, -1).Val()
		case "set":
			vals = rdb.SMembers(ctx, k).Val()
		case "zset":
			vals = rdb.ZRange(ctx, k, 0, -1).Val()
		}
		if strings.Contains(k, s) {
			return k
		}
		for _, v := range vals {
			if strings.Contains(v, s) {
				return k
			}
		}
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return ""
}

// A worker SIGKILLed while a tool runs loses nothing: the model's answer
// and the tool result committed before the kill are not repeated, and only
// the run in flight runs again, with the same Idempotency-Key.
func TestAgentWorkerKilledWhileToolRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for asynq's lease expiry (60-120 s)")
	}
	t.Parallel()
	f := newFleet(t, "--seed", "43")
	ts := newToolServer(t)
	ts.hold["clean_logs"] = make(chan struct{})
	tools := writeTools(t, ts)
	prompt := "check then clean #tools:check_disk,clean_logs"
	file := writeJSONL(t, map[string]any{"id": "victim", "prompt": prompt})
	if _, r := f.submit(t, file, "--job", "kill-agent", "--tools", tools); r.code != 0 {
		t.Fatalf("run exit %d: %s", r.code, r.stderr)
	}
	env := append(append([]string{}, f.env...), "TOOLS_TOKEN="+toolsSecret)
	victim := start(t, env, "worker", "--check-interval", "1s", "--concurrency", "2")
	select {
	case <-ts.holding:
	case <-time.After(60 * time.Second):
		t.Fatal("clean_logs never started")
	}
	victim.signal(syscall.SIGKILL)
	<-victim.done
	ts.release("clean_logs")
	start(t, env, "worker", "--check-interval", "1s", "--concurrency", "2")

	wr := runCmdTimeout(t, f.env, 4*time.Minute, "status", "--job", "kill-agent", "--wait", "--interval", "500ms")
	if wr.code != 0 {
		t.Fatalf("status --wait exit %d: %s", wr.code, wr.stderr)
	}
	res := readLines[agentResult](t, exportTo(t, f, "kill-agent"))
	want := simulator.ToolReply("disk of victim: 91% used", "cleaned the logs of victim")
	if len(res) != 1 || res[0].Output != want || res[0].Steps != 2 || res[0].ToolCalls != 2 {
		t.Fatalf("results %+v, want one with output %q, 2 steps, 2 tool calls", res, want)
	}
	if c := f.stats(t).ByContent[key(prompt)]; c != 2 {
		t.Errorf("%d model calls, want 2: the answer committed before the kill is not asked again", c)
	}
	if runs := ts.runsOf("victim", "check_disk"); len(runs) != 1 {
		t.Errorf("check_disk ran %d times, want 1: its result was committed before the kill", len(runs))
	}
	runs := ts.runsOf("victim", "clean_logs")
	if len(runs) != 2 {
		t.Fatalf("clean_logs ran %d times, want 2: the run in flight, then once more", len(runs))
	}
	if runs[0].Key != runs[1].Key || runs[0].CallID != runs[1].CallID {
		t.Errorf("the repeated run sent key %q call %q, the first %q call %q: want the same", runs[1].Key, runs[1].CallID, runs[0].Key, runs[0].CallID)
	}
}

func exportTo(t *testing.T, f *fleet, job string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "results.jsonl")
	if r := f.producer(t, nil, "export", "--job", job, "--out", path); r.code != 0 {
		t.Fatalf("export exit %d: %s", r.code, r.stderr)
	}
	return path
}

// A model call that fails after the tools ran is retried by a new attempt
// that resumes at the last committed step: the tools do not run again, and
// the item's attempts count every provider call.
func TestAgentRetryResumesAfterTheTools(t *testing.T) {
	t.Parallel()
	f := newFleet(t, "--seed", "47")
	ts := newToolServer(t)
	ts.hold["clean_logs"] = make(chan struct{})
	tools := writeTools(t, ts)
	prompt := "check, clean, then answer #tools:check_disk,clean_logs"
	file := writeJSONL(t, map[string]any{"id": "retried", "prompt": prompt})
	if _, r := f.submit(t, file, "--job", "retry-agent", "--tools", tools); r.code != 0 {
		t.Fatalf("run exit %d: %s", r.code, r.stderr)
	}
	env := append(append([]string{}, f.env...), "TOOLS_TOKEN="+toolsSecret)
	start(t, env, "worker", "--check-interval", "1s", "--concurrency", "2")
	select {
	case <-ts.holding:
	case <-time.After(60 * time.Second):
		t.Fatal("clean_logs never started")
	}
	// The provider fails while the second tool runs: the next model call
	// gets a 500.
	f.setFaults(t, "500=1")
	ts.release("clean_logs")
	waitFor(t, 30*time.Second, "the model call after the tools to fail", func() bool { return f.stats(t).ByStatus["500"] > 0 })
	f.setFaults(t, "")

	wr := runCmdTimeout(t, f.env, 2*time.Minute, "status", "--job", "retry-agent", "--wait", "--interval", "300ms")
	if wr.code != 0 {
		t.Fatalf("status --wait exit %d: %s", wr.code, wr.stderr)
	}
	res := readLines[agentResult](t, exportTo(t, f, "retry-agent"))
	want := simulator.ToolReply("disk of retried: 91% used", "cleaned the logs of retried")
	if len(res) != 1 || res[0].Output != want || res[0].Steps != 2 || res[0].ToolCalls != 2 {
		t.Fatalf("results %+v, want one with output %q, 2 steps, 2 tool calls", res, want)
	}
	failedCalls := f.stats(t).ByStatus["500"]
	if res[0].Attempts != 2+failedCalls {
		t.Errorf("attempts %d, want %d: 2 answered calls and %d failed", res[0].Attempts, 2+failedCalls, failedCalls)
	}
	for _, tool := range []string{"check_disk", "clean_logs"} {
		if runs := ts.runsOf("retried", tool); len(runs) != 1 {
			t.Errorf("%s ran %d times, want 1: the retry resumed after the committed results", tool, len(runs))
		}
	}
}

// A transcript past --max-transcript-bytes fails too_large before the next
// model call, and keeps what it had; an item that failed tool_error and is
// replayed starts over from its first step, and its tool run gets a new
// Idempotency-Key (it is a new run, not a repeat).
func TestAgentTooLargeAndReplay(t *testing.T) {
	t.Parallel()
	f := newFleet(t, "--seed", "73")
	ts := newToolServer(t)
	tools := writeTools(t, ts)
	file := writeJSONL(t,
		map[string]any{"id": "big", "prompt": "read the logs #tools:big"},
		map[string]any{"id": "flaky", "prompt": "try the flaky tool #tools:flaky"})
	if _, r := f.submit(t, file, "--job", "limits", "--tools", tools, "--max-transcript-bytes", "2048"); r.code != 0 {
		t.Fatalf("run exit %d: %s", r.code, r.stderr)
	}
	f.worker(t, "--concurrency", "2")
	if wr := runCmdTimeout(t, f.env, time.Minute, "status", "--job", "limits", "--wait", "--interval", "200ms"); wr.code != 4 {
		t.Fatalf("status --wait exit %d, want 4", wr.code)
	}
	classes := map[string]string{}
	for _, it := range f.failed(t, "--job", "limits").Items {
		classes[it.ID] = it.Class
	}
	if classes["big"] != "too_large" || classes["flaky"] != "tool_error" {
		t.Fatalf("failed as %v, want big too_large and flaky tool_error", classes)
	}
	if c := f.stats(t).ByContent[key("read the logs #tools:big")]; c != 1 {
		t.Errorf("big: %d model calls, want 1: the over-limit transcript is never sent", c)
	}
	before := ts.runsOf("flaky", "flaky")
	if len(before) != 2 {
		t.Fatalf("flaky ran %d times, want its max_attempts 2", len(before))
	}
	ts.mu.Lock()
	ts.flakyUp = true
	ts.mu.Unlock()
	if r := f.producer(t, nil, "replay", "--job", "limits", "--item", "flaky"); r.code != 0 {
		t.Fatalf("replay: exit %d: %s", r.code, r.stderr)
	}
	waitFor(t, time.Minute, "the replayed item to finish", func() bool { return f.status(t, "limits").Done == 1 })
	after := ts.runsOf("flaky", "flaky")
	if len(after) != 3 {
		t.Fatalf("flaky ran %d times in all, want 3", len(after))
	}
	if after[2].Key == before[0].Key {
		t.Error("the replayed run sent the key of the first run: a replay is a new run")
	}
	res := readLines[agentResult](t, exportTo(t, f, "limits"))
	if len(res) != 1 || res[0].Output != simulator.ToolReply("flaky answered flaky") || res[0].Steps != 2 {
		t.Errorf("results %+v, want flaky done in 2 steps from its first step", res)
	}
}
