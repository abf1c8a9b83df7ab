package simulator_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"testing"

	openai "github.com/sashabaranov/go-openai"

	"github.com/llmfleet/llmfleet/schema"
	"github.com/llmfleet/llmfleet/simulator"
	"github.com/llmfleet/llmfleet/tasks"
)

// schemaRequest is a raw chat completion asking for json_schema with the
// given schema (JSON text; "" leaves schema out).
func schemaRequest(content, rawSchema string) map[string]any {
	js := map[string]any{"name": "answer", "strict": true}
	if rawSchema != "" {
		js["schema"] = json.RawMessage(rawSchema)
	}
	return map[string]any{
		"model":           "gpt-4o-mini",
		"messages":        []map[string]string{{"role": "user", "content": content}},
		"response_format": map[string]any{"type": "json_schema", "json_schema": js},
	}
}

// content posts body as a chat completion and returns the answer's content.
func (b *testBundle) content(t *testing.T, body any) string {
	t.Helper()
	resp, raw := b.do(t, http.MethodPost, "/v1/chat/completions", body, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d (%s)", resp.StatusCode, raw)
	}
	var cc openai.ChatCompletionResponse
	if err := json.Unmarshal(raw, &cc); err != nil {
		t.Fatal(err)
	}
	return cc.Choices[0].Message.Content
}

func TestJSONSchemaAnswers(t *testing.T) {
	t.Parallel()
	b := setup(t, simulator.Config{})
	const content = "classify this"
	reply := "mock:" + key(content)
	tests := []struct {
		name   string
		schema string
		want   string // the exact answer, when the test pins it
	}{
		{
			name: "strict object in property order",
			schema: `{"type":"object","additionalProperties":false,
				"properties":{"sentiment":{"type":"string","enum":["positive","negative"]},
					"summary":{"type":"string"},"score":{"type":"number"},"count":{"type":"integer"},
					"ok":{"type":"boolean"},"tags":{"type":"array","items":{"type":"string"}},
					"note":{"type":["string","null"]},"nothing":{"type":"null"},"kind":{"const":"fixed"}},
				"required":["sentiment","summary","score","count","ok","tags","note","nothing","kind"]}`,
			want: `{"sentiment":"positive","summary":"` + reply + `","score":0,"count":0,"ok":true,"tags":[],"note":"` + reply + `","nothing":null,"kind":"fixed"}`,
		},
		{
			name:   "only required properties",
			schema: `{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"integer"}},"required":["b"]}`,
			want:   `{"b":0}`,
		},
		{
			name:   "every listed property without required",
			schema: `{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"integer"}}}`,
			want:   `{"a":"` + reply + `","b":0}`,
		},
		{
			name:   "required name without a property schema",
			schema: `{"type":"object","required":["x","y"],"properties":{"y":{"type":"boolean"}},"additionalProperties":{"type":"integer","minimum":2}}`,
			want:   `{"y":true,"x":2}`,
		},
		{
			name: "$defs and definitions refs, anyOf with null",
			schema: `{"type":"object","required":["person","pet","owner"],
				"properties":{"person":{"$ref":"#/$defs/Person"},
					"pet":{"anyOf":[{"type":"null"},{"$ref":"#/definitions/Pet"}]},
					"owner":{"oneOf":[{"$ref":"#/$defs/Person"},{"type":"string"}]}},
				"$defs":{"Person":{"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer","minimum":18}},"required":["name","age"],"additionalProperties":false}},
				"definitions":{"Pet":{"type":"object","properties":{"species":{"enum":["cat","dog"]}},"required":["species"]}}}`,
			want: `{"person":{"name":"` + reply + `","age":18},"pet":{"species":"cat"},"owner":{"name":"` + reply + `","age":18}}`,
		},
		{
			name: "optional recursion stops",
			schema: `{"type":"object","properties":{"root":{"$ref":"#/$defs/Node"}},"required":["root"],
				"$defs":{"Node":{"type":"object","properties":{"value":{"type":"integer"},"children":{"type":"array","items":{"$ref":"#/$defs/Node"}}},"required":["value","children"]}}}`,
			want: `{"root":{"value":0,"children":[]}}`,
		},
		{
			name: "number bounds",
			schema: `{"type":"object","required":["a","b","c","d","e","f","g","h"],"properties":{
				"a":{"type":"integer","minimum":3},
				"b":{"type":"integer","exclusiveMinimum":5},
				"c":{"type":"integer","maximum":-2},
				"d":{"type":"number","exclusiveMaximum":0},
				"e":{"type":"number","minimum":0.5,"maximum":0.75},
				"f":{"type":"number","exclusiveMinimum":1,"exclusiveMaximum":1.5},
				"g":{"type":"integer","minimum":2.5},
				"h":{"type":"integer","enum":[7,8]}}}`,
			want: `{"a":3,"b":6,"c":-2,"d":-1,"e":0.5,"f":1.25,"g":3,"h":7}`,
		},
		{
			name:   "string lengths",
			schema: `{"type":"object","required":["short","long"],"properties":{"short":{"type":"string","maxLength":5},"long":{"type":"string","minLength":20}}}`,
			want:   `{"short":"mock:","long":"` + reply + `---"}`,
		},
		{
			name:   "arrays with minItems and prefixItems",
			schema: `{"type":"object","required":["xs","pair"],"properties":{"xs":{"type":"array","minItems":2,"items":{"type":"integer","minimum":1}},"pair":{"type":"array","minItems":2,"prefixItems":[{"type":"string"},{"type":"boolean"}]}}}`,
			want:   `{"xs":[1,1],"pair":["` + reply + `",true]}`,
		},
		{
			name:   "type implied by keywords, empty schema",
			schema: `{"properties":{"any":{},"n":{"minimum":4},"list":{"items":{"type":"boolean"},"minItems":1}}}`,
			want:   `{"any":"` + reply + `","n":4,"list":[true]}`,
		},
		{
			name:   "format is ignored",
			schema: `{"type":"object","required":["when"],"properties":{"when":{"type":"string","format":"date-time"}}}`,
		},
		{
			name:   "allOf with one schema, const object",
			schema: `{"type":"object","required":["a","b"],"properties":{"a":{"allOf":[{"$ref":"#/$defs/A"}]},"b":{"const":{"z":1,"y":[2]}}},"$defs":{"A":{"type":"string"}}}`,
			want:   `{"a":"` + reply + `","b":{"z":1,"y":[2]}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := b.content(t, schemaRequest(content, tt.schema))
			if tt.want != "" && got != tt.want {
				t.Errorf("answer\n got %s\nwant %s", got, tt.want)
			}
			s, err := schema.Compile([]byte(tt.schema))
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Validate([]byte(got)); err != nil {
				t.Errorf("answer %s does not match its schema: %v", got, err)
			}
		})
	}
}

func TestJSONSchemaFallback(t *testing.T) {
	t.Parallel()
	b := setup(t, simulator.Config{})
	const content = "hard schema"
	want := `{"reply":"mock:` + key(content) + `"}`
	schemas := map[string]string{
		"no schema":          "",
		"not":                `{"type":"object","properties":{"a":{"not":{"type":"string"}}},"required":["a"]}`,
		"allOf of several":   `{"allOf":[{"type":"object"},{"required":["a"]}]}`,
		"outside ref":        `{"type":"object","properties":{"a":{"$ref":"https://example.com/a.json"}},"required":["a"]}`,
		"dangling ref":       `{"type":"object","properties":{"a":{"$ref":"#/$defs/Missing"}},"required":["a"]}`,
		"false schema":       `{"type":"object","properties":{"a":false},"required":["a"]}`,
		"uniqueItems copies": `{"type":"object","properties":{"a":{"type":"array","minItems":2,"uniqueItems":true,"items":{"type":"string"}}},"required":["a"]}`,
		"required recursion": `{"$ref":"#/$defs/N","$defs":{"N":{"type":"object","properties":{"next":{"$ref":"#/$defs/N"}},"required":["next"]}}}`,
		"impossible bounds":  `{"type":"object","properties":{"a":{"type":"integer","minimum":1.2,"maximum":1.8}},"required":["a"]}`,
		"unknown type":       `{"type":"object","properties":{"a":{"type":"decimal"}},"required":["a"]}`,
		"huge minItems":      `{"type":"array","minItems":100000}`,
	}
	for name, sch := range schemas {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if got := b.content(t, schemaRequest(content, sch)); got != want {
				t.Errorf("answer = %s, want %s", got, want)
			}
		})
	}
}

func TestJSONSchemaErrors(t *testing.T) {
	t.Parallel()
	b := setup(t, simulator.Config{})
	msgs := []map[string]string{{"role": "user", "content": "x"}}
	tests := []struct {
		name      string
		format    any
		wantMsg   string
		wantParam string
	}{
		{"no json_schema", map[string]any{"type": "json_schema"},
			"Missing required parameter: 'response_format.json_schema'.", "response_format.json_schema"},
		{"null json_schema", map[string]any{"type": "json_schema", "json_schema": nil},
			"Missing required parameter: 'response_format.json_schema'.", "response_format.json_schema"},
		{"json_schema a string", map[string]any{"type": "json_schema", "json_schema": "answer"},
			"Invalid type for 'response_format.json_schema': expected an object, but got a string instead.", "response_format.json_schema"},
		{"schema an array", map[string]any{"type": "json_schema", "json_schema": map[string]any{"name": "a", "schema": []any{}}},
			"Invalid type for 'response_format.json_schema.schema': expected an object, but got an array instead.", "response_format.json_schema.schema"},
	}
	for _, tt := range tests {
		resp, body := b.do(t, http.MethodPost, "/v1/chat/completions",
			map[string]any{"model": "m", "messages": msgs, "response_format": tt.format}, nil)
		e := decodeError(t, body)
		if resp.StatusCode != 400 || e.Error.Type != "invalid_request_error" || e.Error.Message != tt.wantMsg || e.Error.Param != tt.wantParam {
			t.Errorf("%s: status %d error %+v, want 400 %q param %s", tt.name, resp.StatusCode, e.Error, tt.wantMsg, tt.wantParam)
		}
	}
}

// answerSchema is the schema of the go-openai tests, strict as OpenAI
// wants it.
const answerSchema = `{"type":"object","additionalProperties":false,
	"properties":{"label":{"type":"string","enum":["spam","ham"]},"reason":{"type":"string"}},
	"required":["label","reason"]}`

func schemaChat(content string) openai.ChatCompletionRequest {
	req := userRequest(content)
	req.ResponseFormat = &openai.ChatCompletionResponseFormat{
		Type: openai.ChatCompletionResponseFormatTypeJSONSchema,
		JSONSchema: &openai.ChatCompletionResponseFormatJSONSchema{
			Name: "answer", Schema: json.RawMessage(answerSchema), Strict: true,
		},
	}
	return req
}

func TestSchemaMiss(t *testing.T) {
	t.Parallel()
	b := setup(t, simulator.Config{})
	s, err := schema.Compile([]byte(answerSchema))
	if err != nil {
		t.Fatal(err)
	}
	var verr *schema.ValidationError

	t.Run("directive then a conformant re-ask", func(t *testing.T) {
		t.Parallel()
		const content = "is this spam? #fail-first:1:schemamiss"
		req := schemaChat(content)
		resp, err := b.openai.CreateChatCompletion(t.Context(), req)
		if err != nil {
			t.Fatal(err)
		}
		got := resp.Choices[0].Message.Content
		if got != simulator.SchemaMissReply || resp.Choices[0].FinishReason != openai.FinishReasonStop {
			t.Fatalf("content %q finish %q, want %q", got, resp.Choices[0].FinishReason, simulator.SchemaMissReply)
		}
		if err := s.Validate([]byte(got)); !errors.As(err, &verr) {
			t.Fatalf("Validate(%s) = %v, want a *schema.ValidationError", got, err)
		}
		if resp.Usage.CompletionTokens == 0 {
			t.Errorf("usage %+v, want the answer counted", resp.Usage)
		}

		// The worker's re-ask: the answer and a ReaskPrefix turn follow
		// the item's message, which still keys the call.
		req.Messages = append(req.Messages,
			openai.ChatCompletionMessage{Role: "assistant", Content: got},
			openai.ChatCompletionMessage{Role: "user", Content: tasks.ReaskPrefix + verr.Error()})
		resp, err = b.openai.CreateChatCompletion(t.Context(), req)
		if err != nil {
			t.Fatal(err)
		}
		got = resp.Choices[0].Message.Content
		if want := `{"label":"spam","reason":"mock:` + key(content) + `"}`; got != want {
			t.Errorf("re-ask answer = %s, want %s", got, want)
		}
		if err := s.Validate([]byte(got)); err != nil {
			t.Errorf("re-ask answer %s: %v", got, err)
		}
		if n := b.srv.Stats().ByContent[key(content)]; n != 2 {
			t.Errorf("by_content = %d, want both calls under the item's key", n)
		}
	})

	t.Run("other formats", func(t *testing.T) {
		t.Parallel()
		for _, typ := range []openai.ChatCompletionResponseFormatType{"", openai.ChatCompletionResponseFormatTypeJSONObject} {
			req := userRequest("plain #fail:schemamiss")
			if typ != "" {
				req.ResponseFormat = &openai.ChatCompletionResponseFormat{Type: typ}
			}
			resp, err := b.openai.CreateChatCompletion(t.Context(), req)
			if err != nil || resp.Choices[0].Message.Content != simulator.SchemaMissReply {
				t.Errorf("format %q: %+v, %v, want content %s", typ, resp.Choices, err, simulator.SchemaMissReply)
			}
		}
	})

	t.Run("random mix", func(t *testing.T) {
		t.Parallel()
		b := setup(t, simulator.Config{Faults: "schemamiss=1"})
		resp, err := b.openai.CreateChatCompletion(t.Context(), schemaChat("any"))
		if err != nil || resp.Choices[0].Message.Content != simulator.SchemaMissReply {
			t.Errorf("%+v, %v, want content %s", resp.Choices, err, simulator.SchemaMissReply)
		}
	})

	t.Run("length cuts the generated answer", func(t *testing.T) {
		t.Parallel()
		const content = "cut #fail:length"
		resp, err := b.openai.CreateChatCompletion(t.Context(), schemaChat(content))
		if err != nil {
			t.Fatal(err)
		}
		full := `{"label":"spam","reason":"mock:` + key(content) + `"}`
		if got := resp.Choices[0].Message.Content; got != full[:len(full)/2] || resp.Choices[0].FinishReason != openai.FinishReasonLength {
			t.Errorf("content %q finish %q, want %q length", got, resp.Choices[0].FinishReason, full[:len(full)/2])
		}
	})
}

func TestSchemaMissIsACode(t *testing.T) {
	t.Parallel()
	if !simulator.IsCode(simulator.CodeSchemaMiss) || simulator.CodeSchemaMiss != "schemamiss" {
		t.Fatalf("IsCode(%q) = false", simulator.CodeSchemaMiss)
	}
	f, err := simulator.ParseFaults("schemamiss=0.5")
	if err != nil || f.String() != "schemamiss=0.5" {
		t.Errorf("ParseFaults = %v, %v", f, err)
	}
	var v any
	if err := json.Unmarshal([]byte(simulator.SchemaMissReply), &v); err != nil {
		t.Errorf("SchemaMissReply %q is not JSON: %v", simulator.SchemaMissReply, err)
	}
}
