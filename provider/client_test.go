package provider_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	openai "github.com/sashabaranov/go-openai"

	"github.com/llmfleet/llmfleet/provider"
	"github.com/llmfleet/llmfleet/simulator"
	"github.com/llmfleet/llmfleet/tasks"
)

func ptr[T any](v T) *T { return &v }

func TestRequestMapsItemFields(t *testing.T) {
	it := &tasks.Item{
		ID: "a",
		Messages: []tasks.Message{
			{Role: "system", Content: "be brief"},
			{Role: "user", Content: "hi", Name: "alice"},
		},
		Model:          "gpt-4o",
		MaxTokens:      64,
		Temperature:    ptr(float32(0)),
		TopP:           ptr(float32(0.5)),
		Stop:           []string{"END", "STOP"},
		Seed:           ptr(7),
		ResponseFormat: &tasks.ResponseFormat{Type: "json_object"},
	}
	req := provider.Request(it, "gpt-4o-mini")
	if req.Model != "gpt-4o" {
		t.Errorf("Model = %q, want the item's gpt-4o over the default", req.Model)
	}
	// MaxTokens is deprecated in go-openai; read it as the wire sees it.
	if got := string(mustJSON(req)); !strings.Contains(got, `"max_tokens":64`) {
		t.Errorf("max_tokens not 64 in %s", got)
	}
	if req.Temperature == 0 || req.Temperature > 1e-30 {
		t.Errorf("Temperature = %g, want a tiny non-zero value standing for 0", req.Temperature)
	}
	if req.TopP != 0.5 {
		t.Errorf("TopP = %g", req.TopP)
	}
	if !slices.Equal(req.Stop, []string{"END", "STOP"}) {
		t.Errorf("Stop = %q", req.Stop)
	}
	if req.Seed == nil || *req.Seed != 7 {
		t.Errorf("Seed = %v", req.Seed)
	}
	if req.ResponseFormat == nil || req.ResponseFormat.Type != openai.ChatCompletionResponseFormatTypeJSONObject {
		t.Errorf("ResponseFormat = %+v", req.ResponseFormat)
	}
	want := []openai.ChatCompletionMessage{
		{Role: "system", Content: "be brief"},
		{Role: "user", Content: "hi", Name: "alice"},
	}
	if len(req.Messages) != len(want) {
		t.Fatalf("Messages = %+v", req.Messages)
	}
	for i := range want {
		m := req.Messages[i]
		if m.Role != want[i].Role || m.Content != want[i].Content || m.Name != want[i].Name {
			t.Errorf("Messages[%d] = %+v, want %+v", i, m, want[i])
		}
	}

	plain := provider.Request(userItem("hi"), "gpt-4o-mini")
	if plain.Model != "gpt-4o-mini" {
		t.Errorf("Model = %q, want the default", plain.Model)
	}
	if plain.Temperature != 0 || plain.TopP != 0 || plain.Seed != nil || plain.ResponseFormat != nil || plain.Stop != nil ||
		strings.Contains(string(mustJSON(plain)), "max_tokens") {
		t.Errorf("unset options were set: %+v", plain)
	}
}

// capture is an httptest route that records what the client sent and
// answers with a chat completion.
type capture struct {
	mu     sync.Mutex
	header http.Header
	body   map[string]json.RawMessage
}

func (c *capture) handler(t *testing.T) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("read request: %v", err)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(b, &m); err != nil {
			t.Errorf("request body is not JSON: %v: %s", err, b)
		}
		c.mu.Lock()
		c.header, c.body = r.Header.Clone(), m
		c.mu.Unlock()
		reply(200, completionJSON(`{"ok":true}`, "stop"))(w, r)
	}
}

func (c *capture) seen() (http.Header, map[string]json.RawMessage) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.header, c.body
}

func TestCompleteWire(t *testing.T) {
	fake := newFakeAPI(t)
	var cp capture
	base := fake.route("wire", cp.handler(t))
	c := provider.NewClient(provider.Config{BaseURL: base + "/"}) // a trailing slash is tolerated
	if c.BaseURL() != base {
		t.Errorf("BaseURL() = %q, want %q", c.BaseURL(), base)
	}

	it := userItem("hi")
	it.Model = "gpt-4o"
	it.MaxTokens = 64
	it.Temperature = ptr(float32(0))
	it.TopP = ptr(float32(0.25))
	it.Stop = []string{"END"}
	it.Seed = ptr(0)
	it.ResponseFormat = &tasks.ResponseFormat{Type: "json_object"}
	got, err := c.Complete(t.Context(), it, "gpt-4o-mini")
	if err != nil {
		t.Fatalf("Complete: %v", err)
	}
	if got.Content != `{"ok":true}` || got.FinishReason != "stop" || got.TokensIn != 9 || got.TokensOut != 3 {
		t.Errorf("Completion = %+v", got)
	}

	_, body := cp.seen()
	wire := func(field string, want any) {
		t.Helper()
		raw, ok := body[field]
		if !ok {
			t.Errorf("%q missing from the request body", field)
			return
		}
		if got, w := canonical(t, raw), canonical(t, mustJSON(want)); got != w {
			t.Errorf("%q = %s, want %s", field, got, w)
		}
	}
	wire("model", "gpt-4o")
	wire("max_tokens", 64)
	wire("top_p", 0.25)
	wire("stop", []string{"END"})
	wire("seed", 0)
	wire("response_format", map[string]string{"type": "json_object"})
	wire("messages", []map[string]string{{"role": "user", "content": "hi"}})
	// An explicit temperature 0 must reach the provider: go-openai drops a
	// zero float, which would mean the provider's default (1).
	if raw, ok := body["temperature"]; !ok {
		t.Error(`"temperature" missing from the request body for an item with temperature 0`)
	} else if temp, err := strconv.ParseFloat(string(raw), 64); err != nil || temp < 0 || temp > 1e-30 {
		t.Errorf("temperature on the wire = %s, want (nearly) 0", raw)
	}

	// Without a temperature, none is sent: the provider's default applies.
	if _, err := c.Complete(t.Context(), userItem("hi"), "gpt-4o-mini"); err != nil {
		t.Fatalf("Complete: %v", err)
	}
	_, body = cp.seen()
	for _, f := range []string{"temperature", "top_p", "seed", "response_format", "max_tokens", "stop"} {
		if _, ok := body[f]; ok {
			t.Errorf("%q sent for an item without it: %s", f, body[f])
		}
	}
	if string(body["model"]) != `"gpt-4o-mini"` {
		t.Errorf("model = %s, want the default", body["model"])
	}
}

// canonical re-encodes JSON so that equal values compare equal.
func canonical(t *testing.T, b []byte) string {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("not JSON: %s", b)
	}
	return string(mustJSON(v))
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func TestCompleteAuthorizationHeader(t *testing.T) {
	fake := newFakeAPI(t)
	for _, tc := range []struct {
		name, key, want string
	}{
		{"no key sends none", "", ""},
		{"key sent as bearer", "KEY", "Bearer KEY"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var cp capture
			base := fake.route(strings.ReplaceAll(tc.name, " ", "-"), cp.handler(t))
			c := provider.NewClient(provider.Config{BaseURL: base, APIKey: tc.key})
			if _, err := c.Complete(t.Context(), userItem("hi"), "m"); err != nil {
				t.Fatalf("Complete: %v", err)
			}
			h, _ := cp.seen()
			vals, present := h["Authorization"]
			if tc.want == "" && present {
				t.Errorf("Authorization sent without a key: %q", vals)
			}
			if tc.want != "" && h.Get("Authorization") != tc.want {
				t.Errorf("Authorization = %q, want %q", h.Get("Authorization"), tc.want)
			}
		})
	}
}

func TestCompleteAgainstSimulator(t *testing.T) {
	sim := startSim(t, simulator.Config{Seed: 1, APIKey: "sk-sim-key-0123456789"})
	c := provider.NewClient(provider.Config{BaseURL: sim.URL(), APIKey: "sk-sim-key-0123456789"})

	t.Run("plain prompt", func(t *testing.T) {
		const prompt = "Summarise the plot of Hamlet in one line."
		before := sim.Server().Stats()
		got, err := c.Complete(t.Context(), userItem(prompt), "gpt-4o-mini")
		if err != nil {
			t.Fatalf("Complete: %v", err)
		}
		after := sim.Server().Stats()
		if want := simulator.ReplyPrefix + simulator.Key(prompt); got.Content != want {
			t.Errorf("Content = %q, want %q", got.Content, want)
		}
		if !strings.HasPrefix(got.Content, "mock:") || len(got.Content) != len("mock:")+12 {
			t.Errorf("Content %q is not mock:<12 hex>", got.Content)
		}
		if got.Model != "gpt-4o-mini" || got.FinishReason != "stop" {
			t.Errorf("Model %q FinishReason %q", got.Model, got.FinishReason)
		}
		if dIn, dOut := after.TokensIn-before.TokensIn, after.TokensOut-before.TokensOut; got.TokensIn != dIn || got.TokensOut != dOut || dIn == 0 || dOut == 0 {
			t.Errorf("usage %d/%d, simulator counted %d/%d", got.TokensIn, got.TokensOut, dIn, dOut)
		}
		if n := after.Calls - before.Calls; n != 1 {
			t.Errorf("simulator saw %d calls, want 1", n)
		}
	})

	t.Run("JSON asked and given", func(t *testing.T) {
		it := userItem("give me json")
		it.ResponseFormat = &tasks.ResponseFormat{Type: "json_object"}
		got, err := c.Complete(t.Context(), it, "gpt-4o-mini")
		if err != nil {
			t.Fatalf("Complete: %v", err)
		}
		var v struct{ Reply string }
		if err := json.Unmarshal([]byte(got.Content), &v); err != nil || v.Reply != simulator.ReplyPrefix+simulator.Key("give me json") {
			t.Errorf("Content = %q (%v)", got.Content, err)
		}
	})

	t.Run("non-JSON output is fine when JSON was not asked", func(t *testing.T) {
		got, err := c.Complete(t.Context(), userItem("#fail:badjson"), "gpt-4o-mini")
		if err != nil {
			t.Fatalf("Complete: %v", err)
		}
		if !strings.HasSuffix(got.Content, " not json") {
			t.Errorf("Content = %q", got.Content)
		}
	})

	t.Run("no usage is counted here", func(t *testing.T) {
		const prompt = "a self-hosted server #fail:nousage"
		before := sim.Server().Stats()
		got, err := c.Complete(t.Context(), userItem(prompt), "gpt-4o-mini")
		if err != nil {
			t.Fatalf("Complete: %v", err)
		}
		after := sim.Server().Stats()
		// The simulator counts with the same tokenizer: the estimate is exact.
		if !got.UsageEstimated || got.TokensIn != after.TokensIn-before.TokensIn || got.TokensOut != after.TokensOut-before.TokensOut || got.TokensIn == 0 {
			t.Errorf("usage %d/%d estimated %v, want the simulator's %d/%d, estimated",
				got.TokensIn, got.TokensOut, got.UsageEstimated, after.TokensIn-before.TokensIn, after.TokensOut-before.TokensOut)
		}
	})

	t.Run("reported usage is not estimated", func(t *testing.T) {
		got, err := c.Complete(t.Context(), userItem("with usage"), "gpt-4o-mini")
		if err != nil || got.UsageEstimated {
			t.Fatalf("Complete = %+v, %v, want reported usage", got, err)
		}
	})

	t.Run("length cut of JSON is invalid output", func(t *testing.T) {
		it := userItem("long json #fail:length")
		it.ResponseFormat = &tasks.ResponseFormat{Type: "json_object"}
		got, err := c.Complete(t.Context(), it, "gpt-4o-mini")
		var pe *provider.Error
		if !errors.As(err, &pe) || pe.Class != provider.InvalidOutput || !strings.Contains(pe.Message, "finish_reason length") {
			t.Fatalf("err = %v, want invalid_output naming finish_reason length", err)
		}
		if got == nil || got.TokensIn == 0 {
			t.Errorf("completion = %+v, want its usage kept (the answer was paid)", got)
		}
	})

	t.Run("length cut of text is kept with its finish reason", func(t *testing.T) {
		got, err := c.Complete(t.Context(), userItem("long text #fail:length"), "gpt-4o-mini")
		if err != nil || got.FinishReason != "length" || got.Content == "" {
			t.Fatalf("Complete = %+v, %v, want the cut answer with finish_reason length", got, err)
		}
	})

	t.Run("fail-first then success", func(t *testing.T) {
		it := userItem("#fail-first:2:503 flaky")
		for i := range 2 {
			_, err := c.Complete(t.Context(), it, "gpt-4o-mini")
			if provider.ClassOf(err) != provider.ServerError {
				t.Fatalf("call %d: %v, want server_error", i+1, err)
			}
		}
		if _, err := c.Complete(t.Context(), it, "gpt-4o-mini"); err != nil {
			t.Fatalf("third call: %v", err)
		}
	})

	t.Run("wrong key is auth", func(t *testing.T) {
		bad := provider.NewClient(provider.Config{BaseURL: sim.URL(), APIKey: "sk-wrong-key-0000000000"})
		_, err := bad.Complete(t.Context(), userItem("hi"), "gpt-4o-mini")
		var pe *provider.Error
		if !errors.As(err, &pe) || pe.Class != provider.Auth || pe.Status != 401 {
			t.Fatalf("err = %v, want auth 401", err)
		}
		if strings.Contains(err.Error(), "wrong-key") {
			t.Errorf("error leaks the key: %v", err)
		}
	})
}

// A reason is never empty, and a key echoed anywhere in a body (even where
// the reason is cut) never reaches it.
func TestReasonsAreNeverEmptyAndNeverHoldTheKey(t *testing.T) {
	const key = "gsk_A1b2C3d4E5f6G7h8I9j0KlMnOpQr"
	for _, tc := range []struct {
		status int
		body   string
	}{
		{503, `{"error":{"code":503}}`},
		{429, `{"code":429}`},
		{500, `{"error":{"message":null}}`},
		{401, `{"error":{"message":"` + strings.Repeat("x", 490) + ` key ` + key + ` refused"}}`},
		{400, `{"error":{"message":"bad","code":"` + key + `"}}`},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(tc.status)
			_, _ = w.Write([]byte(tc.body))
		}))
		c := provider.NewClient(provider.Config{BaseURL: srv.URL, APIKey: key})
		_, err := c.Complete(t.Context(), userItem("hi"), "gpt-4o-mini")
		srv.Close()
		var pe *provider.Error
		if !errors.As(err, &pe) {
			t.Fatalf("%d %s: err = %v", tc.status, tc.body, err)
		}
		if strings.TrimSpace(pe.Message) == "" {
			t.Errorf("%d %s: empty reason", tc.status, tc.body)
		}
		for _, part := range []string{key, key[:10]} {
			if strings.Contains(pe.Error(), part) || strings.Contains(pe.Code, part) {
				t.Errorf("%d: error %q shows the key", tc.status, pe.Error())
			}
		}
	}
}
