package provider

import (
	"testing"
	"time"
)

func TestErrorBodyShapes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, body string
		want       errorInfo
		ok         bool
	}{
		{"openai", `{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}`,
			errorInfo{message: "Rate limit reached", typ: "requests", code: "rate_limit_exceeded"}, true},
		{"anthropic", `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`,
			errorInfo{message: "Overloaded", typ: "overloaded_error"}, true},
		{"gemini array with retry info", `[{"error":{"code":429,"message":"You exceeded your current quota","status":"RESOURCE_EXHAUSTED","details":[` +
			`{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaId":"GenerateRequestsPerMinutePerProjectPerModel-FreeTier"}]},` +
			`{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"58s"}]}}]`,
			errorInfo{message: "You exceeded your current quota", code: "429", typ: "RESOURCE_EXHAUSTED", retryDelay: 58 * time.Second, perMinute: true}, true},
		{"llama.cpp", `{"error":{"code":400,"message":"the request exceeds the available context size, try increasing it","type":"exceed_context_size_error","n_prompt_tokens":5000,"n_ctx":4096}}`,
			errorInfo{message: "the request exceeds the available context size, try increasing it", code: "400", typ: "exceed_context_size_error", promptTokens: 5000, contextLimit: 4096}, true},
		{"vllm flat", `{"object":"error","message":"This model's maximum context length is 4096 tokens.","type":"BadRequestError","param":null,"code":400}`,
			errorInfo{message: "This model's maximum context length is 4096 tokens.", typ: "BadRequestError", code: "400"}, true},
		{"error string", `{"error":"model \"llama3\" not found, try pulling it first"}`,
			errorInfo{message: `model "llama3" not found, try pulling it first`}, true},
		{"error name and message", `{"error":"SyntaxError","message":"Bad control character in string literal"}`,
			errorInfo{message: "SyntaxError: Bad control character in string literal"}, true},
		{"detail", `{"detail":"Not Found"}`, errorInfo{message: "Not Found"}, true},
		{"html", `<html><body>502 Bad Gateway</body></html>`, errorInfo{}, false},
		{"empty object", `{}`, errorInfo{}, false},
		{"empty array", `[]`, errorInfo{}, false},
	}
	for _, tt := range tests {
		got, ok := errorBody([]byte(tt.body))
		if ok != tt.ok || got != tt.want {
			t.Errorf("%s: errorBody = %+v, %v; want %+v, %v", tt.name, got, ok, tt.want, tt.ok)
		}
	}
}

func TestHintFromText(t *testing.T) {
	t.Parallel()
	tests := map[string]time.Duration{
		"Please try again in 20s.":                20 * time.Second,
		"Please try again in 7m54.72s. Visit ...": 7*time.Minute + 54720*time.Millisecond,
		"Please try again in 6ms.":                6 * time.Millisecond,
		"Try again in 50 seconds.":                50 * time.Second,
		"Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-02-01 have exceeded call rate limit of your current OpenAI S0 pricing tier. Please retry after 5 seconds.": 5 * time.Second,
		"retry after 86400 seconds": 24 * time.Hour,
		"Please retry in 1 minute":  time.Minute,
		"Rate limit exceeded":       0,
		"":                          0,
	}
	for msg, want := range tests {
		if got := hintFromText(msg); got != want {
			t.Errorf("hintFromText(%q) = %s, want %s", msg, got, want)
		}
	}
}

func TestClassifyResponseRules(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status int
		info   errorInfo
		want   Class
	}{
		{429, errorInfo{code: "rate_limit_exceeded", message: "Rate limit reached for gpt-4o on requests per min (RPM): Limit 3. You can increase your rate limit by adding a payment method at https://platform.openai.com/account/billing"}, RateLimited},
		{429, errorInfo{code: "insufficient_quota", message: "You exceeded your current quota, please check your plan and billing details."}, Quota},
		{429, errorInfo{message: "You exceeded your current quota, please check your plan and billing details."}, Quota},
		{429, errorInfo{message: "You exceeded your current quota", retryDelay: 58 * time.Second, perMinute: true}, RateLimited},
		{429, errorInfo{code: "rate_limit_exceeded", message: "Request too large for gpt-4o in organization org-x on tokens per min (TPM): Limit 30000, Requested 50000."}, BadRequest},
		{413, errorInfo{code: "rate_limit_exceeded", message: "Request too large for model `llama3-70b-8192` in organization `org_x` on tokens per minute (TPM): Limit 6000, Requested 9000"}, BadRequest},
		{400, errorInfo{message: "prompt is too long: 208000 tokens > 200000 maximum"}, ContextOverflow},
		{400, errorInfo{typ: "exceed_context_size_error", message: "the request exceeds the available context size, try increasing it"}, ContextOverflow},
		{400, errorInfo{code: "content_filter", message: "The response was filtered"}, ContentFilter},
		{402, errorInfo{message: "Insufficient Balance"}, Quota},
		{500, errorInfo{message: "SyntaxError: Bad control character"}, ServerError},
		{503, errorInfo{message: "The model is overloaded. Please try again later."}, ServerError},
		{529, errorInfo{typ: "overloaded_error"}, Overloaded},
		{401, errorInfo{}, Auth},
		{403, errorInfo{}, Auth},
		{404, errorInfo{}, NotFound},
		{422, errorInfo{}, BadRequest},
		{418, errorInfo{}, BadRequest},
		// Found in review: per-day quotas, ids that contain "tpm", echoed input.
		{429, errorInfo{message: "You exceeded your current quota. Please retry in 39.8s.", retryDelay: 39 * time.Second, perDay: true}, Quota},
		{429, errorInfo{message: "Your account org-aXtpmQ9 is suspended, please check your plan and billing details"}, Quota},
		{429, errorInfo{message: "You have used 1000000 tokens per month. Check billing"}, Quota},
		{429, errorInfo{code: "rate_limit_exceeded", message: "Slow down"}, RateLimited},
		{400, errorInfo{message: "API key not valid. Please pass a valid API key.", typ: "INVALID_ARGUMENT"}, Auth},
	}
	for _, tt := range tests {
		if got, _ := classifyResponse(tt.status, tt.info); got != tt.want {
			t.Errorf("classifyResponse(%d, %+v) = %s, want %s", tt.status, tt.info, got, tt.want)
		}
	}
}

func TestDetailKeepsMessagesNotEchoedInput(t *testing.T) {
	t.Parallel()
	info, ok := errorBody([]byte(`{"detail":[{"type":"missing","loc":["body","model"],"msg":"Field required","input":{"prompt":"check my billing and the context length"}}]}`))
	if !ok || info.message != `["body","model"]: Field required` {
		t.Fatalf("errorBody = %+v, %v; want the validation message without the echoed input", info, ok)
	}
	if c, _ := classifyResponse(422, info); c != BadRequest {
		t.Errorf("class %s, want bad_request (the echoed input must not decide)", c)
	}
}
