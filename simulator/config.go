package simulator

import (
	"fmt"
	"strings"
	"time"
)

// Config configures a Server. Zero values mean the documented defaults, so
// Config{} is a fast simulator that never fails on its own.
type Config struct {
	// Latency delays every chat completion and embedding request: "" for none, a duration such as
	// "20ms", or a range such as "10ms-200ms" (uniform).
	Latency string
	// RPM and TPM are the requests and tokens allowed per sliding 60 s
	// window; 0 means unlimited. See the package doc for what TPM counts.
	RPM, TPM int
	// RetryAfter is the Retry-After, in seconds, of random 429s and
	// #fail:429 without #retry-after, and the minimum Retry-After of
	// rate-limit 429s. 0 means 1.
	RetryAfter int
	// ContextLimit is the prompt size, in tokens, above which a call gets a
	// 400 context_length_exceeded (for embeddings: the size of each input);
	// 0 means unlimited.
	ContextLimit int
	// Faults is the random fault mix in ParseFaults syntax.
	Faults string
	// Seed seeds the random latency and faults; 0 seeds from the clock.
	Seed int64
	// APIKey, when set, is required as "Authorization: Bearer <key>" on
	// /v1/ endpoints; other requests get a 401 invalid_api_key.
	APIKey string
	// Now is the clock of rate limiting, stats and created timestamps;
	// nil means time.Now. Latency always uses real timers.
	Now func() time.Time
}

// ConfigError reports an invalid Config field.
type ConfigError struct {
	Field string // the Config field, e.g. "Latency"
	Err   error
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("simulator: invalid Config.%s: %v", e.Field, e.Err)
}

func (e *ConfigError) Unwrap() error { return e.Err }

// settings is a validated Config.
type settings struct {
	latMin, latMax time.Duration
	rpm, tpm       int
	retryAfter     int
	contextLimit   int
	faults         Faults
	seed           int64
	apiKey         string
	now            func() time.Time
}

func (c Config) validate() (settings, error) {
	st := settings{
		rpm: c.RPM, tpm: c.TPM, retryAfter: c.RetryAfter, contextLimit: c.ContextLimit,
		seed: c.Seed, apiKey: c.APIKey, now: c.Now,
	}
	var err error
	if st.latMin, st.latMax, err = ParseLatency(c.Latency); err != nil {
		return settings{}, &ConfigError{Field: "Latency", Err: err}
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"RPM", c.RPM}, {"TPM", c.TPM}, {"RetryAfter", c.RetryAfter}, {"ContextLimit", c.ContextLimit}} {
		if f.v < 0 {
			return settings{}, &ConfigError{Field: f.name, Err: fmt.Errorf("%d is negative", f.v)}
		}
	}
	if st.retryAfter == 0 {
		st.retryAfter = 1
	}
	if st.faults, err = ParseFaults(c.Faults); err != nil {
		return settings{}, &ConfigError{Field: "Faults", Err: err}
	}
	if st.now == nil {
		st.now = time.Now
	}
	return st, nil
}

// ParseLatency parses Config.Latency: "" (no latency), a duration ("20ms"),
// or a range "MIN-MAX" ("10ms-200ms") with MIN <= MAX.
func ParseLatency(s string) (lo, hi time.Duration, err error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, 0, nil
	}
	los, his, isRange := strings.Cut(s, "-")
	if !isRange {
		his = los
	}
	if lo, err = time.ParseDuration(strings.TrimSpace(los)); err != nil {
		return 0, 0, fmt.Errorf("latency %q: want a duration like 20ms or a range like 10ms-200ms", s)
	}
	if hi, err = time.ParseDuration(strings.TrimSpace(his)); err != nil {
		return 0, 0, fmt.Errorf("latency %q: want a duration like 20ms or a range like 10ms-200ms", s)
	}
	if lo < 0 || hi < lo {
		return 0, 0, fmt.Errorf("latency %q: want 0 <= MIN <= MAX", s)
	}
	return lo, hi, nil
}
