package provider_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/llmfleet/llmfleet/provider"
)

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	date := func(d time.Duration) string { return now.Add(d).Format(http.TimeFormat) }
	tests := []struct {
		name   string
		header map[string]string // nil map means a nil http.Header
		want   time.Duration
	}{
		{name: "nil header", header: nil, want: 0},
		{name: "no retry headers", header: map[string]string{"Content-Type": "application/json"}, want: 0},
		{name: "seconds", header: map[string]string{"Retry-After": "3"}, want: 3 * time.Second},
		{name: "fractional seconds", header: map[string]string{"Retry-After": "1.5"}, want: 1500 * time.Millisecond},
		{name: "seconds with spaces", header: map[string]string{"Retry-After": " 4 "}, want: 4 * time.Second},
		{name: "zero", header: map[string]string{"Retry-After": "0"}, want: 0},
		{name: "negative ignored", header: map[string]string{"Retry-After": "-5"}, want: 0},
		{name: "HTTP date ahead", header: map[string]string{"Retry-After": date(10 * time.Second)}, want: 10 * time.Second},
		{name: "HTTP date past", header: map[string]string{"Retry-After": date(-10 * time.Second)}, want: 0},
		{name: "HTTP date over an hour capped", header: map[string]string{"Retry-After": date(2 * time.Hour)}, want: time.Hour},
		{name: "retry-after-ms", header: map[string]string{"retry-after-ms": "2500"}, want: 2500 * time.Millisecond},
		{name: "reset-requests taken when remaining is 0",
			header: map[string]string{"x-ratelimit-reset-requests": "6m0s", "x-ratelimit-remaining-requests": "0"}, want: 6 * time.Minute},
		{name: "reset-requests ignored when requests remain",
			header: map[string]string{"x-ratelimit-reset-requests": "6m0s", "x-ratelimit-remaining-requests": "12"}, want: 0},
		{name: "reset-requests taken when remaining is absent",
			header: map[string]string{"x-ratelimit-reset-requests": "2s"}, want: 2 * time.Second},
		{name: "reset-tokens", header: map[string]string{"x-ratelimit-reset-tokens": "20ms"}, want: 20 * time.Millisecond},
		{name: "reset-tokens ignored when tokens remain",
			header: map[string]string{"x-ratelimit-reset-tokens": "1s", "x-ratelimit-remaining-tokens": "4000"}, want: 0},
		{name: "reset in OpenAI's compound form",
			header: map[string]string{"x-ratelimit-reset-tokens": "1m30.5s", "x-ratelimit-remaining-tokens": "0"}, want: 90*time.Second + 500*time.Millisecond},
		{name: "several at once, max wins", header: map[string]string{
			"Retry-After":                    "3",
			"retry-after-ms":                 "2500",
			"x-ratelimit-reset-requests":     "6m0s",
			"x-ratelimit-remaining-requests": "0",
			"x-ratelimit-reset-tokens":       "20ms",
		}, want: 6 * time.Minute},
		{name: "several at once, remaining requests skip their reset", header: map[string]string{
			"Retry-After":                    "3",
			"retry-after-ms":                 "2500",
			"x-ratelimit-reset-requests":     "6m0s",
			"x-ratelimit-remaining-requests": "12",
			"x-ratelimit-reset-tokens":       "20ms",
		}, want: 3 * time.Second},
		{name: "garbage ignored", header: map[string]string{
			"Retry-After":                "soon",
			"retry-after-ms":             "abc",
			"x-ratelimit-reset-requests": "later",
			"x-ratelimit-reset-tokens":   "",
		}, want: 0},
		{name: "garbage beside a valid value", header: map[string]string{
			"Retry-After":    "Wed, 99 Foo 2026",
			"retry-after-ms": "1500",
		}, want: 1500 * time.Millisecond},
		{name: "seconds over an hour capped", header: map[string]string{"Retry-After": "7200"}, want: time.Hour},
		{name: "ms over an hour capped", header: map[string]string{"retry-after-ms": "86400000"}, want: time.Hour},
		{name: "reset over an hour capped", header: map[string]string{"x-ratelimit-reset-requests": "90m"}, want: time.Hour},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var h http.Header
			if tc.header != nil {
				h = http.Header{}
				for k, v := range tc.header {
					h.Set(k, v)
				}
			}
			if got := provider.RetryAfter(h, now); got != tc.want {
				t.Errorf("RetryAfter(%v) = %v, want %v", tc.header, got, tc.want)
			}
		})
	}
}

// TestRetryAfterHugeValueCapped: a value too large for a time.Duration must
// still be capped at an hour, not ignored.
func TestRetryAfterHugeValueCapped(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, h := range []http.Header{
		{"Retry-After": {"99999999999"}},
		{"Retry-After-Ms": {"1e300"}},
	} {
		if got := provider.RetryAfter(h, now); got != time.Hour {
			t.Errorf("RetryAfter(%v) = %v, want %v", h, got, time.Hour)
		}
	}
}
