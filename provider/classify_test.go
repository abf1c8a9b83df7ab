package provider_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/llmfleet/llmfleet/provider"
	"github.com/llmfleet/llmfleet/simulator"
	"github.com/llmfleet/llmfleet/tasks"
)

// designTable is DESIGN.md's error-class table, spelled independently of
// the package: the stable strings, in order, and their treatment.
var designTable = []struct {
	class   string
	retry   bool // "retry ..." in the treatment column
	breaker bool // "feeds the breaker"
}{
	{"rate_limited", true, false},
	{"quota", false, true},
	{"overloaded", true, true},
	{"server_error", true, true},
	{"timeout", true, false},
	{"connection", true, true},
	{"upstream_invalid", true, false},
	{"invalid_output", true, false},
	{"context_overflow", false, false},
	{"bad_request", false, false},
	{"auth", false, true},
	{"not_found", false, false},
	{"content_filter", false, false},
	{"expired", false, false},
	{"cancelled", false, false},
}

// classEnv is what the cases of the class table call.
type classEnv struct {
	sim    *simulator.Running
	fake   *fakeAPI
	closed string // a base URL nothing listens on
}

// classCase is one row of the table: a call that must fail with class want.
type classCase struct {
	name string
	// prompt is the last user message; its directives drive the simulator.
	prompt string
	json   bool // ask for response_format json_object
	// base returns the base URL to call; nil means the simulator.
	base func(e *classEnv) string
	// ctx returns the context of the call; nil means the test's.
	ctx func(t *testing.T, e *classEnv, prompt string) context.Context

	// noCall: the call must not reach the simulator.
	noCall bool

	want       provider.Class
	status     int
	code       string
	retryAfter time.Duration
}

func attemptTimeout(d time.Duration) func(*testing.T, *classEnv, string) context.Context {
	return func(t *testing.T, _ *classEnv, _ string) context.Context {
		ctx, cancel := context.WithTimeoutCause(t.Context(), d, provider.ErrAttemptTimeout)
		t.Cleanup(cancel)
		return ctx
	}
}

func jobDeadline(d time.Duration) func(*testing.T, *classEnv, string) context.Context {
	return func(t *testing.T, _ *classEnv, _ string) context.Context {
		ctx, cancel := context.WithDeadlineCause(t.Context(), time.Now().Add(d), provider.ErrJobDeadline)
		t.Cleanup(cancel)
		return ctx
	}
}

// nested is how the worker builds an attempt's context: the attempt
// timeout inside the job deadline.
func nested(job, attempt time.Duration) func(*testing.T, *classEnv, string) context.Context {
	return func(t *testing.T, _ *classEnv, _ string) context.Context {
		jctx, jcancel := context.WithDeadlineCause(t.Context(), time.Now().Add(job), provider.ErrJobDeadline)
		actx, acancel := context.WithTimeoutCause(jctx, attempt, provider.ErrAttemptTimeout)
		t.Cleanup(func() { acancel(); jcancel() })
		return actx
	}
}

// cancelWhenHeld cancels the call's context with cause once the simulator
// holds the call (a #fail:timeout prompt), so the cancellation lands in
// the middle of a real exchange. cause nil cancels without one.
func cancelWhenHeld(cause error) func(*testing.T, *classEnv, string) context.Context {
	return func(t *testing.T, e *classEnv, prompt string) context.Context {
		ctx, cancel := context.WithCancelCause(t.Context())
		key := simulator.Key(prompt)
		done := make(chan struct{})
		go func() {
			defer close(done)
			deadline := time.Now().Add(5 * time.Second)
			for e.sim.Server().Stats().ByContent[key] == 0 && time.Now().Before(deadline) {
				time.Sleep(2 * time.Millisecond)
			}
			cancel(cause)
		}()
		t.Cleanup(func() { cancel(nil); <-done })
		return ctx
	}
}

func route(name string, h http.HandlerFunc) func(*classEnv) string {
	return func(e *classEnv) string { return e.fake.route(name, h) }
}

func classCases() []classCase {
	return []classCase{
		// Over real HTTP against the simulator.
		{name: "429 with retry-after", prompt: "#fail:429 #retry-after:7", want: provider.RateLimited, status: 429, code: "rate_limit_exceeded", retryAfter: 7 * time.Second},
		{name: "429 default retry-after", prompt: "#fail:429", want: provider.RateLimited, status: 429, code: "rate_limit_exceeded", retryAfter: time.Second},
		{name: "quota", prompt: "#fail:quota", want: provider.Quota, status: 429, code: "insufficient_quota"},
		{name: "529", prompt: "#fail:529", want: provider.Overloaded, status: 529},
		{name: "500", prompt: "#fail:500", want: provider.ServerError, status: 500},
		{name: "502", prompt: "#fail:502", want: provider.ServerError, status: 502},
		{name: "503", prompt: "#fail:503", want: provider.ServerError, status: 503},
		{name: "504", prompt: "#fail:504", want: provider.ServerError, status: 504},
		{name: "html502", prompt: "#fail:html502", want: provider.ServerError, status: 502},
		{name: "attempt timeout", prompt: "#fail:timeout attempt", ctx: attemptTimeout(150 * time.Millisecond), want: provider.Timeout},
		{name: "attempt timeout inside job deadline", prompt: "#fail:timeout nested attempt", ctx: nested(time.Hour, 150*time.Millisecond), want: provider.Timeout},
		{name: "job deadline", prompt: "#fail:timeout job", ctx: jobDeadline(150 * time.Millisecond), want: provider.Expired},
		{name: "job deadline before attempt timeout", prompt: "#fail:timeout nested job", ctx: nested(150*time.Millisecond, time.Hour), want: provider.Expired},
		{name: "job deadline already passed", prompt: "late", ctx: jobDeadline(-time.Second), noCall: true, want: provider.Expired},
		{name: "refused", prompt: "refused", base: func(e *classEnv) string { return e.closed }, want: provider.Connection},
		{name: "reset", prompt: "#fail:reset", want: provider.Connection},
		{name: "html200", prompt: "#fail:html200", want: provider.UpstreamInvalid, status: 200},
		{name: "badjson when JSON asked", prompt: "#fail:badjson", json: true, want: provider.InvalidOutput, status: 200},
		{name: "empty content", prompt: "#fail:empty", want: provider.InvalidOutput, status: 200},
		{name: "overflow", prompt: "#fail:overflow", want: provider.ContextOverflow, status: 400, code: "context_length_exceeded"},
		{name: "400", prompt: "#fail:400", want: provider.BadRequest, status: 400},
		{name: "401", prompt: "#fail:401", want: provider.Auth, status: 401, code: "invalid_api_key"},
		{name: "403", prompt: "#fail:403", want: provider.Auth, status: 403, code: "permission_denied"},
		{name: "404", prompt: "#fail:404", want: provider.NotFound, status: 404, code: "model_not_found"},
		{name: "filter", prompt: "#fail:filter", want: provider.ContentFilter, status: 400, code: "content_filter"},
		{name: "cancelled with a cause", prompt: "#fail:timeout cancel", ctx: cancelWhenHeld(errors.New("job cancelled by the user")), want: provider.Cancelled},
		{name: "cancelled without a cause", prompt: "#fail:timeout cancel plain", ctx: cancelWhenHeld(nil), want: provider.Cancelled},

		// httptest servers, for answers the simulator does not give.
		{name: "200 carrying an error", prompt: "x", want: provider.UpstreamInvalid, status: 200,
			base: route("200error", reply(200, `{"error":{"message":"upstream failed","type":"server_error","param":null,"code":null}}`))},
		{name: "200 truncated JSON", prompt: "x", want: provider.UpstreamInvalid, status: 200,
			base: route("200truncated", reply(200, `{"id":"chatcmpl-1","object":"chat.completion","choices":[{"mess`))},
		{name: "200 finish_reason content_filter", prompt: "x", want: provider.ContentFilter, status: 200,
			base: route("200filter", reply(200, completionJSON("", "content_filter")))},
		{name: "200 no choices", prompt: "x", want: provider.InvalidOutput, status: 200,
			base: route("200nochoices", reply(200, `{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":0,"total_tokens":1}}`))},
		{name: "418 unknown 4xx", prompt: "x", want: provider.BadRequest, status: 418,
			base: route("418", reply(418, `{"error":{"message":"I'm a teapot","type":"invalid_request_error","param":null,"code":null}}`))},
		{name: "402 payment required", prompt: "x", want: provider.Quota, status: 402,
			base: route("402", reply(402, `{"error":{"message":"Payment required","type":"billing_error","param":null,"code":null}}`))},
		{name: "429 retry-after-ms", prompt: "x", want: provider.RateLimited, status: 429, code: "rate_limit_exceeded", retryAfter: 2500 * time.Millisecond,
			base: route("429ms", func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("retry-after-ms", "2500")
				reply(429, `{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}`)(w, r)
			})},
	}
}

// TestClassifyTable makes each call of the table through Client.Complete
// over real HTTP and checks the class, the status and the treatment.
func TestClassifyTable(t *testing.T) {
	env := &classEnv{
		sim:    startSim(t, simulator.Config{Seed: 1}),
		fake:   newFakeAPI(t),
		closed: closedPortURL(t),
	}
	treatment := map[provider.Class]struct{ retry, breaker bool }{}
	for _, row := range designTable {
		treatment[provider.Class(row.class)] = struct{ retry, breaker bool }{row.retry, row.breaker}
	}
	for _, tc := range classCases() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			base := env.sim.URL()
			if tc.base != nil {
				base = tc.base(env)
			}
			ctx := t.Context()
			if tc.ctx != nil {
				ctx = tc.ctx(t, env, tc.prompt)
			}
			it := userItem(tc.prompt)
			if tc.json {
				it.ResponseFormat = &tasks.ResponseFormat{Type: "json_object"}
			}
			c := provider.NewClient(provider.Config{BaseURL: base})
			start := time.Now()
			_, err := c.Complete(ctx, it, "gpt-4o-mini")
			if took := time.Since(start); took > 10*time.Second {
				t.Errorf("Complete took %v", took)
			}
			if err == nil {
				t.Fatalf("Complete: no error, want class %s", tc.want)
			}
			var pe *provider.Error
			if !errors.As(err, &pe) {
				t.Fatalf("Complete error %T %v is not a *provider.Error", err, err)
			}
			if pe.Class != tc.want || provider.ClassOf(err) != tc.want {
				t.Errorf("class = %q (ClassOf %q), want %q; error: %v", pe.Class, provider.ClassOf(err), tc.want, err)
			}
			if pe.Status != tc.status {
				t.Errorf("status = %d, want %d; error: %v", pe.Status, tc.status, err)
			}
			if tc.code != "" && pe.Code != tc.code {
				t.Errorf("code = %q, want %q", pe.Code, tc.code)
			}
			if pe.RetryAfter != tc.retryAfter {
				t.Errorf("RetryAfter = %v, want %v", pe.RetryAfter, tc.retryAfter)
			}
			want := treatment[tc.want]
			if got := pe.Class.Retryable(); got != want.retry {
				t.Errorf("%s.Retryable() = %v, want %v", pe.Class, got, want.retry)
			}
			if got := pe.Class.FeedsBreaker(); got != want.breaker {
				t.Errorf("%s.FeedsBreaker() = %v, want %v", pe.Class, got, want.breaker)
			}
			if pe.Message == "" {
				t.Errorf("empty Message; error: %v", err)
			}
			if tc.base == nil {
				// The simulator saw the call (or, for noCall, did not).
				n := env.sim.Server().Stats().ByContent[simulator.Key(tc.prompt)]
				if tc.noCall != (n == 0) {
					t.Errorf("simulator saw %d calls for this prompt, noCall=%v", n, tc.noCall)
				}
			}
		})
	}
}

// TestClassifyTableCoversEveryClass fails when a class has no row in the
// table, so a new class cannot ship untested.
func TestClassifyTableCoversEveryClass(t *testing.T) {
	covered := map[provider.Class]int{}
	for _, tc := range classCases() {
		if !tc.want.Valid() {
			t.Errorf("case %q wants unknown class %q", tc.name, tc.want)
		}
		covered[tc.want]++
	}
	for _, c := range provider.Classes {
		if covered[c] == 0 {
			t.Errorf("class %q has no case in classCases", c)
		}
	}
}

// TestClassesMatchDesign pins the stable strings, their order and the
// treatment to DESIGN.md's table.
func TestClassesMatchDesign(t *testing.T) {
	var want []provider.Class
	for _, row := range designTable {
		want = append(want, provider.Class(row.class))
	}
	if !slices.Equal(provider.Classes, want) {
		t.Fatalf("Classes = %q, want %q", provider.Classes, want)
	}
	for _, row := range designTable {
		c := provider.Class(row.class)
		if !c.Valid() {
			t.Errorf("%q.Valid() = false", c)
		}
		if c.Retryable() != row.retry || c.FeedsBreaker() != row.breaker {
			t.Errorf("%q: Retryable %v FeedsBreaker %v, want %v %v", c, c.Retryable(), c.FeedsBreaker(), row.retry, row.breaker)
		}
	}
	if provider.Class("rate-limited").Valid() || provider.Class("").Valid() {
		t.Error("unknown classes reported valid")
	}
}

// TestClassifyDirect covers Classify's contract outside Complete: nil in,
// nil out; an *Error passes through unchanged.
func TestClassifyDirect(t *testing.T) {
	if got := provider.Classify(t.Context(), nil, nil); got != nil {
		t.Errorf("Classify(nil) = %v, want nil", got)
	}
	orig := &provider.Error{Class: provider.InvalidOutput, Status: 200, Message: "x"}
	wrapped := fmt.Errorf("attempt 2: %w", orig)
	if got := provider.Classify(t.Context(), wrapped, nil); got != orig {
		t.Errorf("Classify(wrapped *Error) = %v, want the same *Error", got)
	}
	// A transport timeout while the attempt's context is still live (a
	// dial or TLS timeout) is a timeout; any other transport error is a
	// connection failure.
	if got := provider.Classify(t.Context(), &url.Error{Op: "Post", URL: "http://x", Err: netTimeout{}}, nil); got.Class != provider.Timeout || got.Status != 0 {
		t.Errorf("net timeout: %v, want timeout", got)
	}
	if got := provider.Classify(t.Context(), &url.Error{Op: "Post", URL: "http://x", Err: syscall.ECONNREFUSED}, nil); got.Class != provider.Connection {
		t.Errorf("refused: %v, want connection", got)
	}
	// A 2xx go-openai could not decode is upstream_invalid, its body
	// summarised in the reason.
	ex := &provider.Exchange{Status: 200, Header: http.Header{}, Head: []byte("<html><body><p>Please sign in</p></body></html>")}
	got := provider.Classify(t.Context(), errors.New("invalid character '<'"), ex)
	if got.Class != provider.UpstreamInvalid || got.Status != 200 || !strings.Contains(got.Message, "Please sign in") || strings.Contains(got.Message, "<p>") {
		t.Errorf("2xx HTML: %+v", got)
	}
	// Retry-After is read from the exchange on 429 and 5xx answers.
	ra := &provider.Exchange{Status: 503, Header: http.Header{"Retry-After": {"4"}}}
	if got := provider.Classify(t.Context(), &openai.APIError{HTTPStatusCode: 503, Message: "busy"}, ra); got.Class != provider.ServerError || got.RetryAfter != 4*time.Second {
		t.Errorf("503 with Retry-After: %+v", got)
	}
	if provider.ClassOf(errors.New("plain")) != "" {
		t.Error("ClassOf(plain error) is not empty")
	}
}

type netTimeout struct{}

func (netTimeout) Error() string   { return "i/o timeout" }
func (netTimeout) Timeout() bool   { return true }
func (netTimeout) Temporary() bool { return true }

// TestClassifyDeadlineWithoutCause: an attempt context made with plain
// context.WithTimeout has no cause; a deadline is still a timeout (DESIGN:
// "attempt deadline, client timeout"), not a cancelled job that fails now.
func TestClassifyDeadlineWithoutCause(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), -time.Second)
	defer cancel()
	got := provider.Classify(ctx, ctx.Err(), nil)
	if got.Class != provider.Timeout {
		t.Errorf("class = %s, want timeout", got.Class)
	}
}
