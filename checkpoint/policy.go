package checkpoint

import (
	"fmt"
	"time"

	"github.com/llmfleet/llmfleet/models"
)

// Policy is how a job's items are processed. It is fixed when the job is
// created; only the deadline and the budgets may change later.
type Policy struct {
	Model       string        `json:"model,omitempty"`
	System      string        `json:"system,omitempty"`
	Template    string        `json:"template,omitempty"`
	JSONOutput  bool          `json:"json_output,omitempty"`
	Queue       string        `json:"queue"`
	MaxAttempts int           `json:"max_attempts"`
	BackoffMin  time.Duration `json:"backoff_min"`
	BackoffMax  time.Duration `json:"backoff_max"`
	Timeout     time.Duration `json:"timeout"`
	Deadline    time.Time     `json:"deadline,omitzero"`
	Retention   time.Duration `json:"retention"`

	// ContextLimit overrides the model's context window (tokens); 0 uses
	// the model table.
	ContextLimit int `json:"context_limit,omitempty"`
	// ReserveOutput is the room kept for the answer when an item sets no
	// max_tokens.
	ReserveOutput int `json:"reserve_output,omitempty"`
	// OnOverflow is "truncate" (default) or "fail".
	OnOverflow string `json:"on_overflow,omitempty"`
	// Models overrides the built-in model table (context, output, prices).
	Models models.Table `json:"models,omitempty"`
	// BudgetUSD and BudgetTokens cap what the job may spend (0 = none):
	// reaching one pauses the job.
	BudgetUSD    float64 `json:"budget_usd,omitempty"`
	BudgetTokens int64   `json:"budget_tokens,omitempty"`
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
