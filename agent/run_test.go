package agent_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llmfleet/llmfleet/agent"
	"github.com/llmfleet/llmfleet/tasks"
)

// request is what the tool server saw of one request.
type request struct {
	Method string
	Path   string
	Query  string
	Header http.Header
	Body   []byte
	At     time.Time
}

// toolServer is a tool over real HTTP that records every request.
type toolServer struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []request
}

// newToolServer serves handle, called with the request's number (from 1).
// A handler that blocks must also return when ctx (the test's) ends, so
// that the server closes when the test does.
func newToolServer(t *testing.T, handle func(ctx context.Context, n int, w http.ResponseWriter, r *http.Request)) *toolServer {
	t.Helper()
	ctx := t.Context() // cancelled before the cleanups run
	s := &toolServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.reqs = append(s.reqs, request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header.Clone(), Body: body, At: time.Now()})
		n := len(s.reqs)
		s.mu.Unlock()
		handle(ctx, n, w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *toolServer) requests() []request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slicesClone(s.reqs)
}

func slicesClone[T any](s []T) []T { return append([]T(nil), s...) }

// reply answers every request with status and body.
func reply(status int, body string) func(context.Context, int, http.ResponseWriter, *http.Request) {
	return func(_ context.Context, _ int, w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

// hang blocks until the client gives up on the request (or the test ends).
func hang(ctx context.Context, _ int, _ http.ResponseWriter, r *http.Request) {
	select {
	case <-r.Context().Done():
	case <-ctx.Done():
	}
}

func env(vars map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := vars[name]
		return v, ok
	}
}

// fastRunner retries at once (1ms to 5ms), calling tools with client.
func fastRunner(client *http.Client, vars map[string]string) *agent.Runner {
	return &agent.Runner{Client: client, LookupEnv: env(vars), BackoffMin: time.Millisecond, BackoffMax: 5 * time.Millisecond}
}

const hostParams = `{"type":"object","properties":{"host":{"type":"string"},"force":{"type":"boolean"}},"required":["host"]}`

func httpTool(url string) *agent.Tool {
	return &agent.Tool{Name: "check_disk", URL: url, Parameters: json.RawMessage(hostParams), MaxAttempts: 3}
}

var base = agent.Call{Job: "job1", Item: "item7", Key: agent.IdempotencyKey("job1", "item7", 2, 1700000000123, "call_1")}

func diskCall(args string) tasks.ToolCall { return call("call_1", "check_disk", args) }

func TestRunPostContract(t *testing.T) {
	t.Parallel()
	const (
		tokenVar = "LLMFLEET_AGENT_TEST_TOKEN"
		pathVar  = "LLMFLEET_AGENT_TEST_PATH"
		zoneVar  = "LLMFLEET_AGENT_TEST_ZONE"
	)
	for _, v := range []string{tokenVar, pathVar, zoneVar} {
		if _, ok := os.LookupEnv(v); ok {
			t.Fatalf("%s is set in the environment: the test must read it through Runner.LookupEnv", v)
		}
	}
	srv := newToolServer(t, reply(200, `{"output":"ok"}`))
	tool := httpTool(srv.URL + "/tools/${" + pathVar + "}?zone=${" + zoneVar + "}")
	tool.Headers = map[string]string{"Authorization": "Bearer ${" + tokenVar + "}", "X-Trace": "on"}
	r := fastRunner(srv.Client(), map[string]string{tokenVar: "tok-123", pathVar: "check_disk", zoneVar: "eu-1"})

	out := r.Run(t.Context(), tool, diskCall(` { "host" : "db1", "force": true } `), base)
	if out.Failed != nil || out.Content != "ok" || out.Runs != 1 {
		t.Fatalf("outcome %+v", out)
	}
	reqs := srv.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests", len(reqs))
	}
	req := reqs[0]
	if req.Method != http.MethodPost {
		t.Errorf("method %s", req.Method)
	}
	if req.Path != "/tools/check_disk" || req.Query != "zone=eu-1" {
		t.Errorf("url not expanded: path %q query %q", req.Path, req.Query)
	}
	for name, want := range map[string]string{
		"Idempotency-Key": base.Key,
		"Content-Type":    "application/json",
		"Authorization":   "Bearer tok-123",
		"X-Trace":         "on",
	} {
		if got := req.Header.Get(name); got != want {
			t.Errorf("header %s = %q, want %q", name, got, want)
		}
	}
	var body map[string]json.RawMessage
	if err := json.Unmarshal(req.Body, &body); err != nil {
		t.Fatalf("body %s: %v", req.Body, err)
	}
	keys := make([]string, 0, len(body))
	for k := range body {
		keys = append(keys, k)
	}
	if len(body) != 5 {
		t.Errorf("body keys %v, want job, item, call_id, name, arguments", keys)
	}
	for k, want := range map[string]string{"job": `"job1"`, "item": `"item7"`, "call_id": `"call_1"`, "name": `"check_disk"`} {
		if got := string(body[k]); got != want {
			t.Errorf("body %s = %s, want %s", k, got, want)
		}
	}
	var args map[string]any
	if err := json.Unmarshal(body["arguments"], &args); err != nil {
		t.Fatalf("arguments %s are not a JSON object (a string?): %v", body["arguments"], err)
	}
	if !reflect.DeepEqual(args, map[string]any{"host": "db1", "force": true}) {
		t.Errorf("arguments %v", args)
	}
}

func TestRunEmptyArguments(t *testing.T) {
	t.Parallel()
	srv := newToolServer(t, reply(200, "fine"))
	tool := &agent.Tool{Name: "ping", URL: srv.URL, Parameters: json.RawMessage(`{"type":"object","properties":{}}`)}
	out := fastRunner(srv.Client(), nil).Run(t.Context(), tool, call("c", "ping", ""), base)
	if out.Failed != nil || out.Content != "fine" {
		t.Fatalf("outcome %+v", out)
	}
	var body struct {
		Arguments json.RawMessage `json:"arguments"`
	}
	if err := json.Unmarshal(srv.requests()[0].Body, &body); err != nil || string(body.Arguments) != "{}" {
		t.Fatalf("arguments %s (%v), want {}", body.Arguments, err)
	}
}

func TestRunResults(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		status int
		body   string
		want   string
	}{
		{"output string", 200, `{"output":"x"}`, "x"},
		{"output object", 200, `{"output":{"a":1}}`, `{"a":1}`},
		{"output array", 200, `{"output":[1,2]}`, `[1,2]`},
		{"output number", 200, `{"output":42}`, `42`},
		{"json without output", 200, `{"used":71}`, `{"used":71}`},
		{"plain text", 200, "disk at 71%\nlogs 3 GB\n", "disk at 71%\nlogs 3 GB\n"},
		{"created", 201, `{"output":"made"}`, "made"},
		{"empty", 204, ``, ``},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := newToolServer(t, reply(tc.status, tc.body))
			out := fastRunner(srv.Client(), nil).Run(t.Context(), httpTool(srv.URL), diskCall(`{"host":"db1"}`), base)
			if out.Failed != nil || out.Runs != 1 {
				t.Fatalf("outcome %+v", out)
			}
			if out.Content != tc.want {
				t.Errorf("content %q, want %q", out.Content, tc.want)
			}
		})
	}
}

// A 4xx goes back to the model, not retried.
func TestRunClientError(t *testing.T) {
	t.Parallel()
	for _, status := range []int{400, 403, 404, 409, 422} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			t.Parallel()
			srv := newToolServer(t, reply(status, "no such host db9"))
			out := fastRunner(srv.Client(), nil).Run(t.Context(), httpTool(srv.URL), diskCall(`{"host":"db9"}`), base)
			if out.Failed != nil {
				t.Fatalf("failed: %v", out.Failed)
			}
			if !strings.Contains(out.Content, fmt.Sprint(status)) || !strings.Contains(out.Content, "no such host db9") {
				t.Errorf("content %q lacks the status and the body", out.Content)
			}
			if out.Runs != 1 || len(srv.requests()) != 1 {
				t.Errorf("runs %d, requests %d: want 1 and 1", out.Runs, len(srv.requests()))
			}
		})
	}
}

// A 5xx (and 408, 429) is retried with the same Idempotency-Key and body.
func TestRunRetriesServerError(t *testing.T) {
	t.Parallel()
	for _, status := range []int{500, 502, 503, 504, 408, 429} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			t.Parallel()
			srv := newToolServer(t, func(_ context.Context, n int, w http.ResponseWriter, _ *http.Request) {
				if n == 1 {
					w.WriteHeader(status)
					io.WriteString(w, "try later")
					return
				}
				io.WriteString(w, `{"output":"ok"}`)
			})
			out := fastRunner(srv.Client(), nil).Run(t.Context(), httpTool(srv.URL), diskCall(`{"host":"db1"}`), base)
			if out.Failed != nil || out.Content != "ok" || out.Runs != 2 {
				t.Fatalf("outcome %+v", out)
			}
			reqs := srv.requests()
			if len(reqs) != 2 {
				t.Fatalf("%d requests, want 2", len(reqs))
			}
			k1, k2 := reqs[0].Header.Get("Idempotency-Key"), reqs[1].Header.Get("Idempotency-Key")
			if k1 != base.Key || k2 != base.Key {
				t.Errorf("Idempotency-Keys %q, %q, want %q twice", k1, k2, base.Key)
			}
			if string(reqs[0].Body) != string(reqs[1].Body) {
				t.Errorf("bodies differ: %s / %s", reqs[0].Body, reqs[1].Body)
			}
		})
	}
}

func TestRunGivesUp(t *testing.T) {
	t.Parallel()
	for _, attempts := range []int{1, 3} {
		t.Run(fmt.Sprint(attempts), func(t *testing.T) {
			t.Parallel()
			srv := newToolServer(t, reply(503, "overloaded"))
			tool := httpTool(srv.URL)
			tool.MaxAttempts = attempts
			out := fastRunner(srv.Client(), nil).Run(t.Context(), tool, diskCall(`{"host":"db1"}`), base)
			if out.Failed == nil {
				t.Fatalf("outcome %+v, want a failure", out)
			}
			for _, w := range []string{"check_disk", fmt.Sprintf("after %d attempts", attempts), "HTTP 503", "overloaded"} {
				if !strings.Contains(out.Failed.Error(), w) {
					t.Errorf("failure %q lacks %q", out.Failed, w)
				}
			}
			if out.Runs != attempts || len(srv.requests()) != attempts {
				t.Errorf("runs %d, requests %d, want %d", out.Runs, len(srv.requests()), attempts)
			}
		})
	}
}

func TestRunTimeout(t *testing.T) {
	t.Parallel()
	srv := newToolServer(t, hang)
	tool := httpTool(srv.URL)
	tool.Timeout = agent.Duration(50 * time.Millisecond)
	tool.MaxAttempts = 2
	out := fastRunner(srv.Client(), nil).Run(t.Context(), tool, diskCall(`{"host":"db1"}`), base)
	if out.Failed == nil || !strings.Contains(out.Failed.Error(), "timed out") || !strings.Contains(out.Failed.Error(), "after 2 attempts") {
		t.Fatalf("outcome %+v, want timed out after 2 attempts", out)
	}
	if out.Runs != 2 || len(srv.requests()) != 2 {
		t.Errorf("runs %d, requests %d, want 2", out.Runs, len(srv.requests()))
	}
}

func TestRunConnectionRefused(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	client, url := srv.Client(), srv.URL
	srv.Close()
	out := fastRunner(client, nil).Run(t.Context(), httpTool(url), diskCall(`{"host":"db1"}`), base)
	if out.Failed == nil || !strings.Contains(out.Failed.Error(), "connection") || !strings.Contains(out.Failed.Error(), "after 3 attempts") {
		t.Fatalf("outcome %+v, want a connection failure after 3 attempts", out)
	}
	if out.Runs != 3 {
		t.Errorf("runs %d, want 3", out.Runs)
	}
}

func TestRunMissingVariable(t *testing.T) {
	t.Parallel()
	const present = "present-secret-8d1f"
	for _, tc := range []struct {
		name, url string
		headers   map[string]string
	}{
		{"in a header", "/x", map[string]string{"Authorization": "Bearer ${MISSING_TOKEN}", "X-Other": "${PRESENT}"}},
		{"in the url", "/x?key=${PRESENT}&k2=${MISSING_TOKEN}", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := newToolServer(t, reply(200, "ok"))
			tool := httpTool(srv.URL + tc.url)
			tool.Headers = tc.headers
			out := fastRunner(srv.Client(), map[string]string{"PRESENT": present}).Run(t.Context(), tool, diskCall(`{"host":"db1"}`), base)
			if out.Failed == nil || !strings.Contains(out.Failed.Error(), "MISSING_TOKEN") {
				t.Fatalf("outcome %+v, want a failure naming MISSING_TOKEN", out)
			}
			if strings.Contains(out.Failed.Error(), present) || strings.Contains(out.Content, present) {
				t.Errorf("outcome %+v shows a secret", out)
			}
			if out.Runs > 1 || len(srv.requests()) != 0 {
				t.Errorf("runs %d, requests %d: want a failure at once, no request", out.Runs, len(srv.requests()))
			}
		})
	}
}

func TestRunInvalidArguments(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, args string
		want       string
	}{
		{"not json", `{"host": db1}`, "not valid JSON"},
		{"truncated", `{"host": "db1"`, "not valid JSON"},
		{"array", `["db1"]`, "JSON object"},
		{"string", `"db1"`, "JSON object"},
		{"null", `null`, "JSON object"},
		{"required missing", `{"force": true}`, "host"},
		{"wrong type", `{"host": 5}`, "host"},
		{"wrong nested type", `{"host": "db1", "force": "yes"}`, "force"},
		{"empty with required", ``, "host"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := newToolServer(t, reply(200, "ok"))
			r := fastRunner(srv.Client(), nil)
			tool := httpTool(srv.URL)
			out := r.Run(t.Context(), tool, diskCall(tc.args), base)
			if out.Failed != nil || out.Runs != 0 {
				t.Fatalf("outcome %+v, want a refusal for the model and no run", out)
			}
			for _, w := range []string{"invalid arguments", "check_disk", tc.want} {
				if !strings.Contains(out.Content, w) {
					t.Errorf("content %q lacks %q", out.Content, w)
				}
			}
			if strings.Contains(out.Content, "\n") {
				t.Errorf("content %q is not one line", out.Content)
			}
			if n := len(srv.requests()); n != 0 {
				t.Errorf("%d requests, want 0", n)
			}
			if err := r.ValidateArguments(tool, tc.args); err == nil || err.Error() != out.Content {
				t.Errorf("ValidateArguments = %v, want the text the model receives", err)
			}
		})
	}
	r := &agent.Runner{}
	if err := r.ValidateArguments(httpTool("http://h/x"), `{"host":"db1","force":false}`); err != nil {
		t.Errorf("ValidateArguments(valid) = %v", err)
	}
}

// No secret expanded into a url or header shows in what a run returns,
// whatever becomes of the run.
func TestRunSecretNeverShown(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t-7f0c2a-do-not-leak"
	vars := map[string]string{"SECRET": secret}
	closed := httptest.NewServer(http.NotFoundHandler())
	closedClient, closedURL := closed.Client(), closed.URL
	closed.Close()
	for _, tc := range []struct {
		name    string
		handle  func(context.Context, int, http.ResponseWriter, *http.Request)
		url     string // "" is the tool server's, with ${SECRET} in its query
		timeout time.Duration
		vars    map[string]string
		client  *http.Client // nil: the tool server's, or closedClient
		want    string       // in the outcome, when not ""
	}{
		{name: "ok", handle: reply(200, `{"output":"fine"}`)},
		{name: "4xx", handle: reply(401, "unauthorized")},
		{name: "5xx", handle: reply(500, "internal error")},
		{name: "empty 5xx", handle: reply(502, "")},
		{name: "3xx", handle: reply(304, "")},
		{name: "timeout", handle: hang, timeout: 50 * time.Millisecond},
		{name: "connection refused", url: closedURL + "/x?token=${SECRET}"},
		{name: "echoing 4xx", handle: echo(403)},
		{name: "echoing 5xx", handle: echo(500)},
		{name: "secret host", url: "http://${SECRET}.example/x", client: noSuchHost(), want: "lookup ${SECRET}.example"},
		{name: "url invalid once expanded", url: "http://h/x?${SECRET}", vars: map[string]string{"SECRET": secret + "\x7f"}, want: `url "http://h/x?${SECRET}"`},
		{name: "url with secret scheme", url: "${SECRET}/x", vars: map[string]string{"SECRET": "ftp://" + secret}, want: "not an http or https url"},
		{name: "missing variable", url: closedURL + "/x?token=${SECRET}&other=${NOT_SET}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			client, url := closedClient, tc.url
			if tc.client != nil {
				client = tc.client
			}
			var srv *toolServer
			if tc.handle != nil {
				srv = newToolServer(t, tc.handle)
				client, url = srv.Client(), srv.URL+"/x?token=${SECRET}"
			}
			v := vars
			if tc.vars != nil {
				v = tc.vars
			}
			tool := httpTool(url)
			tool.Headers = map[string]string{"Authorization": "Bearer ${SECRET}", "X-Api-Key": "${SECRET}"}
			tool.MaxAttempts = 2
			if tc.timeout > 0 {
				tool.Timeout = agent.Duration(tc.timeout)
			}
			out := fastRunner(client, v).Run(t.Context(), tool, diskCall(`{"host":"db1"}`), base)
			text := out.Content
			if out.Failed != nil {
				var unwrap error = out.Failed
				for unwrap != nil {
					text += " " + unwrap.Error()
					unwrap = errors.Unwrap(unwrap)
				}
			}
			if text == "" {
				t.Fatalf("outcome %+v says nothing", out)
			}
			t.Logf("outcome: %s", text)
			if strings.Contains(text, "s3cr3t") {
				t.Errorf("outcome shows the secret: %q", text)
			}
			if !strings.Contains(text, tc.want) {
				t.Errorf("outcome %q lacks %q", text, tc.want)
			}
			if srv != nil {
				reqs := srv.requests()
				if len(reqs) == 0 || reqs[0].Header.Get("X-Api-Key") != secret || reqs[0].Query != "token="+secret {
					t.Errorf("the tool did not receive the expanded secret: %+v", reqs)
				}
			}
		})
	}
}

// echo answers status with the request's headers and query in its body, as
// a debugging tool might.
func echo(status int) func(context.Context, int, http.ResponseWriter, *http.Request) {
	return func(_ context.Context, _ int, w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(status)
		fmt.Fprintf(w, "refused %s with Authorization: %s, X-Api-Key: %s", r.URL.RawQuery, r.Header.Get("Authorization"), r.Header.Get("X-Api-Key"))
	}
}

// noSuchHost is a client whose every dial fails as a failed DNS lookup
// does, naming the host.
func noSuchHost() *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: func(_ context.Context, network, addr string) (net.Conn, error) {
		host, _, _ := net.SplitHostPort(addr)
		return nil, &net.OpError{Op: "dial", Net: network, Err: &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}}
	}}}
}

func TestRunCancelled(t *testing.T) {
	t.Parallel()
	t.Run("during a request", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		srv := newToolServer(t, func(tctx context.Context, n int, w http.ResponseWriter, r *http.Request) {
			cancel()
			hang(tctx, n, w, r)
		})
		out := fastRunner(srv.Client(), nil).Run(ctx, httpTool(srv.URL), diskCall(`{"host":"db1"}`), base)
		if !errors.Is(out.Failed, context.Canceled) {
			t.Fatalf("outcome %+v, want context.Canceled", out)
		}
		if n := len(srv.requests()); n != 1 {
			t.Errorf("%d requests, want 1", n)
		}
	})
	t.Run("during the last attempt", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		srv := newToolServer(t, func(tctx context.Context, n int, w http.ResponseWriter, r *http.Request) {
			cancel()
			hang(tctx, n, w, r)
		})
		tool := httpTool(srv.URL)
		tool.MaxAttempts = 1
		out := fastRunner(srv.Client(), nil).Run(ctx, tool, diskCall(`{"host":"db1"}`), base)
		if !errors.Is(out.Failed, context.Canceled) {
			t.Fatalf("outcome %+v, want context.Canceled (not a tool failure: the run repeats later)", out)
		}
	})
	t.Run("during the backoff", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		srv := newToolServer(t, func(_ context.Context, _ int, w http.ResponseWriter, _ *http.Request) {
			cancel()
			w.WriteHeader(503)
		})
		r := fastRunner(srv.Client(), nil)
		r.BackoffMin, r.BackoffMax = time.Hour, time.Hour
		out := r.Run(ctx, httpTool(srv.URL), diskCall(`{"host":"db1"}`), base)
		if !errors.Is(out.Failed, context.Canceled) {
			t.Fatalf("outcome %+v, want context.Canceled", out)
		}
		if n := len(srv.requests()); n != 1 {
			t.Errorf("%d requests, want 1", n)
		}
	})
	t.Run("before the run", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		srv := newToolServer(t, reply(200, "ok"))
		out := fastRunner(srv.Client(), nil).Run(ctx, httpTool(srv.URL), diskCall(`{"host":"db1"}`), base)
		if !errors.Is(out.Failed, context.Canceled) {
			t.Fatalf("outcome %+v, want context.Canceled", out)
		}
		if n := len(srv.requests()); n != 0 {
			t.Errorf("%d requests, want 0", n)
		}
	})
	t.Run("go tool", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		r := &agent.Runner{Funcs: map[string]agent.Func{"check_disk": func(ctx context.Context, _ agent.Call) (string, error) {
			cancel()
			<-ctx.Done()
			return "", ctx.Err()
		}}}
		out := r.Run(ctx, goTool(), diskCall(`{"host":"db1"}`), base)
		if !errors.Is(out.Failed, context.Canceled) || out.Runs != 1 {
			t.Fatalf("outcome %+v, want context.Canceled after 1 run", out)
		}
	})
}

func TestRunRetryAfter(t *testing.T) {
	t.Parallel()
	srv := newToolServer(t, func(_ context.Context, n int, w http.ResponseWriter, _ *http.Request) {
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(503)
			return
		}
		io.WriteString(w, "ok")
	})
	out := fastRunner(srv.Client(), nil).Run(t.Context(), httpTool(srv.URL), diskCall(`{"host":"db1"}`), base)
	if out.Failed != nil || out.Content != "ok" || out.Runs != 2 {
		t.Fatalf("outcome %+v", out)
	}
	reqs := srv.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests", len(reqs))
	}
	if gap := reqs[1].At.Sub(reqs[0].At); gap < time.Second {
		t.Errorf("second request %s after the first, want at least the Retry-After of 1s (the backoff alone is at most 5ms)", gap)
	}
}

func TestRunTooLarge(t *testing.T) {
	t.Parallel()
	srv := newToolServer(t, func(_ context.Context, _ int, w http.ResponseWriter, _ *http.Request) {
		w.Write(make([]byte, 8<<20+1))
	})
	out := fastRunner(srv.Client(), nil).Run(t.Context(), httpTool(srv.URL), diskCall(`{"host":"db1"}`), base)
	if out.Failed == nil || !strings.Contains(out.Failed.Error(), "more than") || out.Runs != 1 {
		t.Fatalf("outcome %+v, want a failure at once", out)
	}
}

// One Runner serves concurrent calls (the worker shares it).
func TestRunConcurrent(t *testing.T) {
	t.Parallel()
	srv := newToolServer(t, func(_ context.Context, _ int, w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]string{"output": r.Header.Get("Idempotency-Key")})
	})
	r := fastRunner(srv.Client(), nil)
	tool := httpTool(srv.URL)
	var wg sync.WaitGroup
	outs := make([]agent.Outcome, 8)
	keys := make([]string, len(outs))
	for i := range outs {
		keys[i] = agent.IdempotencyKey("job1", "item7", 1, 1, fmt.Sprint("call_", i))
		wg.Go(func() {
			c := base
			c.Key = keys[i]
			outs[i] = r.Run(t.Context(), tool, call(fmt.Sprint("call_", i), "check_disk", `{"host":"db1"}`), c)
		})
	}
	wg.Wait()
	for i, out := range outs {
		if out.Failed != nil || out.Content != keys[i] {
			t.Errorf("call %d: outcome %+v, want its key %s", i, out, keys[i])
		}
	}
}

func goTool() *agent.Tool {
	return &agent.Tool{Name: "check_disk", Parameters: json.RawMessage(hostParams), MaxAttempts: 3}
}

func TestRunGoTools(t *testing.T) {
	t.Parallel()
	boom := errors.New("disk probe crashed")
	for _, tc := range []struct {
		name     string
		fn       func(n int, c agent.Call) (string, error) // n counts runs from 1; nil: no function
		executor agent.Executor
		content  string
		failed   []string // nil: must not fail
		runs     int
		calls    int
	}{
		{name: "success", fn: func(int, agent.Call) (string, error) { return `{"used":71}`, nil }, content: `{"used":71}`, runs: 1, calls: 1},
		{name: "for the model", fn: func(int, agent.Call) (string, error) { return "", agent.ForModel("no host db1: try web-1") }, content: "no host db1: try web-1", runs: 1, calls: 1},
		{name: "for the model wrapped", fn: func(int, agent.Call) (string, error) {
			return "", fmt.Errorf("lookup: %w", agent.ForModel("unknown host"))
		}, content: "unknown host", runs: 1, calls: 1},
		{name: "error retried then success", fn: func(n int, _ agent.Call) (string, error) {
			if n < 3 {
				return "", boom
			}
			return "ok", nil
		}, content: "ok", runs: 3, calls: 3},
		{name: "error every time", fn: func(int, agent.Call) (string, error) { return "", boom },
			failed: []string{"check_disk", "after 3 attempts", "disk probe crashed"}, runs: 3, calls: 3},
		{name: "panic", fn: func(int, agent.Call) (string, error) { panic("nil map") },
			failed: []string{"after 3 attempts", "panic", "nil map"}, runs: 3, calls: 3},
		{name: "panic then success", fn: func(n int, _ agent.Call) (string, error) {
			if n == 1 {
				panic("flaky")
			}
			return "ok", nil
		}, content: "ok", runs: 2, calls: 2},
		{name: "missing function", failed: []string{"check_disk", "no Go function"}, runs: 1},
		{name: "human executor", executor: agent.ExecutorHuman, fn: func(int, agent.Call) (string, error) { return "no", nil },
			failed: []string{"check_disk", "human"}, runs: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			var got []agent.Call
			r := &agent.Runner{BackoffMin: time.Millisecond, BackoffMax: 5 * time.Millisecond, Funcs: map[string]agent.Func{}}
			if tc.fn != nil {
				r.Funcs["check_disk"] = func(_ context.Context, c agent.Call) (string, error) {
					mu.Lock()
					got = append(got, c)
					n := len(got)
					mu.Unlock()
					return tc.fn(n, c)
				}
			}
			r.Funcs["other"] = func(context.Context, agent.Call) (string, error) { return "wrong function", nil }
			tool := goTool()
			tool.Executor = tc.executor
			out := r.Run(t.Context(), tool, diskCall(` {"host": "db1"} `), base)
			if tc.failed == nil {
				if out.Failed != nil {
					t.Fatalf("failed: %v", out.Failed)
				}
				if out.Content != tc.content {
					t.Errorf("content %q, want %q", out.Content, tc.content)
				}
			} else {
				if out.Failed == nil {
					t.Fatalf("outcome %+v, want a failure", out)
				}
				for _, w := range tc.failed {
					if !strings.Contains(out.Failed.Error(), w) {
						t.Errorf("failure %q lacks %q", out.Failed, w)
					}
				}
			}
			if out.Runs != tc.runs || len(got) != tc.calls {
				t.Errorf("runs %d, calls %d, want %d and %d", out.Runs, len(got), tc.runs, tc.calls)
			}
			want := agent.Call{Job: "job1", Item: "item7", ID: "call_1", Name: "check_disk", Arguments: json.RawMessage(`{"host":"db1"}`), Key: base.Key}
			for i, c := range got {
				if !reflect.DeepEqual(c, want) {
					t.Errorf("run %d got call %+v, want %+v", i+1, c, want)
				}
			}
		})
	}
}

func TestRunGoToolTimeout(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	runs := 0
	r := &agent.Runner{BackoffMin: time.Millisecond, BackoffMax: 5 * time.Millisecond, Funcs: map[string]agent.Func{
		"check_disk": func(ctx context.Context, _ agent.Call) (string, error) {
			mu.Lock()
			runs++
			mu.Unlock()
			<-ctx.Done()
			return "", fmt.Errorf("probe: %w", ctx.Err())
		},
	}}
	tool := goTool()
	tool.Timeout = agent.Duration(20 * time.Millisecond)
	tool.MaxAttempts = 2
	out := r.Run(t.Context(), tool, diskCall(`{"host":"db1"}`), base)
	if out.Failed == nil || !strings.Contains(out.Failed.Error(), "timed out") || out.Runs != 2 || runs != 2 {
		t.Fatalf("outcome %+v (runs %d), want timed out after 2 runs", out, runs)
	}
}
