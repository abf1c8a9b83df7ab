package provider_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/llmfleet/llmfleet/provider"
	"github.com/llmfleet/llmfleet/tasks"
)

// FuzzRetryAfter checks RetryAfter over any values of the headers it reads:
// it never panics, is deterministic, stays within [0, 1h], is the longest of
// the waits each header (or reset/remaining pair) gives alone, and ignores a
// reset header whose x-ratelimit-remaining-* says calls remain.
func FuzzRetryAfter(f *testing.F) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	date := func(d time.Duration) string { return now.Add(d).Format(http.TimeFormat) }
	for _, s := range []struct {
		retryAfter, retryAfterMs, resetRequests, resetTokens, remainingRequests, remainingTokens string
	}{
		{retryAfter: "3"},
		{retryAfter: " 1.5 "},
		{retryAfter: "0"},
		{retryAfter: "-5"},
		{retryAfter: "7200"},
		{retryAfter: "99999999999"},
		{retryAfter: "NaN"},
		{retryAfter: "+Inf"},
		{retryAfter: "1e400"},
		{retryAfter: date(10 * time.Second)},
		{retryAfter: date(-10 * time.Second)},
		{retryAfter: date(2 * time.Hour)},
		{retryAfter: "Wed, 99 Foo 2026", retryAfterMs: "1500"},
		{retryAfter: "Sun, 06 Nov 1994 08:49:37 GMT"},
		{retryAfter: "Sunday, 06-Nov-94 08:49:37 GMT"},
		{retryAfter: "Sun Nov  6 08:49:37 1994"},
		{retryAfterMs: "2500"},
		{retryAfterMs: "1e300"},
		{retryAfterMs: "-1"},
		{retryAfterMs: "0x10"},
		{resetRequests: "6m0s", remainingRequests: "0"},
		{resetRequests: "6m0s", remainingRequests: "12"},
		{resetRequests: "2s"},
		{resetTokens: "20ms"},
		{resetTokens: "1s", remainingTokens: "4000"},
		{resetTokens: "1m30.5s", remainingTokens: " 0 "},
		{resetRequests: "90m"},
		{resetRequests: "-3s"},
		{resetRequests: "2562047h47m16.854775807s"},
		{resetRequests: "30", resetTokens: "1.5"},
		{resetRequests: "soon", resetTokens: "later", retryAfter: "soon", retryAfterMs: "abc"},
		{retryAfter: "3", retryAfterMs: "2500", resetRequests: "6m0s", remainingRequests: "0", resetTokens: "20ms"},
		{retryAfter: "3", retryAfterMs: "2500", resetRequests: "6m0s", remainingRequests: "12", resetTokens: "20ms"},
	} {
		f.Add(s.retryAfter, s.retryAfterMs, s.resetRequests, s.resetTokens, s.remainingRequests, s.remainingTokens, now.Unix())
	}
	f.Fuzz(func(t *testing.T, retryAfter, retryAfterMs, resetRequests, resetTokens, remainingRequests, remainingTokens string, nowUnix int64) {
		now := time.Unix(nowUnix, 0)
		header := func(kv ...string) http.Header {
			h := http.Header{}
			for i := 0; i < len(kv); i += 2 {
				if kv[i+1] != "" {
					h.Set(kv[i], kv[i+1])
				}
			}
			return h
		}
		all := header("Retry-After", retryAfter, "Retry-After-Ms", retryAfterMs,
			"X-Ratelimit-Reset-Requests", resetRequests, "X-Ratelimit-Reset-Tokens", resetTokens,
			"X-Ratelimit-Remaining-Requests", remainingRequests, "X-Ratelimit-Remaining-Tokens", remainingTokens)
		got := provider.RetryAfter(all, now)
		if got < 0 || got > time.Hour {
			t.Fatalf("RetryAfter(%v) = %v, want a wait in [0, 1h]", all, got)
		}
		if again := provider.RetryAfter(all.Clone(), now); again != got {
			t.Fatalf("RetryAfter(%v) = %v, then %v", all, got, again)
		}
		parts := []http.Header{
			header("Retry-After", retryAfter),
			header("Retry-After-Ms", retryAfterMs),
			header("X-Ratelimit-Reset-Requests", resetRequests, "X-Ratelimit-Remaining-Requests", remainingRequests),
			header("X-Ratelimit-Reset-Tokens", resetTokens, "X-Ratelimit-Remaining-Tokens", remainingTokens),
		}
		var longest time.Duration
		for _, h := range parts {
			d := provider.RetryAfter(h, now)
			if d < 0 || d > time.Hour {
				t.Fatalf("RetryAfter(%v) = %v, want a wait in [0, 1h]", h, d)
			}
			longest = max(longest, d)
		}
		if got != longest {
			t.Errorf("RetryAfter(%v) = %v, want %v, the longest of the waits each header gives alone", all, got, longest)
		}
		for _, kind := range []struct{ remaining, reset string }{{remainingRequests, "Requests"}, {remainingTokens, "Tokens"}} {
			if r := strings.TrimSpace(kind.remaining); r != "" && r != "0" {
				h := header("X-Ratelimit-Reset-"+kind.reset, "1m", "X-Ratelimit-Remaining-"+kind.reset, kind.remaining)
				if d := provider.RetryAfter(h, now); d != 0 {
					t.Errorf("RetryAfter(%v) = %v, want 0: calls remain", h, d)
				}
			}
		}
		if provider.RetryAfter(nil, now) != 0 || provider.RetryAfter(http.Header{}, now) != 0 {
			t.Error("RetryAfter without headers is not 0")
		}
	})
}

// The API keys of the fuzzed clients: one that Scrub recognises, one that
// only the client's own masking can hide.
const (
	fuzzKey      = "sk-fuzzsecret1234567890"
	fuzzPlainKey = "fz-PLAINSECRET-0987654321"
)

// answer is what the fuzzed server sends for one call.
type answer struct {
	status      int
	contentType string
	headers     http.Header
	body        []byte
	// bodySent is set by the server: false when the status allows no body
	// (204, 304) and the body was dropped.
	bodySent bool
}

// fuzzServer answers every call with the current answer.
type fuzzServer struct {
	srv *httptest.Server
	mu  sync.Mutex
	cur *answer
}

func newFuzzServer(f *testing.F) *fuzzServer {
	s := &fuzzServer{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		a := s.cur
		s.mu.Unlock()
		if a == nil {
			http.Error(w, "no answer set", http.StatusTeapot)
			return
		}
		for k, vs := range a.headers {
			w.Header()[k] = vs
		}
		if a.contentType != "" {
			w.Header().Set("Content-Type", a.contentType)
		}
		w.WriteHeader(a.status)
		_, err := w.Write(a.body)
		s.mu.Lock()
		a.bodySent = err == nil
		s.mu.Unlock()
	}))
	f.Cleanup(s.srv.Close)
	return s
}

// serve makes a the answer to the next calls.
func (s *fuzzServer) serve(a *answer) {
	s.mu.Lock()
	s.cur = a
	s.mu.Unlock()
}

func (s *fuzzServer) sent(a *answer) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return a.bodySent
}

// Flags of a FuzzComplete input.
const (
	fuzzWantJSON uint8 = 1 << iota // the item asks for a JSON object
	fuzzPlain                      // the client has fuzzPlainKey, not fuzzKey
)

// fixedPrefixes start the messages the client writes around provider text:
// Scrub bounds the text, not the prefix.
var fixedPrefixes = []string{
	"2xx answer is not a chat completion: ",
	"2xx answer carries an error: ",
	"JSON was asked for but the answer is not valid JSON: ",
}

// maxScrubbed is Scrub's bound: 500 bytes and "…".
const maxScrubbed = 500 + len("…")

// FuzzComplete serves any status, body, Content-Type and headers from an
// httptest server and calls it through the real client. It checks:
//
//   - every failure is a *provider.Error with a class of the DESIGN table,
//     the status that was served, and a class decided by the answer (never
//     timeout, connection, cancelled or expired: the server always answered);
//   - a success is a 2xx valid chat completion, and a 2xx valid chat
//     completion (choices, non-blank content, not filtered, JSON when asked
//     for) is a success;
//   - 5xx is server_error, 529 overloaded, and 500 may be context_overflow
//     (llama.cpp and vLLM say so with a 500); 4xx is one of the 4xx classes;
//     a 2xx failure is upstream_invalid, invalid_output or content_filter;
//   - the provider text in a message is at most Scrub's 503 bytes; waits are
//     within their caps (an hour asked, a minute hinted);
//   - neither the message, nor Error(), nor any wrapped error contains the
//     client's API key, which some seed bodies echo.
func FuzzComplete(f *testing.F) {
	addFixtureSeeds(f)
	completion := func(content, finish string) []byte { return []byte(completionJSON(content, finish)) }
	long := strings.Repeat("é", 400) + fuzzKey
	for _, s := range []struct {
		status      int
		contentType string
		headers     string
		body        []byte
		flags       uint8
	}{
		{200, "application/json", "", completion("hello", "stop"), 0},
		{200, "application/json", "", completion(`{"ok":true}`, "stop"), fuzzWantJSON},
		{200, "application/json", "", completion(`not json `+fuzzKey, "stop"), fuzzWantJSON},
		{200, "application/json", "", completion(`{"cut":`, "length"), fuzzWantJSON},
		{200, "application/json", "", completion("", "stop"), 0},
		{200, "application/json", "", completion("withheld", "content_filter"), 0},
		{200, "application/json", "", completion("cut short", "length"), 0},
		{200, "application/json", "", []byte(`{"id":"x","object":"chat.completion","choices":[]}`), 0},
		{200, "application/json", "", []byte(`{"choices":[],"error":{"message":"key ` + fuzzKey + ` refused"}}`), 0},
		{200, "application/json", "", []byte(`{"choices":[],"error":{"message":"key ` + fuzzPlainKey + ` refused"}}`), fuzzPlain},
		{200, "text/html", "", []byte("<html><body><h1>Welcome to nginx!</h1></body></html>"), 0},
		{200, "application/json", "", []byte(`{"choices":[{"message":{"content":"trunc`), 0},
		{200, "application/json", "", completion("hi", "stop")[:40], 0},
		{200, "", "", nil, 0},
		{204, "", "", completion("no body allowed", "stop"), 0},
		{201, "application/json", "", completion("created", "stop"), 0},
		{200, "application/json", "", append(completion("trailing", "stop"), " garbage"...), 0},
		{400, "application/json", "", []byte(`{"error":{"message":"This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens.","type":"invalid_request_error","code":"context_length_exceeded"}}`), 0},
		{401, "application/json", "", []byte(`{"error":{"message":"Incorrect API key provided: ` + fuzzKey + `.","type":"invalid_request_error","code":"invalid_api_key"}}`), 0},
		{401, "application/json", "", []byte(`{"error":{"message":"Incorrect API key provided: ` + fuzzPlainKey + `.","code":"invalid_api_key"}}`), fuzzPlain},
		{401, "text/plain", "", []byte("Authorization: Bearer " + fuzzKey), 0},
		{403, "application/json", "", []byte(`{"error":"key ` + fuzzPlainKey + ` is not allowed"}`), fuzzPlain},
		{404, "application/json", "", []byte(`{"error":{"message":"The model does not exist","code":"model_not_found"}}`), 0},
		{413, "application/json", "", []byte(`{"error":{"message":"Request too large for gpt-4o on tokens per min (TPM): Limit 30000, Requested 50000."}}`), 0},
		{422, "application/json", "", []byte(`{"detail":[{"loc":["body","messages"],"msg":"field required"}]}`), 0},
		{429, "application/json", "Retry-After: 20\nX-Ratelimit-Reset-Tokens: 6m0s\nX-Ratelimit-Remaining-Tokens: 0",
			[]byte(`{"error":{"message":"Rate limit reached. Please try again in 20s.","type":"requests","code":"rate_limit_exceeded"}}`), 0},
		{429, "application/json", "", []byte(`{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","code":"insufficient_quota"}}`), 0},
		{429, "application/json", "", []byte(`[{"error":{"code":429,"message":"Resource has been exhausted","status":"RESOURCE_EXHAUSTED",` +
			`"details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"37s"}]}}]`), 0},
		{429, "application/json", "Retry-After: 99999999999\nRetry-After-Ms: 1e300", []byte(`{"error":{"message":"Try again in 86400 seconds"}}`), 0},
		{500, "application/json", "", []byte(`{"error":{"message":"the request exceeds the available context size","type":"exceed_context_size_error","n_prompt_tokens":9000,"n_ctx":4096}}`), 0},
		{500, "application/json", "", []byte(`{"error":{"message":"The server had an error while processing your request."}}`), 0},
		{502, "text/html", "", []byte("<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center></body></html>"), 0},
		{503, "text/plain", "", []byte(long), 0},
		{503, "application/json", "", []byte(`{"error":{"message":"` + long + `"}}`), 0},
		{504, "", "", nil, 0},
		{529, "application/json", "", []byte(`{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`), 0},
		{599, "application/json", "", []byte(`{"detail":"` + fuzzKey + `"}`), 0},
		{-1, "application/json", "", completion("status out of range", "stop"), 0},
		// Found by the fuzzer (fixed): a key in the error code, a plain key
		// in invalid JSON, an unbounded retryDelay, 3xx answers.
		{400, "application/json", "", []byte(`{"error":{"message":"bad","code":"` + fuzzKey + `"}}`), 0},
		{400, "application/json", "", []byte(`{"error":{"message":"bad","code":"` + fuzzPlainKey + `"}}`), fuzzPlain},
		{200, "application/json", "", completion("not json "+fuzzPlainKey, "stop"), fuzzWantJSON | fuzzPlain},
		{429, "application/json", "", []byte(`[{"error":{"code":429,"message":"slow","status":"RESOURCE_EXHAUSTED",` +
			`"details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"2562047h"}]}}]`), 0},
		{300, "application/json", "", completion("a redirect's body", "stop"), 0},
		{304, "", "", nil, 0},
		{307, "application/json", "", []byte(`0`), 0},
		{351, "application/json", "", []byte(`0`), 0},
	} {
		f.Add(s.status, s.contentType, s.headers, s.body, s.flags)
	}

	srv := newFuzzServer(f)
	clients := map[bool]*provider.Client{
		false: provider.NewClient(provider.Config{BaseURL: srv.srv.URL + "/v1", APIKey: fuzzKey}),
		true:  provider.NewClient(provider.Config{BaseURL: srv.srv.URL + "/v1", APIKey: fuzzPlainKey}),
	}
	f.Fuzz(func(t *testing.T, status int, contentType, headers string, body []byte, flags uint8) {
		if status < 200 || status > 599 {
			// WriteHeader panics outside 100-999, and a 1xx is not a final answer.
			status = 200 + int(uint(status)%400)
		}
		a := &answer{status: status, contentType: headerValue(contentType), headers: parseHeaders(headers), body: body}
		srv.serve(a)
		key := fuzzKey
		if flags&fuzzPlain != 0 {
			key = fuzzPlainKey
		}
		it := userItem("hi")
		wantJSON := flags&fuzzWantJSON != 0
		if wantJSON {
			it.ResponseFormat = &tasks.ResponseFormat{Type: "json_object"}
		}
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		got, err := clients[flags&fuzzPlain != 0].Complete(ctx, it, "gpt-4o-mini")

		sent := body
		if !srv.sent(a) {
			sent = nil
		}
		valid := status >= 200 && status < 300 && validCompletion(sent, wantJSON)
		if err == nil {
			if got == nil || strings.TrimSpace(got.Content) == "" {
				t.Fatalf("HTTP %d: success with completion %+v", status, got)
			}
			if !valid {
				t.Fatalf("HTTP %d with body %q: success (%q), but that is not a 2xx valid chat completion", status, sent, got.Content)
			}
			return
		}
		if valid {
			t.Fatalf("HTTP %d with a valid chat completion %q: %v", status, sent, err)
		}
		var pe *provider.Error
		if !errors.As(err, &pe) {
			t.Fatalf("HTTP %d: error %T %v is not a *provider.Error", status, err, err)
		}
		if !pe.Class.Valid() {
			t.Fatalf("HTTP %d: class %q is not in the DESIGN table", status, pe.Class)
		}
		if pe.Status != status {
			t.Errorf("HTTP %d: error has status %d", status, pe.Status)
		}
		switch pe.Class {
		case provider.Timeout, provider.Connection, provider.Cancelled, provider.Expired:
			t.Errorf("HTTP %d with body %q: class %s, but the server answered (%v)", status, sent, pe.Class, err)
		}
		var want []provider.Class
		switch {
		case status == 529:
			want = []provider.Class{provider.Overloaded}
		case status == 500:
			want = []provider.Class{provider.ServerError, provider.ContextOverflow}
		case status >= 500:
			want = []provider.Class{provider.ServerError}
		case status >= 400:
			want = []provider.Class{provider.RateLimited, provider.Quota, provider.ContextOverflow, provider.BadRequest,
				provider.Auth, provider.NotFound, provider.ContentFilter}
		case status >= 200 && status < 300:
			want = []provider.Class{provider.UpstreamInvalid, provider.InvalidOutput, provider.ContentFilter}
		}
		if want != nil && !slices.Contains(want, pe.Class) {
			t.Errorf("HTTP %d: class %s, want one of %v (%v)", status, pe.Class, want, err)
		}

		text := pe.Message
		for _, p := range fixedPrefixes {
			text = strings.TrimPrefix(text, p)
		}
		if len(text) > maxScrubbed {
			t.Errorf("HTTP %d: message of %d bytes (%d of provider text), over Scrub's %d: %q", status, len(pe.Message), len(text), maxScrubbed, pe.Message)
		}
		if pe.RetryAfter < 0 || pe.RetryAfter > time.Hour || pe.RetryHint < 0 || pe.RetryHint > time.Minute {
			t.Errorf("HTTP %d: waits %v asked, %v hinted; want at most an hour and a minute", status, pe.RetryAfter, pe.RetryHint)
		}
		for e := error(pe); e != nil; e = errors.Unwrap(e) {
			if strings.Contains(e.Error(), key) {
				t.Errorf("HTTP %d: %T %q shows the API key (message %q, code %q)", status, e, e.Error(), pe.Message, pe.Code)
				break
			}
		}
	})
}

// validCompletion reports whether body is what Complete accepts: decoded as
// go-openai decodes it, a first choice with content that is not blank, not
// withheld by a filter and, when JSON is asked for, complete JSON.
func validCompletion(body []byte, wantJSON bool) bool {
	var resp openai.ChatCompletionResponse
	if err := json.NewDecoder(bytes.NewReader(body)).Decode(&resp); err != nil || len(resp.Choices) == 0 {
		return false
	}
	ch := resp.Choices[0]
	if strings.TrimSpace(ch.Message.Content) == "" || ch.FinishReason == openai.FinishReasonContentFilter {
		return false
	}
	return !wantJSON || (ch.FinishReason != openai.FinishReasonLength && json.Valid([]byte(ch.Message.Content)))
}

// parseHeaders reads "Name: value" lines, dropping what is not a valid
// header: the fuzzer explores answers, not malformed HTTP.
func parseHeaders(s string) http.Header {
	h := http.Header{}
	for line := range strings.SplitSeq(s, "\n") {
		name, value, ok := strings.Cut(line, ":")
		name = strings.TrimSpace(name)
		if !ok || name == "" || strings.ContainsFunc(name, func(r rune) bool {
			return r <= ' ' || r >= 0x7f || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r)
		}) {
			continue
		}
		switch http.CanonicalHeaderKey(name) {
		case "Content-Length", "Transfer-Encoding", "Connection", "Trailer", "Content-Encoding":
			continue // framing, not an answer's content
		}
		h.Add(name, headerValue(value))
	}
	return h
}

// headerValue drops the bytes a header value cannot hold.
func headerValue(s string) string {
	return strings.TrimSpace(strings.Map(func(r rune) rune {
		if (r < ' ' && r != '\t') || r == 0x7f || r == '\uFFFD' {
			return -1
		}
		return r
	}, s))
}

// addFixtureSeeds adds the responses real providers sent
// (testdata/responses, replayed by TestRealProviderResponses) to the corpus.
func addFixtureSeeds(f *testing.F) {
	paths, _ := filepath.Glob(filepath.Join("testdata", "responses", "*.json"))
	sort.Strings(paths)
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		var fx struct {
			Status  int               `json:"status"`
			Headers map[string]string `json:"headers"`
			Body    string            `json:"body"`
		}
		if err := json.Unmarshal(b, &fx); err != nil {
			f.Fatalf("%s: %v", p, err)
		}
		var ct string
		var hs []string
		for k, v := range fx.Headers {
			if strings.EqualFold(k, "Content-Type") {
				ct = v
				continue
			}
			hs = append(hs, k+": "+v)
		}
		sort.Strings(hs)
		f.Add(fx.Status, ct, strings.Join(hs, "\n"), []byte(fx.Body), uint8(0))
	}
}
