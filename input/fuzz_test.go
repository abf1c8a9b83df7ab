package input_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"unicode/utf8"

	"github.com/llmfleet/llmfleet/input"
	"github.com/llmfleet/llmfleet/tasks"
)

// The fuzz targets feed arbitrary bytes to a Reader and check what the
// package doc promises of every input, not only that nothing panics:
//
//   - the read ends with io.EOF, ErrEmpty or (CSV only) a *FileError whose
//     line is within the input;
//   - every outcome names a line within the input, and no line has two;
//     for JSONL every non-blank line is exactly one of accepted, rejected or
//     collapsed, so Stats.Lines is the number of non-blank lines;
//   - accepted items have a non-empty, unique id, valid UTF-8 throughout, at
//     least one message with a known role (embedding items: none, and 1 to
//     2048 non-empty inputs), and respect the options (size limit,
//     --system, --json-output, --schema, --endpoint, --format
//     openai-batch, the job's tools: no agent field without them; with
//     them, tools among them, a valid tool_choice and messages in OpenAI's
//     tool call order);
//   - an item without an id gets Item.DerivedID of the finished item, and a
//     second read of the same bytes, one byte per Read, gives the very same
//     records, rejections, stats and fields.
//
// go test runs the f.Add seeds as ordinary tests; go test -fuzz explores.

// fuzzMaxItemBytes is the size limit of the fuzzOptions that sets one: small,
// so that the fuzzer reaches it and the bytes just around it.
const fuzzMaxItemBytes = 48

// fuzzOptions are the options a fuzz input's mode byte picks from.
var fuzzOptions = []input.Options{
	{},
	{MaxItemBytes: fuzzMaxItemBytes},
	{System: "be brief"},
	{Template: "{{.q}}"},
	{JSONOutput: true},
	{Tools: fuzzTools},
	{Endpoint: tasks.EndpointEmbeddings},
	{Schema: &tasks.JSONSchema{Name: "r", Schema: json.RawMessage(`{"type":"object"}`)}},
	{Format: input.FormatOpenAIBatch}, // JSONL only: FuzzCSV reads it as CSV
}

// fuzzTools are the job's tools of modeTools.
var fuzzTools = []string{"a", "b"}

// Modes of fuzzOptions, for the seeds.
const (
	modePlain uint8 = iota
	modeLimit
	modeSystem
	modeTemplate
	modeJSON
	modeTools
	modeEmbeddings
	modeSchema
	modeBatch
)

func FuzzJSONL(f *testing.F) {
	for _, s := range []struct {
		mode uint8
		in   string
	}{
		{modePlain, lines(`{"id":"a","prompt":"p"}`, `{"prompt":"no id"}`, `{"id":null,"prompt":"null id"}`, `{"id":" ","prompt":"blank id"}`)},
		{modePlain, lines(`{"id":42,"prompt":"n"}`, `{"id":1.50,"prompt":"f"}`, `{"id":-1e3,"prompt":"e"}`, `{"id":true,"prompt":"b"}`)},
		{modePlain, lines(`{"id":"a","prompt":"p"}`, `{"id":"a","prompt":"p"}`, ` {"prompt":"p", "id":"a"} `, `{"id":"a","prompt":"changed"}`)},
		{modePlain, lines(`{"prompt":"x"}`, `{"prompt":"x"}`, `{"id":"a"}`, `{"id":"a"}`)},
		{modePlain, lines(`{"id":"m","messages":[{"role":"system","content":"s"},{"role":"user","content":"u","name":"n"}]}`,
			`{"id":"c","messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}]}`,
			`{"id":"r","messages":[{"role":"bot","content":"hi"}]}`,
			`{"id":"e","messages":[]}`)},
		{modePlain, lines(`{"id":"o","prompt":"p","model":"m","max_tokens":100,"temperature":0.2,"top_p":1,"stop":["a","b"],"seed":-7,`+
			`"response_format":{"type":"json_object"},"metadata":{"k":[1,2]},"extra":{"x":null}}`,
			`{"id":"bad","prompt":"p","temperature":9,"top_p":-1,"max_tokens":1.5,"seed":"s","stop":7}`)},
		{modePlain, "\n\n  \n\t\r\n" + lines(`{"id":"x","prompt":`, `["a"]`, `"str"`, `{"id":"k","prompt":"a","prompt":"b"}`, `{"a":1}garbage`)},
		{modePlain, "\ufeff" + strings.ReplaceAll(lines(`{"id":"crlf","prompt":"p"}`, `{"id":"crlf2","prompt":"q"}`), "\n", "\r\n")},
		{modePlain, "{\"id\":\"u\",\"prompt\":\"a\xffb\"}\n" + `{"id":"esc","prompt":"\ud800 \u0000 \"q\" \\"}` + "\n"},
		{modePlain, `{"id":"no newline at the end","prompt":"p"}`},
		// Found by the fuzzer: a line one byte over the limit whose ending
		// would have fit (the limit counted the line ending).
		{modeLimit, "{\"00\":\"000000000000000000000000000\",\"prompt\":\"0\"}"},
		{modeLimit, "{\"00\":\"000000000000000000000000000\",\"prompt\":\"0\"}\n"},
		{modePlain, ""},
		{modePlain, " \n\v\f\n"},
		{modeLimit, lines(`{"id":"s","prompt":"short"}`, `{"id":"l","prompt":"`+strings.Repeat("x", 100)+`"}`, "   "+strings.Repeat(" ", 60))},
		// Lines of exactly the limit and three bytes over, with each line
		// ending: the fuzzer explores the bytes in between.
		{modeLimit, lines(`{"prompt":"`+strings.Repeat("a", fuzzMaxItemBytes-13)+`"}`, `{"prompt":"`+strings.Repeat("b", fuzzMaxItemBytes-10)+`"}`)},
		{modeLimit, "\r\n" + `{"prompt":"` + strings.Repeat("a", fuzzMaxItemBytes-13) + `"}` + "\r\n" + `{"prompt":"` + strings.Repeat("b", fuzzMaxItemBytes-10) + `"}` + "\r\n"},
		{modeLimit, `{"prompt":"` + strings.Repeat("c", fuzzMaxItemBytes-13) + `"}`},
		{modeLimit, `{"prompt":"` + strings.Repeat("d", fuzzMaxItemBytes-10) + `"}`},
		{modeSystem, lines(`{"id":"p","prompt":"hi"}`, `{"id":"own","messages":[{"role":"system","content":"mine"},{"role":"user","content":"hi"}]}`)},
		{modeTemplate, lines(`{"q":"a"}`, `{"q":" "}`, `{"id":"t","q":{"x":[1,2]}}`, `{"id":"m","q":"a","messages":[{"role":"user","content":"c"}]}`, `{"prompt":"no q"}`)},
		{modeJSON, lines(`{"id":"j","prompt":"p","response_format":{"type":"text"}}`, `{"id":"j2","prompt":"p","response_format":"json"}`)},
		{modeTools, lines(`{"id":"t","prompt":"p","tools":["a"],"tool_choice":{"type":"function","function":{"name":"a"}},"parallel_tool_calls":true}`,
			`{"id":"c","prompt":"p","tool_choice":"required","parallel_tool_calls":false}`,
			`{"id":"u","prompt":"p","tools":["a","a"],"tool_choice":{"type":"function","function":{"name":"c"}},"parallel_tool_calls":"x"}`,
			`{"id":"n","prompt":"p","tools":[],"tool_choice":"always"}`)},
		{modeTools, lines(`{"id":"m","messages":[{"role":"user","content":"u"},{"role":"assistant","content":null,"tool_calls":[`+
			`{"id":"1","type":"function","function":{"name":"a","arguments":"{"}},{"id":"2","type":"function","function":{"name":"b","arguments":"{}"}}]},`+
			`{"role":"tool","tool_call_id":"2","content":"r2"},{"role":"tool","tool_call_id":"1","content":"r1"}]}`,
			`{"id":"o","messages":[{"role":"user","content":"u"},{"role":"assistant","tool_calls":[{"id":"1","type":"function","function":{"name":"a","arguments":""}}]},{"role":"user","content":"u"}]}`,
			`{"id":"d","messages":[{"role":"assistant","tool_calls":[{"id":"1","type":"function","function":{"name":"a","arguments":""}}]},{"role":"tool","tool_call_id":"1","content":""},{"role":"tool","tool_call_id":"1","content":""}]}`,
			`{"id":"x","messages":[{"role":"tool","tool_call_id":"1","content":""}]}`)},
		{modePlain, lines(`{"custom_id":"c","method":"POST","url":"/v1/chat/completions","body":{"model":"m","messages":[{"role":"user","content":"hi"}],"max_completion_tokens":5}}`,
			`{"custom_id":"e","method":"POST","url":"/v1/embeddings","body":{"input":["a","b"],"dimensions":8,"encoding_format":"float"}}`,
			`{"custom_id":"x","method":"GET","url":"/v1/completions","body":{"prompt":"p"}}`,
			`{"custom_id":"","url":"/v1/embeddings","body":{"input":[]}}`,
			`{"id":"p","prompt":"plain"}`, `{"id":"i","input":"chat item with input"}`)},
		{modeBatch, lines(`{"custom_id":"c","method":"POST","url":"/v1/chat/completions","body":{"messages":[{"role":"system","content":"s"},{"role":"user","content":"hi"}],"n":2}}`,
			`{"custom_id":"e","method":"POST","url":"/v1/embeddings","body":{"input":"x"}}`,
			`{"id":"p","prompt":"plain"}`)},
		{modeEmbeddings, lines(`{"id":"a","input":"x","dimensions":8,"metadata":{"k":1}}`, `{"input":["a","b"]}`, `{"id":"p","prompt":"p"}`,
			`{"id":"t","input":"x","max_tokens":5}`, `{"id":"e","input":[""]}`,
			`{"custom_id":"c","url":"/v1/chat/completions","body":{"messages":[{"role":"user","content":"hi"}]}}`)},
		{modeSchema, lines(`{"id":"a","prompt":"p"}`, `{"id":"b","prompt":"p","response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"array"}}}}`,
			`{"id":"c","prompt":"p","response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":5}}}}`,
			`{"custom_id":"e","url":"/v1/embeddings","body":{"input":"x"}}`)},
		// The same agent items in a job without tools: all rejected.
		{modePlain, lines(`{"id":"t","prompt":"p","tools":["a"],"tool_choice":"auto","parallel_tool_calls":true}`,
			`{"id":"m","messages":[{"role":"user","content":"u"},{"role":"assistant","tool_calls":[{"id":"1","type":"function","function":{"name":"a","arguments":"{}"}}]},{"role":"tool","tool_call_id":"1","content":"r"}]}`)},
	} {
		f.Add([]byte(s.in), s.mode)
	}
	f.Fuzz(func(t *testing.T, data []byte, mode uint8) {
		opts := fuzzOptions[int(mode)%len(fuzzOptions)]
		if opts.Format == "" {
			opts.Format = input.FormatJSONL
		}
		res := checkRead(t, data, opts)

		nonBlank := nonBlankLines(data)
		switch {
		case len(nonBlank) == 0 && !errors.Is(res.err, input.ErrEmpty):
			t.Errorf("read of blank lines only ended with %v, want ErrEmpty", res.err)
		case len(nonBlank) > 0 && res.err != nil:
			t.Errorf("read of %d non-blank lines ended with %v, want io.EOF", len(nonBlank), res.err)
		}
		if res.stats.Lines != len(nonBlank) {
			t.Errorf("Stats.Lines = %d, want the %d non-blank lines %v", res.stats.Lines, len(nonBlank), nonBlank)
		}
		// Every outcome is on a non-blank line; with the counts checked by
		// readFrom, that makes each non-blank line exactly one outcome.
		for _, l := range outcomeLines(res) {
			if _, ok := slices.BinarySearch(nonBlank, l); !ok {
				t.Errorf("outcome on line %d, which is not one of the non-blank lines %v", l, nonBlank)
			}
		}
		// Fields() is the union of the accepted items' fields (checkItem
		// checked that each field is in it).
		union := map[string]bool{}
		for _, rec := range res.recs {
			for k := range rec.Item.Fields {
				union[k] = true
			}
		}
		if len(union) != len(res.fields) {
			t.Errorf("Fields() = %v, want the %d fields of the accepted items", res.fields, len(union))
		}
		if opts.MaxItemBytes > 0 {
			for _, rec := range res.recs {
				if n := len(lineOf(data, rec.Line)); n > opts.MaxItemBytes {
					t.Errorf("line %d is %d bytes, over --max-item-bytes %d, and was accepted: %q", rec.Line, n, opts.MaxItemBytes, lineOf(data, rec.Line))
				}
			}
		}
	})
}

func FuzzCSV(f *testing.F) {
	for _, s := range []struct {
		mode uint8
		in   string
	}{
		{modePlain, lines("id,prompt", "a,one", ",no id", " ,blank id", "a,one", "a,changed")},
		{modePlain, "\ufeff" + lines(" id , prompt ,max_tokens,temperature,stop,seed,response_format,metadata,note",
			`a,"hello, ""world""",10,0.7,"[""x"",""y""]",3,json_object,"{""k"": 1}",n1`,
			`b,plain,,,END,,,just text,`,
			`c,p,ten,9,"[1]",1.5,xml,,`)},
		{modePlain, lines("id,messages", `m,"[{""role"":""user"",""content"":""hi""}]"`, "x,hello", `e,"[]"`)},
		{modePlain, lines("id,prompt", "g1,one", "x,a,b", `y,say "hi"`, `z,"multi`, `line"`, "g2,two")},
		{modePlain, lines("id,prompt", `x,"unterminated`, "more")},
		{modePlain, "\n\n" + strings.ReplaceAll(lines("id,prompt", "a,p", "", "  ", "b,q"), "\n", "\r\n")},
		{modePlain, lines("id,prompt", "x,a\xfe", "y,\xff")},
		{modePlain, "id,prompt\nno,newline"},
		{modePlain, lines("id,text", "1,a")},
		{modePlain, lines("id,prompt, id ", "1,a,b")},
		{modePlain, lines("id,prompt,", "1,a,")},
		{modePlain, lines(`id,"prompt`, "1,a")},
		{modePlain, "id,prompt\n"},
		{modePlain, ""},
		{modePlain, "\xff,prompt\n1,a\n"},
		{modeLimit, lines("id,prompt", "s,short", "l,"+strings.Repeat("x", 60), `q,"`+strings.Repeat(`""`, 30)+`"`)},
		{modeSystem, lines("id,prompt", "p,hi")},
		{modeTemplate, lines("id,q", "a,one", "b, ", "c,")},
		{modeTemplate, lines("id,prompt", "a,one")},
		{modeJSON, lines("id,prompt,response_format", "a,p,text", "b,p,")},
		{modeTools, lines("id,prompt,tools,tool_choice,parallel_tool_calls", `t,p," a , b ",required,true`, `u,p,"[""b""]","{""type"":""function"",""function"":{""name"":""b""}}",FALSE`,
			`v,p,"a,,a",{bad,maybe`, "w,p,,,")},
		{modeTools, lines("id,messages", `m,"[{""role"":""user"",""content"":""u""},{""role"":""assistant"",""tool_calls"":[{""id"":""1"",""type"":""function"",""function"":{""name"":""a"",""arguments"":""{}""}}]},{""role"":""tool"",""tool_call_id"":""1"",""content"":""r""}]"`)},
		{modeEmbeddings, lines("id,input,dimensions,max_tokens", "a,x,8,", "b,,,", "c,y,0,", "d,z,,5")},
		{modeEmbeddings, lines("id,prompt", "a,x")},
		{modeSchema, lines("id,prompt,response_format", "a,p,json_object", "b,p,")},
	} {
		f.Add([]byte(s.in), s.mode)
	}
	f.Fuzz(func(t *testing.T, data []byte, mode uint8) {
		opts := fuzzOptions[int(mode)%len(fuzzOptions)]
		opts.Format = input.FormatCSV
		res := checkRead(t, data, opts)

		nonBlank := nonBlankLines(data)
		var fe *input.FileError
		switch {
		case res.err == nil:
		case errors.Is(res.err, input.ErrEmpty):
			if res.stats != (input.Stats{}) {
				t.Errorf("ErrEmpty with stats %+v", res.stats)
			}
		case errors.As(res.err, &fe):
			if len(nonBlank) == 0 || fe.Line < nonBlank[0] || fe.Line > lineCount(data) {
				t.Errorf("FileError on line %d; the header starts on line %v of %d", fe.Line, nonBlank[:min(1, len(nonBlank))], lineCount(data))
			}
			if !strings.HasPrefix(fe.Error(), "line "+strconv.Itoa(fe.Line)+": ") || fe.Msg == "" {
				t.Errorf("FileError %q does not name its line %d", fe.Error(), fe.Line)
			}
			if res.stats != (input.Stats{}) {
				t.Errorf("FileError %v after stats %+v: the header is read before any record", fe, res.stats)
			}
		default:
			t.Fatalf("read ended with %v; want io.EOF, ErrEmpty or a *FileError", res.err)
		}
		if res.err == nil && res.stats.Lines == 0 {
			t.Errorf("io.EOF after no record; want ErrEmpty")
		}
		// Records start after the header, which starts on the first
		// non-blank line.
		for _, l := range outcomeLines(res) {
			if l <= nonBlank[0] {
				t.Errorf("outcome on line %d, not after the header on line %d", l, nonBlank[0])
			}
		}
		// Every item has exactly the header's fields, and Fields() is the
		// header (checkItem checked that each field is in it).
		for _, rec := range res.recs {
			if len(rec.Item.Fields) != len(res.fields) {
				t.Errorf("line %d: fields %v, want the header's %v", rec.Line, rec.Item.Fields, res.fields)
			}
		}
		if opts.MaxItemBytes > 0 {
			for _, rec := range res.recs {
				n := 0
				for _, v := range rec.Item.Fields {
					n += len(v)
				}
				if n > opts.MaxItemBytes {
					t.Errorf("record on line %d holds %d bytes, over --max-item-bytes %d, and was accepted", rec.Line, n, opts.MaxItemBytes)
				}
			}
		}
	})
}

// checkRead reads data twice, once in one Read and once a byte per Read,
// checks that both reads agree, and checks the invariants common to both
// formats. It returns the first read.
func checkRead(t *testing.T, data []byte, opts input.Options) result {
	t.Helper()
	res := readFrom(t, bytes.NewReader(data), "-", opts)
	again := readFrom(t, iotest.OneByteReader(bytes.NewReader(data)), "-", opts)
	if !reflect.DeepEqual(res.recs, again.recs) || !slices.Equal(res.rej, again.rej) || res.stats != again.stats ||
		!slices.Equal(res.fields, again.fields) || errText(res.err) != errText(again.err) {
		t.Fatalf("two reads of the same input differ:\n%+v\n%+v", res, again)
	}

	n := lineCount(data)
	seen := map[int]bool{}
	for _, l := range outcomeLines(res) {
		if l < 1 || l > n {
			t.Errorf("outcome on line %d of an input of %d lines", l, n)
		}
		if seen[l] {
			t.Errorf("line %d has two outcomes", l)
		}
		seen[l] = true
	}
	for i := 1; i < len(res.recs); i++ {
		if res.recs[i].Line <= res.recs[i-1].Line {
			t.Errorf("record lines out of order: %d after %d", res.recs[i].Line, res.recs[i-1].Line)
		}
	}
	for i := 1; i < len(res.rej); i++ {
		if res.rej[i].Line <= res.rej[i-1].Line {
			t.Errorf("rejection lines out of order: %d after %d", res.rej[i].Line, res.rej[i-1].Line)
		}
	}

	recLine := map[int]bool{}
	ids := map[string]int{}
	fields := map[string]bool{}
	for _, f := range res.fields {
		fields[f] = true
	}
	for _, rec := range res.recs {
		recLine[rec.Line] = true
		checkItem(t, rec, opts, fields)
		if prev, ok := ids[rec.Item.ID]; ok {
			t.Errorf("id %q accepted on lines %d and %d", rec.Item.ID, prev, rec.Line)
		}
		ids[rec.Item.ID] = rec.Line
	}
	for _, rej := range res.rej {
		if rej.Error == "" || !utf8.ValidString(rej.Error) {
			t.Errorf("rejection of line %d has message %q: want non-empty valid UTF-8", rej.Line, rej.Error)
		}
		// A reused id names the line of the accepted item that first used it.
		if m := reusedID.FindStringSubmatch(rej.Error); m != nil {
			first, _ := strconv.Atoi(m[1])
			if first >= rej.Line || !recLine[first] {
				t.Errorf("line %d: %q names line %d, which is not an earlier accepted line", rej.Line, rej.Error, first)
			}
		}
	}
	return res
}

var reusedID = regexp.MustCompile(`^id ".*" already used on line (\d+) with different content$`)

var roles = []string{"system", "user", "assistant", "tool", "developer"}

// checkItem checks one accepted item against opts and the reader's Fields.
func checkItem(t *testing.T, rec input.Record, opts input.Options, fields map[string]bool) {
	t.Helper()
	it := rec.Item
	if it.ID == "" {
		t.Errorf("line %d: accepted with an empty id", rec.Line)
	}
	if given := it.Fields["id"]; strings.TrimSpace(given) != "" {
		if it.ID != given {
			t.Errorf("line %d: id %q, want the input's %q verbatim", rec.Line, it.ID, given)
		}
	} else if want := withID(it, "").DerivedID(); it.ID != want {
		t.Errorf("line %d: item without an id has id %q, want its DerivedID %q", rec.Line, it.ID, want)
	}
	if !utf8.ValidString(string(it.Canonical())) || !utf8.ValidString(it.ID) {
		t.Errorf("line %d: item is not valid UTF-8: %q", rec.Line, it.Canonical())
	}
	for k, v := range it.Fields {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			t.Errorf("line %d: field %q = %q is not valid UTF-8", rec.Line, k, v)
		}
		if !fields[k] {
			t.Errorf("line %d: field %q is missing from Fields()", rec.Line, k)
		}
	}
	switch {
	case opts.Format == input.FormatOpenAIBatch && !it.Batch:
		t.Errorf("line %d: --format openai-batch but the item is no batch item", rec.Line)
	case !it.Batch && it.IsEmbedding() != (opts.Endpoint == tasks.EndpointEmbeddings):
		t.Errorf("line %d: --endpoint %q but the item's endpoint is %q", rec.Line, opts.Endpoint, it.Endpoint)
	}
	if it.IsEmbedding() {
		checkEmbedding(t, rec, opts)
		return
	}
	if it.Endpoint != "" || it.Input != nil || it.Dimensions != 0 {
		t.Errorf("line %d: chat item with embedding fields: %s", rec.Line, it.Canonical())
	}
	if len(it.Messages) == 0 {
		t.Errorf("line %d: accepted with no message", rec.Line)
	}
	for i, m := range it.Messages {
		if !slices.Contains(roles, m.Role) {
			t.Errorf("line %d: messages[%d] has role %q", rec.Line, i, m.Role)
		}
	}
	if opts.Template != "" && !it.Batch {
		// The template renders the one user message, never a blank one; a
		// batch line's body is the request as it is.
		if len(it.Messages) != 1 || it.Messages[0].Role != "user" || strings.TrimSpace(it.Messages[0].Content) == "" {
			t.Errorf("line %d: with --template, messages %q; want one non-blank user message", rec.Line, it.Messages)
		}
	}
	if opts.System != "" && len(it.Messages) > 0 && it.Messages[0].Role != "system" {
		t.Errorf("line %d: --system set but messages start with %q", rec.Line, it.Messages[0].Role)
	}
	if opts.JSONOutput && !it.WantsJSON() {
		t.Errorf("line %d: --json-output set but response_format is %+v", rec.Line, it.ResponseFormat)
	}
	if opts.Schema != nil && (it.ResponseFormat == nil || it.ResponseFormat.Type != "json_schema" || it.ResponseFormat.JSONSchema != opts.Schema) {
		t.Errorf("line %d: --schema set but response_format is %+v", rec.Line, it.ResponseFormat)
	}
	checkToolFields(t, rec, opts)
}

// checkEmbedding checks an accepted embedding item: inputs and no chat
// fields, whatever the options.
func checkEmbedding(t *testing.T, rec input.Record, opts input.Options) {
	t.Helper()
	it := rec.Item
	if len(it.Input) == 0 || len(it.Input) > 2048 || slices.Contains(it.Input, "") {
		t.Errorf("line %d: embedding item with %d inputs %q: want 1 to 2048 non-empty ones", rec.Line, len(it.Input), it.Input)
	}
	if opts.Template != "" && !it.Batch && (len(it.Input) != 1 || strings.TrimSpace(it.Input[0]) == "") {
		t.Errorf("line %d: with --template, inputs %q; want one non-blank input", rec.Line, it.Input)
	}
	if it.Dimensions < 0 || it.Dimensions > 1<<16 {
		t.Errorf("line %d: dimensions %d", rec.Line, it.Dimensions)
	}
	if it.Messages != nil || it.MaxTokens != 0 || it.Temperature != nil || it.TopP != nil || it.Stop != nil || it.Seed != nil ||
		it.ResponseFormat != nil || it.Tools != nil || it.ToolChoice != nil || it.ParallelToolCalls != nil {
		t.Errorf("line %d: embedding item with chat fields: %s", rec.Line, it.Canonical())
	}
}

// checkToolFields checks an accepted item's agent fields: none without
// job tools; otherwise tools a set of the job's, tool_choice one of
// OpenAI's forms naming an allowed tool, and messages in OpenAI's tool
// call order (every call answered by exactly one tool message right after
// it, call ids unique).
func checkToolFields(t *testing.T, rec input.Record, opts input.Options) {
	t.Helper()
	it := rec.Item
	hasCalls := slices.ContainsFunc(it.Messages, func(m tasks.Message) bool { return len(m.ToolCalls) > 0 || m.Role == "tool" || m.ToolCallID != "" })
	if len(opts.Tools) == 0 {
		if it.Tools != nil || it.ToolChoice != nil || it.ParallelToolCalls != nil || hasCalls {
			t.Errorf("line %d: agent fields in a job without tools: %s", rec.Line, it.Canonical())
		}
		return
	}
	for i, n := range it.Tools {
		if !slices.Contains(opts.Tools, n) || slices.Contains(it.Tools[:i], n) {
			t.Errorf("line %d: tools %q: want distinct names of the job's tools %q", rec.Line, it.Tools, opts.Tools)
		}
	}
	if it.Tools != nil && len(it.Tools) == 0 {
		t.Errorf("line %d: tools is empty but not nil", rec.Line)
	}
	if it.ToolChoice != nil {
		allowed := it.Tools
		if len(allowed) == 0 {
			allowed = opts.Tools
		}
		var name string
		switch c := string(it.ToolChoice); {
		case c == `"none"` || c == `"auto"` || c == `"required"`:
		case strings.HasPrefix(c, `{"type":"function","function":{"name":`) && strings.HasSuffix(c, `}}`):
			var v struct{ Function struct{ Name string } }
			if err := json.Unmarshal(it.ToolChoice, &v); err != nil {
				t.Errorf("line %d: tool_choice %s: %v", rec.Line, c, err)
			}
			name = v.Function.Name
			if !slices.Contains(allowed, name) {
				t.Errorf("line %d: tool_choice names %q, not one of %q", rec.Line, name, allowed)
			}
		default:
			t.Errorf("line %d: tool_choice %s is not one of OpenAI's forms, compact", rec.Line, c)
		}
	}
	ids := map[string]bool{}
	for i := 0; i < len(it.Messages); i++ {
		m := it.Messages[i]
		if m.Role == "tool" {
			t.Errorf("line %d: messages[%d] is a tool message that follows no assistant tool_calls", rec.Line, i)
			continue
		}
		if m.ToolCallID != "" || (len(m.ToolCalls) > 0 && m.Role != "assistant") {
			t.Errorf("line %d: messages[%d] (%s) has tool fields %+v", rec.Line, i, m.Role, m)
		}
		if len(m.ToolCalls) == 0 {
			continue
		}
		want := map[string]bool{}
		for _, c := range m.ToolCalls {
			if c.ID == "" || ids[c.ID] || c.Type != "function" || c.Function.Name == "" {
				t.Errorf("line %d: messages[%d]: bad or repeated call %+v", rec.Line, i, c)
			}
			ids[c.ID], want[c.ID] = true, true
		}
		got := map[string]bool{}
		for i+1 < len(it.Messages) && it.Messages[i+1].Role == "tool" {
			i++
			id := it.Messages[i].ToolCallID
			if !want[id] || got[id] {
				t.Errorf("line %d: messages[%d] answers %q, not an unanswered call of its group", rec.Line, i, id)
			}
			got[id] = true
		}
		if len(got) != len(want) {
			t.Errorf("line %d: calls %v answered only by %v", rec.Line, want, got)
		}
	}
}

// outcomeLines returns the lines of the accepted and rejected items.
func outcomeLines(res result) []int {
	var ls []int
	for _, r := range res.recs {
		ls = append(ls, r.Line)
	}
	for _, r := range res.rej {
		ls = append(ls, r.Line)
	}
	return ls
}

// lineCount is the number of lines of data, a last line without "\n"
// included.
func lineCount(data []byte) int {
	n := bytes.Count(data, []byte("\n"))
	if len(data) > 0 && data[len(data)-1] != '\n' {
		n++
	}
	return n
}

// nonBlankLines returns the 1-based numbers of the lines of data that are
// not all ASCII whitespace, a leading byte order mark ignored.
func nonBlankLines(data []byte) []int {
	data = bytes.TrimPrefix(data, []byte("\ufeff"))
	var ls []int
	for i, l := range bytes.SplitAfter(data, []byte("\n")) {
		if len(bytes.TrimLeft(l, " \t\n\r\v\f")) > 0 {
			ls = append(ls, i+1)
		}
	}
	return ls
}

// lineOf returns line n (1-based) of data without its "\n" or "\r\n", a
// leading byte order mark removed.
func lineOf(data []byte, n int) []byte {
	data = bytes.TrimPrefix(data, []byte("\ufeff"))
	ls := bytes.SplitAfter(data, []byte("\n"))
	if n < 1 || n > len(ls) {
		return nil
	}
	return bytes.TrimSuffix(bytes.TrimSuffix(ls[n-1], []byte("\n")), []byte("\r"))
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
