package input_test

import (
	"bytes"
	"errors"
	"io"
	"maps"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/llmfleet/llmfleet/input"
	"github.com/llmfleet/llmfleet/tasks"
)

// result is everything a Reader gave for one input.
type result struct {
	recs   []input.Record
	rej    []input.Rejection
	stats  input.Stats
	fields []string
	err    error // the error that ended the read; nil for io.EOF
}

func (res result) ids() []string {
	var ids []string
	for _, r := range res.recs {
		ids = append(ids, r.Item.ID)
	}
	return ids
}

// readAll reads in to the end.
func readAll(t *testing.T, name, in string, opts input.Options) result {
	t.Helper()
	return readFrom(t, strings.NewReader(in), name, opts)
}

func readFrom(t *testing.T, src io.Reader, name string, opts input.Options) result {
	t.Helper()
	r, err := input.NewReader(src, name, opts)
	if err != nil {
		t.Fatalf("NewReader: %v", err)
	}
	var res result
	for {
		rec, err := r.Next()
		if err != nil {
			if err != io.EOF {
				res.err = err
			}
			if _, again := r.Next(); again != err {
				t.Errorf("Next after %v returned %v, want the same error", err, again)
			}
			break
		}
		res.recs = append(res.recs, rec)
	}
	res.rej, res.stats, res.fields = r.Rejections(), r.Stats(), r.Fields()
	if s := res.stats; s.Lines != s.Accepted+s.Rejected+s.DuplicatesCollapsed || s.Accepted != len(res.recs) || s.Rejected != len(res.rej) {
		t.Errorf("inconsistent stats %+v for %d records and %d rejections", s, len(res.recs), len(res.rej))
	}
	return res
}

func lines(ls ...string) string { return strings.Join(ls, "\n") + "\n" }

// TestRejections covers each kind of bad input: the bad line is rejected
// with its line number and a message naming the problem, and the good
// lines around it are all accepted.
func TestRejections(t *testing.T) {
	t.Parallel()
	const good1, good2 = `{"id":"g1","prompt":"one"}`, `{"id":"g2","prompt":"two"}`
	tests := []struct {
		name string
		file string
		opts input.Options
		in   string
		line int
		msg  string
		ids  []string // accepted; default g1, g2
	}{
		{name: "malformed JSON", in: lines(good1, `{"id":"x","prompt":`, good2),
			line: 2, msg: "malformed JSON: unexpected end of JSON input"},
		{name: "malformed JSON with offset", in: lines(good1, `{"id":"x" "prompt":"p"}`, good2),
			line: 2, msg: "malformed JSON: invalid character '\"' after object key:value pair (byte offset 10)"},
		{name: "not an object", in: lines(good1, `["a"]`, good2),
			line: 2, msg: "an item must be a JSON object, got array"},
		{name: "missing prompt", in: lines(good1, `{"id":"x","title":"t"}`, good2),
			line: 2, msg: `missing prompt: an item needs "prompt" or "messages"`},
		{name: "blank prompt", in: lines(good1, `{"id":"x","prompt":"  "}`, good2),
			line: 2, msg: `missing prompt: an item needs "prompt" or "messages"`},
		{name: "prompt and messages", in: lines(good1, `{"id":"x","prompt":"p","messages":[{"role":"user","content":"c"}]}`, good2),
			line: 2, msg: `an item cannot have both "prompt" and "messages"`},
		{name: "prompt not a string", in: lines(good1, `{"id":"x","prompt":5}`, good2),
			line: 2, msg: "prompt must be a string, got 5"},
		{name: "id bool", in: lines(good1, `{"id":true,"prompt":"p"}`, good2),
			line: 2, msg: "id must be a string or a number, got bool"},
		{name: "id object", in: lines(good1, `{"id":{"a":1},"prompt":"p"}`, good2),
			line: 2, msg: "id must be a string or a number, got object"},
		{name: "id array", in: lines(good1, `{"id":[1],"prompt":"p"}`, good2),
			line: 2, msg: "id must be a string or a number, got array"},
		{name: "same id different content points to first line", in: lines(good1, good2, `{"id":"g1","prompt":"changed"}`),
			line: 3, msg: `id "g1" already used on line 1 with different content`},
		{name: "invalid UTF-8", in: lines(good1, "{\"id\":\"x\",\"prompt\":\"a\xffb\"}", good2),
			line: 2, msg: "invalid UTF-8 at byte offset 21"},
		{name: "duplicate key", in: lines(good1, `{"id":"x","prompt":"a","prompt":"b"}`, good2),
			line: 2, msg: `duplicate key "prompt"`},
		{name: "content parts", in: lines(good1, `{"id":"x","messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}]}`, good2),
			line: 2, msg: "messages[0].content must be a string, got array (content parts are not supported)"},
		{name: "bad role", in: lines(good1, `{"id":"x","messages":[{"role":"bot","content":"hi"}]}`, good2),
			line: 2, msg: `messages[0].role must be one of system, user, assistant, tool, developer, got "bot"`},
		{name: "missing content", in: lines(good1, `{"id":"x","messages":[{"role":"user"}]}`, good2),
			line: 2, msg: "messages[0].content is missing"},
		{name: "unsupported message key", in: lines(good1, `{"id":"x","messages":[{"role":"assistant","content":"","function_call":{}}]}`, good2),
			line: 2, msg: `messages[0] has unsupported key "function_call" (only role, content, name, tool_calls and tool_call_id)`},
		{name: "tool calls in a job without tools", in: lines(good1, `{"id":"x","messages":[{"role":"assistant","content":"","tool_calls":[]}]}`, good2),
			line: 2, msg: "messages hold tool calls but the job has no tools: pass run --tools FILE"},
		{name: "messages not an array", in: lines(good1, `{"id":"x","messages":"hi"}`, good2),
			line: 2, msg: "messages must be an array of {role, content} objects, got string"},
		{name: "messages empty", in: lines(good1, `{"id":"x","messages":[]}`, good2),
			line: 2, msg: "messages is empty"},
		{name: "max_tokens zero", in: lines(good1, `{"id":"x","prompt":"p","max_tokens":0}`, good2),
			line: 2, msg: "max_tokens must be a positive integer, got 0"},
		{name: "max_tokens string", in: lines(good1, `{"id":"x","prompt":"p","max_tokens":"100"}`, good2),
			line: 2, msg: `max_tokens must be a positive integer, got "100"`},
		{name: "max_tokens fraction", in: lines(good1, `{"id":"x","prompt":"p","max_tokens":1.5}`, good2),
			line: 2, msg: "max_tokens must be a positive integer, got 1.5"},
		{name: "temperature range", in: lines(good1, `{"id":"x","prompt":"p","temperature":2.5}`, good2),
			line: 2, msg: "temperature must be a number from 0 to 2, got 2.5"},
		{name: "top_p range", in: lines(good1, `{"id":"x","prompt":"p","top_p":-0.1}`, good2),
			line: 2, msg: "top_p must be a number from 0 to 1, got -0.1"},
		{name: "stop too many", in: lines(good1, `{"id":"x","prompt":"p","stop":["a","b","c","d","e"]}`, good2),
			line: 2, msg: "stop must be a string or an array of up to 4 strings, got 5 strings"},
		{name: "stop wrong type", in: lines(good1, `{"id":"x","prompt":"p","stop":7}`, good2),
			line: 2, msg: "stop must be a string or an array of up to 4 strings, got 7"},
		{name: "seed fraction", in: lines(good1, `{"id":"x","prompt":"p","seed":1.5}`, good2),
			line: 2, msg: "seed must be an integer, got 1.5"},
		{name: "response_format type", in: lines(good1, `{"id":"x","prompt":"p","response_format":{"type":"json_schema"}}`, good2),
			line: 2, msg: `response_format of type "json_schema" needs`},
		{name: "response_format not object", in: lines(good1, `{"id":"x","prompt":"p","response_format":"json"}`, good2),
			line: 2, msg: `response_format must be an object like {"type":"json_object"}, got "json"`},
		{name: "every field error is reported", in: lines(good1, `{"id":"x","prompt":"p","temperature":9,"top_p":9}`, good2),
			line: 2, msg: "temperature must be a number from 0 to 2, got 9; top_p must be a number from 0 to 1, got 9"},
		{name: "unknown template field", opts: input.Options{Template: "{{.title}}: {{.body}}"},
			in:   lines(`{"id":"g1","title":"a","body":"b"}`, `{"id":"x","body":"b"}`, `{"id":"g2","title":"c","body":"d"}`),
			line: 2, msg: `template: field "title" not in item (fields: id, body)`},
		{name: "unknown template field via $", opts: input.Options{Template: "{{range .tags}}{{$.title}} {{.}}{{end}}"},
			in:   lines(`{"id":"g1","title":"a","tags":["t"]}`, `{"id":"x","tags":["t"]}`, `{"id":"g2","title":"c","tags":["u"]}`),
			line: 2, msg: `template: field "title" not in item (fields: id, tags)`},
		{name: "unknown nested template field", opts: input.Options{Template: "{{.doc.title}}"},
			in:   lines(`{"id":"g1","doc":{"title":"a"}}`, `{"id":"x","doc":{"body":"b"}}`, `{"id":"g2","doc":{"title":"c"}}`),
			line: 2, msg: `template: field "doc.title" not in item (fields: id, doc)`},
		{name: "messages with template", opts: input.Options{Template: "{{.q}}"},
			in:   lines(`{"id":"g1","q":"a"}`, `{"id":"x","q":"a","messages":[{"role":"user","content":"c"}]}`, `{"id":"g2","q":"b"}`),
			line: 2, msg: `an item with "messages" cannot use --template`},
		{name: "template renders empty", opts: input.Options{Template: "{{.q}}"},
			in:   lines(`{"id":"g1","q":"a"}`, `{"id":"x","q":" "}`, `{"id":"g2","q":"b"}`),
			line: 2, msg: "template rendered an empty prompt"},
		{name: "over max-item-bytes", opts: input.Options{MaxItemBytes: 40},
			in:   lines(good1, `{"id":"x","prompt":"`+strings.Repeat("a", 100)+`"}`, good2),
			line: 2, msg: "item is 122 bytes, over --max-item-bytes 40"},
		{name: "line numbers count blank lines", in: "\n\n" + lines(good1, "   ", `{"id":"x"}`, good2),
			line: 5, msg: "missing prompt"},
		{name: "CRLF", in: strings.ReplaceAll(lines(good1, `{"id":"x"}`, good2), "\n", "\r\n"),
			line: 2, msg: "missing prompt"},

		{name: "CSV wrong field count", file: "in.csv", in: lines("id,prompt", "g1,one", "x,a,b", "g2,two"),
			line: 3, msg: "CSV record has 3 fields, header has 2"},
		{name: "CSV line of the record after a multi-line field", file: "in.csv",
			in:   lines("id,prompt", `g1,"one`, `spans`, `lines"`, `x,`, "g2,two"),
			line: 5, msg: "missing prompt"},
		{name: "CSV multi-line bad record starts where it starts", file: "in.csv",
			in:   lines("id,prompt", "g1,one", `x,"a`, `b",extra`, "g2,two"),
			line: 3, msg: "CSV record has 3 fields, header has 2"},
		{name: "CSV bare quote", file: "in.csv", in: lines("id,prompt", "g1,one", `x,say "hi"`, "g2,two"),
			line: 3, msg: `malformed CSV: bare " in non-quoted-field`},
		{name: "CSV invalid UTF-8", file: "in.csv", in: lines("id,prompt", "g1,one", "x,a\xfe", "g2,two"),
			line: 3, msg: `invalid UTF-8 in column "prompt" at byte offset 1`},
		{name: "CSV prompt and messages", file: "in.csv",
			in:   lines("id,prompt,messages", "g1,one,", `x,p,"[{""role"":""user"",""content"":""c""}]"`, "g2,two,"),
			line: 3, msg: `an item cannot have both "prompt" and "messages"`},
		{name: "CSV messages not JSON", file: "in.csv", in: lines("id,messages", `g1,"[{""role"":""user"",""content"":""one""}]"`, "x,hello", `g2,"[{""role"":""user"",""content"":""two""}]"`),
			line: 3, msg: "messages must be a JSON array: malformed JSON: invalid character 'h'"},
		{name: "CSV bad number", file: "in.csv", in: lines("id,prompt,max_tokens", "g1,one,", "x,p,ten", "g2,two,5"),
			line: 3, msg: `max_tokens must be a positive integer, got "ten"`},
		{name: "CSV same id different content", file: "in.csv", in: lines("id,prompt", "g1,one", "g2,two", "g1,other"),
			line: 4, msg: `id "g1" already used on line 2 with different content`},
		{name: "CSV over max-item-bytes", file: "in.csv", opts: input.Options{MaxItemBytes: 10},
			in:   lines("id,prompt", "g1,one", "x,"+strings.Repeat("b", 20), "g2,two"),
			line: 3, msg: "item is 21 bytes, over --max-item-bytes 10"},
		{name: "CSV unknown template field in a nested field", file: "in.csv", opts: input.Options{Template: "{{.q.x}}"},
			in:   lines("id,q", "g1,one", "g2,two"),
			line: 2, msg: "template: prompt:1:4: executing", ids: []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			file := tc.file
			if file == "" {
				file = "in.jsonl"
			}
			res := readAll(t, file, tc.in, tc.opts)
			if res.err != nil {
				t.Fatalf("read error: %v", res.err)
			}
			if len(res.rej) == 0 {
				t.Fatalf("no rejection; want line %d %q", tc.line, tc.msg)
			}
			got := res.rej[0]
			if got.Line != tc.line || !strings.Contains(got.Error, tc.msg) {
				t.Errorf("rejection = line %d %q, want line %d containing %q", got.Line, got.Error, tc.line, tc.msg)
			}
			want := tc.ids
			if want == nil {
				want = []string{"g1", "g2"}
			}
			if ids := res.ids(); !slices.Equal(ids, want) && !(len(ids) == 0 && len(want) == 0) {
				t.Errorf("accepted %v, want %v", ids, want)
			}
		})
	}
}

// TestHugeLine: a 5 MB line with a 1 KB limit is rejected with its size and
// the next line is still read.
func TestHugeLine(t *testing.T) {
	t.Parallel()
	huge := `{"id":"huge","prompt":"` + strings.Repeat("x", 5<<20) + `"}`
	in := lines(`{"id":"a","prompt":"p"}`, huge, `{"id":"b","prompt":"q"}`)
	res := readAll(t, "in.jsonl", in, input.Options{MaxItemBytes: 1024})
	want := []input.Rejection{{Line: 2, Error: "item is 5242905 bytes, over --max-item-bytes 1024"}}
	if !slices.Equal(res.rej, want) {
		t.Errorf("rejections = %v, want %v", res.rej, want)
	}
	if ids := res.ids(); !slices.Equal(ids, []string{"a", "b"}) {
		t.Errorf("accepted %v, want [a b]", ids)
	}
	if res.recs[1].Line != 3 {
		t.Errorf("line of b = %d, want 3", res.recs[1].Line)
	}

	// The same line at the end of the file, with CRLF, without a final newline.
	in = `{"id":"a","prompt":"p"}` + "\r\n" + huge + "\r\n"
	res = readAll(t, "in.jsonl", in, input.Options{MaxItemBytes: 1024})
	if !slices.Equal(res.rej, want) {
		t.Errorf("CRLF: rejections = %v, want %v", res.rej, want)
	}
}

// TestHugeLineNotBuffered: discarding an oversized line does not allocate
// anything near its size. Not parallel: it measures the process's
// allocations.
func TestHugeLineNotBuffered(t *testing.T) {
	huge := `{"prompt":"` + strings.Repeat("x", 8<<20) + `"}` + "\n"
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	r, _ := input.NewReader(strings.NewReader(huge), "in.jsonl", input.Options{MaxItemBytes: 1024})
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("Next = %v, want io.EOF", err)
	}
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Errorf("reading an 8 MB line allocated %d bytes, want under 1 MiB", n)
	}
}

func TestDuplicates(t *testing.T) {
	t.Parallel()
	t.Run("exact duplicate line collapsed", func(t *testing.T) {
		t.Parallel()
		in := lines(`{"id":"a","prompt":"p"}`, `{"prompt":"no id"}`, `{"id":"a","prompt":"p"}`, `{"prompt":"no id"}`)
		res := readAll(t, "in.jsonl", in, input.Options{})
		if len(res.recs) != 2 || len(res.rej) != 0 || res.stats.DuplicatesCollapsed != 2 {
			t.Errorf("got %d items, %v rejected, stats %+v; want 2 items, 2 collapsed", len(res.recs), res.rej, res.stats)
		}
	})
	t.Run("same id same content collapsed", func(t *testing.T) {
		t.Parallel()
		in := lines(`{"id":"a","prompt":"p","temperature":0.5}`, ` {"temperature":0.5, "prompt":"p", "id":"a"} `)
		res := readAll(t, "in.jsonl", in, input.Options{})
		if len(res.recs) != 1 || len(res.rej) != 0 || res.stats.DuplicatesCollapsed != 1 {
			t.Errorf("got %d items, %v rejected, stats %+v; want 1 item, 1 collapsed", len(res.recs), res.rej, res.stats)
		}
	})
	t.Run("duplicate of a rejected line rejected again", func(t *testing.T) {
		t.Parallel()
		res := readAll(t, "in.jsonl", lines(`{"id":"a"}`, `{"id":"a"}`), input.Options{})
		if len(res.rej) != 2 || res.stats.DuplicatesCollapsed != 0 {
			t.Errorf("rejections %v, stats %+v; want both lines rejected", res.rej, res.stats)
		}
	})
	t.Run("CSV duplicate record collapsed", func(t *testing.T) {
		t.Parallel()
		res := readAll(t, "in.csv", lines("id,prompt", "1,a", "2,b", "1,a"), input.Options{})
		if len(res.recs) != 2 || res.stats.DuplicatesCollapsed != 1 {
			t.Errorf("got %d items, stats %+v; want 2 items, 1 collapsed", len(res.recs), res.stats)
		}
	})
}

func TestEmpty(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct{ file, in string }{
		"empty file":        {"in.jsonl", ""},
		"blank lines only":  {"in.jsonl", "\n  \n\t\r\n\n"},
		"BOM only":          {"-", "\ufeff\n"},
		"CSV header only":   {"in.csv", "id,prompt\n"},
		"CSV header blanks": {"in.csv", "\nid,prompt\n\n  \n"},
		"sniffed empty":     {"-", ""},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			res := readAll(t, tc.file, tc.in, input.Options{})
			if !errors.Is(res.err, input.ErrEmpty) {
				t.Errorf("err = %v, want ErrEmpty", res.err)
			}
			if res.err != nil && res.err.Error() != "input is empty: no items" {
				t.Errorf("message %q", res.err)
			}
		})
	}
	t.Run("all lines rejected is not empty", func(t *testing.T) {
		t.Parallel()
		res := readAll(t, "in.jsonl", "{\n", input.Options{})
		if res.err != nil || len(res.rej) != 1 {
			t.Errorf("err = %v, rejections %v; want io.EOF and one rejection", res.err, res.rej)
		}
	})
}

// TestCSVFileErrors: a header that would reject every row stops the read.
func TestCSVFileErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts input.Options
		in   string
		line int
		msg  string
	}{
		{name: "no prompt column", in: lines("id,text", "1,a"), line: 1,
			msg: `CSV header has no "prompt" or "messages" column (or use --template)`},
		{name: "duplicate column", in: lines("id,prompt, id ", "1,a,b"), line: 1,
			msg: `CSV header: duplicate column "id" (columns 1 and 3)`},
		{name: "unnamed column", in: lines("id,prompt,", "1,a,"), line: 1,
			msg: "CSV header: column 3 has no name"},
		{name: "template field not a column", opts: input.Options{Template: "{{.title}} {{.body}} {{.x}}"}, in: lines("id,body", "1,a"), line: 1,
			msg: `template: fields "title", "x" not in CSV header (columns: id, body)`},
		{name: "header after blank lines", in: "\n\n" + lines("id,text", "1,a"), line: 3,
			msg: `CSV header has no "prompt"`},
		{name: "malformed header", in: lines(`id,"prompt`, "1,a"), line: 1,
			msg: "malformed CSV header"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res := readAll(t, "in.csv", tc.in, tc.opts)
			var fe *input.FileError
			if !errors.As(res.err, &fe) {
				t.Fatalf("err = %v, want a *FileError", res.err)
			}
			if fe.Line != tc.line || !strings.Contains(fe.Msg, tc.msg) {
				t.Errorf("FileError = line %d %q, want line %d containing %q", fe.Line, fe.Msg, tc.line, tc.msg)
			}
			if len(res.recs) != 0 {
				t.Errorf("accepted %d items after a file error", len(res.recs))
			}
		})
	}
}

func TestIDs(t *testing.T) {
	t.Parallel()
	in := lines(`{"id":"007","prompt":"a"}`, `{"id":42,"prompt":"b"}`, `{"id":1.50,"prompt":"c"}`, `{"id":-1e3,"prompt":"d"}`)
	res := readAll(t, "in.jsonl", in, input.Options{})
	if ids, want := res.ids(), []string{"007", "42", "1.50", "-1e3"}; !slices.Equal(ids, want) {
		t.Errorf("ids = %q, want %q", ids, want)
	}
	res = readAll(t, "in.csv", lines("id,prompt", "007,a", "1.50,b"), input.Options{})
	if ids, want := res.ids(), []string{"007", "1.50"}; !slices.Equal(ids, want) {
		t.Errorf("CSV ids = %q, want %q", ids, want)
	}
}

func TestDerivedID(t *testing.T) {
	t.Parallel()
	in := lines(`{"prompt":"a"}`, `{"id":null,"prompt":"b"}`, `{"id":"","prompt":"c"}`)
	first := readAll(t, "in.jsonl", in, input.Options{}).ids()
	second := readAll(t, "-", in, input.Options{}).ids()
	if !slices.Equal(first, second) {
		t.Errorf("derived ids differ between readers: %v and %v", first, second)
	}
	if len(first) != 3 || first[0] == first[1] || first[1] == first[2] {
		t.Errorf("ids %v: want three distinct ids", first)
	}
	for _, id := range first {
		if !strings.HasPrefix(id, "h") || len(id) != 17 {
			t.Errorf("derived id %q is not tasks' h + 16 hex digits", id)
		}
	}
	// The id is derived from the finished item.
	res := readAll(t, "in.jsonl", lines(`{"prompt":"a"}`), input.Options{System: "s"})
	if res.recs[0].Item.ID == first[0] {
		t.Errorf("derived id %q ignores --system", first[0])
	}
	if got := res.recs[0].Item; got.ID != withID(got, "").DerivedID() {
		t.Errorf("id %q is not the DerivedID of the finished item", got.ID)
	}
	a := readAll(t, "in.jsonl", lines(`{"q":"a"}`), input.Options{Template: "1 {{.q}}"}).ids()
	b := readAll(t, "in.jsonl", lines(`{"q":"a"}`), input.Options{Template: "2 {{.q}}"}).ids()
	if a[0] == b[0] {
		t.Errorf("derived id %q ignores the template", a[0])
	}
}

func withID(it tasks.Item, id string) *tasks.Item {
	it.ID = id
	return &it
}

func TestSystem(t *testing.T) {
	t.Parallel()
	in := lines(
		`{"id":"p","prompt":"hi"}`,
		`{"id":"m","messages":[{"role":"user","content":"hi"}]}`,
		`{"id":"own","messages":[{"role":"system","content":"mine"},{"role":"user","content":"hi"}]}`,
	)
	res := readAll(t, "in.jsonl", in, input.Options{System: "be brief"})
	want := map[string][]tasks.Message{
		"p":   {{Role: "system", Content: "be brief"}, {Role: "user", Content: "hi"}},
		"m":   {{Role: "system", Content: "be brief"}, {Role: "user", Content: "hi"}},
		"own": {{Role: "system", Content: "mine"}, {Role: "user", Content: "hi"}},
	}
	for _, rec := range res.recs {
		if !reflect.DeepEqual(rec.Item.Messages, want[rec.Item.ID]) {
			t.Errorf("%s: messages %v, want %v", rec.Item.ID, rec.Item.Messages, want[rec.Item.ID])
		}
	}
	res = readAll(t, "in.jsonl", lines(`{"id":"t","topic":"cats"}`), input.Options{System: "sys", Template: "Write about {{.topic}}."})
	if got := res.recs[0].Item.Messages; !reflect.DeepEqual(got, []tasks.Message{{Role: "system", Content: "sys"}, {Role: "user", Content: "Write about cats."}}) {
		t.Errorf("template + system: %v", got)
	}
}

func TestJSONOutput(t *testing.T) {
	t.Parallel()
	in := lines(`{"id":"a","prompt":"p"}`, `{"id":"b","prompt":"p","response_format":{"type":"text"}}`)
	res := readAll(t, "in.jsonl", in, input.Options{JSONOutput: true})
	for _, rec := range res.recs {
		if !rec.Item.WantsJSON() {
			t.Errorf("%s: response_format %v, want json_object", rec.Item.ID, rec.Item.ResponseFormat)
		}
	}
	res = readAll(t, "in.jsonl", in, input.Options{})
	if res.recs[0].Item.ResponseFormat != nil || res.recs[1].Item.ResponseFormat.Type != "text" {
		t.Errorf("without --json-output: %v, %v", res.recs[0].Item.ResponseFormat, res.recs[1].Item.ResponseFormat)
	}
}

func TestTemplate(t *testing.T) {
	t.Parallel()
	tmpl := `{{.title}} ({{.n}}){{range .tags}} #{{.}}{{end}}{{with .extra}} {{.note}}{{end}}`
	in := lines(`{"id":"a","title":"T","n":1.50,"tags":["x","y"],"extra":{"note":"N"},"prompt":"ignored"}`)
	res := readAll(t, "in.jsonl", in, input.Options{Template: tmpl})
	if len(res.recs) != 1 {
		t.Fatalf("rejected: %v", res.rej)
	}
	if got, want := res.recs[0].Item.Messages, []tasks.Message{{Role: "user", Content: "T (1.50) #x #y N"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("messages %v, want %v", got, want)
	}
	res = readAll(t, "in.csv", lines("id,title,n", "a,T,3"), input.Options{Template: "{{.title}}/{{.n}}"})
	if got := res.recs[0].Item.LastUserContent(); got != "T/3" {
		t.Errorf("CSV template rendered %q", got)
	}
	if _, err := input.NewReader(strings.NewReader(""), "in.jsonl", input.Options{Template: "{{.x"}); err == nil || !strings.Contains(err.Error(), "--template") {
		t.Errorf("bad template: err = %v, want one naming --template", err)
	}
}

func TestOptionErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		opts input.Options
		flag string
	}{
		{input.Options{Template: "{{if}}"}, "--template"},
		{input.Options{Template: "  "}, "--template"},
		{input.Options{MaxItemBytes: -1}, "--max-item-bytes"},
		{input.Options{System: " "}, "--system"},
		{input.Options{Format: "xml"}, "format"},
		{input.Options{Tools: []string{"a", ""}}, "invalid --tools: tool 2 has no name"},
		{input.Options{Tools: []string{"a", "b", "a"}}, `invalid --tools: duplicate tool "a" (tools 1 and 3)`},
	} {
		if _, err := input.NewReader(strings.NewReader(""), "", tc.opts); err == nil || !strings.Contains(err.Error(), tc.flag) {
			t.Errorf("%+v: err = %v, want one naming %s", tc.opts, err, tc.flag)
		}
	}
}

func TestItemFields(t *testing.T) {
	t.Parallel()
	in := lines(`{"id":"a","prompt":"p","model":"m1","max_tokens":100,"temperature":0.2,"top_p":1,"stop":"END","seed":-7,` +
		`"response_format":{"type":"json_object"},"metadata":{ "k" : [1, 2], "s":"x y" },"n":3,"obj":{"a": true},"nil":null,"text":"  verbatim "}`)
	res := readAll(t, "in.jsonl", in, input.Options{})
	if len(res.recs) != 1 {
		t.Fatalf("rejected: %v", res.rej)
	}
	it := res.recs[0].Item
	if it.Model != "m1" || it.MaxTokens != 100 || *it.Temperature != 0.2 || *it.TopP != 1 || !slices.Equal(it.Stop, []string{"END"}) ||
		*it.Seed != -7 || !it.WantsJSON() {
		t.Errorf("options not parsed: %+v", it)
	}
	if got := string(it.Metadata); got != `{"k":[1,2],"s":"x y"}` {
		t.Errorf("metadata %s, want compact JSON", got)
	}
	want := map[string]string{
		"id": "a", "prompt": "p", "model": "m1", "max_tokens": "100", "temperature": "0.2", "top_p": "1", "stop": "END", "seed": "-7",
		"response_format": `{"type":"json_object"}`, "metadata": `{"k":[1,2],"s":"x y"}`, "n": "3", "obj": `{"a":true}`, "nil": "", "text": "  verbatim ",
	}
	if !maps.Equal(it.Fields, want) {
		t.Errorf("Fields = %v, want %v", it.Fields, want)
	}

	res = readAll(t, "in.jsonl", lines(`{"prompt":"p"}`), input.Options{})
	if _, ok := res.recs[0].Item.Fields["id"]; ok {
		t.Errorf("Fields has an id the input did not have: %v", res.recs[0].Item.Fields)
	}
}

func TestCSVItem(t *testing.T) {
	t.Parallel()
	in := "\ufeff" + lines(
		" id , prompt ,max_tokens,temperature,stop,seed,response_format,metadata,note",
		`a,"hello, ""world""",10,0.7,"[""x"",""y""]",3,json_object,"{""k"": 1}",n1`,
		`b,plain,,,END,,,just text,`,
	)
	res := readAll(t, "-", in, input.Options{})
	if len(res.recs) != 2 {
		t.Fatalf("accepted %d, rejected %v", len(res.recs), res.rej)
	}
	a, b := res.recs[0].Item, res.recs[1].Item
	if a.LastUserContent() != `hello, "world"` || a.MaxTokens != 10 || *a.Temperature != 0.7 || !slices.Equal(a.Stop, []string{"x", "y"}) ||
		*a.Seed != 3 || !a.WantsJSON() || string(a.Metadata) != `{"k":1}` {
		t.Errorf("row a: %+v", a)
	}
	if b.MaxTokens != 0 || b.Temperature != nil || b.Seed != nil || b.ResponseFormat != nil || !slices.Equal(b.Stop, []string{"END"}) ||
		string(b.Metadata) != `"just text"` {
		t.Errorf("row b: empty cells should be absent: %+v", b)
	}
	if want := map[string]string{"id": "b", "prompt": "plain", "max_tokens": "", "temperature": "", "stop": "END", "seed": "",
		"response_format": "", "metadata": "just text", "note": ""}; !maps.Equal(b.Fields, want) {
		t.Errorf("Fields = %v, want %v", b.Fields, want)
	}
	if want := []string{"id", "prompt", "max_tokens", "temperature", "stop", "seed", "response_format", "metadata", "note"}; !slices.Equal(res.fields, want) {
		t.Errorf("Fields() = %v, want the header %v", res.fields, want)
	}
	if res.recs[0].Line != 2 || res.recs[1].Line != 3 {
		t.Errorf("lines %d, %d; want 2, 3", res.recs[0].Line, res.recs[1].Line)
	}
}

func TestFieldsOrder(t *testing.T) {
	t.Parallel()
	in := lines(`{"id":"a","prompt":"p"}`, `{"topic":"t","prompt":"p","id":"b"}`, `{"bad":1}`, `{"id":"c","prompt":"p","z":1,"topic":"u"}`)
	res := readAll(t, "in.jsonl", in, input.Options{})
	if want := []string{"id", "prompt", "topic", "z"}; !slices.Equal(res.fields, want) {
		t.Errorf("Fields() = %v, want %v (accepted items only)", res.fields, want)
	}
}

// TestInterleaved: good and bad lines mixed give every good item, in order.
func TestInterleaved(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	var want []string
	for i := range 200 {
		switch i % 4 {
		case 0, 2:
			id := "item-" + string(rune('a'+i%26)) + "-" + strconv.Itoa(i)
			want = append(want, id)
			b.WriteString(`{"id":"` + id + `","prompt":"p` + strconv.Itoa(i) + `"}` + "\n")
		case 1:
			b.WriteString(`{"id":` + "\n")
		case 3:
			b.WriteString("\n")
		}
	}
	res := readAll(t, "in.jsonl", b.String(), input.Options{})
	if !slices.Equal(res.ids(), want) {
		t.Errorf("accepted %d items, want %d in order", len(res.recs), len(want))
	}
	if len(res.rej) != 50 || res.stats.Lines != 150 {
		t.Errorf("stats %+v, want 150 lines, 50 rejected", res.stats)
	}
	for i, r := range res.rej {
		if r.Line != 4*i+2 {
			t.Fatalf("rejection %d at line %d, want %d", i, r.Line, 4*i+2)
		}
	}
}

func TestDetect(t *testing.T) {
	t.Parallel()
	const jsonl = `{"prompt":"p"}` + "\n"
	const csvIn = "prompt\np\n"
	for _, tc := range []struct {
		name, file, in string
		opts           input.Options
	}{
		{"jsonl by name", "x.JSONL", jsonl, input.Options{}},
		{"ndjson by name", "x.ndjson", jsonl, input.Options{}},
		{"json by name", "x.json", jsonl, input.Options{}},
		{"csv by name", "x.csv", csvIn, input.Options{}},
		{"jsonl sniffed", "-", "\n  \n" + jsonl, input.Options{}},
		{"csv sniffed", "data.txt", csvIn, input.Options{}},
		{"forced csv", "x.jsonl", csvIn, input.Options{Format: input.FormatCSV}},
		{"forced jsonl", "x.csv", jsonl, input.Options{Format: input.FormatJSONL}},
	} {
		res := readAll(t, tc.file, tc.in, tc.opts)
		if len(res.recs) != 1 || res.err != nil {
			t.Errorf("%s: %d items, err %v, rejections %v", tc.name, len(res.recs), res.err, res.rej)
		}
	}
	// Sniffing past a long run of blank lines keeps line numbers right.
	res := readAll(t, "-", strings.Repeat(" \n", 70000)+`{"id":"x"}`+"\n", input.Options{})
	if len(res.rej) != 1 || res.rej[0].Line != 70001 {
		t.Errorf("rejections %v, want line 70001", res.rej)
	}
	res = readAll(t, "-", strings.Repeat("\n", 70000)+"id,prompt\na,\n", input.Options{})
	if len(res.rej) != 1 || res.rej[0].Line != 70002 {
		t.Errorf("CSV rejections %v, want line 70002", res.rej)
	}
}

func TestReadError(t *testing.T) {
	t.Parallel()
	boom := errors.New("disk on fire")
	src := io.MultiReader(strings.NewReader(`{"id":"a","prompt":"p"}`+"\n"), iotest.ErrReader(boom))
	res := readFrom(t, src, "in.jsonl", input.Options{})
	if !errors.Is(res.err, boom) || len(res.recs) != 1 {
		t.Errorf("err = %v after %d items, want the read error after 1", res.err, len(res.recs))
	}
	src = io.MultiReader(strings.NewReader("id,prompt\na,p\n"), iotest.ErrReader(boom))
	res = readFrom(t, src, "in.csv", input.Options{})
	if !errors.Is(res.err, boom) {
		t.Errorf("CSV err = %v, want the read error", res.err)
	}
}

// TestOneByteReads: lines split across reads parse the same.
func TestOneByteReads(t *testing.T) {
	t.Parallel()
	in := lines(`{"id":"a","prompt":"p"}`, `{"id":"b","prompt":"`+strings.Repeat("q", 300)+`"}`, `{"id":"c","prompt":"r"}`)
	res := readFrom(t, iotest.OneByteReader(bytes.NewReader([]byte(in))), "in.jsonl", input.Options{MaxItemBytes: 100})
	if !slices.Equal(res.ids(), []string{"a", "c"}) || len(res.rej) != 1 || res.rej[0].Error != "item is 322 bytes, over --max-item-bytes 100" {
		t.Errorf("ids %v, rejections %v", res.ids(), res.rej)
	}
}
