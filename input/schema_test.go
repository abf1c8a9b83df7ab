package input_test

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/llmfleet/llmfleet/input"
	"github.com/llmfleet/llmfleet/tasks"
)

// reviewSchema is a json_schema response format as a --schema file or an
// item gives it, with spaces the reader removes.
const reviewSchema = `{"name":"review","schema":{ "type" : "object", "properties" : {"score":{"type":"integer"},"summary":{"type":"string"}}, "required":["score"] },"strict":true}`

// reviewCompact is reviewSchema's schema as stored: compact, keys in the
// order given.
const reviewCompact = `{"type":"object","properties":{"score":{"type":"integer"},"summary":{"type":"string"}},"required":["score"]}`

func parsedSchema(t *testing.T, js string) *tasks.JSONSchema {
	t.Helper()
	s, err := input.ParseJSONSchema([]byte(js))
	if err != nil {
		t.Fatalf("ParseJSONSchema(%s): %v", js, err)
	}
	return s
}

// wantRejection checks that exactly one line was rejected, with exactly msg
// (or a message starting with msg when prefix), and that the good items
// were all accepted.
func wantRejection(t *testing.T, res result, line int, msg string, prefix bool, ids ...string) {
	t.Helper()
	if res.err != nil {
		t.Fatalf("read error: %v", res.err)
	}
	switch {
	case len(res.rej) != 1:
		t.Errorf("rejections %+v, want one on line %d: %q", res.rej, line, msg)
	case prefix && (res.rej[0].Line != line || !strings.HasPrefix(res.rej[0].Error, msg)):
		t.Errorf("rejection %+v, want line %d starting with %q", res.rej[0], line, msg)
	case !prefix && res.rej[0] != input.Rejection{Line: line, Error: msg}:
		t.Errorf("rejection\n %+v\nwant\n %+v", res.rej[0], input.Rejection{Line: line, Error: msg})
	}
	if got := res.ids(); !slices.Equal(got, ids) {
		t.Errorf("accepted %v, want %v", got, ids)
	}
}

// TestSchemaRejections: every way a json_schema response format can be
// wrong, in JSONL and in a CSV cell, each bad line between two good ones.
func TestSchemaRejections(t *testing.T) {
	t.Parallel()
	const good1, good2 = `{"id":"g1","prompt":"one"}`, `{"id":"g2","prompt":"two"}`
	const csvHead, csvGood1, csvGood2 = "id,prompt,response_format", "g1,one,", "g2,two,"
	rf := func(js string) string {
		return `{"id":"x","prompt":"p","response_format":{"type":"json_schema","json_schema":` + js + `}}`
	}
	const nameRule = "response_format.json_schema: name must be 1 to 64 letters, digits, _ or -, got "
	const needs = `response_format of type "json_schema" needs "json_schema": {"name", "schema"}`
	schema := parsedSchema(t, reviewSchema)
	tests := []struct {
		name   string
		file   string // "in.csv": in is a record under csvHead
		opts   input.Options
		in     string
		msg    string
		prefix bool // msg is the start of the message (the rest is the schema compiler's)
	}{
		// name
		{name: "name missing", in: rf(`{"schema":{"type":"object"}}`), msg: nameRule + `""`},
		{name: "name empty", in: rf(`{"name":"","schema":{"type":"object"}}`), msg: nameRule + `""`},
		{name: "name with a space", in: rf(`{"name":"my review","schema":{"type":"object"}}`), msg: nameRule + `"my review"`},
		{name: "name with a dot", in: rf(`{"name":"review.v2","schema":{"type":"object"}}`), msg: nameRule + `"review.v2"`},
		{name: "name of 65 characters", in: rf(`{"name":"` + strings.Repeat("n", 65) + `","schema":{"type":"object"}}`),
			msg: nameRule + `"` + strings.Repeat("n", 65) + `"`},
		{name: "name not a string", in: rf(`{"name":5,"schema":{"type":"object"}}`),
			msg: "response_format.json_schema: json: cannot unmarshal number into Go struct field JSONSchema.name of type string"},

		// schema
		{name: "schema missing", in: rf(`{"name":"review"}`),
			msg: "response_format.json_schema: schema must be a JSON Schema object, got nothing"},
		{name: "schema null", in: rf(`{"name":"review","schema":null}`),
			msg: "response_format.json_schema: schema must be a JSON Schema object, got null"},
		{name: "schema an array", in: rf(`{"name":"review","schema":[{"type":"object"}]}`),
			msg: "response_format.json_schema: schema must be a JSON Schema object, got array"},
		{name: "schema true (a JSON Schema, but not an object)", in: rf(`{"name":"review","schema":true}`),
			msg: "response_format.json_schema: schema must be a JSON Schema object, got bool"},
		{name: "schema a string", in: rf(`{"name":"review","schema":"{\"type\":\"object\"}"}`),
			msg: "response_format.json_schema: schema must be a JSON Schema object, got string"},
		{name: "schema does not compile", in: rf(`{"name":"review","schema":{"type":5}}`),
			msg: "response_format.json_schema: schema: ", prefix: true},
		{name: "schema refers outside itself", in: rf(`{"name":"review","schema":{"$ref":"https://example.com/s.json"}}`),
			msg: "response_format.json_schema: schema: ", prefix: true},

		// other keys
		{name: "unknown key in json_schema", in: rf(`{"name":"review","schema":{"type":"object"},"schema_version":2}`),
			msg: `response_format.json_schema: json: unknown field "schema_version"`},
		{name: "strict not a boolean", in: rf(`{"name":"review","schema":{"type":"object"},"strict":"yes"}`),
			msg: "response_format.json_schema: json: cannot unmarshal string into Go struct field JSONSchema.strict of type bool"},
		{name: "description not a string", in: rf(`{"name":"review","schema":{"type":"object"},"description":1}`),
			msg: "response_format.json_schema: json: cannot unmarshal number into Go struct field JSONSchema.description of type string"},

		// json_schema itself
		{name: "json_schema missing", in: `{"id":"x","prompt":"p","response_format":{"type":"json_schema"}}`, msg: needs},
		{name: "json_schema null", in: rf(`null`), msg: needs},
		{name: "json_schema a string", in: rf(`"review"`), msg: needs},
		{name: "json_schema an array", in: rf(`[` + reviewSchema + `]`), msg: needs},
		{name: "json_schema with type json_object", in: `{"id":"x","prompt":"p","response_format":{"type":"json_object","json_schema":` + reviewSchema + `}}`,
			msg: `response_format.json_schema goes with type "json_schema", got type "json_object"`},
		{name: "json_schema with type text", in: `{"id":"x","prompt":"p","response_format":{"type":"text","json_schema":` + reviewSchema + `}}`,
			msg: `response_format.json_schema goes with type "json_schema", got type "text"`},
		{name: "null json_schema with type json_object", in: `{"id":"x","prompt":"p","response_format":{"type":"json_object","json_schema":null}}`,
			msg: `response_format.json_schema goes with type "json_schema", got type "json_object"`},
		{name: "schema beside json_schema", in: `{"id":"x","prompt":"p","response_format":{"type":"json_schema","schema":{"type":"object"}}}`,
			msg: `response_format has unsupported key "schema" (only type and json_schema)`},
		{name: "unknown type", in: `{"id":"x","prompt":"p","response_format":{"type":"xml"}}`,
			msg: `response_format.type must be "text", "json_object" or "json_schema", got "xml"`},
		{name: "type missing", in: `{"id":"x","prompt":"p","response_format":{"json_schema":` + reviewSchema + `}}`,
			msg: "response_format.type is missing"},

		// Options.Schema replaces the item's response_format, but the item's
		// own is still checked: a bad line stays a bad line.
		{name: "bad own response_format under --schema", opts: input.Options{Schema: schema},
			in: rf(`{"name":"a b","schema":{}}`), msg: nameRule + `"a b"`},

		// CSV: the cell holds the JSON object, or just the type.
		{name: "CSV bad name", file: "in.csv", in: "x,p," + csvCell(`{"type":"json_schema","json_schema":{"name":"a b","schema":{}}}`),
			msg: nameRule + `"a b"`},
		{name: "CSV schema does not compile", file: "in.csv", in: "x,p," + csvCell(`{"type":"json_schema","json_schema":{"name":"r","schema":{"type":5}}}`),
			msg: "response_format.json_schema: schema: ", prefix: true},
		{name: "CSV unknown key", file: "in.csv", in: "x,p," + csvCell(`{"type":"json_schema","json_schema":{"name":"r","schema":{},"x":1}}`),
			msg: `response_format.json_schema: json: unknown field "x"`},
		{name: "CSV bare type json_schema has no schema", file: "in.csv", in: "x,p,json_schema", msg: needs},
		{name: "CSV malformed JSON object is read as the type", file: "in.csv", in: "x,p," + csvCell(`{"type":"json_schema"`),
			msg: `response_format.type must be "text", "json_object" or "json_schema", got "{\"type\":\"json_schema\""`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			file, in, line := "in.jsonl", lines(good1, tc.in, good2), 2
			if tc.file == "in.csv" {
				file, in, line = tc.file, lines(csvHead, csvGood1, tc.in, csvGood2), 3
			}
			wantRejection(t, readAll(t, file, in, tc.opts), line, tc.msg, tc.prefix, "g1", "g2")
		})
	}
}

// TestSchemaCompileErrorNamesTheKeyword: a schema that does not compile is
// reported with what the compiler says is wrong.
func TestSchemaCompileErrorNamesTheKeyword(t *testing.T) {
	t.Parallel()
	res := readAll(t, "in.jsonl", lines(`{"id":"x","prompt":"p","response_format":{"type":"json_schema","json_schema":{"name":"r","schema":{"type":5}}}}`), input.Options{})
	if len(res.rej) != 1 || !strings.Contains(res.rej[0].Error, "/type") {
		t.Errorf("rejections %+v, want one naming /type", res.rej)
	}
	res = readAll(t, "in.jsonl", lines(`{"id":"x","prompt":"p","response_format":{"type":"json_schema","json_schema":{"name":"r","schema":{"$ref":"https://example.com/s.json"}}}}`), input.Options{})
	if len(res.rej) != 1 || !strings.Contains(res.rej[0].Error, "only references inside the schema are allowed") {
		t.Errorf("rejections %+v, want one refusing the outside reference", res.rej)
	}
}

// TestSchemaItems: a json_schema response format is accepted, kept as
// given but compact, and is part of the item's content.
func TestSchemaItems(t *testing.T) {
	t.Parallel()
	yes, no := true, false
	name64 := strings.Repeat("a", 62) + "_-"
	in := lines(
		`{"id":"a","prompt":"rate it","response_format":{"type":"json_schema","json_schema":`+reviewSchema+`}}`,
		`{"id":"b","prompt":"p","response_format":{"json_schema":{"strict":false,"schema":{"type":"array"},"description":"a list","name":"list_v2"},"type":"json_schema"}}`,
		`{"id":"c","prompt":"p","response_format":{"type":"json_schema","json_schema":{"name":"`+name64+`","schema":{}}}}`,
	)
	res := readAll(t, "in.jsonl", in, input.Options{})
	if len(res.recs) != 3 {
		t.Fatalf("accepted %v, rejected %+v", res.ids(), res.rej)
	}
	want := []*tasks.ResponseFormat{
		{Type: "json_schema", JSONSchema: &tasks.JSONSchema{Name: "review", Schema: json.RawMessage(reviewCompact), Strict: &yes}},
		{Type: "json_schema", JSONSchema: &tasks.JSONSchema{Name: "list_v2", Description: "a list", Schema: json.RawMessage(`{"type":"array"}`), Strict: &no}},
		{Type: "json_schema", JSONSchema: &tasks.JSONSchema{Name: name64, Schema: json.RawMessage(`{}`)}},
	}
	for i, rec := range res.recs {
		if got := rec.Item.ResponseFormat; !reflect.DeepEqual(got, want[i]) {
			t.Errorf("%s: response_format %s, want %s", rec.Item.ID, mustJSON(got), mustJSON(want[i]))
		}
		if !rec.Item.WantsJSON() {
			t.Errorf("%s: WantsJSON is false for a json_schema response format", rec.Item.ID)
		}
	}
	// The canonical encoding: json_schema's members in OpenAI's order,
	// strict kept when false, omitted when not given.
	if got, want := string(res.recs[0].Item.Canonical()), `{"id":"a","messages":[{"role":"user","content":"rate it"}],`+
		`"response_format":{"type":"json_schema","json_schema":{"name":"review","schema":`+reviewCompact+`,"strict":true}},`+
		`"fields":{"id":"a","prompt":"rate it","response_format":"{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"review\",\"schema\":`+
		strings.ReplaceAll(reviewCompact, `"`, `\"`)+`,\"strict\":true}}"}}`; got != want {
		t.Errorf("canonical\n %s\nwant\n %s", got, want)
	}
	if got := mustJSON(res.recs[1].Item.ResponseFormat); got != `{"type":"json_schema","json_schema":{"name":"list_v2","description":"a list","schema":{"type":"array"},"strict":false}}` {
		t.Errorf("b: response_format encodes as %s", got)
	}
	if got := mustJSON(res.recs[2].Item.ResponseFormat); got != `{"type":"json_schema","json_schema":{"name":"`+name64+`","schema":{}}}` {
		t.Errorf("c: response_format encodes as %s", got)
	}

	// CSV: the cell is the JSON object.
	res = readAll(t, "in.csv", lines("id,prompt,response_format", "a,rate it,"+csvCell(`{"type":"json_schema","json_schema":`+reviewSchema+`}`), "b,p,json_object"), input.Options{})
	if len(res.recs) != 2 {
		t.Fatalf("CSV: accepted %v, rejected %+v", res.ids(), res.rej)
	}
	if got := res.recs[0].Item.ResponseFormat; !reflect.DeepEqual(got, want[0]) {
		t.Errorf("CSV: response_format %s, want %s", mustJSON(got), mustJSON(want[0]))
	}
	if got := res.recs[1].Item.ResponseFormat; got == nil || got.Type != "json_object" || got.JSONSchema != nil {
		t.Errorf("CSV json_object: response_format %s", mustJSON(got))
	}
}

// TestSchemaDuplicates: the schema is the item's content. The same schema
// with other spacing is the same item again; another schema, or the same
// keys in another order (kept as given, so another text), is a conflict.
func TestSchemaDuplicates(t *testing.T) {
	t.Parallel()
	item := func(schema string) string {
		return `{"id":"a","prompt":"p","response_format":{"type":"json_schema","json_schema":{"name":"r","schema":` + schema + `}}}`
	}
	in := lines(
		item(`{"type":"object","required":["x"]}`),
		item(`{ "type": "object", "required": [ "x" ] }`),
		item(`{"required":["x"],"type":"object"}`),
		item(`{"type":"object","required":["y"]}`),
	)
	res := readAll(t, "in.jsonl", in, input.Options{})
	if res.stats.DuplicatesCollapsed != 1 || len(res.recs) != 1 {
		t.Errorf("accepted %v, stats %+v; want a once, 1 collapsed", res.ids(), res.stats)
	}
	want := []input.Rejection{
		{Line: 3, Error: `id "a" already used on line 1 with different content`},
		{Line: 4, Error: `id "a" already used on line 1 with different content`},
	}
	if !slices.Equal(res.rej, want) {
		t.Errorf("rejections %+v, want %+v", res.rej, want)
	}
	if got := string(res.recs[0].Item.ResponseFormat.JSONSchema.Schema); got != `{"type":"object","required":["x"]}` {
		t.Errorf("schema stored as %s", got)
	}
}

// TestSchemaOption: Options.Schema (--schema FILE) is every chat item's
// response format, over the item's own and over --json-output's; embedding
// items get none.
func TestSchemaOption(t *testing.T) {
	t.Parallel()
	schema := parsedSchema(t, reviewSchema)
	want := &tasks.ResponseFormat{Type: "json_schema", JSONSchema: schema}
	in := lines(
		`{"id":"plain","prompt":"p"}`,
		`{"id":"object","prompt":"p","response_format":{"type":"json_object"}}`,
		`{"id":"text","prompt":"p","response_format":{"type":"text"}}`,
		`{"id":"own","prompt":"p","response_format":{"type":"json_schema","json_schema":{"name":"mine","schema":{"type":"array"}}}}`,
		`{"id":"msgs","messages":[{"role":"user","content":"hi"}]}`,
		`{"custom_id":"batch","method":"POST","url":"/v1/chat/completions","body":{"messages":[{"role":"user","content":"hi"}],"response_format":{"type":"json_object"}}}`,
		`{"custom_id":"emb","method":"POST","url":"/v1/embeddings","body":{"input":"hi"}}`,
	)
	for _, opts := range []input.Options{{Schema: schema}, {Schema: schema, JSONOutput: true}} {
		res := readAll(t, "in.jsonl", in, opts)
		if len(res.recs) != 7 {
			t.Fatalf("accepted %v, rejected %+v", res.ids(), res.rej)
		}
		for _, rec := range res.recs {
			got := rec.Item.ResponseFormat
			if rec.Item.ID == "emb" {
				if got != nil {
					t.Errorf("embedding item got response_format %s", mustJSON(got))
				}
				continue
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s: response_format %s, want %s", rec.Item.ID, mustJSON(got), mustJSON(want))
			}
		}
	}

	// A template item and a CSV item get it too; embedding items do not.
	res := readAll(t, "in.jsonl", lines(`{"id":"t","q":"x"}`), input.Options{Schema: schema, Template: "rate {{.q}}"})
	if len(res.recs) != 1 || !reflect.DeepEqual(res.recs[0].Item.ResponseFormat, want) {
		t.Errorf("template item: %+v %+v", res.recs, res.rej)
	}
	res = readAll(t, "in.csv", lines("id,prompt,response_format", "c,p,json_object", "d,p,"), input.Options{Schema: schema})
	if len(res.recs) != 2 || !reflect.DeepEqual(res.recs[0].Item.ResponseFormat, want) || !reflect.DeepEqual(res.recs[1].Item.ResponseFormat, want) {
		t.Errorf("CSV items: %+v %+v", res.recs, res.rej)
	}
	emb := input.Options{Schema: schema, Endpoint: tasks.EndpointEmbeddings}
	res = readAll(t, "in.jsonl", lines(`{"id":"e","input":"x"}`), emb)
	if len(res.recs) != 1 || res.recs[0].Item.ResponseFormat != nil {
		t.Errorf("embedding item under --schema: %+v %+v", res.recs, res.rej)
	}
	res = readAll(t, "in.csv", lines("id,input", "e,x"), emb)
	if len(res.recs) != 1 || res.recs[0].Item.ResponseFormat != nil {
		t.Errorf("CSV embedding item under --schema: %+v %+v", res.recs, res.rej)
	}

	// The schema is part of the finished item: derived ids differ.
	other := parsedSchema(t, `{"name":"review","schema":{"type":"object"}}`)
	a := readAll(t, "in.jsonl", lines(`{"prompt":"p"}`), input.Options{Schema: schema}).ids()
	b := readAll(t, "in.jsonl", lines(`{"prompt":"p"}`), input.Options{Schema: other}).ids()
	c := readAll(t, "in.jsonl", lines(`{"prompt":"p"}`), input.Options{}).ids()
	if a[0] == b[0] || a[0] == c[0] || b[0] == c[0] {
		t.Errorf("derived ids %s, %s, %s: want the schema to change them", a[0], b[0], c[0])
	}
}

// TestSchemaFile: a --schema file is OpenAI's json_schema object, or a bare
// JSON Schema named after the file.
func TestSchemaFile(t *testing.T) {
	t.Parallel()
	yes := true
	const bare = "{\n  \"type\": \"object\",\n  \"properties\": {\"score\": {\"type\": \"integer\"}}\n}\n"
	const bareCompact = `{"type":"object","properties":{"score":{"type":"integer"}}}`
	for _, tc := range []struct {
		name, path, file string
		want             tasks.JSONSchema
	}{
		{name: "bare schema named after the file, dots as _", path: "schemas/review.schema.json", file: bare,
			want: tasks.JSONSchema{Name: "review_schema", Schema: json.RawMessage(bareCompact)}},
		{name: "bare schema, spaces as _", path: "/tmp/My Review (v2).json", file: bare,
			want: tasks.JSONSchema{Name: "My_Review_v2_", Schema: json.RawMessage(bareCompact)}},
		{name: "bare schema, name too long", path: strings.Repeat("x", 65) + ".json", file: bare,
			want: tasks.JSONSchema{Name: "answer", Schema: json.RawMessage(bareCompact)}},
		{name: "bare schema, no extension", path: "review", file: bare,
			want: tasks.JSONSchema{Name: "review", Schema: json.RawMessage(bareCompact)}},
		{name: "bare schema with a name property", path: "person.json", file: `{"type":"object","properties":{"name":{"type":"string"}}}`,
			want: tasks.JSONSchema{Name: "person", Schema: json.RawMessage(`{"type":"object","properties":{"name":{"type":"string"}}}`)}},
		{name: "json_schema object, its name wins", path: "other.json", file: reviewSchema,
			want: tasks.JSONSchema{Name: "review", Schema: json.RawMessage(reviewCompact), Strict: &yes}},
		{name: "json_schema object with a description", path: "x.json", file: `{"description":"d","name":"r","schema":{}}`,
			want: tasks.JSONSchema{Name: "r", Description: "d", Schema: json.RawMessage(`{}`)}},
		// Without "name" the object is still the json_schema object (not a
		// schema that would constrain nothing), named after the file.
		{name: "json_schema object without a name", path: "rating.json", file: `{"schema":` + bare + `,"strict":true}`,
			want: tasks.JSONSchema{Name: "rating", Schema: json.RawMessage(bareCompact), Strict: &yes}},
	} {
		got, err := input.SchemaFile([]byte(tc.file), tc.path)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if !reflect.DeepEqual(*got, tc.want) {
			t.Errorf("%s: %s, want %s", tc.name, mustJSON(got), mustJSON(tc.want))
		}
	}

	for _, tc := range []struct {
		name, file, msg string
		prefix          bool
	}{
		{name: "not JSON", file: "type: object\n", msg: "not a JSON object: invalid character 'y' in literal true (expecting 'r')"},
		{name: "truncated JSON", file: `{"type":"object"`, msg: "not a JSON object: unexpected end of JSON input"},
		{name: "an array", file: `[{"type":"object"}]`, msg: "not a JSON object: json: cannot unmarshal array into Go value of type map[string]json.RawMessage"},
		{name: "bare schema that does not compile", file: `{"type":5}`, msg: "schema: ", prefix: true},
		{name: "json_schema object with a bad name", file: `{"name":"a b","schema":{}}`, msg: `name must be 1 to 64 letters, digits, _ or -, got "a b"`},
		{name: "json_schema object with an unknown key", file: `{"name":"r","schema":{},"strict":true,"version":2}`, msg: `json: unknown field "version"`},
		{name: "json_schema object without a name, unknown key", file: `{"schema":{},"format":"x"}`, msg: `json: unknown field "format"`},
		{name: "json_schema object whose schema is not an object", file: `{"name":"r","schema":"x"}`, msg: "schema must be a JSON Schema object, got string"},
		{name: "json_schema object without a name whose schema does not compile", file: `{"schema":{"type":5}}`, msg: "schema: ", prefix: true},
	} {
		_, err := input.SchemaFile([]byte(tc.file), "review.json")
		switch {
		case err == nil:
			t.Errorf("%s: no error, want %q", tc.name, tc.msg)
		case tc.prefix && !strings.HasPrefix(err.Error(), tc.msg), !tc.prefix && err.Error() != tc.msg:
			t.Errorf("%s: error %q, want %q", tc.name, err, tc.msg)
		}
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return "!" + err.Error()
	}
	return string(b)
}
