package provider_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/llmfleet/llmfleet/simulator"
	"github.com/llmfleet/llmfleet/tasks"
)

func TestMain(m *testing.M) {
	// provider.Client owns its transport and offers no way to close idle
	// connections; the servers close them when the tests stop them, and the
	// transport's loops end shortly after.
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
	)
}

// startSim runs a simulator on a free port for the test's lifetime.
func startSim(t *testing.T, cfg simulator.Config) *simulator.Running {
	t.Helper()
	run, err := simulator.Start(context.Background(), cfg, "127.0.0.1:0")
	if err != nil {
		t.Fatalf("simulator.Start: %v", err)
	}
	t.Cleanup(func() {
		if err := run.Close(); err != nil {
			t.Errorf("simulator Close: %v", err)
		}
	})
	return run
}

// userItem is an item with one user message.
func userItem(prompt string) *tasks.Item {
	return &tasks.Item{ID: "it", Messages: []tasks.Message{{Role: "user", Content: prompt}}}
}

// closedPortURL returns a base URL on which nothing listens.
func closedPortURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return "http://" + addr + "/v1"
}

// fakeAPI is an httptest server whose routes are base URLs: a handler
// registered as NAME answers at URL(NAME) + "/chat/completions".
type fakeAPI struct {
	srv *httptest.Server
	mu  sync.Mutex
	h   map[string]http.HandlerFunc
}

func newFakeAPI(t *testing.T) *fakeAPI {
	t.Helper()
	f := &fakeAPI{h: map[string]http.HandlerFunc{}}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, rest, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		f.mu.Lock()
		h := f.h[name]
		f.mu.Unlock()
		if h == nil || rest != "v1/chat/completions" {
			http.NotFound(w, r)
			return
		}
		h(w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// route registers h and returns the base URL that reaches it.
func (f *fakeAPI) route(name string, h http.HandlerFunc) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.h[name] = h
	return f.srv.URL + "/" + name + "/v1"
}

// reply answers with status and a JSON body.
func reply(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}
}

// completionJSON is a chat completion body with one choice.
func completionJSON(content, finish string) string {
	return `{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini",` +
		`"choices":[{"index":0,"message":{"role":"assistant","content":` + quote(content) + `},"finish_reason":"` + finish + `"}],` +
		`"usage":{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12}}`
}

func quote(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return string(b)
}
