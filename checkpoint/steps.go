package checkpoint

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/llmfleet/llmfleet/agent"
	"github.com/llmfleet/llmfleet/tasks"
)

// StepKind says what made a step.
type StepKind string

// Step kinds.
const (
	StepModel StepKind = "model" // a model call's answer, with its tool calls
	StepTool  StepKind = "tool"  // one tool call's result
)

// Step is one committed step of an agent item: the message it added to the
// transcript and what it cost. Steps are numbered from 1 in the order they
// were committed.
type Step struct {
	N       int           `json:"n"`
	Kind    StepKind      `json:"kind"`
	Message tasks.Message `json:"message"`
	// A model step's call: provider calls it took (the failed ones
	// included), usage and cost.
	Model          string  `json:"model,omitempty"`
	Calls          int     `json:"calls,omitempty"`
	TokensIn       int     `json:"tokens_in,omitempty"`
	TokensOut      int     `json:"tokens_out,omitempty"`
	CostUSD        float64 `json:"cost_usd,omitempty"`
	FinishReason   string  `json:"finish_reason,omitempty"`
	Truncated      bool    `json:"truncated,omitempty"`
	TokensDropped  int     `json:"tokens_dropped,omitempty"`
	UsageEstimated bool    `json:"usage_estimated,omitempty"`
	// Runs is how many times a tool step's tool ran (0 when its arguments
	// were refused without a run).
	Runs int `json:"runs,omitempty"`
	// Decision is a person's decision that resolved a tool step's call
	// (approve, reject, edit, answer).
	Decision agent.DecisionKind `json:"decision,omitempty"`
	At       time.Time          `json:"at"`
}

// Appended is the outcome of AppendStep.
type Appended string

// AppendStep outcomes.
const (
	StepAppended Appended = "ok"
	// StepExists: step N is already committed (a retry after a lost
	// reply); nothing changed.
	StepExists Appended = "exists"
)

// AppendStep commits step st (st.N must be the item's step count + 1)
// under the attempt's claim token. A model step's usage is added to the
// job's spend in the same script, and the item's count of calls for the
// step that follows starts from 0: --max-attempts bounds the failed calls
// of one step. It fails with ErrClaimLost when another attempt holds the
// item.
func (s *Store) AppendStep(ctx context.Context, name, id, token string, st Step) (Appended, error) {
	if st.N < 1 {
		// The script answers 'exists' for any n up to the count: a step
		// without its number would be said committed and be lost.
		return "", fmt.Errorf("commit step %d of item %q of job %q: steps are numbered from 1", st.N, id, name)
	}
	b, err := json.Marshal(st)
	if err != nil {
		return "", fmt.Errorf("commit step %d of item %q of job %q: %w", st.N, id, name, err)
	}
	out, err := appendStepScript.Run(ctx, s.rdb, keys(name), id, token, st.N, b,
		st.TokensIn, st.TokensOut, st.Model, int64(st.CostUSD*1e6+0.5), string(st.Kind), st.Runs).Text()
	if err != nil {
		return "", fmt.Errorf("commit step %d of item %q of job %q: %w", st.N, id, name, err)
	}
	switch out {
	case "lost":
		return "", ErrClaimLost
	case "gap":
		return "", fmt.Errorf("commit step %d of item %q of job %q: steps before it are missing", st.N, id, name)
	}
	return Appended(out), nil
}

// Steps returns an agent item's committed steps, in order.
func (s *Store) Steps(ctx context.Context, name, id string) ([]Step, error) {
	raw, err := stepsScript.Run(ctx, s.rdb, keys(name), id).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("read steps of item %q of job %q: %w", id, name, err)
	}
	out := make([]Step, 0, len(raw))
	for i, r := range raw {
		var st Step
		if err := json.Unmarshal([]byte(r), &st); err != nil {
			return nil, fmt.Errorf("read steps of item %q of job %q: step %d: %w", id, name, i+1, err)
		}
		out = append(out, st)
	}
	return out, nil
}

// Transcript returns the messages of an item's input followed by those of
// its steps.
func Transcript(input []tasks.Message, steps []Step) []tasks.Message {
	out := make([]tasks.Message, 0, len(input)+len(steps))
	out = append(out, input...)
	for _, st := range steps {
		out = append(out, st.Message)
	}
	return out
}

// Unsend gives back the call Begin counted for this attempt, keeping the
// claim: an agent item that resumes at a tool run or at its finished
// answer makes no call first.
func (s *Store) Unsend(ctx context.Context, name, id, token string) error {
	out, err := unsendScript.Run(ctx, s.rdb, keys(name), id, token).Text()
	if err != nil {
		return fmt.Errorf("give back the call of item %q of job %q: %w", id, name, err)
	}
	if out == "lost" {
		return ErrClaimLost
	}
	return nil
}
