package checkpoint

import (
	"fmt"
	"time"

	"github.com/llmfleet/llmfleet/agent"
	"github.com/llmfleet/llmfleet/models"
	"github.com/llmfleet/llmfleet/tasks"
)

// Policy is how a job's items are processed. It is fixed when the job is
// created; only the deadline and the budgets may change later.
type Policy struct {
	Model      string `json:"model,omitempty"`
	System     string `json:"system,omitempty"`
	Template   string `json:"template,omitempty"`
	JSONOutput bool   `json:"json_output,omitempty"`
	// Schema is the json_schema response format of every item (--schema).
	Schema      *tasks.JSONSchema `json:"schema,omitempty"`
	Queue       string            `json:"queue"`
	MaxAttempts int               `json:"max_attempts"`
	BackoffMin  time.Duration     `json:"backoff_min"`
	BackoffMax  time.Duration     `json:"backoff_max"`
	Timeout     time.Duration     `json:"timeout"`
	Deadline    time.Time         `json:"deadline,omitzero"`
	Retention   time.Duration     `json:"retention"`

	// ContextLimit overrides the model's context window (tokens); 0 uses
	// the model table.
	ContextLimit int `json:"context_limit,omitempty"`
	// ReserveOutput is the room kept for the answer when an item sets no
	// max_tokens.
	ReserveOutput int `json:"reserve_output,omitempty"`
	// OnOverflow is OverflowTruncate (also when empty) or OverflowFail.
	OnOverflow Overflow `json:"on_overflow,omitempty"`
	// Models overrides the built-in model table (context, output, prices).
	Models models.Table `json:"models,omitempty"`
	// BudgetUSD and BudgetTokens cap what the job may spend (0 = none):
	// reaching one pauses the job.
	BudgetUSD    float64 `json:"budget_usd,omitempty"`
	BudgetTokens int64   `json:"budget_tokens,omitempty"`

	// Pack is the most inputs of embedding items sent in one request
	// (--pack; 0 means the worker's default, 64).
	Pack int `json:"pack,omitempty"`
	// EmbeddingModel is the model of embedding items that name none
	// (--embedding-model; empty means DefaultEmbeddingModel).
	EmbeddingModel string `json:"embedding_model,omitempty"`
	// Endpoint is tasks.EndpointEmbeddings when the job's plain items are
	// embeddings (--endpoint embeddings).
	Endpoint string `json:"endpoint,omitempty"`

	// Tools make every item an agent run (run --tools FILE): the model may
	// call them, and the worker runs them and sends their results back.
	Tools []agent.Tool `json:"tools,omitempty"`
	// MaxSteps bounds an agent item's model calls (--max-steps; 0 means
	// DefaultMaxSteps).
	MaxSteps int `json:"max_steps,omitempty"`
	// MaxTranscriptBytes bounds an agent item's transcript
	// (--max-transcript-bytes; 0 means DefaultMaxTranscriptBytes).
	MaxTranscriptBytes int `json:"max_transcript_bytes,omitempty"`
	// InputTimeout bounds how long a request waits for a person
	// (--input-timeout; 0 waits as long as the job lives); past it the
	// request resolves as OnInputTimeout.
	InputTimeout   time.Duration  `json:"input_timeout,omitempty"`
	OnInputTimeout InputTimeoutDo `json:"on_input_timeout,omitempty"`
}

// InputTimeoutDo is what an unanswered request comes to after
// --input-timeout (--on-input-timeout). Stored as its string.
type InputTimeoutDo string

const (
	// InputTimeoutFail fails the item input_timeout; the default.
	InputTimeoutFail InputTimeoutDo = "fail"
	// InputTimeoutReject rejects the call: the model is told no person
	// answered and goes on.
	InputTimeoutReject InputTimeoutDo = "reject"
)

// Agent limits' defaults.
const (
	DefaultMaxSteps           = 10
	DefaultMaxTranscriptBytes = 1 << 20
)

// DefaultEmbeddingModel is the model of embedding items when neither the
// item nor the job names one.
const DefaultEmbeddingModel = "text-embedding-3-small"

// EmbeddingModelOrDefault is EmbeddingModel or its default.
func (p Policy) EmbeddingModelOrDefault() string {
	if p.EmbeddingModel != "" {
		return p.EmbeddingModel
	}
	return DefaultEmbeddingModel
}

// Agent reports whether the job's items are agent runs.
func (p Policy) Agent() bool { return len(p.Tools) > 0 }

// StepLimit is MaxSteps or its default.
func (p Policy) StepLimit() int {
	if p.MaxSteps > 0 {
		return p.MaxSteps
	}
	return DefaultMaxSteps
}

// TranscriptLimit is MaxTranscriptBytes or its default.
func (p Policy) TranscriptLimit() int {
	if p.MaxTranscriptBytes > 0 {
		return p.MaxTranscriptBytes
	}
	return DefaultMaxTranscriptBytes
}

// Overflow is what a worker does with a prompt over the model's context
// window (--on-overflow). It is stored as its string, so the values never
// change.
type Overflow string

const (
	// OverflowTruncate keeps the system messages and the last exchange and
	// trims the rest by tokens; the default.
	OverflowTruncate Overflow = "truncate"
	// OverflowFail fails the item without a call.
	OverflowFail Overflow = "fail"
)

// PolicyError is a policy field out of range. Field names the field by the
// producer flag that sets it (e.g. "--max-attempts"), since that is what the
// user must change; Msg says what is wrong with it.
type PolicyError struct {
	Field string
	Msg   string
}

func (e *PolicyError) Error() string { return e.Field + " " + e.Msg }

// Validate checks a policy asked for, before a job is created with it. Its
// error is a *PolicyError.
func (p Policy) Validate() error {
	bad := func(field, format string, args ...any) error {
		return &PolicyError{Field: field, Msg: fmt.Sprintf(format, args...)}
	}
	switch {
	case p.MaxAttempts < 1:
		return bad("--max-attempts", "must be at least 1, got %d", p.MaxAttempts)
	case p.BackoffMin < time.Second:
		return bad("--backoff-min", "must be at least 1s (asynq schedules in whole seconds), got %s", p.BackoffMin)
	case p.BackoffMax < p.BackoffMin:
		return bad("--backoff-max", "(%s) must not be below --backoff-min (%s)", p.BackoffMax, p.BackoffMin)
	case p.Timeout < time.Second:
		return bad("--timeout", "must be at least 1s, got %s", p.Timeout)
	case p.Queue == "":
		return bad("--queue", "must not be empty")
	case p.Retention < time.Minute:
		return bad("--retention", "must be at least 1m, got %s", p.Retention)
	case p.ContextLimit < 0:
		return bad("--context-limit", "must not be negative, got %d", p.ContextLimit)
	case p.ReserveOutput < 0:
		return bad("--reserve-output", "must not be negative, got %d", p.ReserveOutput)
	case p.OnOverflow != "" && p.OnOverflow != OverflowTruncate && p.OnOverflow != OverflowFail:
		return bad("--on-overflow", "must be %s or %s, got %q", OverflowTruncate, OverflowFail, p.OnOverflow)
	case p.BudgetUSD < 0:
		return bad("--budget-usd", "must not be negative, got %g", p.BudgetUSD)
	case p.BudgetTokens < 0:
		return bad("--budget-tokens", "must not be negative, got %d", p.BudgetTokens)
	case p.Pack < 0 || p.Pack > 2048:
		return bad("--pack", "must be from 1 to 2048 inputs per request, got %d", p.Pack)
	case p.Endpoint != "" && p.Endpoint != tasks.EndpointEmbeddings:
		return bad("--endpoint", "must be chat or %s, got %q", tasks.EndpointEmbeddings, p.Endpoint)
	case p.MaxSteps < 0:
		return bad("--max-steps", "must not be negative (0 means the default, 10), got %d", p.MaxSteps)
	case p.InputTimeout < 0 || (p.InputTimeout > 0 && p.InputTimeout < time.Second):
		return bad("--input-timeout", "must be at least 1s (0 waits as long as the job lives), got %s", p.InputTimeout)
	case p.OnInputTimeout != "" && p.OnInputTimeout != InputTimeoutFail && p.OnInputTimeout != InputTimeoutReject:
		return bad("--on-input-timeout", "must be %s or %s, got %q", InputTimeoutFail, InputTimeoutReject, p.OnInputTimeout)
	case p.MaxTranscriptBytes < 0 || (p.MaxTranscriptBytes > 0 && p.MaxTranscriptBytes < 1024):
		return bad("--max-transcript-bytes", "must be at least 1024, got %d", p.MaxTranscriptBytes)
	}
	return nil
}

// Spend is what a job has spent so far.
type Spend struct {
	TokensIn, TokensOut int64
	CostMicros          int64 // estimated, in millionths of a dollar
}

// CostUSD is the estimated cost in dollars.
func (s Spend) CostUSD() float64 { return float64(s.CostMicros) / 1e6 }

// OverBudget says which budget of p the spend has reached, or "".
func (p Policy) OverBudget(s Spend) string {
	switch {
	case p.BudgetTokens > 0 && s.TokensIn+s.TokensOut >= p.BudgetTokens:
		return fmt.Sprintf("token budget reached: %d of %d tokens used", s.TokensIn+s.TokensOut, p.BudgetTokens)
	case p.BudgetUSD > 0 && s.CostUSD() >= p.BudgetUSD:
		return fmt.Sprintf("cost budget reached: $%.4f of $%.4f spent (estimated)", s.CostUSD(), p.BudgetUSD)
	}
	return ""
}
