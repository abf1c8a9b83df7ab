package provider_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/llmfleet/llmfleet/provider"
)

const secretKey = "sk-proj-abcdef1234567890"

func TestScrubMasksKeys(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		secrets []string // must not survive
		keep    []string // must survive
	}{
		{
			name:    "project key in a provider message",
			in:      "Incorrect API key provided: " + secretKey + ". You can find your API key at https://platform.openai.com/account/api-keys.",
			secrets: []string{secretKey, "abcdef1234567890"},
			keep:    []string{"Incorrect API key provided: ", "***", "platform.openai.com"},
		},
		{
			name:    "bearer token",
			in:      "request had Authorization: Bearer xyz and failed",
			secrets: []string{"xyz"},
			keep:    []string{"Bearer ***", "and failed"},
		},
		{
			name:    "lower-case bearer",
			in:      "authorization: bearer abc.def-ghi",
			secrets: []string{"abc.def-ghi"},
			keep:    []string{"bearer ***"},
		},
		{
			name:    "two keys",
			in:      "old sk-aaaaaaaaaaaaaaaa new sk-bbbbbbbbbbbbbbbb",
			secrets: []string{"aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb"},
			keep:    []string{"old ", " new "},
		},
		{
			name: "plain text untouched",
			in:   "The server had an error while processing your request. Sorry about that!",
			keep: []string{"The server had an error while processing your request. Sorry about that!"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := provider.Scrub(tc.in)
			for _, s := range tc.secrets {
				if strings.Contains(got, s) {
					t.Errorf("Scrub(%q) = %q, still contains %q", tc.in, got, s)
				}
			}
			for _, s := range tc.keep {
				if !strings.Contains(got, s) {
					t.Errorf("Scrub(%q) = %q, lost %q", tc.in, got, s)
				}
			}
		})
	}
}

func TestScrubTruncates(t *testing.T) {
	const limit = 503 // 500 bytes of text and "…"
	for _, tc := range []struct{ name, in string }{
		{"ascii", strings.Repeat("a", 2000)},
		{"2-byte runes off by one", "a" + strings.Repeat("é", 400)},
		{"3-byte runes", strings.Repeat("€", 300)},
		{"4-byte runes off by one", "ab" + strings.Repeat("😀", 200)},
		{"4-byte runes off by three", "abc" + strings.Repeat("😀", 200)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := provider.Scrub(tc.in)
			if len(got) > limit {
				t.Errorf("len = %d, want <= %d", len(got), limit)
			}
			if len(got) < 490 {
				t.Errorf("len = %d: truncated far more than needed", len(got))
			}
			if !utf8.ValidString(got) {
				t.Errorf("result is not valid UTF-8: a rune was split: %q", got[len(got)-8:])
			}
			body, ok := strings.CutSuffix(got, "…")
			if !ok {
				t.Errorf("truncated text does not end with an ellipsis: %q", got[len(got)-8:])
			}
			if !strings.HasPrefix(tc.in, body) {
				t.Error("truncated text is not a prefix of the input")
			}
		})
	}
	short := strings.Repeat("é", 250) // exactly 500 bytes: kept whole
	if got := provider.Scrub(short); got != short {
		t.Errorf("a 500-byte text was changed to %d bytes", len(got))
	}
}

// TestScrubKeyNotLeakedByComplete: a 401 whose message echoes the key the
// client sent must not put the key in the error the caller stores.
func TestScrubKeyNotLeakedByComplete(t *testing.T) {
	fake := newFakeAPI(t)
	unauthorized := `{"error":{"message":"Incorrect API key provided: ` + secretKey +
		`. You can find your API key at https://platform.openai.com/account/api-keys.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}`
	htmlEcho := "<html><body><h1>401 Authorization Required</h1><p>Authorization: Bearer " + secretKey + "</p></body></html>"
	tests := []struct {
		name   string
		h      http.HandlerFunc
		class  provider.Class
		status int
	}{
		{"OpenAI 401 echoing the key", reply(401, unauthorized), provider.Auth, 401},
		{"proxy HTML 401 echoing the header", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(401)
			_, _ = w.Write([]byte(htmlEcho))
		}, provider.Auth, 401},
		{"200 carrying an error that echoes the key", reply(200, unauthorized), provider.UpstreamInvalid, 200},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			base := fake.route("scrub"+string(rune('a'+i)), func(w http.ResponseWriter, r *http.Request) {
				if got := r.Header.Get("Authorization"); got != "Bearer "+secretKey {
					t.Errorf("Authorization = %q", got)
				}
				tc.h(w, r)
			})
			c := provider.NewClient(provider.Config{BaseURL: base, APIKey: secretKey})
			_, err := c.Complete(t.Context(), userItem("hello"), "gpt-4o-mini")
			var pe *provider.Error
			if !errors.As(err, &pe) {
				t.Fatalf("Complete error = %v, want a *provider.Error", err)
			}
			if pe.Class != tc.class || pe.Status != tc.status {
				t.Errorf("class %s status %d, want %s %d", pe.Class, pe.Status, tc.class, tc.status)
			}
			for _, s := range []string{err.Error(), pe.Message} {
				if strings.Contains(s, "abcdef1234567890") {
					t.Errorf("error text leaks the key: %q", s)
				}
			}
			if !strings.Contains(pe.Message, "***") {
				t.Errorf("Message %q shows no mask: the key was not found", pe.Message)
			}
		})
	}
}

// TestCompleteMasksTheConfiguredKey: the client knows the key it sends, so
// an echo of it is masked whatever its shape (vLLM and LiteLLM keys do not
// start with "sk-").
func TestCompleteMasksTheConfiguredKey(t *testing.T) {
	const key = "token-abc123XYZsecret"
	fake := newFakeAPI(t)
	base := fake.route("ownkey", reply(401, `{"error":{"message":"Incorrect API key provided: `+key+
		`","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}`))
	c := provider.NewClient(provider.Config{BaseURL: base, APIKey: key})
	_, err := c.Complete(t.Context(), userItem("hello"), "gpt-4o-mini")
	if err == nil || strings.Contains(err.Error(), "abc123XYZsecret") {
		t.Errorf("error leaks the configured key: %v", err)
	}
}

// TestCompleteErrorChainHasNoKey: anything reachable with errors.Unwrap may
// end up in a log (%v of a wrapped cause), so the chain must be clean too.
func TestCompleteErrorChainHasNoKey(t *testing.T) {
	fake := newFakeAPI(t)
	base := fake.route("chain", reply(401, `{"error":{"message":"Incorrect API key provided: `+secretKey+
		`","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}`))
	c := provider.NewClient(provider.Config{BaseURL: base, APIKey: secretKey})
	_, err := c.Complete(t.Context(), userItem("hello"), "gpt-4o-mini")
	for e := err; e != nil; e = errors.Unwrap(e) {
		if strings.Contains(e.Error(), "abcdef1234567890") {
			t.Errorf("%T in the chain leaks the key: %v", e, e)
		}
	}
}
