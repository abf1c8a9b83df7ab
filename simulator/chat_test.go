package simulator_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/llmfleet/llmfleet/simulator"
	"github.com/llmfleet/llmfleet/tasks"
	"github.com/llmfleet/llmfleet/tokens"
)

func TestChatCompletion(t *testing.T) {
	t.Parallel()
	b := setup(t, simulator.Config{})

	t.Run("reply carries the key and usage is counted like the API", func(t *testing.T) {
		t.Parallel()
		for _, model := range []string{"gpt-4o-mini", "gpt-4", "some-local-llama"} {
			req := openai.ChatCompletionRequest{
				Model: model,
				Messages: []openai.ChatCompletionMessage{
					{Role: "system", Content: "You are terse."},
					{Role: "user", Content: "first question"},
					{Role: "assistant", Content: "first answer"},
					{Role: "user", Content: "Summarise: the quick brown fox", Name: "alice"},
				},
				MaxCompletionTokens: 50,
				Temperature:         0.2,
				Stop:                []string{"\n\n"},
			}
			resp, err := b.openai.CreateChatCompletion(t.Context(), req)
			if err != nil {
				t.Fatalf("%s: %v", model, err)
			}
			want := "mock:" + key("Summarise: the quick brown fox")
			if got := resp.Choices[0].Message.Content; got != want {
				t.Errorf("%s: content = %q, want %q", model, got, want)
			}
			if resp.Model != model || resp.Object != "chat.completion" || resp.ID == "" {
				t.Errorf("%s: model %q object %q id %q", model, resp.Model, resp.Object, resp.ID)
			}
			if c := resp.Choices[0]; c.Message.Role != "assistant" || c.FinishReason != openai.FinishReasonStop {
				t.Errorf("%s: role %q finish_reason %q", model, c.Message.Role, c.FinishReason)
			}
			counter := tokens.ForModel(model)
			msgs := make([]tasks.Message, len(req.Messages))
			for i, m := range req.Messages {
				msgs[i] = tasks.Message{Role: m.Role, Content: m.Content, Name: m.Name}
			}
			wantUsage := openai.Usage{PromptTokens: counter.Messages(msgs), CompletionTokens: counter.Text(want)}
			wantUsage.TotalTokens = wantUsage.PromptTokens + wantUsage.CompletionTokens
			if resp.Usage != wantUsage {
				t.Errorf("%s: usage = %+v, want %+v", model, resp.Usage, wantUsage)
			}
		}
	})

	t.Run("json_object reply is JSON carrying the key", func(t *testing.T) {
		t.Parallel()
		req := userRequest("give me json")
		req.ResponseFormat = &openai.ChatCompletionResponseFormat{Type: openai.ChatCompletionResponseFormatTypeJSONObject}
		resp, err := b.openai.CreateChatCompletion(t.Context(), req)
		if err != nil {
			t.Fatal(err)
		}
		var out struct{ Reply string }
		if err := json.Unmarshal([]byte(resp.Choices[0].Message.Content), &out); err != nil {
			t.Fatalf("content %q is not JSON: %v", resp.Choices[0].Message.Content, err)
		}
		if want := "mock:" + key("give me json"); out.Reply != want {
			t.Errorf("reply = %q, want %q", out.Reply, want)
		}
		if want := tokens.ForModel(req.Model).Text(resp.Choices[0].Message.Content); resp.Usage.CompletionTokens != want {
			t.Errorf("completion_tokens = %d, want %d", resp.Usage.CompletionTokens, want)
		}
	})

	t.Run("Key matches the reply", func(t *testing.T) {
		t.Parallel()
		if got, want := simulator.Key("hello"), key("hello"); got != want {
			t.Errorf("Key = %q, want %q", got, want)
		}
	})

	t.Run("models", func(t *testing.T) {
		t.Parallel()
		list, err := b.openai.ListModels(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, m := range list.Models {
			ids = append(ids, m.ID)
		}
		if got := strings.Join(ids, ","); got != "gpt-4o-mini,gpt-4o,gpt-4.1-mini,mock" {
			t.Errorf("models = %s", got)
		}
	})
}

func TestInvalidRequests(t *testing.T) {
	t.Parallel()
	b := setup(t, simulator.Config{})
	tests := []struct {
		name      string
		body      any
		wantParam any
		wantInMsg string
	}{
		{"not JSON", "{nope", nil, "could not parse the JSON body"},
		{"no messages", map[string]any{"model": "gpt-4o-mini"}, "messages", "messages"},
		{"empty messages", map[string]any{"model": "gpt-4o-mini", "messages": []any{}}, "messages", "messages"},
		{"no model", map[string]any{"messages": []any{map[string]string{"role": "user", "content": "x"}}}, "model", "model"},
		{"content parts", map[string]any{"model": "m", "messages": []any{map[string]any{"role": "user", "content": []any{}}}}, nil, "content"},
		{"bad role", map[string]any{"model": "m", "messages": []any{map[string]string{"role": "robot", "content": "x"}}}, "messages[0].role", "robot"},
		{"bad temperature", map[string]any{"model": "m", "temperature": 3, "messages": []any{map[string]string{"role": "user", "content": "x"}}}, "temperature", "temperature"},
		{"unknown directive code", userRequest("hi #fail:999"), "messages", "#fail:999"},
		{"malformed directive", userRequest("hi #fail-first:x:500"), "messages", "#fail-first"},
	}
	for _, tt := range tests {
		resp, body := b.do(t, http.MethodPost, "/v1/chat/completions", tt.body, nil)
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400 (%s)", tt.name, resp.StatusCode, body)
			continue
		}
		e := decodeError(t, body)
		if e.Error.Type != "invalid_request_error" || e.Error.Param != tt.wantParam || !strings.Contains(e.Error.Message, tt.wantInMsg) {
			t.Errorf("%s: error = %+v, want param %v and %q in message", tt.name, e.Error, tt.wantParam, tt.wantInMsg)
		}
	}
	st := b.srv.Stats()
	if st.Calls != len(tests) || st.ByStatus["400"] != len(tests) {
		t.Errorf("stats calls %d by_status %v, want %d 400s", st.Calls, st.ByStatus, len(tests))
	}
}

func TestDirectiveCodes(t *testing.T) {
	t.Parallel()
	b := setup(t, simulator.Config{})
	type want struct {
		status      int
		contentType string
		errType     string // OpenAI error type; "" for a non-JSON or 200 body
		errCode     any    // as go-openai decodes it (null becomes 0)
		retryAfter  string
		content     *string // the reply of a 200 chat completion
	}
	str := func(s string) *string { return &s }
	tests := map[string]want{
		"400":      {status: 400, errType: "invalid_request_error", errCode: 0},
		"401":      {status: 401, errType: "invalid_request_error", errCode: "invalid_api_key"},
		"403":      {status: 403, errType: "permission_error", errCode: "permission_denied"},
		"404":      {status: 404, errType: "invalid_request_error", errCode: "model_not_found"},
		"429":      {status: 429, errType: "requests", errCode: "rate_limit_exceeded", retryAfter: "1"},
		"quota":    {status: 429, errType: "insufficient_quota", errCode: "insufficient_quota"},
		"500":      {status: 500, errType: "server_error", errCode: 0},
		"502":      {status: 502, errType: "server_error", errCode: 0},
		"503":      {status: 503, errType: "server_error", errCode: 0},
		"504":      {status: 504, errType: "server_error", errCode: 0},
		"529":      {status: 529, errType: "overloaded_error", errCode: 0},
		"html502":  {status: 502, contentType: "text/html"},
		"overflow": {status: 400, errType: "invalid_request_error", errCode: "context_length_exceeded"},
		"filter":   {status: 400, errType: "invalid_request_error", errCode: "content_filter"},
		"badjson":  {status: 200, content: str(" not json")},
		"empty":    {status: 200, content: str("")},
		"html200":  {status: 200, contentType: "text/html"},
	}
	for code, w := range tests {
		t.Run(code, func(t *testing.T) {
			t.Parallel()
			content := "item " + code + " #fail:" + code
			if w.contentType == "" {
				w.contentType = "application/json"
			}

			// What net/http sees.
			resp, body := b.postChat(t, content)
			if resp.StatusCode != w.status || !strings.HasPrefix(resp.Header.Get("Content-Type"), w.contentType) {
				t.Fatalf("status %d content-type %q, want %d %q (%s)", resp.StatusCode, resp.Header.Get("Content-Type"), w.status, w.contentType, body)
			}
			if got := resp.Header.Get("Retry-After"); got != w.retryAfter {
				t.Errorf("Retry-After = %q, want %q", got, w.retryAfter)
			}
			if w.contentType == "text/html" && !strings.Contains(string(body), "<html") {
				t.Errorf("body %q is not HTML", body)
			}
			if code == "html502" && !strings.Contains(string(body), "Bad Gateway") {
				t.Errorf("body %q lacks Bad Gateway", body)
			}

			// What go-openai sees.
			got, err := b.chat(t, content)
			var apiErr *openai.APIError
			var reqErr *openai.RequestError
			var synErr *json.SyntaxError
			switch {
			case w.content != nil:
				if err != nil {
					t.Fatal(err)
				}
				wantContent := *w.content
				if wantContent != "" {
					wantContent = "mock:" + key(content) + wantContent
				}
				if c := got.Choices[0].Message.Content; c != wantContent {
					t.Errorf("content = %q, want %q", c, wantContent)
				}
			case code == "html200":
				if !errors.As(err, &synErr) {
					t.Errorf("err = %T %v, want a JSON syntax error", err, err)
				}
			case w.errType == "":
				if !errors.As(err, &reqErr) || reqErr.HTTPStatusCode != w.status {
					t.Errorf("err = %T %v, want *openai.RequestError with status %d", err, err, w.status)
				}
			default:
				if !errors.As(err, &apiErr) {
					t.Fatalf("err = %T %v, want *openai.APIError", err, err)
				}
				if apiErr.HTTPStatusCode != w.status || apiErr.Type != w.errType || apiErr.Code != w.errCode {
					t.Errorf("APIError status %d type %q code %#v, want %d %q %#v",
						apiErr.HTTPStatusCode, apiErr.Type, apiErr.Code, w.status, w.errType, w.errCode)
				}
			}
		})
	}

	t.Run("length", func(t *testing.T) {
		t.Parallel()
		content := "item length #fail:length"
		got, err := b.chat(t, content)
		if err != nil {
			t.Fatal(err)
		}
		full := "mock:" + key(content)
		if c := got.Choices[0]; c.FinishReason != openai.FinishReasonLength || c.Message.Content != full[:len(full)/2] {
			t.Errorf("choice = %q finish %q, want the first half of %q and finish_reason length", c.Message.Content, c.FinishReason, full)
		}
		if got.Usage.CompletionTokens == 0 {
			t.Errorf("usage %+v, want the cut answer counted", got.Usage)
		}
	})

	t.Run("nousage", func(t *testing.T) {
		t.Parallel()
		content := "item nousage #fail:nousage"
		resp, body := b.postChat(t, content)
		if resp.StatusCode != 200 || strings.Contains(string(body), `"usage"`) {
			t.Fatalf("status %d body %s, want 200 without a usage object", resp.StatusCode, body)
		}
		got, err := b.chat(t, content)
		if err != nil || got.Choices[0].Message.Content != "mock:"+key(content) || got.Usage.TotalTokens != 0 {
			t.Fatalf("chat = %+v, %v, want the reply and no usage", got, err)
		}
	})

	t.Run("reset", func(t *testing.T) {
		t.Parallel()
		_, err := b.chat(t, "item reset #fail:reset")
		var urlErr *url.Error
		var apiErr *openai.APIError
		if !errors.As(err, &urlErr) || errors.As(err, &apiErr) {
			t.Fatalf("err = %T %v, want a connection error", err, err)
		}
		waitFor(t, "reset counted", func() bool { return b.srv.Stats().ByStatus["reset"] == 1 })
	})

	t.Run("overflow message has consistent numbers", func(t *testing.T) {
		t.Parallel()
		_, body := b.postChat(t, "too long #fail:overflow")
		msg := decodeError(t, body).Error.Message
		prompt := tokens.ForModel("gpt-4o-mini").Messages([]tasks.Message{{Role: "user", Content: "too long #fail:overflow"}})
		if !strings.Contains(msg, "resulted in "+itoa(prompt)+" tokens") || !strings.Contains(msg, "context length is "+itoa(prompt/2)+" tokens") {
			t.Errorf("message %q, want limit %d and %d prompt tokens", msg, prompt/2, prompt)
		}
	})
}

func TestFailFirst(t *testing.T) {
	t.Parallel()
	b := setup(t, simulator.Config{Faults: "500=1"}) // directives are exempt from random faults
	content := "flaky item #fail-first:2:500"
	for i := 1; i <= 4; i++ {
		resp, err := b.chat(t, content)
		var apiErr *openai.APIError
		if i <= 2 {
			if !errors.As(err, &apiErr) || apiErr.HTTPStatusCode != 500 {
				t.Fatalf("call %d: err = %v, want a 500", i, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if got, want := resp.Choices[0].Message.Content, "mock:"+key(content); got != want {
			t.Errorf("call %d: content %q, want %q", i, got, want)
		}
	}
	if got := b.srv.Stats().ByContent[key(content)]; got != 4 {
		t.Errorf("by_content = %d, want 4", got)
	}

	// Reset clears the per-key counters.
	b.do(t, http.MethodPost, "/admin/reset", nil, nil)
	if _, err := b.chat(t, content); err == nil {
		t.Error("first call after reset succeeded, want a 500")
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	t.Run("directive", func(t *testing.T) {
		t.Parallel()
		b := setup(t, simulator.Config{RetryAfter: 7})
		resp, body := b.postChat(t, "slow down #retry-after:3 #fail:429")
		if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "3" || resp.Header.Get("x-ratelimit-reset-requests") != "3s" {
			t.Errorf("status %d Retry-After %q reset %q (%s)", resp.StatusCode, resp.Header.Get("Retry-After"),
				resp.Header.Get("x-ratelimit-reset-requests"), body)
		}
		resp, _ = b.postChat(t, "slow down #fail:429")
		if got := resp.Header.Get("Retry-After"); got != "7" {
			t.Errorf("Retry-After without directive = %q, want Config.RetryAfter 7", got)
		}
	})
	t.Run("random 429", func(t *testing.T) {
		t.Parallel()
		b := setup(t, simulator.Config{Faults: "429=1", RetryAfter: 4})
		resp, _ := b.postChat(t, "anything")
		if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "4" {
			t.Errorf("status %d Retry-After %q, want 429 4", resp.StatusCode, resp.Header.Get("Retry-After"))
		}
		resp, _ = b.postChat(t, "anything #retry-after:9")
		if resp.Header.Get("Retry-After") != "9" {
			t.Errorf("Retry-After = %q, want 9 from the directive", resp.Header.Get("Retry-After"))
		}
	})
}

func TestRateLimits(t *testing.T) {
	t.Parallel()
	t.Run("RPM over a sliding window", func(t *testing.T) {
		t.Parallel()
		clk := newClock()
		b := setup(t, simulator.Config{RPM: 5, Now: clk.Now})
		for i := range 5 { // calls at 0s, 10s, ..., 40s
			if resp, body := b.postChat(t, "item"); resp.StatusCode != 200 {
				t.Fatalf("call %d: status %d (%s)", i+1, resp.StatusCode, body)
			}
			clk.Advance(10 * time.Second)
		}
		clk.Advance(-5 * time.Second) // 45s: the first call expires at 60s
		resp, body := b.postChat(t, "item")
		e := decodeError(t, body)
		if resp.StatusCode != 429 || e.Error.Code != "rate_limit_exceeded" || e.Error.Type != "requests" {
			t.Fatalf("6th call: status %d error %+v, want 429 rate_limit_exceeded", resp.StatusCode, e.Error)
		}
		if got := resp.Header.Get("Retry-After"); got != "15" {
			t.Errorf("Retry-After = %q, want 15", got)
		}
		if got := resp.Header.Get("x-ratelimit-reset-requests"); got != "15s" {
			t.Errorf("x-ratelimit-reset-requests = %q, want 15s", got)
		}

		clk.Advance(15 * time.Second) // 60s
		if resp, _ := b.postChat(t, "item"); resp.StatusCode != 200 {
			t.Fatalf("after the window moved: status %d, want 200", resp.StatusCode)
		}
		clk.Advance(500 * time.Millisecond) // window: 10, 20, 30, 40, 60
		resp, _ = b.postChat(t, "item")
		if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "10" {
			t.Errorf("status %d Retry-After %q, want 429 10 (9.5 s rounded up)", resp.StatusCode, resp.Header.Get("Retry-After"))
		}
		if st := b.srv.Stats(); st.ByStatus["200"] != 6 || st.ByStatus["429"] != 2 {
			t.Errorf("by_status = %v", st.ByStatus)
		}
	})

	t.Run("TPM counts prompt and reply tokens", func(t *testing.T) {
		t.Parallel()
		c := tokens.ForModel("gpt-4o-mini")
		cost := c.Messages([]tasks.Message{{Role: "user", Content: "item"}}) + c.Text("mock:"+key("item"))
		clk := newClock()
		b := setup(t, simulator.Config{TPM: 2*cost + cost/2, Now: clk.Now})
		for i := range 2 {
			if resp, _ := b.postChat(t, "item"); resp.StatusCode != 200 {
				t.Fatalf("call %d: status %d", i+1, resp.StatusCode)
			}
		}
		clk.Advance(30 * time.Second)
		resp, body := b.postChat(t, "item")
		e := decodeError(t, body)
		if resp.StatusCode != 429 || e.Error.Type != "tokens" || e.Error.Code != "rate_limit_exceeded" {
			t.Fatalf("3rd call: status %d error %+v", resp.StatusCode, e.Error)
		}
		if got := resp.Header.Get("Retry-After"); got != "30" {
			t.Errorf("Retry-After = %q, want 30", got)
		}
		clk.Advance(30 * time.Second)
		if resp, _ := b.postChat(t, "item"); resp.StatusCode != 200 {
			t.Errorf("after the window moved: status %d", resp.StatusCode)
		}
	})

	t.Run("request larger than TPM", func(t *testing.T) {
		t.Parallel()
		b := setup(t, simulator.Config{TPM: 5})
		resp, body := b.postChat(t, "a prompt of more than five tokens, surely")
		e := decodeError(t, body)
		if resp.StatusCode != 429 || !strings.Contains(e.Error.Message, "Request too large") || resp.Header.Get("Retry-After") != "" {
			t.Errorf("status %d Retry-After %q error %+v", resp.StatusCode, resp.Header.Get("Retry-After"), e.Error)
		}
	})

	t.Run("limit check comes before directives", func(t *testing.T) {
		t.Parallel()
		clk := newClock()
		b := setup(t, simulator.Config{RPM: 1, Now: clk.Now})
		b.postChat(t, "first")
		content := "second #fail-first:1:500"
		if resp, _ := b.postChat(t, content); resp.StatusCode != 429 {
			t.Fatalf("status %d, want 429", resp.StatusCode)
		}
		clk.Advance(time.Minute)
		// The rejected call did not spend the #fail-first budget.
		if resp, _ := b.postChat(t, content); resp.StatusCode != 500 {
			t.Errorf("status %d, want the directive's 500", resp.StatusCode)
		}
	})
}

func TestContextLimit(t *testing.T) {
	t.Parallel()
	b := setup(t, simulator.Config{ContextLimit: 20})
	if resp, _ := b.postChat(t, "short"); resp.StatusCode != 200 {
		t.Fatalf("short prompt: status %d", resp.StatusCode)
	}
	long := strings.Repeat("many words here ", 10)
	prompt := tokens.ForModel("gpt-4o-mini").Messages([]tasks.Message{{Role: "user", Content: long}})
	_, err := b.chat(t, long)
	var apiErr *openai.APIError
	if !errors.As(err, &apiErr) || apiErr.HTTPStatusCode != 400 || apiErr.Code != "context_length_exceeded" {
		t.Fatalf("err = %v, want 400 context_length_exceeded", err)
	}
	want := "This model's maximum context length is 20 tokens. However, your messages resulted in " + itoa(prompt) +
		" tokens. Please reduce the length of the messages."
	if apiErr.Message != want {
		t.Errorf("message = %q\nwant      %q", apiErr.Message, want)
	}
}

func TestAPIKey(t *testing.T) {
	t.Parallel()
	b := setup(t, simulator.Config{APIKey: "sk-right"})
	_, err := b.chat(t, "hello") // the bundle's client sends sk-test
	var apiErr *openai.APIError
	if !errors.As(err, &apiErr) || apiErr.HTTPStatusCode != 401 || apiErr.Code != "invalid_api_key" {
		t.Fatalf("wrong key: err = %v, want 401 invalid_api_key", err)
	}
	if strings.Contains(apiErr.Message, "sk-test") {
		t.Errorf("401 message echoes the key: %q", apiErr.Message)
	}
	if resp, _ := b.do(t, http.MethodGet, "/v1/models", nil, nil); resp.StatusCode != 401 {
		t.Errorf("models without key: status %d", resp.StatusCode)
	}
	resp, _ := b.do(t, http.MethodPost, "/v1/chat/completions", userRequest("hello"), map[string]string{"Authorization": "Bearer sk-right"})
	if resp.StatusCode != 200 {
		t.Errorf("right key: status %d", resp.StatusCode)
	}
	if resp, _ := b.do(t, http.MethodGet, "/admin/stats", nil, nil); resp.StatusCode != 200 {
		t.Errorf("admin without key: status %d", resp.StatusCode)
	}
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// errorsAsContext reports whether err is a context deadline or cancellation.
func isContextErr(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}
