package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/llmfleet/llmfleet/tasks"
)

// RequestKind says what a parked call waits for.
type RequestKind string

// Request kinds.
const (
	// KindApproval: a call to a tool with approval "always", to approve,
	// reject or edit before it runs.
	KindApproval RequestKind = "approval"
	// KindQuestion: a call to an executor "human" tool, to answer.
	KindQuestion RequestKind = "question"
)

// DecisionKind is a person's answer to a request.
type DecisionKind string

// Decisions.
const (
	DecideApprove DecisionKind = "approve"
	DecideReject  DecisionKind = "reject"
	DecideEdit    DecisionKind = "edit"
	DecideAnswer  DecisionKind = "answer"
)

// Request is one tool call waiting for a person. Its id is the model's call
// id; Step is the model step that made the call, since a provider may
// number its calls anew in each answer.
type Request struct {
	ID        string          `json:"request"`
	Step      int             `json:"step"`
	Kind      RequestKind     `json:"kind"`
	Tool      string          `json:"tool"`
	Arguments json.RawMessage `json:"arguments,omitempty"`
	Question  string          `json:"question,omitempty"`
	Since     time.Time       `json:"since"`
	Decision  *Decision       `json:"decision,omitempty"`
}

// Decision is what a person decided, or what --on-input-timeout decided
// for them (TimedOut).
type Decision struct {
	Decision  DecisionKind    `json:"decision"`
	Message   string          `json:"message,omitempty"`
	Arguments json.RawMessage `json:"arguments,omitempty"`
	Answer    string          `json:"answer,omitempty"`
	At        time.Time       `json:"at"`
	TimedOut  bool            `json:"timed_out,omitempty"`
}

// NewRequest is the request a call to t makes. A question is the call's
// "question" argument when it has one, else its arguments.
func NewRequest(t *Tool, tc tasks.ToolCall, step int, now time.Time) Request {
	r := Request{ID: tc.ID, Step: step, Kind: KindApproval, Tool: t.Name, Since: now.UTC()}
	if args := strings.TrimSpace(tc.Function.Arguments); json.Valid([]byte(args)) {
		r.Arguments = json.RawMessage(args)
	} else if args != "" {
		// The model wrote something that is not JSON: keep it, as text.
		r.Arguments, _ = json.Marshal(args)
	}
	if t.Kind() == ExecutorHuman {
		r.Kind = KindQuestion
		var q struct {
			Question string `json:"question"`
		}
		if json.Unmarshal(r.Arguments, &q) == nil && q.Question != "" {
			r.Question = q.Question
		} else {
			r.Question = string(r.Arguments)
		}
	}
	return r
}

// Fits checks that d answers r: approve and edit are for approvals, answer
// for questions, reject for both; edited arguments must be valid for the
// tool (runner checks them against its parameters).
func (r *Request) Fits(d Decision, t *Tool, runner *Runner) error {
	switch d.Decision {
	case DecideApprove:
		if r.Kind != KindApproval {
			return fmt.Errorf("request %s is a question for %s: answer it (or reject it), approve is for approvals", r.ID, r.Tool)
		}
	case DecideEdit:
		if r.Kind != KindApproval {
			return fmt.Errorf("request %s is a question for %s: answer it (or reject it), edit is for approvals", r.ID, r.Tool)
		}
		if len(d.Arguments) == 0 {
			return errors.New("edit needs arguments (a JSON object)")
		}
		if t != nil && runner != nil {
			if err := runner.ValidateArguments(t, string(d.Arguments)); err != nil {
				return err
			}
		}
	case DecideAnswer:
		if r.Kind != KindQuestion {
			return fmt.Errorf("request %s asks for approval to run %s: approve, reject or edit it", r.ID, r.Tool)
		}
	case DecideReject:
	default:
		return fmt.Errorf("decision must be approve, reject, edit or answer, got %q", d.Decision)
	}
	return nil
}

// Rejected is the tool result the model receives for a rejected call.
func Rejected(message string) string {
	if strings.TrimSpace(message) == "" {
		return "rejected by a person"
	}
	return "rejected by a person: " + message
}

// Undecided returns the requests no one decided yet.
func Undecided(reqs []Request) []Request {
	var out []Request
	for _, r := range reqs {
		if r.Decision == nil {
			out = append(out, r)
		}
	}
	return out
}

// FindRequest returns the request of the call id made by model step step.
func FindRequest(reqs []Request, step int, id string) (*Request, bool) {
	for i := range reqs {
		if reqs[i].ID == id && reqs[i].Step == step {
			return &reqs[i], true
		}
	}
	return nil, false
}

// Named returns the request a person names by id: the undecided one with
// that id, else the latest decided one (answering it changes nothing).
func Named(reqs []Request, id string) (*Request, bool) {
	var decided *Request
	for i := range reqs {
		if reqs[i].ID != id {
			continue
		}
		if reqs[i].Decision == nil {
			return &reqs[i], true
		}
		decided = &reqs[i]
	}
	return decided, decided != nil
}
