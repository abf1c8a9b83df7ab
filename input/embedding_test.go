package input_test

import (
	"errors"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/llmfleet/llmfleet/input"
	"github.com/llmfleet/llmfleet/tasks"
)

// embeddings is a job of embedding items (run --endpoint embeddings).
var embeddings = input.Options{Endpoint: tasks.EndpointEmbeddings}

// stringsArray is a JSON array of n distinct strings.
func stringsArray(n int) string {
	var b strings.Builder
	b.WriteByte('[')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"s` + strconv.Itoa(i) + `"`)
	}
	b.WriteByte(']')
	return b.String()
}

// TestEmbeddingRejections: every way an embedding item can be wrong, in
// JSONL and CSV, each bad line between two good ones, with the exact
// message.
func TestEmbeddingRejections(t *testing.T) {
	t.Parallel()
	const good1, good2 = `{"id":"g1","input":"one"}`, `{"id":"g2","input":["two","three"]}`
	const csvHead, csvGood1, csvGood2 = "id,input,dimensions", "g1,one,", "g2,two,8"
	item := func(extra string) string { return `{"id":"x","input":"text",` + extra + `}` }
	const takesInput = `an embedding item takes "input", not "prompt" or "messages"`
	const missing = `missing input: an embedding item needs "input" (a string or an array of strings)`
	chatOnly := func(k string) string { return k + " is for chat items, not embeddings" }
	withJobTools := input.Options{Endpoint: tasks.EndpointEmbeddings, Tools: []string{"check_disk"}}
	tests := []struct {
		name string
		file string         // "in.csv": in is a record under head
		head string         // CSV header; default csvHead (the good rows then get empty cells)
		opts *input.Options // default embeddings
		in   string
		msg  string
	}{
		// input
		{name: "input missing", in: `{"id":"x","model":"m"}`, msg: missing},
		{name: "input null", in: `{"id":"x","input":null}`, msg: missing},
		{name: "input empty string", in: `{"id":"x","input":""}`, msg: "input is an empty string"},
		{name: "input empty array", in: `{"id":"x","input":[]}`, msg: "input is an empty array"},
		{name: "input element not a string", in: `{"id":"x","input":["a",5]}`,
			msg: "input[1] must be a non-empty string, got 5 (token arrays are not supported)"},
		{name: "input element empty", in: `{"id":"x","input":["a",""]}`,
			msg: `input[1] must be a non-empty string, got "" (token arrays are not supported)`},
		{name: "input element null", in: `{"id":"x","input":[null]}`,
			msg: "input[0] must be a non-empty string, got null (token arrays are not supported)"},
		{name: "input token array", in: `{"id":"x","input":[[101,202]]}`,
			msg: "input[0] must be a non-empty string, got [101,202] (token arrays are not supported)"},
		{name: "input a number", in: `{"id":"x","input":5}`, msg: "input must be a string or an array of strings, got 5"},
		{name: "input an object", in: `{"id":"x","input":{"text":"a"}}`, msg: `input must be a string or an array of strings, got {"text":"a"}`},
		{name: "input of 2049 strings", in: `{"id":"x","input":` + stringsArray(2049) + `}`, msg: "input has 2049 strings, more than 2048"},

		// chat fields
		{name: "prompt", in: `{"id":"x","prompt":"p"}`, msg: takesInput},
		{name: "prompt beside input", in: item(`"prompt":"p"`), msg: takesInput},
		{name: "messages", in: `{"id":"x","messages":[{"role":"user","content":"hi"}]}`, msg: takesInput},
		{name: "max_tokens", in: item(`"max_tokens":10`), msg: chatOnly("max_tokens")},
		{name: "temperature", in: item(`"temperature":0.5`), msg: chatOnly("temperature")},
		{name: "top_p", in: item(`"top_p":0.5`), msg: chatOnly("top_p")},
		{name: "stop", in: item(`"stop":"END"`), msg: chatOnly("stop")},
		{name: "seed", in: item(`"seed":1`), msg: chatOnly("seed")},
		{name: "response_format", in: item(`"response_format":{"type":"json_object"}`), msg: chatOnly("response_format")},
		{name: "tools", opts: &withJobTools, in: item(`"tools":["check_disk"]`), msg: chatOnly("tools")},
		{name: "tool_choice", opts: &withJobTools, in: item(`"tool_choice":"auto"`), msg: chatOnly("tool_choice")},
		{name: "parallel_tool_calls", opts: &withJobTools, in: item(`"parallel_tool_calls":true`), msg: chatOnly("parallel_tool_calls")},
		{name: "every chat field is named", in: item(`"temperature":0.5,"max_tokens":10`),
			msg: chatOnly("max_tokens") + "; " + chatOnly("temperature")},
		{name: "a bad chat field is also checked", in: item(`"max_tokens":0`),
			msg: chatOnly("max_tokens") + "; max_tokens must be a positive integer, got 0"},
		{name: "null chat fields are absent, a bad one still named", in: item(`"max_tokens":null,"temperature":null,"stop":null,"top_p":1`),
			msg: chatOnly("top_p")},

		// dimensions
		{name: "dimensions zero", in: item(`"dimensions":0`), msg: "dimensions must be a positive integer, got 0"},
		{name: "dimensions negative", in: item(`"dimensions":-8`), msg: "dimensions must be a positive integer, got -8"},
		{name: "dimensions fraction", in: item(`"dimensions":8.5`), msg: "dimensions must be a positive integer, got 8.5"},
		{name: "dimensions string", in: item(`"dimensions":"8"`), msg: `dimensions must be a positive integer, got "8"`},
		{name: "dimensions too large", in: item(`"dimensions":65537`), msg: "dimensions must be a positive integer, got 65537"},

		// other fields are checked as for chat items
		{name: "model not a string", in: item(`"model":7`), msg: "model must be a string, got 7"},
		{name: "id bool", in: `{"id":true,"input":"x"}`, msg: "id must be a string or a number, got bool"},
		{name: "errors of input and of other fields together", in: `{"id":"x","input":"","dimensions":0,"seed":1}`,
			msg: "input is an empty string; dimensions must be a positive integer, got 0; " + chatOnly("seed")},

		// template: the template renders the one input
		{name: "template renders empty", opts: &input.Options{Endpoint: tasks.EndpointEmbeddings, Template: "{{.text}}"},
			in: `{"id":"x","text":" ","input":"ignored"}`, msg: "template rendered an empty prompt"},
		{name: "template field missing", opts: &input.Options{Endpoint: tasks.EndpointEmbeddings, Template: "{{.input}}"},
			in: `{"id":"x","text":"t"}`, msg: `template: field "input" not in item (fields: id, text)`},
		{name: "template and a prompt field", opts: &input.Options{Endpoint: tasks.EndpointEmbeddings, Template: "{{.input}}"},
			in: `{"id":"x","input":"t","prompt":"p"}`, msg: takesInput},

		// CSV: a cell is one input; an empty cell is no input.
		{name: "CSV input empty cell", file: "in.csv", in: "x,,", msg: missing},
		{name: "CSV input blank cell", file: "in.csv", in: "x,  ,", msg: missing},
		{name: "CSV dimensions not a number", file: "in.csv", in: "x,text,eight", msg: `dimensions must be a positive integer, got "eight"`},
		{name: "CSV dimensions zero", file: "in.csv", in: "x,text,0", msg: `dimensions must be a positive integer, got "0"`},
		{name: "CSV prompt cell", file: "in.csv", head: "id,input,prompt", in: "x,text,p", msg: takesInput},
		{name: "CSV max_tokens cell", file: "in.csv", head: "id,input,max_tokens", in: "x,text,5", msg: chatOnly("max_tokens")},
		{name: "CSV response_format cell", file: "in.csv", head: "id,input,response_format", in: "x,text,json_object", msg: chatOnly("response_format")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			opts := embeddings
			if tc.opts != nil {
				opts = *tc.opts
			}
			file, in, line := "in.jsonl", lines(good1, tc.in, good2), 2
			if opts.Template != "" {
				// Good lines the template can render.
				in = lines(`{"id":"g1","input":"one","text":"one"}`, tc.in, `{"id":"g2","input":"two","text":"two"}`)
			}
			if tc.file == "in.csv" {
				head, g1, g2 := csvHead, csvGood1, csvGood2
				if tc.head != "" {
					head, g1, g2 = tc.head, "g1,one,", "g2,two,"
				}
				file, in, line = tc.file, lines(head, g1, tc.in, g2), 3
			}
			wantRejection(t, readAll(t, file, in, opts), line, tc.msg, false, "g1", "g2")
		})
	}
}

// TestChatItemWithInput: a chat item with only "input" is told what
// "input" is for; with a template, "input" is just a field it reads.
func TestChatItemWithInput(t *testing.T) {
	t.Parallel()
	const hint = `"input" is for embedding items (run --endpoint embeddings, or OpenAI batch lines for /v1/embeddings); a chat item needs "prompt" or "messages"`
	const good1, good2 = `{"id":"g1","prompt":"one"}`, `{"id":"g2","prompt":"two"}`
	res := readAll(t, "in.jsonl", lines(good1, `{"id":"x","input":"hello"}`, good2), input.Options{})
	wantRejection(t, res, 2, hint, false, "g1", "g2")
	res = readAll(t, "in.jsonl", lines(good1, `{"id":"x","input":["a","b"]}`, good2), input.Options{})
	wantRejection(t, res, 2, hint, false, "g1", "g2")
	res = readAll(t, "in.csv", lines("id,prompt,input", "g1,one,", "x,,hello", "g2,two,"), input.Options{})
	wantRejection(t, res, 3, hint, false, "g1", "g2")

	// Beside a prompt, input is an extra field, as before embeddings.
	res = readAll(t, "in.jsonl", lines(`{"id":"p","prompt":"hi","input":"kept"}`), input.Options{})
	if len(res.recs) != 1 || res.recs[0].Item.Fields["input"] != "kept" || res.recs[0].Item.IsEmbedding() {
		t.Errorf("prompt and input: %+v %+v", res.recs, res.rej)
	}
	// A template may read a field named input (it could before embeddings).
	for _, tc := range []struct{ file, in string }{
		{"in.jsonl", lines(`{"id":"t","input":"the text"}`)},
		{"in.csv", lines("id,input", "t,the text")},
	} {
		res = readAll(t, tc.file, tc.in, input.Options{Template: "Summarize: {{.input}}"})
		if len(res.recs) != 1 {
			t.Fatalf("%s: template over input: rejected %+v", tc.file, res.rej)
		}
		it := res.recs[0].Item
		if it.IsEmbedding() || it.LastUserContent() != "Summarize: the text" || it.Input != nil {
			t.Errorf("%s: template over input: %s", tc.file, it.Canonical())
		}
	}
}

// TestEmbeddingItems: embedding items are accepted as given.
func TestEmbeddingItems(t *testing.T) {
	t.Parallel()
	in := lines(
		`{"id":"a","input":"hello world","model":"text-embedding-3-small","dimensions":16,"metadata":{ "k" : [1, 2] },"note":"n"}`,
		`{"id":"b","input":["one","two"," three "]}`,
		`{"id":"c","input":`+stringsArray(2048)+`}`,
		`{"id":"d","input":"x","dimensions":1e3}`,
		`{"id":"e","input":"x","dimensions":65536,"max_tokens":null}`,
	)
	for _, opts := range []input.Options{
		embeddings,
		// Chat-only options do not touch embedding items.
		{Endpoint: tasks.EndpointEmbeddings, System: "be brief", JSONOutput: true},
	} {
		res := readAll(t, "in.jsonl", in, opts)
		if len(res.recs) != 5 {
			t.Fatalf("%+v: accepted %v, rejected %+v", opts, res.ids(), res.rej)
		}
		for _, rec := range res.recs {
			it := rec.Item
			if !it.IsEmbedding() || it.Endpoint != tasks.EndpointEmbeddings || it.Batch || it.Messages != nil || it.ResponseFormat != nil {
				t.Errorf("%s: %s", it.ID, it.Canonical())
			}
		}
		a := res.recs[0].Item
		if !slices.Equal(a.Input, []string{"hello world"}) || a.Model != "text-embedding-3-small" || a.Dimensions != 16 || string(a.Metadata) != `{"k":[1,2]}` {
			t.Errorf("a: %s", a.Canonical())
		}
		if want := map[string]string{"id": "a", "input": "hello world", "model": "text-embedding-3-small", "dimensions": "16", "metadata": `{"k":[1,2]}`, "note": "n"}; !maps.Equal(a.Fields, want) {
			t.Errorf("a: Fields %v, want %v", a.Fields, want)
		}
		if b := res.recs[1].Item; !slices.Equal(b.Input, []string{"one", "two", " three "}) || b.Dimensions != 0 {
			t.Errorf("b: %s", b.Canonical())
		}
		if c := res.recs[2].Item; len(c.Input) != 2048 || c.Input[2047] != "s2047" {
			t.Errorf("c: %d inputs", len(c.Input))
		}
		if d, e := res.recs[3].Item, res.recs[4].Item; d.Dimensions != 1000 || e.Dimensions != 65536 {
			t.Errorf("dimensions %d and %d, want 1000 and 65536", d.Dimensions, e.Dimensions)
		}
	}

	// The canonical encoding of an embedding item (what the checkpoint
	// compares): no messages (null), endpoint, input, dimensions.
	res := readAll(t, "in.jsonl", lines(`{"id":"a","input":["x","y"],"model":"m","dimensions":8,"metadata":{"k":1}}`), embeddings)
	if got, want := string(res.recs[0].Item.Canonical()),
		`{"id":"a","messages":null,"model":"m","endpoint":"embeddings","input":["x","y"],"dimensions":8,"metadata":{"k":1},`+
			`"fields":{"dimensions":"8","id":"a","input":"[\"x\",\"y\"]","metadata":"{\"k\":1}","model":"m"}}`; got != want {
		t.Errorf("canonical\n %s\nwant\n %s", got, want)
	}

	// CSV: a cell is one input, verbatim, even when it looks like JSON.
	res = readAll(t, "in.csv", lines("id,input,dimensions,model,metadata", `a,hello,16,m,"{""k"":1}"`, `b,"[""x""]",,,`), embeddings)
	if len(res.recs) != 2 {
		t.Fatalf("CSV: accepted %v, rejected %+v", res.ids(), res.rej)
	}
	if a := res.recs[0].Item; !a.IsEmbedding() || !slices.Equal(a.Input, []string{"hello"}) || a.Dimensions != 16 || a.Model != "m" || string(a.Metadata) != `{"k":1}` {
		t.Errorf("CSV a: %s", a.Canonical())
	}
	if b := res.recs[1].Item; !slices.Equal(b.Input, []string{`["x"]`}) || b.Dimensions != 0 || b.Metadata != nil {
		t.Errorf("CSV b: %s", b.Canonical())
	}

	// A template renders the one input, from JSON keys or CSV columns.
	tmpl := input.Options{Endpoint: tasks.EndpointEmbeddings, Template: "{{.title}}: {{.body}}"}
	res = readAll(t, "in.jsonl", lines(`{"id":"t","title":"T","body":"B","dimensions":4,"metadata":{"m":true}}`), tmpl)
	if len(res.recs) != 1 {
		t.Fatalf("template: rejected %+v", res.rej)
	}
	if it := res.recs[0].Item; !it.IsEmbedding() || !slices.Equal(it.Input, []string{"T: B"}) || it.Dimensions != 4 || string(it.Metadata) != `{"m":true}` || it.Messages != nil {
		t.Errorf("template: %s", it.Canonical())
	}
	res = readAll(t, "in.csv", lines("id,title,body", "t,T,B"), tmpl)
	if len(res.recs) != 1 || !slices.Equal(res.recs[0].Item.Input, []string{"T: B"}) {
		t.Errorf("CSV template: %+v %+v", res.recs, res.rej)
	}
}

// TestEmbeddingIDs: derived ids and duplicates work for embedding items as
// for chat items.
func TestEmbeddingIDs(t *testing.T) {
	t.Parallel()
	in := lines(`{"input":"same text"}`, `{"input":"same text"}`, `{"input":["same text"]}`, `{"id":"a","input":"x"}`, `{"id":"a","input":"y"}`)
	res := readAll(t, "in.jsonl", in, embeddings)
	// ["same text"] is the same item's content but other Fields text.
	if len(res.recs) != 3 || res.stats.DuplicatesCollapsed != 1 {
		t.Fatalf("accepted %v, stats %+v", res.ids(), res.stats)
	}
	if want := []input.Rejection{{Line: 5, Error: `id "a" already used on line 4 with different content`}}; !slices.Equal(res.rej, want) {
		t.Errorf("rejections %+v, want %+v", res.rej, want)
	}
	for _, rec := range res.recs[:2] {
		if it := rec.Item; it.ID != withID(it, "").DerivedID() || !strings.HasPrefix(it.ID, "h") {
			t.Errorf("id %q is not the item's DerivedID", it.ID)
		}
	}
	chat := readAll(t, "in.jsonl", lines(`{"prompt":"same text"}`), input.Options{}).ids()
	if chat[0] == res.recs[0].Item.ID {
		t.Errorf("chat and embedding items of the same text have the same derived id %s", chat[0])
	}
}

// TestEmbeddingCSVHeader: an embedding CSV needs an input column (or a
// template), not prompt or messages.
func TestEmbeddingCSVHeader(t *testing.T) {
	t.Parallel()
	const msg = `CSV header has no "input" column, which embedding items need (or use --template)`
	for _, in := range []string{lines("id,text", "a,x"), lines("id,prompt", "a,x"), lines("id,messages", "a,x")} {
		res := readAll(t, "in.csv", in, embeddings)
		var fe *input.FileError
		if !errors.As(res.err, &fe) || *fe != (input.FileError{Line: 1, Msg: msg}) || len(res.recs) != 0 {
			t.Errorf("%q: err %v, want line 1: %s", in, res.err, msg)
		}
	}
	res := readAll(t, "in.csv", lines("id,input", "a,x"), embeddings)
	if res.err != nil || len(res.recs) != 1 {
		t.Errorf("input column: err %v, %d items", res.err, len(res.recs))
	}
	res = readAll(t, "in.csv", lines("id,text", "a,x"), input.Options{Endpoint: tasks.EndpointEmbeddings, Template: "{{.text}}"})
	if res.err != nil || len(res.recs) != 1 {
		t.Errorf("template: err %v, %d items", res.err, len(res.recs))
	}
	// A chat CSV with only an input column is refused as before.
	res = readAll(t, "in.csv", lines("id,input", "a,x"), input.Options{})
	var fe *input.FileError
	if !errors.As(res.err, &fe) || fe.Msg != `CSV header has no "prompt" or "messages" column (or use --template)` {
		t.Errorf("chat CSV with an input column: err %v", res.err)
	}
}

func TestEndpointOption(t *testing.T) {
	t.Parallel()
	_, err := input.NewReader(strings.NewReader(""), "in.jsonl", input.Options{Endpoint: "completions"})
	if err == nil || err.Error() != `invalid --endpoint "completions": want chat or embeddings` {
		t.Errorf("err = %v", err)
	}
}
