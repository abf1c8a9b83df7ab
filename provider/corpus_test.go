package provider_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/llmfleet/llmfleet/provider"
)

// fixture is one response a real provider or proxy sent, kept verbatim in
// testdata/responses with where it was found.
type fixture struct {
	Name     string            `json:"name"`
	Provider string            `json:"provider"`
	Source   string            `json:"source"`
	Status   int               `json:"status"`
	Headers  map[string]string `json:"headers"`
	Body     string            `json:"body"`
	Want     struct {
		Class        string `json:"class"`
		Reason       string `json:"reason"`
		RetryAfter   string `json:"retry_after"`
		ContextLimit int    `json:"context_limit"`
		PromptTokens int    `json:"prompt_tokens"`
	} `json:"want"`
}

func loadFixtures(t *testing.T) map[string]fixture {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", "responses", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatal("no fixtures in testdata/responses")
	}
	out := map[string]fixture{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var f fixture
		if err := json.Unmarshal(b, &f); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if f.Source == "" || f.Status == 0 || f.Want.Class == "" {
			t.Fatalf("%s: a fixture needs its source, status and wanted class", p)
		}
		out[strings.TrimSuffix(filepath.Base(p), ".json")] = f
	}
	return out
}

// Every response real providers sent, replayed over HTTP through the real
// client, ends in the class the contract gives it, with the provider's words
// in its reason and the wait it asked for.
func TestRealProviderResponses(t *testing.T) {
	t.Parallel()
	const key = "sk-corpus-test-key-0123456789"
	for name, f := range loadFixtures(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				for k, v := range f.Headers {
					w.Header().Set(k, v)
				}
				if w.Header().Get("Content-Type") == "" {
					w.Header().Set("Content-Type", "application/json")
				}
				w.WriteHeader(f.Status)
				_, _ = w.Write([]byte(f.Body))
			}))
			defer srv.Close()
			c := provider.NewClient(provider.Config{BaseURL: srv.URL + "/v1", APIKey: key})
			_, err := c.Complete(t.Context(), userItem("hello"), "gpt-4o-mini")
			var pe *provider.Error
			if !errors.As(err, &pe) {
				t.Fatalf("%s (%s): err = %v, want a classified error", f.Name, f.Source, err)
			}
			if string(pe.Class) != f.Want.Class {
				t.Errorf("%s: class %s, want %s (reason %q; from %s)", f.Name, pe.Class, f.Want.Class, pe.Message, f.Source)
			}
			if !strings.Contains(pe.Message, f.Want.Reason) {
				t.Errorf("%s: reason %q, want it to contain %q", f.Name, pe.Message, f.Want.Reason)
			}
			if pe.Message == "" {
				t.Errorf("%s: empty reason", f.Name)
			}
			want := time.Duration(0)
			if f.Want.RetryAfter != "" {
				d, err := time.ParseDuration(f.Want.RetryAfter)
				if err != nil {
					t.Fatalf("want.retry_after %q: %v", f.Want.RetryAfter, err)
				}
				want = d
			}
			// A wait only stated in words or reset headers is a hint, capped
			// at a minute; one asked for in Retry-After is kept.
			got := pe.Wait()
			switch {
			case !provider.Class(f.Want.Class).Retryable():
				// Failed at once: a stated wait has nothing to wait for.
			case want == 0 && got != 0:
				t.Errorf("%s: wait %s, want none", f.Name, got)
			case want > 0 && got != want && !(pe.RetryAfter == 0 && want > time.Minute && got == time.Minute):
				t.Errorf("%s: wait %s (asked %s, hinted %s), want %s", f.Name, got, pe.RetryAfter, pe.RetryHint, want)
			}
			if f.Want.ContextLimit != 0 && (pe.ContextLimit != f.Want.ContextLimit || pe.PromptTokens != f.Want.PromptTokens) {
				t.Errorf("%s: overflow numbers %d of %d, want %d of %d", f.Name, pe.PromptTokens, pe.ContextLimit, f.Want.PromptTokens, f.Want.ContextLimit)
			}
			if strings.Contains(pe.Message, key) {
				t.Errorf("%s: reason leaks the API key", f.Name)
			}
		})
	}
}
