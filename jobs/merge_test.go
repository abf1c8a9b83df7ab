package jobs_test

import (
	"encoding/csv"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llmfleet/llmfleet/jobs"
)

func write(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestMergeKeepsOneLinePerIDWithTheRightWinner(t *testing.T) {
	dir := t.TempDir()
	first := write(t, dir, "a.results.jsonl",
		`{"id":"1","output":"old","finished_at":"2026-01-01T10:00:00Z"}`+"\n"+
			`{"id":"2","output":"only-a","finished_at":"2026-01-01T10:00:00Z"}`+"\n")
	second := write(t, dir, "b.results.jsonl",
		`{"id":"3","output":"only-b","finished_at":"2026-01-01T09:00:00Z"}`+"\n"+
			`{"id":"1","output":"new","finished_at":"2026-01-02T10:00:00Z"}`+"\n")
	older := write(t, dir, "c.results.jsonl",
		`{"id":"2","output":"stale","finished_at":"2025-12-31T10:00:00Z"}`+"\n")
	failed := write(t, dir, "a.failed.csv",
		"id,prompt,error_class,error_reason,attempts\n"+
			"3,p3,server_error,HTTP 500,5\n"+
			"4,p4,bad_request,HTTP 400,1\n"+
			"4,p4,bad_request,HTTP 400 again,1\n")
	out := filepath.Join(dir, "all.results.jsonl")

	sum, err := jobs.Merge(out, []string{first, second, older, failed})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(out)
	lines := strings.Split(strings.TrimSpace(string(got)), "\n")
	want := []string{`"id":"1","output":"new"`, `"id":"2","output":"only-a"`, `"id":"3","output":"only-b"`}
	if len(lines) != len(want) {
		t.Fatalf("merged file:\n%s\nwant %d lines", got, len(want))
	}
	for i, w := range want {
		if !strings.Contains(lines[i], w) {
			t.Errorf("line %d = %s, want it to contain %s (first-seen order, newest success)", i+1, lines[i], w)
		}
	}
	if sum.Results != 3 || sum.Failures != 1 || sum.OlderResultsDropped != 2 || sum.FailuresSuperseded != 1 || sum.DuplicateFailuresDropped != 1 {
		t.Errorf("summary %+v", sum)
	}
	f, err := os.Open(jobs.FailedPath(out))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || strings.Join(rows[0], ",") != "id,prompt,error_class,error_reason,attempts" || rows[1][0] != "4" || rows[1][3] != "HTTP 400 again" {
		t.Errorf("failed file rows %v: want the header and item 4's last failure only", rows)
	}
}

func TestMergeRejectsWhatItCannotRead(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out.jsonl")
	cases := map[string]string{
		"notes.txt":         "hello",
		"bad.results.jsonl": "{\"id\":\"1\"}\nnot json\n",
		"bad.csv":           "name,value\nx,1\n",
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := jobs.Merge(out, []string{write(t, dir, name, body)}); err == nil {
				t.Errorf("merge of %s succeeded, want an error naming it", name)
			} else if !strings.Contains(err.Error(), name) {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("a failed merge left %s behind", out)
	}
}
