package breaker_test

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/llmfleet/llmfleet/breaker"
)

func TestFamily(t *testing.T) {
	t.Parallel()

	tests := []struct {
		model, want string
	}{
		{"gpt-4o", "gpt-4o"},
		{"gpt-4o-2024-08-06", "gpt-4o"},
		{"GPT-4o-2024-08-06", "gpt-4o"},
		{"gpt-4o-mini-2024-07-18", "gpt-4o-mini"},
		{"gpt-4-0613", "gpt-4"},
		{"gpt-4-1106-preview", "gpt-4"},
		{"gpt-4o-latest", "gpt-4o"},
		{"gpt-4o-mini", "gpt-4o-mini"},
		{"llama3.1:8b", "llama3.1:8b"},
	}
	for _, tt := range tests {
		if got := breaker.Family(tt.model); got != tt.want {
			t.Errorf("Family(%q) = %q, want %q", tt.model, got, tt.want)
		}
	}
}

func TestFamilyCompactDateSuffix(t *testing.T) {
	t.Parallel()

	for _, m := range []string{"claude-3-5-sonnet-20241022", "claude-3-5-sonnet-latest", "claude-3-5-sonnet"} {
		if got := breaker.Family(m); got != "claude-3-5-sonnet" {
			t.Errorf("Family(%q) = %q, want %q", m, got, "claude-3-5-sonnet")
		}
	}
}

func TestEndpoint(t *testing.T) {
	t.Parallel()

	const url = "https://api.openai.com/v1"
	base := breaker.Endpoint(url, "gpt-4o")

	same := []struct{ name, url, model string }{
		{"date suffix shares the family", url, "gpt-4o-2024-08-06"},
		{"another date shares the family", url, "gpt-4o-2024-11-20"},
		{"trailing slash ignored", url + "/", "gpt-4o"},
		{"trailing slash and date", url + "/", "gpt-4o-2024-05-13"},
	}
	for _, tt := range same {
		if got := breaker.Endpoint(tt.url, tt.model); got != base {
			t.Errorf("%s: Endpoint(%q, %q) = %q, want %q (same as gpt-4o)", tt.name, tt.url, tt.model, got, base)
		}
	}

	different := []struct{ name, url, model string }{
		{"other base URL", "https://example.openai.azure.com/v1", "gpt-4o"},
		{"other path", "https://api.openai.com/v2", "gpt-4o"},
		{"other family", url, "gpt-4o-mini"},
		{"other model", url, "gpt-4"},
	}
	seen := map[string]string{base: "base"}
	for _, tt := range different {
		got := breaker.Endpoint(tt.url, tt.model)
		if prev, dup := seen[got]; dup {
			t.Errorf("%s: Endpoint(%q, %q) = %q, the same as %s", tt.name, tt.url, tt.model, got, prev)
		}
		seen[got] = tt.name
	}

	if a, b := breaker.Endpoint(url, "gpt-4o-mini"), breaker.Endpoint(url, "gpt-4o-mini-2024-07-18"); a != b {
		t.Errorf("gpt-4o-mini and gpt-4o-mini-2024-07-18 have endpoints %q and %q, want one", a, b)
	}

	// It is a Redis hash tag: short, and no braces.
	if !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(base) {
		t.Errorf("Endpoint = %q, want 16 hex digits", base)
	}
	if breaker.Endpoint(url, "gpt-4o") != base {
		t.Error("Endpoint is not deterministic")
	}
}

func TestSettingsValidate(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name     string
		s        breaker.Settings
		wantFlag string // "" when valid
	}{
		{"zero means defaults", breaker.Settings{}, ""},
		{"ratios at the bounds", breaker.Settings{FailureRatio: 1, RateLimitedRatio: 1}, ""},
		{"custom", breaker.Settings{Cooldown: time.Second, Window: time.Minute, ConsecutiveItems: 3, MinItems: 4, FailureRatio: 0.25, RateLimitedItems: 2, RateLimitedRatio: 0.1, MaxProbes: 2}, ""},
		{"failure ratio above 1", breaker.Settings{FailureRatio: 1.5}, "--breaker-failure-ratio"},
		{"failure ratio negative", breaker.Settings{FailureRatio: -0.1}, "--breaker-failure-ratio"},
		{"429 ratio above 1", breaker.Settings{RateLimitedRatio: 2}, "--breaker-429-ratio"},
		{"429 ratio negative", breaker.Settings{RateLimitedRatio: -1}, "--breaker-429-ratio"},
		{"negative cooldown", breaker.Settings{Cooldown: -time.Second}, "--breaker-cooldown"},
		{"negative probes", breaker.Settings{MaxProbes: -1}, "--breaker-probes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.s.Validate()
			if tt.wantFlag == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantFlag) {
				t.Fatalf("Validate() = %v, want an error naming %s", err, tt.wantFlag)
			}
		})
	}
}
