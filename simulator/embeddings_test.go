package simulator_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/llmfleet/llmfleet/simulator"
	"github.com/llmfleet/llmfleet/tokens"
)

const embedModel = "text-embedding-3-small"

// embedBundle is a simulator mounted on an httptest server, with a
// go-openai client for it.
type embedBundle struct {
	srv    *simulator.Server
	ts     *httptest.Server
	openai *openai.Client
}

func setupEmbed(t *testing.T, cfg simulator.Config) *embedBundle {
	t.Helper()
	srv, err := simulator.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	t.Cleanup(srv.Close) // first: releases held requests
	oc := openai.DefaultConfig("sk-test")
	oc.BaseURL = ts.URL + "/v1"
	oc.HTTPClient = ts.Client()
	return &embedBundle{srv: srv, ts: ts, openai: openai.NewClientWithConfig(oc)}
}

// post sends a raw embedding request and returns the status, the body and
// the response.
func (b *embedBundle) post(t *testing.T, body any) (*http.Response, []byte) {
	t.Helper()
	tb := &testBundle{http: b.ts.Client(), base: b.ts.URL}
	return tb.do(t, http.MethodPost, "/v1/embeddings", body, nil)
}

func (b *embedBundle) create(t *testing.T, inputs ...string) (openai.EmbeddingResponse, error) {
	t.Helper()
	return b.openai.CreateEmbeddings(t.Context(), openai.EmbeddingRequestStrings{Input: inputs, Model: embedModel})
}

// wantVector is Embedding computed from DESIGN.md's rule.
func wantVector(input string, dims int) []float32 {
	sum := sha256.Sum256([]byte(input))
	v := make([]float32, dims)
	for k := range v {
		v[k] = float32(sum[k]) / 255
	}
	return v
}

func sameVector(a, b []float32) bool {
	return fmt.Sprint(a) == fmt.Sprint(b) && len(a) == len(b)
}

func TestEmbeddingHelper(t *testing.T) {
	t.Parallel()
	for _, dims := range []int{1, 8, 16, 32} {
		if got := simulator.Embedding("hello", dims); !sameVector(got, wantVector("hello", dims)) {
			t.Errorf("Embedding(hello, %d) = %v", dims, got)
		}
	}
	if got := simulator.Embedding("hello", 0); len(got) != simulator.DefaultEmbeddingDimensions {
		t.Errorf("Embedding(hello, 0) has %d components, want the default 8", len(got))
	}
	for _, v := range simulator.Embedding("x", 32) {
		if v < 0 || v > 1 {
			t.Errorf("component %v outside [0, 1]", v)
		}
	}
	for _, dims := range []int{-1, 33} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Embedding(x, %d) did not panic", dims)
				}
			}()
			simulator.Embedding("x", dims)
		}()
	}
}

func TestEmbeddings(t *testing.T) {
	t.Parallel()
	b := setupEmbed(t, simulator.Config{})
	inputs := []string{"first document", "second, longer document with more words", "third", "first document"}
	counter := tokens.ForModel(embedModel)
	wantTokens := 0
	for _, in := range inputs {
		wantTokens += counter.Text(in)
	}

	for _, tt := range []struct {
		name   string
		dims   int // as sent; 0 leaves it out
		format openai.EmbeddingEncodingFormat
	}{
		{"default dimensions", 0, ""},
		{"16 dimensions", 16, openai.EmbeddingEncodingFormatFloat},
		{"32 dimensions base64", 32, openai.EmbeddingEncodingFormatBase64},
		{"1 dimension base64", 1, openai.EmbeddingEncodingFormatBase64},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp, err := b.openai.CreateEmbeddings(t.Context(), openai.EmbeddingRequestStrings{
				Input: inputs, Model: embedModel, Dimensions: tt.dims, EncodingFormat: tt.format,
			})
			if err != nil {
				t.Fatal(err)
			}
			dims := tt.dims
			if dims == 0 {
				dims = 8
			}
			if resp.Object != "list" || resp.Model != embedModel || len(resp.Data) != len(inputs) {
				t.Fatalf("object %q model %q %d vectors", resp.Object, resp.Model, len(resp.Data))
			}
			for i, d := range resp.Data {
				if d.Object != "embedding" || d.Index != i {
					t.Errorf("data[%d]: object %q index %d", i, d.Object, d.Index)
				}
				if !sameVector(d.Embedding, wantVector(inputs[i], dims)) || !sameVector(d.Embedding, simulator.Embedding(inputs[i], dims)) {
					t.Errorf("data[%d] = %v, want %v", i, d.Embedding, wantVector(inputs[i], dims))
				}
			}
			if resp.Usage.PromptTokens != wantTokens || resp.Usage.TotalTokens != wantTokens || resp.Usage.CompletionTokens != 0 {
				t.Errorf("usage %+v, want %d prompt and total tokens", resp.Usage, wantTokens)
			}
		})
	}

	t.Run("a string input and the wire format", func(t *testing.T) {
		t.Parallel()
		resp, body := b.post(t, map[string]any{"model": embedModel, "input": "just one"})
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			t.Fatalf("status %d (%s)", resp.StatusCode, body)
		}
		var raw struct {
			Object string `json:"object"`
			Data   []struct {
				Object    string    `json:"object"`
				Index     int       `json:"index"`
				Embedding []float32 `json:"embedding"`
			} `json:"data"`
			Model string         `json:"model"`
			Usage map[string]int `json:"usage"`
		}
		if err := json.Unmarshal(body, &raw); err != nil {
			t.Fatal(err)
		}
		n := counter.Text("just one")
		if raw.Object != "list" || len(raw.Data) != 1 || !sameVector(raw.Data[0].Embedding, wantVector("just one", 8)) ||
			fmt.Sprint(raw.Usage) != fmt.Sprint(map[string]int{"prompt_tokens": n, "total_tokens": n}) {
			t.Errorf("body %s", body)
		}
	})
}

func TestEmbeddingInvalidRequests(t *testing.T) {
	t.Parallel()
	b := setupEmbed(t, simulator.Config{})
	many := make([]string, simulator.MaxEmbeddingInputs+1)
	for i := range many {
		many[i] = "x"
	}
	req := func(input any) map[string]any { return map[string]any{"model": embedModel, "input": input} }
	const inputInvalid = "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference."
	tests := []struct {
		name      string
		body      any
		wantParam any
		wantMsg   string // the message, or a part of it
	}{
		{"not JSON", "{nope", nil, "could not parse the JSON body"},
		{"no model", map[string]any{"input": "x"}, "model", "you must provide a model parameter"},
		{"no input", map[string]any{"model": embedModel}, "input", "'input' is a required property"},
		{"empty string", req(""), "input", inputInvalid},
		{"empty array", req([]string{}), "input", inputInvalid},
		{"empty string in array", req([]string{"a", ""}), "input", inputInvalid},
		{"number", req(5), "input", inputInvalid},
		{"object in array", req([]any{"a", map[string]any{}}), "input", inputInvalid},
		{"token array", req([]int{1, 2, 3}), "input", "token array inputs are not supported"},
		{"token arrays", req([][]int{{1, 2}, {3}}), "input", "token array inputs are not supported"},
		{"too many inputs", req(many), "input",
			"Invalid 'input': array too long. Expected an array with maximum length 2048, but got an array with length 2049 instead."},
		{"dimensions 0", map[string]any{"model": embedModel, "input": "x", "dimensions": 0}, "dimensions",
			"Invalid 'dimensions': integer below minimum value. Expected a value >= 1, but got 0 instead."},
		{"dimensions 33", map[string]any{"model": embedModel, "input": "x", "dimensions": 33}, "dimensions",
			"Invalid 'dimensions': integer above maximum value. Expected a value <= 32, but got 33 instead."},
		{"encoding_format", map[string]any{"model": embedModel, "input": "x", "encoding_format": "hex"}, "encoding_format",
			`Invalid value: "hex". Supported values are: 'float' and 'base64'.`},
		{"too many tokens", req([]string{strings.Repeat("a ", 160000), strings.Repeat("b ", 160000)}), "input", "max 300000 tokens per request"},
		{"malformed directive", req([]string{"ok", "bad #fail:nope"}), "input", "mockllm: input[1]: unknown code"},
	}
	for _, tt := range tests {
		resp, body := b.post(t, tt.body)
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400 (%.200s)", tt.name, resp.StatusCode, body)
			continue
		}
		e := decodeError(t, body)
		if e.Error.Type != "invalid_request_error" || e.Error.Param != tt.wantParam || !strings.Contains(e.Error.Message, tt.wantMsg) {
			t.Errorf("%s: error = %+v, want param %v and %q in the message", tt.name, e.Error, tt.wantParam, tt.wantMsg)
		}
	}
	st := b.srv.Stats()
	if st.EmbeddingCalls != len(tests) || st.EmbeddingByStatus["400"] != len(tests) || st.Calls != 0 || len(st.ByStatus) != 0 {
		t.Errorf("stats: embedding calls %d by status %v, calls %d by status %v; want %d embedding 400s and no chat calls",
			st.EmbeddingCalls, st.EmbeddingByStatus, st.Calls, st.ByStatus, len(tests))
	}
	// Only the malformed directive's request passed validation.
	if st.EmbeddingInputs != 2 {
		t.Errorf("embedding_inputs = %d, want 2", st.EmbeddingInputs)
	}
}

func TestEmbeddingDirectives(t *testing.T) {
	t.Parallel()
	b := setupEmbed(t, simulator.Config{Faults: "500=1"}) // directives are exempt from random faults

	t.Run("a bad input fails the pack, which passes without it", func(t *testing.T) {
		t.Parallel()
		b := setupEmbed(t, simulator.Config{})
		pack := []string{"doc a", "doc b", "doc c", "doc d #fail:400", "doc e"}
		_, err := b.create(t, pack...)
		var apiErr *openai.APIError
		if !errors.As(err, &apiErr) || apiErr.HTTPStatusCode != 400 || apiErr.Type != "invalid_request_error" {
			t.Fatalf("err = %v, want a 400", err)
		}
		if want := "Invalid 'input[3]': "; !strings.HasPrefix(apiErr.Message, want) || apiErr.Param == nil || *apiErr.Param != "input" {
			t.Errorf("message %q param %v, want %q... and param input", apiErr.Message, apiErr.Param, want)
		}
		rest := append(pack[:3:3], pack[4])
		resp, err := b.create(t, rest...)
		if err != nil {
			t.Fatalf("without the bad input: %v", err)
		}
		for i, d := range resp.Data {
			if !sameVector(d.Embedding, simulator.Embedding(rest[i], 8)) {
				t.Errorf("data[%d] is not %q's vector", i, rest[i])
			}
		}
	})

	t.Run("fail-first counts per input", func(t *testing.T) {
		t.Parallel()
		pack := []string{"stable", "flaky #fail-first:2:503"}
		for i := 1; i <= 3; i++ {
			_, err := b.create(t, pack...)
			var apiErr *openai.APIError
			if i <= 2 && (!errors.As(err, &apiErr) || apiErr.HTTPStatusCode != 503) {
				t.Fatalf("request %d: err = %v, want a 503", i, err)
			}
			if i == 3 && err != nil {
				t.Fatalf("request 3: %v", err)
			}
		}
		if n := b.srv.Stats().EmbeddingByContent[key("flaky #fail-first:2:503")]; n != 3 {
			t.Errorf("embedding_by_content = %d, want 3", n)
		}
	})

	t.Run("#fail wins over #fail-first and names its input", func(t *testing.T) {
		t.Parallel()
		resp, body := b.post(t, map[string]any{"model": embedModel,
			"input": []string{"x #fail-first:5:500", "y", "z #fail-first:1:400 #fail:400"}})
		e := decodeError(t, body)
		if resp.StatusCode != 400 || !strings.HasPrefix(e.Error.Message, "Invalid 'input[2]'") {
			t.Errorf("status %d error %+v, want input[2]'s 400", resp.StatusCode, e.Error)
		}
	})

	t.Run("retry-after", func(t *testing.T) {
		t.Parallel()
		resp, _ := b.post(t, map[string]any{"model": embedModel, "input": []string{"a #fail:429", "b #retry-after:7"}})
		if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "7" {
			t.Errorf("status %d Retry-After %q, want 429 7", resp.StatusCode, resp.Header.Get("Retry-After"))
		}
	})

	t.Run("random faults apply without directives", func(t *testing.T) {
		t.Parallel()
		if _, err := b.create(t, "plain"); err == nil {
			t.Error("want the mix's 500")
		}
	})
}

func TestEmbeddingFaultCodes(t *testing.T) {
	t.Parallel()
	b := setupEmbed(t, simulator.Config{})
	vectorBody := func(t *testing.T, body []byte, inputs int, withUsage bool) {
		t.Helper()
		var r struct {
			Data  []json.RawMessage `json:"data"`
			Usage *struct{}         `json:"usage"`
		}
		if err := json.Unmarshal(body, &r); err != nil || len(r.Data) != inputs || (r.Usage != nil) != withUsage {
			t.Errorf("body %s: want %d vectors, usage %v (%v)", body, inputs, withUsage, err)
		}
	}
	tests := map[string]struct {
		status      int
		contentType string
		check       func(t *testing.T, body []byte)
	}{
		"400":      {status: 400},
		"401":      {status: 401},
		"403":      {status: 403},
		"404":      {status: 404},
		"429":      {status: 429},
		"quota":    {status: 429},
		"500":      {status: 500},
		"502":      {status: 502},
		"503":      {status: 503},
		"504":      {status: 504},
		"529":      {status: 529},
		"html502":  {status: 502, contentType: "text/html"},
		"html200":  {status: 200, contentType: "text/html"},
		"filter":   {status: 400},
		"overflow": {status: 400},
		"badjson": {status: 200, check: func(t *testing.T, body []byte) {
			if json.Valid(body) || !strings.Contains(string(body), "not json") {
				t.Errorf("body %q, want non-JSON", body)
			}
		}},
		"schemamiss": {status: 200, check: func(t *testing.T, body []byte) {
			if strings.TrimSpace(string(body)) != simulator.SchemaMissReply {
				t.Errorf("body %q, want %s", body, simulator.SchemaMissReply)
			}
		}},
		"empty":   {status: 200, check: func(t *testing.T, body []byte) { vectorBody(t, body, 0, true) }},
		"nousage": {status: 200, check: func(t *testing.T, body []byte) { vectorBody(t, body, 2, false) }},
		"length":  {status: 200, check: func(t *testing.T, body []byte) { vectorBody(t, body, 2, true) }},
	}
	for _, code := range simulator.Codes() {
		if code == simulator.CodeTimeout || code == simulator.CodeReset {
			continue
		}
		if _, ok := tests[code]; !ok {
			t.Errorf("code %s has no embedding test", code)
		}
	}
	for code, w := range tests {
		t.Run(code, func(t *testing.T) {
			t.Parallel()
			resp, body := b.post(t, map[string]any{"model": embedModel, "input": []string{"fine", "item #fail:" + code}})
			if w.contentType == "" {
				w.contentType = "application/json"
			}
			if resp.StatusCode != w.status || !strings.HasPrefix(resp.Header.Get("Content-Type"), w.contentType) {
				t.Fatalf("status %d content-type %q, want %d %s (%s)", resp.StatusCode, resp.Header.Get("Content-Type"), w.status, w.contentType, body)
			}
			if w.check != nil {
				w.check(t, body)
			}
		})
	}

	t.Run("overflow names the input", func(t *testing.T) {
		t.Parallel()
		_, err := b.create(t, "a", "a longer input that overflows #fail:overflow")
		var apiErr *openai.APIError
		if !errors.As(err, &apiErr) || apiErr.Code != "context_length_exceeded" || !strings.HasPrefix(apiErr.Message, "Invalid 'input[1]': ") {
			t.Errorf("err = %v, want input[1]'s context_length_exceeded", err)
		}
	})

	t.Run("timeout", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		_, err := b.openai.CreateEmbeddings(ctx, openai.EmbeddingRequestStrings{Input: []string{"slow #fail:timeout"}, Model: embedModel})
		if !isContextErr(err) {
			t.Errorf("err = %v, want the client's deadline", err)
		}
		waitFor(t, "timeout counted", func() bool { return b.srv.Stats().EmbeddingByStatus["timeout"] == 1 })
	})

	t.Run("reset", func(t *testing.T) {
		t.Parallel()
		_, err := b.create(t, "gone #fail:reset")
		var urlErr *url.Error
		if !errors.As(err, &urlErr) {
			t.Errorf("err = %T %v, want a connection error", err, err)
		}
		waitFor(t, "reset counted", func() bool { return b.srv.Stats().EmbeddingByStatus["reset"] == 1 })
	})
}

func TestEmbeddingLimits(t *testing.T) {
	t.Parallel()

	t.Run("API key", func(t *testing.T) {
		t.Parallel()
		b := setupEmbed(t, simulator.Config{APIKey: "sk-right"})
		_, err := b.create(t, "x")
		var apiErr *openai.APIError
		if !errors.As(err, &apiErr) || apiErr.HTTPStatusCode != 401 || apiErr.Code != "invalid_api_key" {
			t.Errorf("err = %v, want 401 invalid_api_key", err)
		}
	})

	t.Run("RPM shared with chat", func(t *testing.T) {
		t.Parallel()
		clk := newClock()
		b := setupEmbed(t, simulator.Config{RPM: 1, Now: clk.Now})
		if _, err := b.create(t, "x"); err != nil {
			t.Fatal(err)
		}
		resp, body := b.post(t, map[string]any{"model": embedModel, "input": "y"})
		if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "60" || decodeError(t, body).Error.Type != "requests" {
			t.Errorf("status %d Retry-After %q (%s), want 429 60", resp.StatusCode, resp.Header.Get("Retry-After"), body)
		}
		clk.Advance(time.Minute)
		if _, err := b.create(t, "x"); err != nil {
			t.Errorf("after the window moved: %v", err)
		}
	})

	t.Run("TPM counts input tokens", func(t *testing.T) {
		t.Parallel()
		b := setupEmbed(t, simulator.Config{TPM: 5})
		_, err := b.create(t, "an input of rather more than five tokens, surely")
		var apiErr *openai.APIError
		if !errors.As(err, &apiErr) || apiErr.HTTPStatusCode != 429 || !strings.Contains(apiErr.Message, "Request too large") {
			t.Errorf("err = %v, want 429 request too large", err)
		}
	})

	t.Run("context limit per input", func(t *testing.T) {
		t.Parallel()
		b := setupEmbed(t, simulator.Config{ContextLimit: 5})
		long := "many words in this input exceed five tokens"
		_, err := b.create(t, "short", long)
		var apiErr *openai.APIError
		if !errors.As(err, &apiErr) || apiErr.HTTPStatusCode != 400 || apiErr.Code != "context_length_exceeded" {
			t.Fatalf("err = %v, want 400 context_length_exceeded", err)
		}
		want := fmt.Sprintf("Invalid 'input[1]': This model's maximum context length is 5 tokens, however you requested %d tokens.",
			tokens.ForModel(embedModel).Text(long))
		if !strings.HasPrefix(apiErr.Message, want) {
			t.Errorf("message %q, want %q...", apiErr.Message, want)
		}
	})

	t.Run("a mix draws per request", func(t *testing.T) {
		t.Parallel()
		b := setupEmbed(t, simulator.Config{Faults: "429=0.5", Seed: 7})
		ok, limited := 0, 0
		for i := range 40 {
			resp, _ := b.post(t, map[string]any{"model": embedModel, "input": []string{fmt.Sprint("a", i), "b"}})
			switch resp.StatusCode {
			case 200:
				ok++
			case 429:
				limited++
				if resp.Header.Get("Retry-After") != "1" {
					t.Errorf("Retry-After %q, want 1", resp.Header.Get("Retry-After"))
				}
			default:
				t.Fatalf("status %d", resp.StatusCode)
			}
		}
		if ok == 0 || limited == 0 {
			t.Errorf("%d successes and %d 429s, want some of each", ok, limited)
		}
		// PUT /admin/faults applies to embeddings too.
		tb := &testBundle{http: b.ts.Client(), base: b.ts.URL}
		tb.do(t, http.MethodPut, "/admin/faults", "503=1", nil)
		if resp, _ := b.post(t, map[string]any{"model": embedModel, "input": "z"}); resp.StatusCode != 503 {
			t.Errorf("after PUT 503=1: status %d", resp.StatusCode)
		}
	})
}

func TestEmbeddingStats(t *testing.T) {
	t.Parallel()
	b := setupEmbed(t, simulator.Config{})
	tb := &testBundle{http: b.ts.Client(), base: b.ts.URL}
	counter := tokens.ForModel(embedModel)

	if _, err := b.create(t, "one", "two", "three"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.create(t, "one"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.create(t, "four #fail:500", "one"); err == nil {
		t.Fatal("want a 500")
	}
	b.post(t, map[string]any{"model": embedModel, "input": []string{}})
	tb.do(t, http.MethodPost, "/v1/chat/completions", userRequest("chat"), nil)

	resp, body := tb.do(t, http.MethodGet, "/admin/stats", nil, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("stats: status %d", resp.StatusCode)
	}
	var s struct {
		statsBody
		EmbeddingCalls     int            `json:"embedding_calls"`
		EmbeddingInputs    int            `json:"embedding_inputs"`
		EmbeddingByStatus  map[string]int `json:"embedding_by_status"`
		EmbeddingByContent map[string]int `json:"embedding_by_content"`
		EmbeddingTokens    int            `json:"embedding_tokens"`
	}
	if err := json.Unmarshal(body, &s); err != nil {
		t.Fatal(err)
	}
	if s.Calls != 1 || fmt.Sprint(s.ByStatus) != "map[200:1]" || len(s.ByContent) != 1 {
		t.Errorf("chat stats: calls %d by_status %v by_content %v, want the one chat call", s.Calls, s.ByStatus, s.ByContent)
	}
	if s.EmbeddingCalls != 4 || s.EmbeddingInputs != 6 {
		t.Errorf("embedding_calls %d embedding_inputs %d, want 4 and 6", s.EmbeddingCalls, s.EmbeddingInputs)
	}
	if want := map[string]int{"200": 2, "500": 1, "400": 1}; fmt.Sprint(s.EmbeddingByStatus) != fmt.Sprint(want) {
		t.Errorf("embedding_by_status = %v, want %v", s.EmbeddingByStatus, want)
	}
	want := map[string]int{key("one"): 3, key("two"): 1, key("three"): 1, key("four #fail:500"): 1}
	if fmt.Sprint(s.EmbeddingByContent) != fmt.Sprint(want) {
		t.Errorf("embedding_by_content = %v, want %v", s.EmbeddingByContent, want)
	}
	wantTokens := 2*counter.Text("one") + counter.Text("two") + counter.Text("three")
	if s.EmbeddingTokens != wantTokens {
		t.Errorf("embedding_tokens = %d, want %d", s.EmbeddingTokens, wantTokens)
	}

	b.srv.Reset()
	if st := b.srv.Stats(); st.EmbeddingCalls != 0 || st.EmbeddingInputs != 0 || len(st.EmbeddingByStatus) != 0 || len(st.EmbeddingByContent) != 0 || st.EmbeddingTokens != 0 {
		t.Errorf("after reset: %+v", st)
	}
}
