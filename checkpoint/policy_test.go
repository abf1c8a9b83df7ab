package checkpoint_test

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/llmfleet/llmfleet/checkpoint"
)

// validPolicy is the producer's defaults: every rule passes.
func validPolicy() checkpoint.Policy {
	return checkpoint.Policy{
		Model: "gpt-4o-mini", Queue: "default", MaxAttempts: 5,
		BackoffMin: time.Second, BackoffMax: time.Minute, Timeout: time.Minute,
		Retention: 7 * 24 * time.Hour, ReserveOutput: 512, OnOverflow: checkpoint.OverflowTruncate,
	}
}

// One row per rule of Policy.Validate: the error names the flag to change,
// in Field and in the message, which is what the producer prints.
func TestPolicyValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		change    func(*checkpoint.Policy)
		wantField string
		wantMsg   string
	}{
		{"max attempts below 1", func(p *checkpoint.Policy) { p.MaxAttempts = 0 },
			"--max-attempts", "--max-attempts must be at least 1, got 0"},
		{"backoff min below 1s", func(p *checkpoint.Policy) { p.BackoffMin = 100 * time.Millisecond },
			"--backoff-min", "--backoff-min must be at least 1s (asynq schedules in whole seconds), got 100ms"},
		{"backoff max below backoff min", func(p *checkpoint.Policy) { p.BackoffMin, p.BackoffMax = 10*time.Second, 2*time.Second },
			"--backoff-max", "--backoff-max (2s) must not be below --backoff-min (10s)"},
		{"timeout below 1s", func(p *checkpoint.Policy) { p.Timeout = 500 * time.Millisecond },
			"--timeout", "--timeout must be at least 1s, got 500ms"},
		{"empty queue", func(p *checkpoint.Policy) { p.Queue = "" },
			"--queue", "--queue must not be empty"},
		{"retention below 1m", func(p *checkpoint.Policy) { p.Retention = 30 * time.Second },
			"--retention", "--retention must be at least 1m, got 30s"},
		{"negative context limit", func(p *checkpoint.Policy) { p.ContextLimit = -1 },
			"--context-limit", "--context-limit must not be negative, got -1"},
		{"negative reserve output", func(p *checkpoint.Policy) { p.ReserveOutput = -1 },
			"--reserve-output", "--reserve-output must not be negative, got -1"},
		{"unknown overflow policy", func(p *checkpoint.Policy) { p.OnOverflow = "drop" },
			"--on-overflow", `--on-overflow must be truncate or fail, got "drop"`},
		{"negative cost budget", func(p *checkpoint.Policy) { p.BudgetUSD = -0.5 },
			"--budget-usd", "--budget-usd must not be negative, got -0.5"},
		{"negative token budget", func(p *checkpoint.Policy) { p.BudgetTokens = -1 },
			"--budget-tokens", "--budget-tokens must not be negative, got -1"},
		{"negative max steps", func(p *checkpoint.Policy) { p.MaxSteps = -1 },
			"--max-steps", "--max-steps must not be negative (0 means the default, 10), got -1"},
		{"max transcript bytes below 1024", func(p *checkpoint.Policy) { p.MaxTranscriptBytes = 1023 },
			"--max-transcript-bytes", "--max-transcript-bytes must be at least 1024, got 1023"},
		{"max transcript bytes of 1", func(p *checkpoint.Policy) { p.MaxTranscriptBytes = 1 },
			"--max-transcript-bytes", "--max-transcript-bytes must be at least 1024, got 1"},
		{"negative max transcript bytes", func(p *checkpoint.Policy) { p.MaxTranscriptBytes = -1 },
			"--max-transcript-bytes", "--max-transcript-bytes must be at least 1024, got -1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := validPolicy()
			tc.change(&p)
			err := p.Validate()
			var pe *checkpoint.PolicyError
			if !errors.As(err, &pe) {
				t.Fatalf("Validate() = %v, want a *PolicyError", err)
			}
			if pe.Field != tc.wantField {
				t.Errorf("Field = %q, want %q", pe.Field, tc.wantField)
			}
			if err.Error() != tc.wantMsg {
				t.Errorf("message = %q, want %q", err.Error(), tc.wantMsg)
			}
		})
	}
}

func TestPolicyValidateAccepts(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		change func(*checkpoint.Policy)
	}{
		{"the defaults", func(*checkpoint.Policy) {}},
		{"no overflow policy (truncate)", func(p *checkpoint.Policy) { p.OnOverflow = "" }},
		{"overflow fail", func(p *checkpoint.Policy) { p.OnOverflow = checkpoint.OverflowFail }},
		{"backoff max equal to backoff min", func(p *checkpoint.Policy) { p.BackoffMax = p.BackoffMin }},
		{"budgets of 0 (none)", func(p *checkpoint.Policy) { p.BudgetUSD, p.BudgetTokens = 0, 0 }},
		{"agent limits of 0 (the defaults)", func(p *checkpoint.Policy) { p.MaxSteps, p.MaxTranscriptBytes = 0, 0 }},
		{"one step, a 1024-byte transcript", func(p *checkpoint.Policy) { p.MaxSteps, p.MaxTranscriptBytes = 1, 1024 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := validPolicy()
			tc.change(&p)
			if err := p.Validate(); err != nil {
				t.Errorf("Validate() = %v, want nil", err)
			}
		})
	}
}

// OnOverflow became a typed string: policies stored before still decode,
// and it is stored as the same string.
func TestPolicyOverflowJSON(t *testing.T) {
	t.Parallel()
	var p checkpoint.Policy
	if err := json.Unmarshal([]byte(`{"queue":"default","on_overflow":"fail"}`), &p); err != nil {
		t.Fatal(err)
	}
	if p.OnOverflow != checkpoint.OverflowFail {
		t.Errorf("decoded OnOverflow = %q, want %q", p.OnOverflow, checkpoint.OverflowFail)
	}
	b, err := json.Marshal(checkpoint.Policy{Queue: "default", OnOverflow: checkpoint.OverflowTruncate})
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	if raw["on_overflow"] != "truncate" {
		t.Errorf("encoded on_overflow = %v, want \"truncate\" (in %s)", raw["on_overflow"], b)
	}
}
