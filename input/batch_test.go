package input_test

import (
	"encoding/json"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/llmfleet/llmfleet/input"
	"github.com/llmfleet/llmfleet/tasks"
)

// batchLine is an OpenAI Batch API input line.
func batchLine(id, url, body string) string {
	return `{"custom_id":"` + id + `","method":"POST","url":"` + url + `","body":` + body + `}`
}

const (
	chatURL      = "/v1/chat/completions"
	embeddingURL = "/v1/embeddings"
	// hiBody is a minimal chat completion body.
	hiBody = `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`
)

// openAIBatch reads the file as --format openai-batch.
var openAIBatch = input.Options{Format: input.FormatOpenAIBatch}

// TestBatchItems: chat and embedding batch lines become items, custom_id
// their id, the same whether recognized in plain JSONL or read as
// --format openai-batch.
func TestBatchItems(t *testing.T) {
	t.Parallel()
	yes := true
	temp := float32(0.3)
	in := lines(
		batchLine("req-001", chatURL, `{"model":"gpt-4o-mini","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}],`+
			`"max_completion_tokens":50,"temperature":0.3,"response_format":{"type":"json_schema","json_schema":`+reviewSchema+`},`+
			`"metadata":{"team":"a"},"user":"u-1","store":false}`),
		batchLine("0042", embeddingURL, `{"model":"text-embedding-3-small","input":["a","b"],"dimensions":8,"encoding_format":"float","user":"u-2"}`),
		batchLine(" spaced id ", embeddingURL, `{"input":"one string"}`),
		batchLine("req-004", chatURL, `{"messages":[{"role":"user","content":"q"}],"max_tokens":7,"stop":["END"],"seed":3,"top_p":0.5,"response_format":{"type":"json_object"}}`),
		// method is not required (OpenAI's files always have it).
		`{"custom_id":"no-method","url":"/v1/chat/completions","body":`+hiBody+`}`,
		// The envelope's keys in any order.
		`{"body":`+hiBody+`,"url":"/v1/chat/completions","method":"POST","custom_id":"reordered"}`,
	)
	wantIDs := []string{"req-001", "0042", " spaced id ", "req-004", "no-method", "reordered"}
	for _, tc := range []struct {
		name, file string
		opts       input.Options
	}{
		{"plain JSONL", "in.jsonl", input.Options{}},
		{"sniffed", "-", input.Options{}},
		{"openai-batch", "batch.jsonl", openAIBatch},
		{"openai-batch, any file name", "batch.csv", openAIBatch},
	} {
		res := readAll(t, tc.file, in, tc.opts)
		if res.err != nil || len(res.rej) != 0 || !slices.Equal(res.ids(), wantIDs) {
			t.Fatalf("%s: err %v, accepted %q, rejected %+v", tc.name, res.err, res.ids(), res.rej)
		}
		for _, rec := range res.recs {
			if !rec.Item.Batch {
				t.Errorf("%s: %s: Batch is false", tc.name, rec.Item.ID)
			}
		}
		chat := res.recs[0].Item
		want := tasks.Item{
			ID:          "req-001",
			Messages:    []tasks.Message{{Role: "system", Content: "be brief"}, {Role: "user", Content: "hi"}},
			Model:       "gpt-4o-mini",
			MaxTokens:   50,
			Temperature: &temp,
			ResponseFormat: &tasks.ResponseFormat{Type: "json_schema", JSONSchema: &tasks.JSONSchema{
				Name: "review", Schema: json.RawMessage(reviewCompact), Strict: &yes}},
			Batch:    true,
			Metadata: json.RawMessage(`{"team":"a"}`),
			// The body's fields, with custom_id as id and
			// max_completion_tokens as max_tokens; user and store have no
			// effect on the answer and are dropped.
			Fields: map[string]string{
				"id": "req-001", "model": "gpt-4o-mini",
				"messages":        `[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}]`,
				"max_tokens":      "50",
				"temperature":     "0.3",
				"response_format": `{"type":"json_schema","json_schema":{"name":"review","schema":` + reviewCompact + `,"strict":true}}`,
				"metadata":        `{"team":"a"}`,
			},
		}
		if !reflect.DeepEqual(chat, want) {
			t.Errorf("%s: chat item\n %s\nwant\n %s", tc.name, chat.Canonical(), want.Canonical())
		}
		emb := res.recs[1].Item
		want = tasks.Item{
			ID: "0042", Model: "text-embedding-3-small", Endpoint: tasks.EndpointEmbeddings, Input: []string{"a", "b"}, Dimensions: 8, Batch: true,
			Fields: map[string]string{"id": "0042", "model": "text-embedding-3-small", "input": `["a","b"]`, "dimensions": "8"},
		}
		if !reflect.DeepEqual(emb, want) || !emb.IsEmbedding() {
			t.Errorf("%s: embedding item\n %s\nwant\n %s", tc.name, emb.Canonical(), want.Canonical())
		}
		if it := res.recs[2].Item; it.ID != " spaced id " || !slices.Equal(it.Input, []string{"one string"}) || !it.IsEmbedding() {
			t.Errorf("%s: string input: %s", tc.name, it.Canonical())
		}
		if it := res.recs[3].Item; it.MaxTokens != 7 || !slices.Equal(it.Stop, []string{"END"}) || *it.Seed != 3 || *it.TopP != 0.5 ||
			it.ResponseFormat.Type != "json_object" || it.IsEmbedding() {
			t.Errorf("%s: max_tokens item: %s", tc.name, it.Canonical())
		}
		// Fields() names the items' fields, the failed-items CSV's columns
		// (what Item.Fields holds), not the envelope's keys.
		if want := []string{"id", "model", "messages", "max_tokens", "temperature", "response_format", "metadata", "input", "dimensions", "stop", "seed", "top_p"}; !slices.Equal(res.fields, want) {
			t.Errorf("%s: Fields() = %v, want %v", tc.name, res.fields, want)
		}
	}
}

// TestBatchRejections: every way a batch line can be wrong, each between
// two good batch lines, with the exact message; the same in plain JSONL and
// in --format openai-batch unless the case says otherwise.
func TestBatchRejections(t *testing.T) {
	t.Parallel()
	good1, good2 := batchLine("g1", chatURL, hiBody), batchLine("g2", embeddingURL, `{"input":"two"}`)
	chat := func(body string) string { return batchLine("x", chatURL, body) }
	emb := func(body string) string { return batchLine("x", embeddingURL, body) }
	const chatKeys = "model, messages, max_tokens, max_completion_tokens, temperature, top_p, stop, seed, response_format, tool_choice, parallel_tool_calls, metadata, user, store, n, stream"
	const embKeys = "model, input, dimensions, encoding_format, user"
	const notBatch = `not an OpenAI batch line: want {"custom_id", "method": "POST", "url", "body"}`
	const urlRule = "url must be /v1/chat/completions or /v1/embeddings, got "
	const envelope = "an OpenAI batch line has custom_id, method, url and body; "
	tests := []struct {
		name  string
		in    string
		msg   string
		plain string // the message in plain JSONL, when it differs; "-" when accepted there
	}{
		// custom_id
		{name: "custom_id empty", in: `{"custom_id":"","method":"POST","url":"/v1/chat/completions","body":` + hiBody + `}`,
			msg: `custom_id must be a non-empty string, got ""`},
		{name: "custom_id blank", in: `{"custom_id":"  ","method":"POST","url":"/v1/chat/completions","body":` + hiBody + `}`,
			msg: `custom_id must be a non-empty string, got "  "`},
		{name: "custom_id null", in: `{"custom_id":null,"method":"POST","url":"/v1/chat/completions","body":` + hiBody + `}`,
			msg: "custom_id must be a non-empty string, got null"},
		{name: "custom_id a number", in: `{"custom_id":7,"method":"POST","url":"/v1/chat/completions","body":` + hiBody + `}`,
			msg: "custom_id must be a non-empty string, got 7"},
		// A batch line is recognized by its custom_id: without one it is
		// not a batch line, so in plain JSONL it is a chat item without a
		// prompt.
		{name: "custom_id missing", in: `{"method":"POST","url":"/v1/chat/completions","body":` + hiBody + `}`,
			msg: notBatch, plain: `missing prompt: an item needs "prompt" or "messages"`},

		// method
		{name: "method GET", in: `{"custom_id":"x","method":"GET","url":"/v1/chat/completions","body":` + hiBody + `}`,
			msg: `method must be POST, got "GET"`},
		{name: "method lower case", in: `{"custom_id":"x","method":"post","url":"/v1/chat/completions","body":` + hiBody + `}`,
			msg: `method must be POST, got "post"`},
		{name: "method not a string", in: `{"custom_id":"x","method":1,"url":"/v1/chat/completions","body":` + hiBody + `}`,
			msg: "method must be POST, got 1"},

		// url
		{name: "url completions", in: batchLine("x", "/v1/completions", `{"model":"m","prompt":"p"}`), msg: urlRule + `"/v1/completions"`},
		{name: "url responses", in: batchLine("x", "/v1/responses", hiBody), msg: urlRule + `"/v1/responses"`},
		{name: "url without its leading slash", in: batchLine("x", "v1/chat/completions", hiBody), msg: urlRule + `"v1/chat/completions"`},
		{name: "url with a host", in: batchLine("x", "https://api.openai.com/v1/chat/completions", hiBody), msg: urlRule + `"https://api.openai.com/v1/chat/completions"`},
		{name: "url not a string", in: `{"custom_id":"x","method":"POST","url":5,"body":` + hiBody + `}`, msg: urlRule + "5"},
		{name: "url null", in: `{"custom_id":"x","method":"POST","url":null,"body":` + hiBody + `}`, msg: urlRule + "null"},
		{name: "url missing", in: `{"custom_id":"x","method":"POST","body":` + hiBody + `}`,
			msg: "url is missing (/v1/chat/completions or /v1/embeddings)"},

		// body
		{name: "body missing", in: `{"custom_id":"x","method":"POST","url":"/v1/chat/completions"}`,
			msg: "body is missing: an OpenAI batch line needs the request in body"},
		{name: "body a string", in: chat(`"hi"`), msg: `body must be the request object, got "hi"`},
		{name: "body an array", in: chat(`[{"model":"m"}]`), msg: `body must be the request object, got [{"model":"m"}]`},
		{name: "body shown shortened", in: chat(`[` + hiBody + `]`), msg: `body must be the request object, got [{"model":"gpt-4o-mini","messages":[{"role":"user","content"…`},
		{name: "body null", in: chat(`null`), msg: "body must be the request object, got null"},

		// the envelope's keys
		{name: "unknown top-level key", in: `{"custom_id":"x","method":"POST","url":"/v1/chat/completions","body":` + hiBody + `,"metadata":{"k":1}}`,
			msg: envelope + `"metadata" is not one of them`},
		// custom_id makes a line a batch line, so a chat item with a
		// custom_id field is one with a wrong key.
		{name: "a chat item with a custom_id field", in: `{"custom_id":"x","prompt":"p"}`, msg: envelope + `"prompt" is not one of them`},
		{name: "duplicate top-level key", in: `{"custom_id":"x","method":"POST","url":"/v1/chat/completions","url":"/v1/embeddings","body":` + hiBody + `}`,
			msg: `duplicate key "url"`},

		// the body's keys
		{name: "chat body n", in: chat(`{"messages":[{"role":"user","content":"hi"}],"n":2}`),
			msg: "body.n must be 1 (one answer per item), got 2"},
		{name: "chat body stream", in: chat(`{"messages":[{"role":"user","content":"hi"}],"stream":true}`),
			msg: "body.stream must be false (answers are kept whole), got true"},
		{name: "chat body logprobs", in: chat(`{"messages":[{"role":"user","content":"hi"}],"logprobs":true}`),
			msg: "body.logprobs is not supported for /v1/chat/completions (supported: " + chatKeys + ")"},
		{name: "chat body: the first unknown key is named", in: chat(`{"messages":[{"role":"user","content":"hi"}],"logit_bias":{},"n":2}`),
			msg: "body.logit_bias is not supported for /v1/chat/completions (supported: " + chatKeys + ")"},
		{name: "chat body tools (definitions come from run --tools)", in: chat(`{"messages":[{"role":"user","content":"hi"}],"tools":[]}`),
			msg: "body.tools is not supported for /v1/chat/completions (supported: " + chatKeys + ")"},
		{name: "chat body prompt", in: chat(`{"prompt":"hi"}`),
			msg: "body.prompt is not supported for /v1/chat/completions (supported: " + chatKeys + ")"},
		{name: "chat body input", in: chat(`{"input":"hi"}`),
			msg: "body.input is not supported for /v1/chat/completions (supported: " + chatKeys + ")"},
		{name: "chat body encoding_format", in: chat(`{"messages":[{"role":"user","content":"hi"}],"encoding_format":"float"}`),
			msg: "body.encoding_format is not supported for /v1/chat/completions (supported: " + chatKeys + ")"},
		{name: "embedding body messages", in: emb(`{"messages":[{"role":"user","content":"hi"}]}`),
			msg: "body.messages is not supported for /v1/embeddings (supported: " + embKeys + ")"},
		{name: "embedding body temperature", in: emb(`{"input":"x","temperature":0}`),
			msg: "body.temperature is not supported for /v1/embeddings (supported: " + embKeys + ")"},
		{name: "embedding body encoding_format base64", in: emb(`{"input":"x","encoding_format":"base64"}`),
			msg: `body.encoding_format must be "float", got "base64"`},
		{name: "both max_tokens and max_completion_tokens", in: chat(`{"messages":[{"role":"user","content":"hi"}],"max_tokens":5,"max_completion_tokens":5}`),
			msg: "body has both max_tokens and max_completion_tokens"},
		{name: "duplicate body key", in: chat(`{"messages":[{"role":"user","content":"hi"}],"temperature":0.1,"temperature":0.2}`),
			msg: `body has key "temperature" twice`},
		{name: "duplicate body key before an unknown one", in: chat(`{"messages":[],"messages":[],"n":1}`),
			msg: `body has key "messages" twice`},

		// the body's fields, checked as an item's, after "body: "
		{name: "body temperature 3", in: chat(`{"messages":[{"role":"user","content":"hi"}],"temperature":3}`),
			msg: "body: temperature must be a number from 0 to 2, got 3"},
		{name: "body: every field error", in: chat(`{"messages":[{"role":"user","content":"hi"}],"temperature":3,"top_p":2}`),
			msg: "body: temperature must be a number from 0 to 2, got 3; top_p must be a number from 0 to 1, got 2"},
		{name: "body max_completion_tokens zero (named as max_tokens)", in: chat(`{"messages":[{"role":"user","content":"hi"}],"max_completion_tokens":0}`),
			msg: "body: max_tokens must be a positive integer, got 0"},
		{name: "chat body without messages", in: chat(`{"model":"m"}`),
			msg: `body: missing prompt: an item needs "prompt" or "messages"`},
		{name: "chat body content parts", in: chat(`{"messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}]}`),
			msg: "body: messages[0].content must be a string, got array (content parts are not supported)"},
		{name: "chat body tool_choice in a job without tools", in: chat(`{"messages":[{"role":"user","content":"hi"}],"tool_choice":"auto"}`),
			msg: "body: tool_choice needs tools but the job has none: pass run --tools FILE"},
		{name: "chat body bad json_schema", in: chat(`{"messages":[{"role":"user","content":"hi"}],"response_format":{"type":"json_schema","json_schema":{"name":"a b","schema":{}}}}`),
			msg: `body: response_format.json_schema: name must be 1 to 64 letters, digits, _ or -, got "a b"`},
		{name: "chat body model not a string", in: chat(`{"model":4,"messages":[{"role":"user","content":"hi"}]}`),
			msg: "body: model must be a string, got 4"},
		{name: "embedding body without input", in: emb(`{"model":"m"}`),
			msg: `body: missing input: an embedding item needs "input" (a string or an array of strings)`},
		{name: "embedding body empty input", in: emb(`{"input":[]}`), msg: "body: input is an empty array"},
		{name: "embedding body token input", in: emb(`{"input":[1,2,3]}`),
			msg: "body: input[0] must be a non-empty string, got 1 (token arrays are not supported)"},
		{name: "embedding body dimensions zero", in: emb(`{"input":"x","dimensions":0}`),
			msg: "body: dimensions must be a positive integer, got 0"},

		// not a batch line at all
		{name: "plain item", in: `{"id":"x","prompt":"p"}`, msg: notBatch, plain: "-"},
		{name: "plain embedding-looking item", in: `{"id":"x","input":"p"}`, msg: notBatch,
			plain: `"input" is for embedding items (run --endpoint embeddings, or OpenAI batch lines for /v1/embeddings); a chat item needs "prompt" or "messages"`},
		{name: "malformed JSON", in: `{"custom_id":"x",`, msg: "malformed JSON: unexpected end of JSON input"},
		{name: "not an object", in: `[` + good1 + `]`, msg: "an item must be a JSON object, got array"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := lines(good1, tc.in, good2)
			wantRejection(t, readAll(t, "batch.jsonl", in, openAIBatch), 2, tc.msg, false, "g1", "g2")
			switch tc.plain {
			case "":
				wantRejection(t, readAll(t, "in.jsonl", in, input.Options{}), 2, tc.msg, false, "g1", "g2")
			case "-":
				if res := readAll(t, "in.jsonl", in, input.Options{}); len(res.rej) != 0 || len(res.recs) != 3 {
					t.Errorf("plain JSONL: accepted %v, rejected %+v; want all three", res.ids(), res.rej)
				}
			default:
				wantRejection(t, readAll(t, "in.jsonl", in, input.Options{}), 2, tc.plain, false, "g1", "g2")
			}
		})
	}
}

// TestBatchMixed: in plain JSONL, chat and embedding batch lines and plain
// items mix; each line says what it is. A batch body is the request: the
// template does not apply to it, and Options.Endpoint does not change it.
func TestBatchMixed(t *testing.T) {
	t.Parallel()
	in := lines(
		batchLine("b-chat", chatURL, hiBody),
		`{"id":"plain","prompt":"p","note":"n"}`,
		batchLine("b-emb", embeddingURL, `{"input":["x","y"],"dimensions":4}`),
		`{"id":"msgs","messages":[{"role":"user","content":"m"}]}`,
		`{"id":"bad","prompt":""}`,
		batchLine("b-bad", "/v1/moderations", `{"input":"x"}`),
	)
	res := readAll(t, "in.jsonl", in, input.Options{})
	if !slices.Equal(res.ids(), []string{"b-chat", "plain", "b-emb", "msgs"}) {
		t.Fatalf("accepted %v, rejected %+v", res.ids(), res.rej)
	}
	want := []input.Rejection{
		{Line: 5, Error: `missing prompt: an item needs "prompt" or "messages"`},
		{Line: 6, Error: `url must be /v1/chat/completions or /v1/embeddings, got "/v1/moderations"`},
	}
	if !slices.Equal(res.rej, want) {
		t.Errorf("rejections %+v, want %+v", res.rej, want)
	}
	kinds := map[string][2]bool{} // id: batch, embedding
	for _, rec := range res.recs {
		kinds[rec.Item.ID] = [2]bool{rec.Item.Batch, rec.Item.IsEmbedding()}
	}
	if want := map[string][2]bool{"b-chat": {true, false}, "plain": {false, false}, "b-emb": {true, true}, "msgs": {false, false}}; !maps.Equal(kinds, want) {
		t.Errorf("batch, embedding by id: %v, want %v", kinds, want)
	}
	if want := []string{"id", "model", "messages", "prompt", "note", "input", "dimensions"}; !slices.Equal(res.fields, want) {
		t.Errorf("Fields() = %v, want %v", res.fields, want)
	}

	// With a template, plain items are rendered and batch bodies used as
	// they are; with --endpoint embeddings, plain items are embeddings and
	// a chat batch line stays a chat item.
	res = readAll(t, "in.jsonl", lines(batchLine("b", chatURL, hiBody), `{"id":"p","q":"rendered"}`), input.Options{Template: "Q: {{.q}}"})
	if len(res.recs) != 2 || res.recs[0].Item.LastUserContent() != "hi" || res.recs[1].Item.LastUserContent() != "Q: rendered" {
		t.Errorf("template: %+v %+v", res.recs, res.rej)
	}
	res = readAll(t, "in.jsonl", lines(batchLine("b", chatURL, hiBody), `{"id":"e","input":"x"}`, batchLine("be", embeddingURL, `{"input":"y"}`)), embeddings)
	if len(res.recs) != 3 || res.recs[0].Item.IsEmbedding() || !res.recs[1].Item.IsEmbedding() || res.recs[1].Item.Batch || !res.recs[2].Item.IsEmbedding() {
		t.Errorf("--endpoint embeddings: %+v %+v", res.recs, res.rej)
	}
	// The endpoint of one line does not leak into the next.
	res = readAll(t, "in.jsonl", lines(batchLine("be", embeddingURL, `{"input":"y"}`), `{"id":"p","prompt":"p"}`), input.Options{})
	if len(res.recs) != 2 || res.recs[1].Item.IsEmbedding() {
		t.Errorf("after an embedding batch line: %+v %+v", res.recs, res.rej)
	}
}

// TestBatchDuplicates: a custom_id is an id like any other. The same
// request again is collapsed, however its JSON is spaced or ordered.
//
// The same custom_id with other content is refused by the reader within a
// file (it remembers every id it accepted); across runs into one job it is
// the checkpoint's Record that refuses it (with the replay --edit hint),
// not the reader, which sees one file at a time.
func TestBatchDuplicates(t *testing.T) {
	t.Parallel()
	in := lines(
		batchLine("r1", chatURL, hiBody),
		batchLine("r1", chatURL, hiBody),
		`{ "url":"/v1/chat/completions", "custom_id":"r1", "body":{ "messages":[ {"role":"user", "content":"hi"} ], "model":"gpt-4o-mini" }, "method":"POST" }`,
		// user and store do not change the answer: the same item
		batchLine("r1", chatURL, `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"user":"someone","store":true}`),
		batchLine("r1", chatURL, `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"other"}]}`),
		batchLine("e1", embeddingURL, `{"input":"x"}`),
		batchLine("e1", embeddingURL, `{"input":"x","encoding_format":"float"}`),
		batchLine("e1", embeddingURL, `{"input":"x","dimensions":8}`),
		// A plain item of the same request is other content: it is no
		// batch item.
		`{"id":"r1","messages":[{"role":"user","content":"hi"}],"model":"gpt-4o-mini"}`,
	)
	for _, opts := range []input.Options{{}, openAIBatch} {
		res := readAll(t, "in.jsonl", in, opts)
		if !slices.Equal(res.ids(), []string{"r1", "e1"}) || res.stats.DuplicatesCollapsed != 4 {
			t.Errorf("format %q: accepted %v, stats %+v; want r1 and e1, 4 collapsed", opts.Format, res.ids(), res.stats)
		}
		want := []input.Rejection{
			{Line: 5, Error: `id "r1" already used on line 1 with different content`},
			{Line: 8, Error: `id "e1" already used on line 6 with different content`},
			{Line: 9, Error: `id "r1" already used on line 1 with different content`},
		}
		if opts.Format == input.FormatOpenAIBatch {
			want[2].Error = `not an OpenAI batch line: want {"custom_id", "method": "POST", "url", "body"}`
		}
		if !slices.Equal(res.rej, want) {
			t.Errorf("format %q: rejections\n %+v\nwant\n %+v", opts.Format, res.rej, want)
		}
		if s := res.stats; s.Lines != 9 || s.Accepted != 2 || s.Rejected != 3 {
			t.Errorf("format %q: stats %+v", opts.Format, s)
		}
	}
}

// TestBatchFormatOption: openai-batch is a valid --format; an empty file
// is empty as in any format.
func TestBatchFormatOption(t *testing.T) {
	t.Parallel()
	if _, err := input.NewReader(strings.NewReader(""), "", input.Options{Format: "openai"}); err == nil ||
		err.Error() != `invalid input format "openai": want "jsonl", "csv" or "openai-batch"` {
		t.Errorf("err = %v", err)
	}
	if res := readAll(t, "batch.jsonl", "\n\n", openAIBatch); res.err != input.ErrEmpty {
		t.Errorf("empty batch file: err %v, want ErrEmpty", res.err)
	}
}

// OpenAI batch bodies are the request as given: n 1, stream false and a
// null encoding_format are accepted and change nothing; --system is not
// added to them (it is to plain items of the same file); --json-output
// does not replace a body's json_schema.
func TestBatchBodiesAsGiven(t *testing.T) {
	t.Parallel()
	in := lines(
		batchLine("a", chatURL, `{"messages":[{"role":"user","content":"hi"}],"n":1,"stream":false,"response_format":{"type":"json_schema","json_schema":`+reviewSchema+`}}`),
		batchLine("b", embeddingURL, `{"input":"x","encoding_format":null}`),
		`{"id":"plain","prompt":"hi"}`,
	)
	res := readAll(t, "in.jsonl", in, input.Options{System: "be brief", JSONOutput: true})
	if res.err != nil || len(res.rej) != 0 || len(res.recs) != 3 {
		t.Fatalf("err %v, accepted %q, rejected %+v", res.err, res.ids(), res.rej)
	}
	a, plain := res.recs[0].Item, res.recs[2].Item
	if len(a.Messages) != 1 || a.Messages[0].Role != "user" {
		t.Errorf("batch body got messages %+v, want its own only (no --system)", a.Messages)
	}
	if a.ResponseFormat == nil || a.ResponseFormat.JSONSchema == nil {
		t.Errorf("batch body's json_schema was replaced: %+v", a.ResponseFormat)
	}
	if len(plain.Messages) != 2 || plain.Messages[0].Role != "system" || plain.ResponseFormat.Type != "json_object" {
		t.Errorf("plain item %+v, want --system and --json-output applied", plain)
	}
}
