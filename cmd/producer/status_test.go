package main

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/llmfleet/llmfleet/simulator"
)

func TestStatus(t *testing.T) {
	t.Parallel()
	t.Run("queued job", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		f := b.file(t, "items.jsonl", jsonl(`{"id":"1","prompt":"a"}`, `{"id":"2","prompt":"b"}`, `{"id":"3","prompt":"c"}`, `{"id":"4"}`))
		if r := b.cli(t, "run", "--job", "st", f); r.code != 3 {
			t.Fatalf("run: %s", r)
		}
		st := b.status(t, "st") // checks every field is present
		if st.Job != "st" || st.State != "running" || st.Total != 3 || st.Pending != 3 || st.Rejected != 1 ||
			st.Done != 0 || st.Failed != 0 || st.Active != 0 || st.AwaitingInput != 0 || st.ProviderCalls != 0 {
			t.Errorf("status %+v, want running, 3 pending, 1 rejected, nothing else", st)
		}
		if st.SuccessRate != nil || st.FinishedAt != nil {
			t.Errorf("success_rate %v, finished_at %v, want null before anything ended", st.SuccessRate, st.FinishedAt)
		}
		r := b.cli(t, "status", "--job", "st")
		if r.code != 0 || !strings.Contains(r.stdout, "st: running") || !strings.Contains(r.stdout, "0/3 done") {
			t.Errorf("plain status: %s", r)
		}
	})
	t.Run("unknown job", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for _, args := range [][]string{
			{"status", "--job", "ghost"},
			{"status", "--job", "ghost", "--json"},
			{"status", "--job", "ghost", "--wait"},
			{"export", "--job", "ghost"},
			{"cancel", "--job", "ghost"},
			{"delete", "--job", "ghost"},
		} {
			r := b.cli(t, args...)
			if r.code != 1 || !strings.Contains(r.stderr, "not found") {
				t.Errorf("%v: want exit 1 saying not found, got:\n%s", args, r)
			}
		}
	})
}

func TestJobsList(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.cli(t, "jobs", "--json")
	if r.code != 0 || strings.TrimSpace(r.stdout) != "[]" {
		t.Fatalf("jobs --json with no job: want [], got:\n%s", r)
	}
	if r := b.cli(t, "run", "--job", "alpha", b.file(t, "a.jsonl", jsonl(`{"id":"1","prompt":"a"}`, `{"id":"2","prompt":"b"}`))); r.code != 0 {
		t.Fatalf("run alpha: %s", r)
	}
	if r := b.cli(t, "run", "--job", "beta", b.file(t, "b.jsonl", jsonl(`{"id":"1","prompt":"c"}`))); r.code != 0 {
		t.Fatalf("run beta: %s", r)
	}
	r = b.cli(t, "jobs", "--json")
	if r.code != 0 {
		t.Fatalf("jobs --json: %s", r)
	}
	var list []status
	decodeOne(t, r, &list)
	totals := map[string]int64{}
	for _, s := range list {
		totals[s.Job] = s.Total
		if s.State != "running" || s.Pending != s.Total {
			t.Errorf("job %s: %+v, want running with every item pending", s.Job, s)
		}
	}
	if len(list) != 2 || totals["alpha"] != 2 || totals["beta"] != 1 {
		t.Errorf("jobs %+v, want alpha (2 items) and beta (1)", list)
	}
	r = b.cli(t, "jobs")
	if r.code != 0 || !strings.Contains(r.stdout, "JOB") || !strings.Contains(r.stdout, "alpha") || !strings.Contains(r.stdout, "beta") {
		t.Errorf("jobs table: %s", r)
	}
}

// cancel ends the job: status --wait exits 5, a rerun is refused, and
// delete removes the job and its queued tasks.
func TestCancelAndDelete(t *testing.T) {
	t.Parallel()
	b := setup(t)
	f := b.file(t, "items.jsonl", jsonl(`{"id":"1","prompt":"a"}`, `{"id":"2","prompt":"b"}`, `{"id":"3","prompt":"c"}`))
	if r := b.cli(t, "run", "--job", "c", f); r.code != 0 {
		t.Fatalf("run: %s", r)
	}
	r := b.cli(t, "cancel", "--job", "c")
	if r.code != 0 || !strings.Contains(r.stdout, "cancelled") || !strings.Contains(r.stdout, "3 pending") {
		t.Fatalf("cancel: %s", r)
	}
	r = b.cli(t, "status", "--job", "c", "--wait", "--interval", "100ms")
	if r.code != 5 {
		t.Fatalf("status --wait of a cancelled job: exit %d, want 5:\n%s", r.code, r)
	}
	st := b.status(t, "c")
	if st.State != "cancelled" || st.Failed != 3 || st.Pending != 0 {
		t.Errorf("status %+v, want cancelled with 3 failed", st)
	}
	r = b.cli(t, "run", "--job", "c", f)
	if r.code != 1 || !strings.Contains(r.stderr, "cancelled") {
		t.Errorf("rerun of a cancelled job: want exit 1 saying it was cancelled, got:\n%s", r)
	}
	if n := b.pending(t, "default"); n != 3 {
		t.Errorf("%d tasks pending before delete, want 3", n)
	}
	r = b.cli(t, "delete", "--job", "c")
	if r.code != 0 || !strings.Contains(r.stdout, "3 queued tasks removed") {
		t.Fatalf("delete: %s", r)
	}
	if n := b.pending(t, "default"); n != 0 {
		t.Errorf("%d tasks pending after delete, want none", n)
	}
	if r := b.cli(t, "status", "--job", "c"); r.code != 1 || !strings.Contains(r.stderr, "not found") {
		t.Errorf("status after delete: %s", r)
	}
	// The name is free again.
	if s, r := b.runJSON(t, nil, "--job", "c", f); r.code != 0 || s.Enqueued != 3 {
		t.Errorf("run after delete: %+v\n%s", s, r)
	}
}

// exportLine is one line of `export`.
type exportLine struct {
	ID         string          `json:"id"`
	Output     string          `json:"output"`
	Model      string          `json:"model"`
	Attempts   int             `json:"attempts"`
	Truncated  bool            `json:"truncated"`
	TokensIn   int             `json:"tokens_in"`
	TokensOut  int             `json:"tokens_out"`
	FinishedAt *time.Time      `json:"finished_at"`
	Metadata   json.RawMessage `json:"metadata"`
}

var exportKeys = []string{"id", "output", "model", "attempts", "truncated", "tokens_in", "tokens_out", "finished_at", "metadata"}

// A CSV job through a real worker and the simulator, one item failing with
// a 400: status --wait exits 4, export writes results in input order and
// the failed item as CSV, and a rerun enqueues nothing.
func TestJobEndToEndWithWorker(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.startWorker(t)

	const n = 20
	const failRow = 5
	var csvText strings.Builder
	csvText.WriteString("id,name,color\n")
	var ids []string
	names := map[string]string{}
	for i := range n {
		id := fmt.Sprintf("p%02d", (i*7)%n) // input order differs from id order
		name := fmt.Sprintf("widget %d", i)
		if i == failRow {
			name = "gizmo #fail:400"
		}
		fmt.Fprintf(&csvText, "%s,%s,%s\n", id, name, "red")
		ids = append(ids, id)
		names[id] = name
	}
	f := b.file(t, "products.csv", csvText.String())
	tmpl := "@" + b.file(t, "copy.tmpl", "Describe the {{.color}} {{.name}}.\n")

	s, r := b.runJSON(t, nil, "--job", "e2e", "--template", tmpl, "--max-attempts", "2", f)
	if r.code != 0 || s.Total != n || s.Enqueued != n {
		t.Fatalf("run: %+v\n%s", s, r)
	}
	r = b.cli(t, "status", "--job", "e2e", "--wait", "--interval", "100ms")
	if r.code != 4 {
		t.Fatalf("status --wait: exit %d, want 4 (some failed):\n%s", r.code, r)
	}
	st := b.status(t, "e2e")
	if st.State != "done" || st.Done != n-1 || st.Failed != 1 || st.Pending != 0 {
		t.Errorf("status %+v, want done with %d done and 1 failed", st, n-1)
	}
	if st.SuccessRate == nil || *st.SuccessRate != float64(n-1)/n {
		t.Errorf("success_rate %v, want %v", st.SuccessRate, float64(n-1)/n)
	}
	if st.ProviderCalls != n || st.TokensIn == 0 || st.TokensOut == 0 {
		t.Errorf("provider_calls %d (want %d: a 400 is not retried), tokens in %d out %d", st.ProviderCalls, n, st.TokensIn, st.TokensOut)
	}
	if st.StartedAt == nil || st.FinishedAt == nil || st.FinishedAt.Before(*st.StartedAt) {
		t.Errorf("started_at %v, finished_at %v", st.StartedAt, st.FinishedAt)
	}

	out := filepath.Join(b.dir, "results.jsonl")
	failed := filepath.Join(b.dir, "failed.csv")
	r = b.cli(t, "export", "--job", "e2e", "--out", out, "--failed", failed)
	if r.code != 0 || !strings.Contains(r.stderr, fmt.Sprintf("exported %d results", n-1)) || !strings.Contains(r.stderr, "exported 1 failed") {
		t.Fatalf("export: %s", r)
	}
	results := readResults(t, out)
	var wantIDs []string
	for i, id := range ids {
		if i != failRow {
			wantIDs = append(wantIDs, id)
		}
	}
	var gotIDs []string
	for _, res := range results {
		gotIDs = append(gotIDs, res.ID)
		prompt := "Describe the red " + names[res.ID] + "."
		// The template file ends with a newline; whether it is kept in the
		// message is not in the contract, that the fields were rendered is.
		if res.Output != simulator.ReplyPrefix+simulator.Key(prompt+"\n") && res.Output != simulator.ReplyPrefix+simulator.Key(prompt) {
			t.Errorf("item %s: output %q, not the reply to %q", res.ID, res.Output, prompt)
		}
		if res.Attempts != 1 || res.Model != "gpt-4o-mini" || res.FinishedAt == nil || res.TokensOut == 0 {
			t.Errorf("item %s: %+v, want 1 attempt of gpt-4o-mini with tokens and finished_at", res.ID, res)
		}
	}
	if strings.Join(gotIDs, ",") != strings.Join(wantIDs, ",") {
		t.Errorf("results in order %v, want input order %v", gotIDs, wantIDs)
	}

	// The same export to standard output.
	r = b.cli(t, "export", "--job", "e2e")
	if data, _ := os.ReadFile(out); r.code != 0 || r.stdout != string(data) {
		t.Errorf("export to stdout differs from --out:\n%s", r)
	}

	fh, err := os.Open(failed)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	rows, err := csv.NewReader(fh).ReadAll()
	if err != nil {
		t.Fatalf("failed.csv is not CSV: %v", err)
	}
	wantHeader := []string{"id", "name", "color", "error_class", "error_reason", "attempts"}
	if len(rows) != 2 || strings.Join(rows[0], ",") != strings.Join(wantHeader, ",") {
		t.Fatalf("failed.csv %q, want header %q and one row", rows, wantHeader)
	}
	row := rows[1]
	if row[0] != ids[failRow] || row[1] != names[ids[failRow]] || row[2] != "red" || row[3] != "bad_request" || row[4] == "" || row[5] != "1" {
		t.Errorf("failed row %q, want id %s, its fields, bad_request, a reason, 1 attempt", row, ids[failRow])
	}

	// A rerun of the finished job enqueues nothing and tells why.
	s, r = b.runJSON(t, nil, "--job", "e2e", f)
	if r.code != 0 || s.Enqueued != 0 || s.SkippedDone != n-1 || s.SkippedFailed != 1 {
		t.Errorf("rerun: %+v, want nothing enqueued, %d skipped as done, 1 as failed\n%s", s, n-1, r)
	}
	if r := b.cli(t, "status", "--job", "e2e", "--wait", "--json"); r.code != 4 {
		t.Errorf("status --wait after the rerun: exit %d, want 4:\n%s", r.code, r)
	}
}

// A job whose items all succeed: status --wait exits 0 and --watch without a
// terminal prints plain lines.
func TestStatusWaitAllDone(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.startWorker(t)
	f := b.file(t, "items.jsonl", jsonl(`{"id":"1","prompt":"a","metadata":{"k":1}}`, `{"id":"2","prompt":"b"}`))
	if r := b.cli(t, "run", "--job", "ok", f); r.code != 0 {
		t.Fatalf("run: %s", r)
	}
	r := b.cli(t, "status", "--job", "ok", "--wait", "--watch", "--interval", "100ms")
	if r.code != 0 || !strings.Contains(r.stderr, "2/2 done") {
		t.Fatalf("status --wait --watch: want exit 0 and a final line on stderr, got:\n%s", r)
	}
	r = b.cli(t, "export", "--job", "ok")
	if r.code != 0 {
		t.Fatalf("export: %s", r)
	}
	sc := bufio.NewScanner(strings.NewReader(r.stdout))
	var lines []exportLine
	for sc.Scan() {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("export line %q: %v", sc.Text(), err)
		}
		for _, k := range exportKeys {
			if _, ok := m[k]; !ok && k != "metadata" {
				t.Errorf("export line lacks %q: %s", k, sc.Text())
			}
		}
		var l exportLine
		_ = json.Unmarshal(sc.Bytes(), &l)
		lines = append(lines, l)
	}
	if len(lines) != 2 || lines[0].ID != "1" || lines[1].ID != "2" {
		t.Fatalf("export %+v, want items 1 and 2", lines)
	}
	if lines[0].Output != simulator.ReplyPrefix+simulator.Key("a") || string(lines[0].Metadata) != `{"k":1}` {
		t.Errorf("item 1 exported as %+v, want the reply to %q and its metadata", lines[0], "a")
	}
	t.Run("metadata key on an item without metadata", func(t *testing.T) {
		if !strings.Contains(strings.Split(strings.TrimSpace(r.stdout), "\n")[1], `"metadata":`) {
			t.Errorf("export line of item 2 lacks metadata: %s", r.stdout)
		}
	})
}

func readResults(t *testing.T, path string) []exportLine {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []exportLine
	for _, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		if line == "" {
			continue
		}
		var l exportLine
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("results line %q: %v", line, err)
		}
		out = append(out, l)
	}
	return out
}
