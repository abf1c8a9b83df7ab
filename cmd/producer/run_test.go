package main

import (
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llmfleet/llmfleet/checkpoint"
	"github.com/llmfleet/llmfleet/tasks"
)

// Each kind of bad line of DESIGN.md "Input" is rejected with its line
// number and a message saying what is wrong, exit 3, and the good line is
// still recorded and enqueued.
func TestRunRejectsBadLineAndEnqueuesTheRest(t *testing.T) {
	t.Parallel()
	const good = `{"id":"good","prompt":"hello"}`
	cases := []struct {
		name    string
		file    string // file name: its extension picks the format
		content string
		args    []string
		want    rejection // Error: fragments separated by |
	}{
		{
			name:    "malformed JSON",
			content: jsonl(good, "", `{"id":"bad","prompt":"x"`),
			want:    rejection{3, "malformed JSON"},
		},
		{
			name:    "not an object",
			content: jsonl(good, "", `["bad"]`),
			want:    rejection{3, "must be a JSON object"},
		},
		{
			name:    "missing prompt",
			content: jsonl(good, "", `{"id":"bad"}`),
			want:    rejection{3, "missing prompt"},
		},
		{
			name:    "invalid UTF-8",
			content: jsonl(good, "", "{\"id\":\"bad\",\"prompt\":\"caf\xe9\"}"),
			want:    rejection{3, "invalid UTF-8"},
		},
		{
			name:    "over --max-item-bytes",
			content: jsonl(good, "", `{"id":"bad","prompt":"`+strings.Repeat("x", 200)+`"}`),
			args:    []string{"--max-item-bytes", "100"},
			want:    rejection{3, "over --max-item-bytes 100"},
		},
		{
			name:    "unknown template field",
			content: jsonl(`{"id":"good","title":"Dune"}`, "", `{"id":"bad","name":"Dune"}`),
			args:    []string{"--template", "Summarise {{.title}}"},
			want:    rejection{3, `template: field "title" not in item`},
		},
		{
			name:    "duplicate id with different content",
			content: jsonl(good, "", `{"id":"good","prompt":"something else"}`),
			want:    rejection{3, `id "good" already used on line 1 with different content`},
		},
		{
			name:    "messages with a template",
			content: jsonl(`{"id":"good","title":"Dune"}`, "", `{"id":"bad","title":"x","messages":[{"role":"user","content":"hi"}]}`),
			args:    []string{"--template", "Summarise {{.title}}"},
			want:    rejection{3, `"messages" cannot use --template`},
		},
		{
			// CSV: the line where the record starts, after a quoted
			// record spanning two lines.
			name:    "CSV record with too many fields",
			file:    "items.csv",
			content: "id,prompt\ngood,\"two\nlines\"\n\nbad,x,extra\n",
			want:    rejection{5, "3 fields"},
		},
		{
			name:    "CSV invalid UTF-8",
			file:    "items.csv",
			content: "id,prompt\ngood,hello\nbad,caf\xe9\n",
			want:    rejection{3, `invalid UTF-8|"prompt"`},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			name := tc.file
			if name == "" {
				name = "items.jsonl"
			}
			f := b.file(t, name, tc.content)
			s, r := b.runJSON(t, nil, append(append([]string{"--job", "j"}, tc.args...), f)...)
			if r.code != 3 {
				t.Fatalf("exit %d, want 3 (some lines rejected):\n%s", r.code, r)
			}
			wantRejections(t, s.RejectedLines, tc.want)
			if s.Job != "j" || s.Rejected != 1 || s.Total != 1 || s.Enqueued != 1 {
				t.Errorf("summary %+v, want job j, 1 rejected, 1 accepted and enqueued", s)
			}
			if n := b.pending(t, "default"); n != 1 {
				t.Errorf("%d tasks pending, want the good line's 1", n)
			}
			st := b.status(t, "j")
			if st.Total != 1 || st.Rejected != 1 || st.Pending != 1 {
				t.Errorf("status %+v, want total 1, rejected 1, pending 1", st)
			}
		})
	}
}

// Many bad lines of every kind among good ones: every bad line is reported
// in line order, every good one is enqueued, and the human summary names
// the lines too.
func TestRunMixedFileLosesNothingValid(t *testing.T) {
	t.Parallel()
	b := setup(t)
	content := jsonl(
		`{"id":"a","prompt":"one"}`,          // 1
		`{"id":"b","prompt":`,                // 2 malformed
		`{"id":"c","prompt":"two"}`,          // 3
		`{"id":"d"}`,                         // 4 missing prompt
		"{\"id\":\"e\",\"prompt\":\"\xff\"}", // 5 invalid UTF-8
		``,                                   // 6 blank
		`{"id":"f","prompt":"`+strings.Repeat("y", 300)+`"}`, // 7 too big
		`{"id":"a","prompt":"changed"}`,                      // 8 same id, other content
		`{"id":"a","prompt":"one"}`,                          // 9 exact duplicate of line 1
		`{"id":"g","prompt":"three"}`,                        // 10
		`{"prompt":"no id: derived"}`,                        // 11
	)
	f := b.file(t, "mixed.jsonl", content)
	s, r := b.runJSON(t, nil, "--job", "mixed", "--max-item-bytes", "200", f)
	if r.code != 3 {
		t.Fatalf("exit %d, want 3:\n%s", r.code, r)
	}
	wantRejections(t, s.RejectedLines,
		rejection{2, "malformed JSON"},
		rejection{4, "missing prompt"},
		rejection{5, "invalid UTF-8"},
		rejection{7, "over --max-item-bytes 200"},
		rejection{8, `id "a" already used on line 1`},
	)
	if s.Total != 4 || s.Enqueued != 4 || s.Rejected != 5 || s.DuplicatesCollapsed != 1 {
		t.Errorf("summary %+v, want 4 accepted and enqueued, 5 rejected, 1 duplicate collapsed", s)
	}
	if n := b.pending(t, "default"); n != 4 {
		t.Errorf("%d tasks pending, want 4", n)
	}

	// The same file again, without --json: people see the lines too.
	r = b.cli(t, "run", "--job", "mixed", "--max-item-bytes", "200", f)
	if r.code != 3 {
		t.Fatalf("rerun: exit %d, want 3:\n%s", r.code, r)
	}
	for _, want := range []string{"job mixed resumed", "line 2: malformed JSON", "line 8: id \"a\" already used on line 1"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("human summary lacks %q:\n%s", want, r)
		}
	}
	if n := b.pending(t, "default"); n != 4 {
		t.Errorf("after the rerun %d tasks pending, want still 4", n)
	}
}

func TestRunCollapsesExactDuplicateLine(t *testing.T) {
	t.Parallel()
	b := setup(t)
	line := `{"id":"007","prompt":"hello"}`
	f := b.file(t, "dup.jsonl", jsonl(line, `{"id":"008","prompt":"bye"}`, line))
	s, r := b.runJSON(t, nil, "--job", "dup", f)
	if r.code != 0 {
		t.Fatalf("exit %d, want 0:\n%s", r.code, r)
	}
	if !strings.Contains(r.stdout, `"rejected_lines":[]`) {
		t.Errorf("rejected_lines is not an empty array: %s", r.stdout)
	}
	if s.Total != 2 || s.Enqueued != 2 || s.DuplicatesCollapsed != 1 || s.Rejected != 0 {
		t.Errorf("summary %+v, want 2 accepted and enqueued, 1 duplicate collapsed, none rejected", s)
	}
	if n := b.pending(t, "default"); n != 2 {
		t.Errorf("%d tasks pending, want 2", n)
	}
	// The id is kept verbatim, leading zeros included.
	want := []string{tasks.TaskID("dup", "007"), tasks.TaskID("dup", "008")}
	if got := b.taskIDs(t, "default"); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("task ids %v, want %v", got, want)
	}
}

// A rerun with an id the job holds with other content rejects that line,
// pointing to replay --edit, and enqueues only what is new.
func TestRerunRejectsChangedItemPointingToReplayEdit(t *testing.T) {
	t.Parallel()
	b := setup(t)
	first := b.file(t, "v1.jsonl", jsonl(`{"id":"a","prompt":"hello"}`, `{"id":"b","prompt":"world"}`))
	if s, r := b.runJSON(t, nil, "--job", "re", first); r.code != 0 || s.Enqueued != 2 {
		t.Fatalf("first run: %+v\n%s", s, r)
	}
	second := b.file(t, "v2.jsonl", jsonl(`{"id":"a","prompt":"hello, changed"}`, `{"id":"b","prompt":"world"}`, `{"id":"c","prompt":"new"}`))
	s, r := b.runJSON(t, nil, "--job", "re", second)
	if r.code != 3 {
		t.Fatalf("exit %d, want 3:\n%s", r.code, r)
	}
	wantRejections(t, s.RejectedLines, rejection{1, `id "a"|different content|replay|--edit`})
	if s.Total != 2 || s.Enqueued != 1 || s.AlreadyQueued != 1 || s.Rejected != 1 {
		t.Errorf("summary %+v, want total 2 (b, c), c enqueued, b already queued, a rejected", s)
	}
	if n := b.pending(t, "default"); n != 3 {
		t.Errorf("%d tasks pending, want 3 (a, b, c once each)", n)
	}
	if st := b.status(t, "re"); st.Total != 3 {
		t.Errorf("status total %d, want 3 (a as first recorded, b, c)", st.Total)
	}
	items := b.storedItems(t, "re")
	if got := lastUser(items["a"]); got != "hello" {
		t.Errorf("stored item a has prompt %q, want the original %q", got, "hello")
	}
}

// Running the same file again enqueues nothing and says so; an item whose
// task vanished from asynq is enqueued again.
func TestRerunIsIdempotentAndRequeuesVanishedTask(t *testing.T) {
	t.Parallel()
	b := setup(t)
	f := b.file(t, "items.jsonl", jsonl(`{"id":"1","prompt":"a"}`, `{"id":"2","prompt":"b"}`, `{"id":"3","prompt":"c"}`))
	r := b.cli(t, "run", "--job", "idem", f)
	if r.code != 0 || !strings.Contains(r.stdout, "job idem created") {
		t.Fatalf("first run: %s", r)
	}
	r = b.cli(t, "run", "--job", "idem", f)
	if r.code != 0 || !strings.Contains(r.stdout, "nothing new to enqueue") || !strings.Contains(r.stdout, "3 already queued") {
		t.Fatalf("rerun does not say nothing was enqueued: %s", r)
	}
	if n := b.pending(t, "default"); n != 3 {
		t.Fatalf("%d tasks pending, want 3", n)
	}
	if err := b.insp.DeleteTask("default", tasks.TaskID("idem", "2")); err != nil {
		t.Fatal(err)
	}
	s, r := b.runJSON(t, nil, "--job", "idem", f)
	if r.code != 0 || s.Enqueued != 1 || s.AlreadyQueued != 2 || s.Total != 3 {
		t.Fatalf("after deleting a task: %+v, want 1 enqueued, 2 already queued\n%s", s, r)
	}
	if n := b.pending(t, "default"); n != 3 {
		t.Errorf("%d tasks pending, want 3", n)
	}
}

// Input that gives nothing to enqueue: exit 1 with a message saying why,
// and no task queued.
func TestRunNothingEnqueued(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, file, content string
		args                []string
		stderr              []string
	}{
		{name: "empty file", file: "e.jsonl", content: "", stderr: []string{"empty"}},
		{name: "only blank lines", file: "e.jsonl", content: "\n   \n\n", stderr: []string{"empty"}},
		{name: "empty CSV", file: "e.csv", content: "", stderr: []string{"empty"}},
		{name: "CSV header without prompt", file: "p.csv", content: "id,name\n1,widget\n",
			stderr: []string{"line 1", `"prompt"`}},
		{name: "CSV header without template field", file: "p.csv", content: "id,name\n1,widget\n",
			args: []string{"--template", "Describe {{.size}}"}, stderr: []string{`"size"`, "not in CSV header"}},
		{name: "every line rejected", file: "bad.jsonl", content: jsonl(`{"id":1}`, `{bad`),
			stderr: []string{"every line was rejected"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			f := b.file(t, tc.file, tc.content)
			r := b.cli(t, append(append([]string{"run", "--job", "nothing"}, tc.args...), f)...)
			if r.code != 1 {
				t.Fatalf("exit %d, want 1:\n%s", r.code, r)
			}
			for _, want := range tc.stderr {
				if !strings.Contains(r.stderr, want) {
					t.Errorf("stderr lacks %q:\n%s", want, r)
				}
			}
			if n := b.pending(t, "default"); n != 0 {
				t.Errorf("%d tasks pending, want none", n)
			}
		})
	}
	t.Run("every line rejected, --json", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		f := b.file(t, "bad.jsonl", jsonl(`{"id":1}`, ``, `{bad`))
		s, r := b.runJSON(t, nil, "--job", "allbad", f)
		if r.code != 1 {
			t.Fatalf("exit %d, want 1:\n%s", r.code, r)
		}
		wantRejections(t, s.RejectedLines, rejection{1, "missing prompt"}, rejection{3, "malformed JSON"})
		if s.Total != 0 || s.Enqueued != 0 || s.Rejected != 2 {
			t.Errorf("summary %+v, want nothing accepted, 2 rejected", s)
		}
	})
}

// --strict: one bad line and nothing is recorded or queued; a clean file
// goes through; standard input works too.
func TestRunStrict(t *testing.T) {
	t.Parallel()
	goodFile := jsonl(`{"id":"a","prompt":"one"}`, `{"id":"b","prompt":"two"}`, `{"id":"c","prompt":"three"}`)
	badFile := jsonl(`{"id":"a","prompt":"one"}`, `{"id":"b"}`, `{"id":"c","prompt":"three"}`)

	checkRejectedAll := func(t *testing.T, b *testBundle, s summary, r result) {
		t.Helper()
		if r.code != 1 {
			t.Fatalf("exit %d, want 1:\n%s", r.code, r)
		}
		if !strings.Contains(r.stderr, "--strict") || !strings.Contains(r.stderr, "nothing recorded") {
			t.Errorf("stderr does not say --strict recorded nothing:\n%s", r)
		}
		wantRejections(t, s.RejectedLines, rejection{2, "missing prompt"})
		if s.Enqueued != 0 || s.Total != 0 {
			t.Errorf("summary %+v, want nothing accepted or enqueued", s)
		}
		// A first run that records nothing leaves no job behind.
		if r := b.cli(t, "status", "--job", "strict"); r.code != 1 || !strings.Contains(r.stderr, "not found") {
			t.Errorf("status after a rejected --strict run: %s, want exit 1 and not found: nothing recorded", r)
		}
		if n := b.pending(t, "default"); n != 0 {
			t.Errorf("%d tasks pending, want none", n)
		}
	}

	t.Run("bad line in file", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		s, r := b.runJSON(t, nil, "--job", "strict", "--strict", b.file(t, "bad.jsonl", badFile))
		checkRejectedAll(t, b, s, r)
	})
	t.Run("bad line on stdin", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		// Not a Seeker: the input must be buffered to be read twice.
		stdin := struct{ io.Reader }{strings.NewReader(badFile)}
		s, r := b.runJSON(t, stdin, "--job", "strict", "--strict", "-")
		checkRejectedAll(t, b, s, r)
	})
	t.Run("clean file", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		s, r := b.runJSON(t, nil, "--job", "strict", "--strict", b.file(t, "good.jsonl", goodFile))
		if r.code != 0 || s.Total != 3 || s.Enqueued != 3 || s.Rejected != 0 {
			t.Fatalf("summary %+v, want 3 accepted and enqueued:\n%s", s, r)
		}
		if n := b.pending(t, "default"); n != 3 {
			t.Errorf("%d tasks pending, want 3", n)
		}
	})
	t.Run("clean stdin", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		stdin := struct{ io.Reader }{strings.NewReader(goodFile)}
		s, r := b.runJSON(t, stdin, "--job", "strict", "--strict", "-")
		if r.code != 0 || s.Total != 3 || s.Enqueued != 3 {
			t.Fatalf("summary %+v, want 3 accepted and enqueued:\n%s", s, r)
		}
		if n := b.pending(t, "default"); n != 3 {
			t.Errorf("%d tasks pending, want 3", n)
		}
		if got := lastUser(b.storedItems(t, "strict")["b"]); got != "two" {
			t.Errorf("stored item b has prompt %q, want %q", got, "two")
		}
	})
	t.Run("rerun with a changed item", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		if _, r := b.runJSON(t, nil, "--job", "strict", b.file(t, "v1.jsonl", jsonl(`{"id":"a","prompt":"one"}`))); r.code != 0 {
			t.Fatalf("first run: %s", r)
		}
		v2 := b.file(t, "v2.jsonl", jsonl(`{"id":"new","prompt":"new"}`, `{"id":"a","prompt":"changed"}`))
		s, r := b.runJSON(t, nil, "--job", "strict", "--strict", v2)
		if r.code != 1 {
			t.Fatalf("exit %d, want 1:\n%s", r.code, r)
		}
		wantRejections(t, s.RejectedLines, rejection{2, `id "a"|replay|--edit`})
		if st := b.status(t, "strict"); st.Total != 1 {
			t.Errorf("status total %d, want 1: the new item must not be recorded", st.Total)
		}
		if n := b.pending(t, "default"); n != 1 {
			t.Errorf("%d tasks pending, want the first run's 1", n)
		}
	})
}

// --template renders the user message from CSV columns, given inline or
// read from a file with @.
func TestRunCSVWithTemplate(t *testing.T) {
	t.Parallel()
	const csv = "name,color\nwidget,red\ngadget,blue\n"
	cases := []struct {
		name     string
		template func(b *testBundle) string
		want     map[string]bool // rendered prompts
	}{
		{
			name:     "inline",
			template: func(*testBundle) string { return "Describe {{.name}}" },
			want:     map[string]bool{"Describe widget": true, "Describe gadget": true},
		},
		{
			name: "@file",
			template: func(b *testBundle) string {
				return "@" + b.file(t, "copy.tmpl", "Describe the {{.color}} {{.name}}.")
			},
			want: map[string]bool{"Describe the red widget.": true, "Describe the blue gadget.": true},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			f := b.file(t, "products.csv", csv)
			s, r := b.runJSON(t, nil, "--job", "csv", "--template", tc.template(b), f)
			if r.code != 0 || s.Total != 2 || s.Enqueued != 2 || s.Rejected != 0 {
				t.Fatalf("summary %+v, want 2 accepted and enqueued:\n%s", s, r)
			}
			if n := b.pending(t, "default"); n != 2 {
				t.Errorf("%d tasks pending, want 2", n)
			}
			items := b.storedItems(t, "csv")
			if len(items) != 2 {
				t.Fatalf("%d items stored, want 2", len(items))
			}
			for id, it := range items {
				if p := lastUser(it); !tc.want[p] {
					t.Errorf("item %s: prompt %q, want one of %v", id, p, tc.want)
				}
			}
		})
	}
}

// Usage errors exit 2 with a message naming the flag, before Redis is
// touched.
func TestRunUsageErrors(t *testing.T) {
	t.Parallel()
	b := setup(t)
	f := b.file(t, "ok.jsonl", jsonl(`{"id":"1","prompt":"hi"}`))
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"missing --job", []string{"run", f}, []string{"--job"}},
		{"bad job name", []string{"run", "--job", "no spaces!", f}, []string{"--job"}},
		{"job name with a brace", []string{"run", "--job", "a{b}", f}, []string{"--job"}},
		{"--timeout below 1s", []string{"run", "--job", "j", "--timeout", "500ms", f}, []string{"--timeout"}},
		{"--backoff-max below --backoff-min", []string{"run", "--job", "j", "--backoff-min", "10s", "--backoff-max", "2s", f}, []string{"--backoff-max", "--backoff-min"}},
		{"--backoff-min below 1s", []string{"run", "--job", "j", "--backoff-min", "100ms", f}, []string{"--backoff-min"}},
		{"--max-attempts 0", []string{"run", "--job", "j", "--max-attempts", "0", f}, []string{"--max-attempts"}},
		{"--deadline not RFC 3339", []string{"run", "--job", "j", "--deadline", "tomorrow 6pm", f}, []string{"--deadline", "RFC 3339"}},
		{"--deadline and --deadline-in", []string{"run", "--job", "j", "--deadline", "2030-01-01T00:00:00Z", "--deadline-in", "1h", f}, []string{"--deadline", "--deadline-in"}},
		{"negative --deadline-in", []string{"run", "--job", "j", "--deadline-in", "-1h", f}, []string{"--deadline-in"}},
		{"--format xml", []string{"run", "--job", "j", "--format", "xml", f}, []string{"--format", "xml"}},
		{"--max-item-bytes 0", []string{"run", "--job", "j", "--max-item-bytes", "0", f}, []string{"--max-item-bytes"}},
		{"--template from a missing file", []string{"run", "--job", "j", "--template", "@" + b.dir + "/nope.tmpl", f}, []string{"--template"}},
		{"two FILE args", []string{"run", "--job", "j", f, f}, []string{"FILE", "got 2"}},
		{"no FILE arg", []string{"run", "--job", "j"}, []string{"FILE", "--responses"}},
		{"--tools from a missing file", []string{"run", "--job", "j", "--tools", b.dir + "/nope.json", f}, []string{"--tools"}},
		{"--max-steps -1", []string{"run", "--job", "j", "--max-steps", "-1", f}, []string{"--max-steps"}},
		{"--input-timeout below 1s", []string{"run", "--job", "j", "--input-timeout", "100ms", "--max-steps", "3", f}, []string{"--input-timeout"}},
		{"--on-input-timeout bogus", []string{"run", "--job", "j", "--on-input-timeout", "shrug", "--max-steps", "3", f}, []string{"--on-input-timeout", "shrug"}},
		{"respond with no decision", []string{"respond", "--job", "j", "--item", "x"}, []string{"--approve"}},
		{"respond without --item", []string{"respond", "--job", "j", "--approve"}, []string{"--item"}},
		{"respond --edit not JSON", []string{"respond", "--job", "j", "--item", "x", "--edit", "{host"}, []string{"--edit"}},
		{"inbox without --job", []string{"inbox"}, []string{"--job"}},
		{"unknown flag", []string{"run", "--job", "j", "--bogus", f}, []string{"--bogus"}},
		{"bad --timeout value", []string{"run", "--job", "j", "--timeout", "soon", f}, []string{"--timeout"}},
		{"status without --job", []string{"status"}, []string{"--job"}},
		{"export with a bad job name", []string{"export", "--job", "../x"}, []string{"--job"}},
		{"cancel without --job", []string{"cancel"}, []string{"--job"}},
		{"delete without --job", []string{"delete"}, []string{"--job"}},
		{"unknown command", []string{"launch", "--job", "j"}, []string{"launch"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := b.cli(t, tc.args...)
			if r.code != 2 {
				t.Fatalf("exit %d, want 2 (usage):\n%s", r.code, r)
			}
			for _, want := range tc.want {
				if !strings.Contains(r.stderr, want) {
					t.Errorf("stderr does not name %q:\n%s", want, r)
				}
			}
			if r.stdout != "" {
				t.Errorf("usage error printed to stdout: %q", r.stdout)
			}
		})
	}
	if n, err := b.rdb.DBSize(context.Background()).Result(); err != nil || n != 0 {
		t.Errorf("Redis holds %d keys (%v) after usage errors only, want none", n, err)
	}
}

// On a rerun the job's stored policy wins: fixed flags that differ are
// usage errors naming the flag; the deadline and budgets may change; flags
// left out take the stored values.
func TestRerunPolicy(t *testing.T) {
	t.Parallel()
	t.Run("conflicting fixed flags", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		f := b.file(t, "items.jsonl", jsonl(`{"id":"1","prompt":"hi"}`, `{"id":"2","prompt":"ho"}`))
		if r := b.cli(t, "run", "--job", "pol", "--model", "m1", "--system", "Be terse.", f); r.code != 0 {
			t.Fatalf("first run: %s", r)
		}
		for _, tc := range []struct {
			flag string
			args []string
		}{
			{"--model", []string{"--model", "m2"}},
			{"--system", []string{"--system", "Be verbose."}},
			{"--template", []string{"--template", "Say {{.prompt}}"}},
			{"--json-output", []string{"--json-output"}},
			{"--queue", []string{"--queue", "other"}},
			{"--timeout", []string{"--timeout", "2m"}},
			{"--backoff-min", []string{"--backoff-min", "2s"}},
			{"--backoff-max", []string{"--backoff-max", "2m"}},
			{"--retention", []string{"--retention", "48h"}},
		} {
			r := b.cli(t, append(append([]string{"run", "--job", "pol"}, tc.args...), f)...)
			if r.code != 2 || !strings.Contains(r.stderr, tc.flag) {
				t.Errorf("rerun with %v: want exit 2 naming %s, got:\n%s", tc.args, tc.flag, r)
			}
		}
		// The same values again are no conflict.
		s, r := b.runJSON(t, nil, "--job", "pol", "--model", "m1", "--system", "Be terse.", f)
		if r.code != 0 || s.AlreadyQueued != 2 || s.Enqueued != 0 {
			t.Errorf("rerun with the stored values: %+v\n%s", s, r)
		}
		if n := b.pending(t, "default"); n != 2 {
			t.Errorf("%d tasks pending, want 2", n)
		}
		if n := b.pending(t, "other"); n != 0 {
			t.Errorf("%d tasks pending on queue other, want none", n)
		}
	})

	t.Run("new deadline and budget accepted", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		f := b.file(t, "items.jsonl", jsonl(`{"id":"1","prompt":"hi"}`))
		if r := b.cli(t, "run", "--job", "dl", f); r.code != 0 {
			t.Fatalf("first run: %s", r)
		}
		if st := b.status(t, "dl"); st.Deadline != nil {
			t.Errorf("deadline %v before any was set", st.Deadline)
		}
		before := time.Now()
		s, r := b.runJSON(t, nil, "--job", "dl", "--deadline-in", "2h", "--max-attempts", "9", f)
		after := time.Now()
		if r.code != 0 || s.Rejected != 0 || s.AlreadyQueued != 1 {
			t.Fatalf("rerun with --deadline-in and --max-attempts: %+v\n%s", s, r)
		}
		st := b.status(t, "dl")
		if st.Deadline == nil || st.Deadline.Before(before.Add(2*time.Hour).Add(-time.Second)) || st.Deadline.After(after.Add(2*time.Hour)) {
			t.Errorf("deadline %v, want now+2h (%v .. %v)", st.Deadline, before.Add(2*time.Hour), after.Add(2*time.Hour))
		}
		if st.State != "running" {
			t.Errorf("state %q, want running", st.State)
		}
		j, err := checkpoint.New(b.rdb).Job(context.Background(), "dl")
		if err != nil {
			t.Fatal(err)
		}
		if j.Policy.MaxAttempts != 9 {
			t.Errorf("stored max attempts %d, want 9", j.Policy.MaxAttempts)
		}

		if r := b.cli(t, "run", "--job", "dl", "--deadline", "2031-02-03T04:05:06Z", f); r.code != 0 {
			t.Fatalf("rerun with --deadline: %s", r)
		}
		want := time.Date(2031, 2, 3, 4, 5, 6, 0, time.UTC)
		if st := b.status(t, "dl"); st.Deadline == nil || !st.Deadline.Equal(want) {
			t.Errorf("deadline %v, want %v", st.Deadline, want)
		}
		// A rerun without deadline flags keeps the stored one.
		if r := b.cli(t, "run", "--job", "dl", f); r.code != 0 {
			t.Fatalf("rerun without flags: %s", r)
		}
		if st := b.status(t, "dl"); st.Deadline == nil || !st.Deadline.Equal(want) {
			t.Errorf("after a rerun without flags deadline %v, want still %v", st.Deadline, want)
		}
	})

	t.Run("rerun without flags uses the stored policy", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		// Derived ids depend on the finished item (template and system
		// applied), so a rerun that ignored the stored policy would see
		// new ids, and item x different content.
		f := b.file(t, "words.jsonl", jsonl(`{"word":"apple"}`, `{"word":"pear"}`, `{"id":"x","word":"plum"}`))
		s, r := b.runJSON(t, nil, "--job", "stored", "--system", "Be terse.", "--template", "Say {{.word}}", "--json-output", f)
		if r.code != 0 || s.Enqueued != 3 {
			t.Fatalf("first run: %+v\n%s", s, r)
		}
		s, r = b.runJSON(t, nil, "--job", "stored", f)
		if r.code != 0 || s.Rejected != 0 || s.Enqueued != 0 || s.AlreadyQueued != 3 || s.Total != 3 {
			t.Fatalf("rerun without flags: %+v, want the same 3 items, all already queued\n%s", s, r)
		}
		if st := b.status(t, "stored"); st.Total != 3 {
			t.Errorf("status total %d, want 3", st.Total)
		}
		it := b.storedItems(t, "stored")["x"]
		if len(it.Messages) != 2 || it.Messages[0].Content != "Be terse." || it.Messages[1].Content != "Say plum" || !it.WantsJSON() {
			t.Errorf("stored item x %+v, want system, rendered template and JSON output", it)
		}
	})
}

// Redis unreachable: exit 1, a message saying so, and never the password.
func TestRedisUnreachable(t *testing.T) {
	t.Parallel()
	url := closedRedisURL(t)
	host := strings.TrimSuffix(strings.TrimPrefix(url, "redis://user:s3cret@"), "/0")
	b := &testBundle{dir: t.TempDir()}
	f := b.file(t, "items.jsonl", jsonl(`{"id":"1","prompt":"hi"}`))
	type unreachableCase struct {
		name, via string
		args      []string
		r         result
	}
	var cases []unreachableCase
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"run", []string{"run", "--job", "j", f}},
		{"run --json", []string{"run", "--job", "j", "--json", f}},
		{"status", []string{"status", "--job", "j"}},
		{"status --wait", []string{"status", "--job", "j", "--wait"}},
		{"export", []string{"export", "--job", "j"}},
		{"jobs", []string{"jobs"}},
		{"cancel", []string{"cancel", "--job", "j"}},
		{"delete", []string{"delete", "--job", "j"}},
	} {
		for _, via := range []string{"REDIS_URL", "--redis"} {
			cases = append(cases, unreachableCase{name: tc.name + " via " + via, via: via, args: tc.args})
		}
	}
	// go-redis spends most of two seconds retrying the dial: run the
	// invocations at once (they share nothing), then check each.
	var wg sync.WaitGroup
	for i := range cases {
		c := &cases[i]
		wg.Go(func() {
			if c.via == "REDIS_URL" {
				c.r = cliAt(t, url, nil, c.args...)
			} else {
				c.r = cliAt(t, "", nil, append([]string{"--redis", url}, c.args...)...)
			}
		})
	}
	wg.Wait()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.r.code != 1 {
				t.Errorf("exit %d, want 1:\n%s", c.r.code, c.r)
			}
			if !strings.Contains(c.r.stderr, "unreachable") || !strings.Contains(c.r.stderr, host) {
				t.Errorf("stderr does not say %s is unreachable:\n%s", host, c.r)
			}
			if strings.Contains(c.r.stderr+c.r.stdout, "s3cret") {
				t.Errorf("output shows the password:\n%s", c.r)
			}
		})
	}
}

// A --template that does not parse or a blank --system is a usage error
// naming the flag. It must not leave a job behind whose stored policy holds
// the bad value: the corrected command must then work.
func TestRunInvalidInputOptions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		flag, bad, fixed string
	}{
		{"--template", "Describe {{.prompt", "Describe {{.prompt}}"},
		{"--system", "   ", "Be terse."},
	} {
		t.Run(tc.flag, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			f := b.file(t, "items.jsonl", jsonl(`{"id":"1","prompt":"hi"}`))
			r := b.cli(t, "run", "--job", "opt", tc.flag, tc.bad, f)
			if r.code != 2 || !strings.Contains(r.stderr, tc.flag) {
				t.Fatalf("%s %q: want exit 2 naming %s, got:\n%s", tc.flag, tc.bad, tc.flag, r)
			}
			if n := b.pending(t, "default"); n != 0 {
				t.Errorf("%d tasks pending, want none", n)
			}
			r = b.cli(t, "run", "--job", "opt", tc.flag, tc.fixed, f)
			if r.code != 0 {
				t.Errorf("corrected command: exit %d, want 0:\n%s", r.code, r)
			}
		})
	}
}
