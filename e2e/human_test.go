package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/llmfleet/llmfleet/simulator"
)

// writeHumanTools writes a tools file with check_disk, clean_logs behind
// approval, and ask_human answered by a person.
func writeHumanTools(t *testing.T, ts *toolServer) string {
	t.Helper()
	doc := fmt.Sprintf(`{"tools": [
	  {"name": "check_disk", "url": "%[1]s/check_disk"},
	  {"name": "clean_logs", "description": "Delete old logs", "url": "%[1]s/clean_logs", "approval": "always",
	   "parameters": {"type": "object", "properties": {"host": {"type": "string"}}, "required": ["host"]}},
	  {"name": "ask_human", "description": "Ask the operator", "executor": "human",
	   "parameters": {"type": "object", "properties": {"question": {"type": "string"}}}}
	]}`, ts.URL)
	path := filepath.Join(t.TempDir(), "tools.json")
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

type inboxOut struct {
	Waiting  int `json:"waiting"`
	Requests []struct {
		Item      string          `json:"item"`
		Request   string          `json:"request"`
		Kind      string          `json:"kind"`
		Tool      string          `json:"tool"`
		Arguments json.RawMessage `json:"arguments"`
		Question  string          `json:"question"`
	} `json:"requests"`
}

// Items that call tools behind approval park: nothing runs before an
// answer, no worker holds them (every worker is SIGKILLed meanwhile), and
// one `run --responses` with good and bad lines answers the good ones and
// names the bad ones. Approved calls run once with their arguments, edited
// ones with the new arguments, rejected ones never; the question gets its
// answer; and the model sees each outcome.
func TestHumanInTheLoop(t *testing.T) {
	t.Parallel()
	f := newFleet(t, "--seed", "53")
	ts := newToolServer(t)
	tools := writeHumanTools(t, ts)
	file := writeJSONL(t,
		map[string]any{"id": "approve", "prompt": `clean a #tools:clean_logs #args:clean_logs:{"host":"a"}`},
		map[string]any{"id": "edit", "prompt": `clean b #tools:clean_logs #args:clean_logs:{"host":"b"}`},
		map[string]any{"id": "reject", "prompt": `clean c #tools:clean_logs #args:clean_logs:{"host":"c"}`},
		map[string]any{"id": "ask", "prompt": `ask #tools:ask_human #args:ask_human:{"question":"which host?"}`},
		map[string]any{"id": "mixed", "prompt": `check then clean #tools:check_disk,clean_logs #args:clean_logs:{"host":"m"}`},
	)
	if _, r := f.submit(t, file, "--job", "hitl", "--tools", tools); r.code != 0 {
		t.Fatalf("run exit %d: %s", r.code, r.stderr)
	}
	w1 := f.worker(t, "--concurrency", "4")
	w2 := f.worker(t, "--concurrency", "4")

	// Nothing left but people: status --wait says so with exit 6.
	wr := runCmdTimeout(t, f.env, time.Minute, "status", "--job", "hitl", "--wait", "--interval", "200ms")
	if wr.code != 6 {
		t.Fatalf("status --wait exit %d, want 6 (only people awaited): %s %s", wr.code, wr.stdout, wr.stderr)
	}
	st := f.status(t, "hitl")
	if st.AwaitingInput != 5 || st.Active != 0 || st.Pending != 0 || st.Done != 0 {
		t.Fatalf("status %+v, want 5 awaiting input and nothing else", st)
	}
	if n := len(ts.runsOf("approve", "clean_logs")) + len(ts.runsOf("edit", "clean_logs")) + len(ts.runsOf("reject", "clean_logs")) + len(ts.runsOf("mixed", "clean_logs")); n != 0 {
		t.Fatalf("clean_logs ran %d times before any answer", n)
	}
	if n := len(ts.runsOf("mixed", "check_disk")); n != 1 {
		t.Errorf("check_disk, which needs no approval, ran %d times, want 1 before the park", n)
	}
	// Parked items hold no worker, lease or slot: no task is active.
	insp := f.inspector(t)
	if q, err := insp.GetQueueInfo("default"); err != nil || q.Active != 0 {
		t.Fatalf("queue %+v (%v), want no active task while people think", q, err)
	}
	// Every worker dies; nothing is lost.
	for _, w := range []*proc{w1, w2} {
		w.signal(syscall.SIGKILL)
		<-w.done
	}

	r := f.producer(t, nil, "inbox", "--job", "hitl", "--json")
	var inbox inboxOut
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &inbox) != nil {
		t.Fatalf("inbox: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	reqs := map[string]string{}
	for _, q := range inbox.Requests {
		reqs[q.Item] = q.Request
		switch {
		case q.Item == "ask" && (q.Kind != "question" || q.Question != "which host?" || q.Tool != "ask_human"):
			t.Errorf("inbox request of ask: %+v", q)
		case q.Item == "approve" && (q.Kind != "approval" || string(q.Arguments) != `{"host":"a"}` || q.Tool != "clean_logs"):
			t.Errorf("inbox request of approve: %+v", q)
		}
	}
	if inbox.Waiting != 5 || len(reqs) != 5 {
		t.Fatalf("inbox %+v, want 5 requests of 5 items", inbox)
	}
	answers := strings.Join([]string{
		fmt.Sprintf(`{"item": "approve", "request": %q, "decision": "approve"}`, reqs["approve"]),
		fmt.Sprintf(`{"item": "edit", "request": %q, "decision": "edit", "arguments": {"host": "b2"}}`, reqs["edit"]),
		fmt.Sprintf(`{"item": "reject", "request": %q, "decision": "reject", "message": "not on a Friday"}`, reqs["reject"]),
		`{"item": "ask", "decision": "answer", "answer": "web-9"}`,
		fmt.Sprintf(`{"item": "mixed", "request": %q, "decision": "approve"}`, reqs["mixed"]),
		`{"item": "nosuch", "decision": "approve"}`,
		`{"item": "approve", "request": "call_nosuch", "decision": "approve"}`,
		`{"item": "ask", "decision": "approve"}`,
		`{"item": "edit", "decision": "edit", "arguments": {"host": 5}}`,
		`{"item": broken json`,
	}, "\n")
	// The bad lines come first in the file too: they must not stop the
	// good ones after them.
	lines := strings.Split(answers, "\n")
	lines = append(lines[5:], lines[:5]...)
	respFile := filepath.Join(t.TempDir(), "answers.jsonl")
	if err := os.WriteFile(respFile, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = f.producer(t, nil, "run", "--job", "hitl", "--responses", respFile, "--json")
	var rs struct {
		Applied, Resumed, Rejected int
		AlreadyAnswered            int `json:"already_answered"`
		RejectedLines              []struct {
			Line  int
			Error string
		} `json:"rejected_lines"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &rs); err != nil || r.code != 3 {
		t.Fatalf("run --responses: exit %d (want 3), %s %s", r.code, r.stdout, r.stderr)
	}
	if rs.Applied != 5 || rs.Resumed != 5 || rs.Rejected != 5 || len(rs.RejectedLines) != 5 {
		t.Fatalf("responses %+v, want 5 applied and resumed, 5 rejected", rs)
	}
	wantErr := []string{`"nosuch" is not in job`, `no request "call_nosuch"`, "is a question", "host", "not a response"}
	for i, rl := range rs.RejectedLines {
		if rl.Line != i+1 || !strings.Contains(rl.Error, wantErr[i]) {
			t.Errorf("rejected line %d: %+v, want line %d naming %q", i, rl, i+1, wantErr[i])
		}
	}
	// A repeated answer changes nothing and says so.
	again := filepath.Join(t.TempDir(), "again.jsonl")
	os.WriteFile(again, []byte(lines[5]+"\n"), 0o644)
	r = f.producer(t, nil, "run", "--job", "hitl", "--responses", again)
	if r.code != 0 || !strings.Contains(r.stdout, "already answered") {
		t.Errorf("repeated answer: exit %d, %s", r.code, r.stdout)
	}

	f.worker(t, "--concurrency", "4")
	wr = runCmdTimeout(t, f.env, time.Minute, "status", "--job", "hitl", "--wait", "--interval", "200ms")
	if wr.code != 0 {
		t.Fatalf("status --wait exit %d after the answers: %s", wr.code, wr.stdout)
	}
	results := map[string]agentResult{}
	for _, res := range readLines[agentResult](t, exportTo(t, f, "hitl")) {
		results[res.ID] = res
	}
	want := map[string]string{
		"approve": simulator.ToolReply("cleaned the logs of approve"),
		"edit":    simulator.ToolReply(`a person changed the arguments to {"host":"b2"}; the result: cleaned the logs of edit`),
		"reject":  simulator.ToolReply("rejected by a person: not on a Friday"),
		"ask":     simulator.ToolReply("web-9"),
		"mixed":   simulator.ToolReply("disk of mixed: 91% used", "cleaned the logs of mixed"),
	}
	for id, w := range want {
		if got := results[id]; got.Output != w || got.Steps != 2 {
			t.Errorf("item %s: %+v, want output %q (the model saw the outcome) in 2 steps", id, got, w)
		}
	}
	check := func(item string, n int, args string) {
		t.Helper()
		runs := ts.runsOf(item, "clean_logs")
		if len(runs) != n {
			t.Fatalf("item %s: clean_logs ran %d times, want %d", item, len(runs), n)
		}
		if n == 1 && string(runs[0].Args) != args {
			t.Errorf("item %s: clean_logs ran with %s, want %s", item, runs[0].Args, args)
		}
	}
	check("approve", 1, `{"host":"a"}`)
	check("edit", 1, `{"host":"b2"}`)
	check("reject", 0, "")
	check("mixed", 1, `{"host":"m"}`)
	if n := len(ts.runsOf("mixed", "check_disk")); n != 1 {
		t.Errorf("check_disk ran %d times for mixed, want 1: the resumed item did not repeat it", n)
	}
	if n := f.stats(t).Calls; n != 10 {
		t.Errorf("simulator saw %d calls, want 10: one per step, none repeated", n)
	}
	if q, err := insp.GetQueueInfo("default"); err == nil && (q.Retry != 0 || q.Pending != 0) {
		t.Errorf("queue %+v: tasks left behind", q)
	}
}

// --input-timeout ends a request nobody answers as --on-input-timeout
// says: fail (class input_timeout), or reject, and the model goes on.
func TestInputTimeout(t *testing.T) {
	t.Parallel()
	f := newFleet(t, "--seed", "59")
	ts := newToolServer(t)
	tools := writeHumanTools(t, ts)
	fail := writeJSONL(t, map[string]any{"id": "late", "prompt": `clean x #tools:clean_logs #args:clean_logs:{"host":"x"}`})
	reject := writeJSONL(t, map[string]any{"id": "late", "prompt": `clean y #tools:clean_logs #args:clean_logs:{"host":"y"}`})
	if _, r := f.submit(t, fail, "--job", "to-fail", "--tools", tools, "--input-timeout", "2s"); r.code != 0 {
		t.Fatalf("run exit %d: %s", r.code, r.stderr)
	}
	if _, r := f.submit(t, reject, "--job", "to-reject", "--tools", tools, "--input-timeout", "2s", "--on-input-timeout", "reject"); r.code != 0 {
		t.Fatalf("run exit %d: %s", r.code, r.stderr)
	}
	f.worker(t, "--concurrency", "2")
	// Parked first, then failed once the timeout passes.
	waitFor(t, 30*time.Second, "the item to park", func() bool { return f.status(t, "to-fail").AwaitingInput == 1 })
	waitFor(t, 30*time.Second, "the unanswered request to fail its item", func() bool { return f.status(t, "to-fail").Failed == 1 })
	fl := f.failed(t, "--job", "to-fail")
	if len(fl.Items) != 1 || fl.Items[0].Class != "input_timeout" || !strings.Contains(fl.Items[0].Reason, "2s") {
		t.Errorf("failed %+v, want input_timeout naming the timeout", fl)
	}
	waitFor(t, 30*time.Second, "the unanswered request to be rejected", func() bool { return f.status(t, "to-reject").Done == 1 })
	res := readLines[agentResult](t, exportTo(t, f, "to-reject"))
	if want := simulator.ToolReply("rejected by a person: no one answered within 2s"); len(res) != 1 || res[0].Output != want {
		t.Errorf("results %+v, want the model told %q", res, want)
	}
	if n := ts.count(); n != 0 {
		t.Errorf("tools ran %d times, want none: nobody approved", n)
	}
}

// producer respond answers one request: a decision that does not fit is
// exit 3 and changes nothing; the right one resumes the item.
func TestRespondOneAtATime(t *testing.T) {
	t.Parallel()
	f := newFleet(t, "--seed", "61")
	ts := newToolServer(t)
	tools := writeHumanTools(t, ts)
	file := writeJSONL(t,
		map[string]any{"id": "q", "prompt": `ask #tools:ask_human #args:ask_human:{"question":"go on?"}`},
		map[string]any{"id": "c", "prompt": `clean #tools:clean_logs #args:clean_logs:{"host":"z"}`})
	if _, r := f.submit(t, file, "--job", "one", "--tools", tools); r.code != 0 {
		t.Fatalf("run exit %d: %s", r.code, r.stderr)
	}
	f.worker(t, "--concurrency", "2")
	waitFor(t, 30*time.Second, "both items to park", func() bool { return f.status(t, "one").AwaitingInput == 2 })

	r := f.producer(t, nil, "inbox", "--job", "one")
	if r.code != 0 || !strings.Contains(r.stdout, "go on?") || !strings.Contains(r.stdout, `{"host":"z"}`) {
		t.Errorf("inbox: exit %d:\n%s", r.code, r.stdout)
	}
	if r := f.producer(t, nil, "respond", "--job", "one", "--item", "q", "--approve"); r.code != 3 || !strings.Contains(r.stderr, "question") {
		t.Errorf("approving a question: exit %d, %s", r.code, r.stderr)
	}
	if r := f.producer(t, nil, "respond", "--job", "one", "--item", "c", "--approve", "--answer", "x"); r.code != 2 {
		t.Errorf("two decisions: exit %d, want 2", r.code)
	}
	if r := f.producer(t, nil, "respond", "--job", "one", "--item", "c", "--edit", `{"hostname":"z"}`); r.code != 3 || !strings.Contains(r.stderr, "host") {
		t.Errorf("edit missing the required host: exit %d, %s", r.code, r.stderr)
	}
	if st := f.status(t, "one"); st.AwaitingInput != 2 {
		t.Fatalf("status %+v: a refused answer changed something", st)
	}
	if r := f.producer(t, nil, "respond", "--job", "one", "--item", "q", "--answer", "yes, go on"); r.code != 0 || !strings.Contains(r.stdout, "resumes") {
		t.Errorf("answer: exit %d, %s %s", r.code, r.stdout, r.stderr)
	}
	if r := f.producer(t, nil, "respond", "--job", "one", "--item", "c", "--reject", "--message", "no"); r.code != 0 {
		t.Errorf("reject: exit %d, %s %s", r.code, r.stdout, r.stderr)
	}
	if wr := runCmdTimeout(t, f.env, time.Minute, "status", "--job", "one", "--wait", "--interval", "200ms"); wr.code != 0 {
		t.Fatalf("status --wait exit %d", wr.code)
	}
	results := map[string]agentResult{}
	for _, res := range readLines[agentResult](t, exportTo(t, f, "one")) {
		results[res.ID] = res
	}
	if results["q"].Output != simulator.ToolReply("yes, go on") || results["c"].Output != simulator.ToolReply("rejected by a person: no") {
		t.Errorf("results %+v", results)
	}
	if ts.count() != 0 {
		t.Errorf("tools ran %d times, want 0", ts.count())
	}
}

// The embedded agent demo without a terminal: the items that want
// clean_logs park, their requests are written to agents.awaiting.jsonl and
// the run exits 6; the same command with --responses resumes them at their
// parked step (no model call or tool run repeated) and finishes the job.
func TestEmbeddedAgentsAwaitAndResume(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	examples, err := filepath.Abs("../examples/agents.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	env := append(cleanEnv(), "REDIS_URL=redis://127.0.0.1:1/0") // would fail if used
	run := func(args ...string) result {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		return execIn(ctx, dir, env, append([]string{"run", "--embedded", "--job", "agents", "--sim-faults", "none", examples}, args...)...)
	}
	r := run()
	if r.code != 6 {
		t.Fatalf("embedded agents run: exit %d, want 6 (requests wait for a person)\n%s", r.code, r.stderr)
	}
	var waiting []struct {
		Item    string `json:"item"`
		Request string `json:"request"`
		Tool    string `json:"tool"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "agents.awaiting.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(strings.TrimSpace(string(b)), "\n") {
		var w struct {
			Item    string `json:"item"`
			Request string `json:"request"`
			Tool    string `json:"tool"`
		}
		if err := json.Unmarshal([]byte(line), &w); err != nil {
			t.Fatal(err)
		}
		waiting = append(waiting, w)
	}
	if len(waiting) != 3 {
		t.Fatalf("agents.awaiting.jsonl has %d requests, want 3 (web-1, web-2, cache-1 want clean_logs)", len(waiting))
	}
	if n := len(readLines[agentResult](t, filepath.Join(dir, "agents.results.jsonl"))); n != 2 {
		t.Errorf("%d results after the first run, want the 2 items that only check", n)
	}
	var answers strings.Builder
	for _, w := range waiting {
		if w.Tool != "clean_logs" {
			t.Errorf("request %+v, want clean_logs", w)
		}
		fmt.Fprintf(&answers, `{"item": %q, "request": %q, "decision": "approve"}`+"\n", w.Item, w.Request)
	}
	respFile := filepath.Join(dir, "answers.jsonl")
	os.WriteFile(respFile, []byte(answers.String()), 0o644)
	r = run("--responses", respFile)
	if r.code != 0 {
		t.Fatalf("rerun with responses: exit %d\n%s", r.code, r.stderr)
	}
	res := readLines[agentResult](t, filepath.Join(dir, "agents.results.jsonl"))
	if len(res) != 5 {
		t.Fatalf("%d results, want 5", len(res))
	}
	for _, x := range res {
		if x.Steps != 2 || x.Attempts != 2 {
			t.Errorf("item %s: %d steps in %d calls, want 2 and 2: the parked step resumed, nothing repeated", x.ID, x.Steps, x.Attempts)
		}
	}
	// The first run made 1 call for each parked item, the rerun 1 more.
	if !strings.Contains(r.stderr, ", 3 calls") {
		t.Errorf("rerun did not make exactly 3 calls:\n%s", r.stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "agents.awaiting.jsonl")); !os.IsNotExist(err) {
		t.Errorf("agents.awaiting.jsonl still there after every request was answered: %v", err)
	}
}
