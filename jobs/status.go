package jobs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/llmfleet/llmfleet/breaker"
	"github.com/llmfleet/llmfleet/checkpoint"
)

// Status is `status --json`: one consistent snapshot of a job.
type Status struct {
	Job           string `json:"job"`
	State         string `json:"state"`
	Total         int64  `json:"total"`
	Done          int64  `json:"done"`
	Failed        int64  `json:"failed"`
	Active        int64  `json:"active"`
	AwaitingInput int64  `json:"awaiting_input"`
	Pending       int64  `json:"pending"`
	Rejected      int64  `json:"rejected"`
	ProviderCalls int64  `json:"provider_calls"`
	// AgentSteps and ToolRuns are agent items' committed model answers and
	// tool runs (0 for single prompts).
	AgentSteps int64 `json:"agent_steps,omitempty"`
	ToolRuns   int64 `json:"tool_runs,omitempty"`
	TokensIn   int64 `json:"tokens_in"`
	TokensOut  int64 `json:"tokens_out"`
	Duplicates int64 `json:"duplicates"`
	// CostUSD is the estimated cost so far (model price table).
	CostUSD      float64 `json:"cost_usd"`
	BudgetUSD    float64 `json:"budget_usd,omitempty"`
	BudgetTokens int64   `json:"budget_tokens,omitempty"`
	// PausedReason says why a paused job is paused.
	PausedReason string `json:"paused_reason,omitempty"`
	// Models is the usage per model.
	Models      map[string]checkpoint.ModelUsage `json:"models"`
	SuccessRate *float64                         `json:"success_rate"`
	// Breaker is the state of the fleet-wide breaker guarding the job's
	// calls: closed, open or half-open.
	Breaker string `json:"breaker"`
	// BreakerUntil is when an open breaker lets probes through.
	BreakerUntil *time.Time `json:"breaker_until,omitempty"`
	// BreakerTransitions are its recent transitions, newest first, so one
	// that happened between two looks is still seen.
	BreakerTransitions []breaker.Transition `json:"breaker_transitions"`
	StartedAt          *time.Time           `json:"started_at"`
	FinishedAt         *time.Time           `json:"finished_at"`
	Deadline           *time.Time           `json:"deadline,omitempty"`
	// Submitting says a producer is still recording items.
	Submitting bool `json:"submitting,omitempty"`
}

// NewStatus turns a checkpoint snapshot into the status users see.
func NewStatus(j checkpoint.Job) Status {
	s := Status{
		Job: j.Name, State: string(j.State), Total: j.Total, Done: j.Done, Failed: j.Failed,
		Active: j.Active, AwaitingInput: j.AwaitingInput, Pending: j.Pending(), Rejected: j.Rejected,
		ProviderCalls: j.ProviderCalls, AgentSteps: j.ModelSteps, ToolRuns: j.ToolRuns, TokensIn: j.TokensIn, TokensOut: j.TokensOut, Duplicates: j.Duplicates,
		StartedAt: timePtr(j.StartedAt), FinishedAt: timePtr(j.FinishedAt), Deadline: timePtr(j.Policy.Deadline),
		// No call made yet: the breaker of any endpoint starts closed.
		Breaker: "closed",
		CostUSD: j.Spend().CostUSD(), BudgetUSD: j.Policy.BudgetUSD, BudgetTokens: j.Policy.BudgetTokens,
		PausedReason: j.PausedReason, Models: j.Models,
		Submitting: j.SubmittingUntil.After(time.Now()),
	}
	if s.Models == nil {
		s.Models = map[string]checkpoint.ModelUsage{}
	}
	if n := j.Done + j.Failed; n > 0 {
		r := float64(j.Done) / float64(n)
		s.SuccessRate = &r
	}
	return s
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// Ended reports whether the job has ended: every item done or failed
// (items of an expired or cancelled job end failed, those in flight once
// their call returns), or no item was ever accepted, and no producer is
// still recording items.
func (s Status) Ended() bool {
	return s.Done+s.Failed >= s.Total && !s.Submitting
}

// OnlyPeople reports a job with nothing left to do but wait for people:
// every item that has not finished is parked for a person's answer.
func (s Status) OnlyPeople() bool {
	return !s.Ended() && !s.Submitting && s.AwaitingInput > 0 && s.Done+s.Failed+s.AwaitingInput >= s.Total
}

// Exit codes of `status --wait` and the embedded run.
const (
	ExitAllDone       = 0
	ExitSomeFailed    = 4
	ExitEnded         = 5
	ExitAwaitingInput = 6
)

// ExitCode is the `status --wait` exit code of an ended job, or of one
// that waits for people only.
func (s Status) ExitCode() int {
	if s.OnlyPeople() {
		return ExitAwaitingInput
	}
	switch checkpoint.State(s.State) {
	case checkpoint.StateExpired, checkpoint.StateCancelled:
		return ExitEnded
	}
	if s.Failed > 0 {
		return ExitSomeFailed
	}
	return ExitAllDone
}

// Line is a one-line human summary.
func (s Status) Line() string {
	line := fmt.Sprintf("%s: %s — %d/%d done, %d failed, %d active, %d pending, %d calls",
		s.Job, s.State, s.Done, s.Total, s.Failed, s.Active, s.Pending, s.ProviderCalls)
	if s.AwaitingInput > 0 {
		line += fmt.Sprintf(", %d awaiting input", s.AwaitingInput)
	}
	if s.ToolRuns > 0 {
		line += fmt.Sprintf(", %d tool runs", s.ToolRuns)
	}
	if s.CostUSD > 0 {
		line += fmt.Sprintf(", ~$%.4f", s.CostUSD)
	}
	if s.Breaker != "" && s.Breaker != "closed" {
		line += ", breaker " + s.Breaker
	}
	if s.PausedReason != "" {
		line += " (" + s.PausedReason + ")"
	}
	return line
}

// maxShownTransitions bounds the breaker transitions status shows.
const maxShownTransitions = 20

// Load returns the job's status, with the state of its breaker.
func Load(ctx context.Context, store *checkpoint.Store, job string) (Status, error) {
	j, err := store.Job(ctx, job)
	if err != nil {
		return Status{}, err
	}
	s := NewStatus(j)
	if j.Endpoint != "" {
		b, err := breaker.Read(ctx, store.Client(), j.Endpoint)
		if err != nil {
			return s, err
		}
		s.Breaker = b.StateName()
		s.BreakerUntil = timePtr(b.Until)
		s.BreakerTransitions = b.Transitions[:min(len(b.Transitions), maxShownTransitions)]
	}
	if s.BreakerTransitions == nil {
		s.BreakerTransitions = []breaker.Transition{}
	}
	return s, nil
}

// Wait polls the job every interval until it ends or has nothing left but
// items waiting for people (Status.OnlyPeople), calling tick with each
// snapshot, and returns the last one.
func Wait(ctx context.Context, store *checkpoint.Store, job string, interval time.Duration, tick func(Status)) (Status, error) {
	return wait(ctx, store, job, interval, tick, true)
}

// WaitThroughPeople is Wait that goes on while items wait for people (an
// embedded run asking them on its terminal).
func WaitThroughPeople(ctx context.Context, store *checkpoint.Store, job string, interval time.Duration, tick func(Status)) (Status, error) {
	return wait(ctx, store, job, interval, tick, false)
}

func wait(ctx context.Context, store *checkpoint.Store, job string, interval time.Duration, tick func(Status), forPeople bool) (Status, error) {
	if interval <= 0 {
		interval = 500 * time.Millisecond
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		s, err := Load(ctx, store, job)
		if err != nil {
			return s, err
		}
		if s.Pending > 0 {
			// Pending items of an expired or cancelled job are failed here
			// too, so the wait does not hang on a retry scheduled far off.
			var err error
			switch checkpoint.State(s.State) {
			case checkpoint.StateExpired:
				_, err = store.Expire(ctx, job)
			case checkpoint.StateCancelled:
				_, err = store.SweepCancelled(ctx, job)
			}
			if err != nil {
				return s, err
			}
			if s, err = Load(ctx, store, job); err != nil {
				return s, err
			}
		}
		if s.Ended() && s.FinishedAt == nil && s.Total > 0 {
			// Every item is done, but the job was held open by a producer
			// that has since stopped refreshing (it crashed): finish it.
			if err := store.Seal(ctx, job); err != nil {
				return s, err
			}
			if s, err = Load(ctx, store, job); err != nil {
				return s, err
			}
		}
		if tick != nil {
			tick(s)
		}
		if s.Ended() || (forPeople && s.OnlyPeople()) {
			return s, nil
		}
		select {
		case <-ctx.Done():
			return s, ctx.Err()
		case <-t.C:
		}
	}
}

// Progress shows a job's progress: a live bar on a terminal, a plain line
// every few seconds otherwise (logs, CI).
type Progress struct {
	w        io.Writer
	tty      bool
	bar      *progressbar.ProgressBar
	every    time.Duration
	lastLine time.Time
}

// NewProgress returns a Progress writing to w; tty selects the live bar.
func NewProgress(w io.Writer, tty bool) *Progress {
	return &Progress{w: w, tty: tty, every: 5 * time.Second}
}

// Update shows a snapshot.
func (p *Progress) Update(s Status) {
	if !p.tty {
		if time.Since(p.lastLine) >= p.every || s.Ended() || s.OnlyPeople() {
			fmt.Fprintln(p.w, s.Line())
			p.lastLine = time.Now()
		}
		return
	}
	if p.bar == nil || p.bar.GetMax64() != s.Total {
		p.bar = progressbar.NewOptions64(s.Total,
			progressbar.OptionSetWriter(p.w),
			progressbar.OptionSetWidth(30),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("items"),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionClearOnFinish(),
		)
	}
	desc := fmt.Sprintf("%s: %d failed, %d active, breaker %s", s.Job, s.Failed, s.Active, s.Breaker)
	if s.AwaitingInput > 0 {
		desc += fmt.Sprintf(", %d awaiting input", s.AwaitingInput)
	}
	p.bar.Describe(desc)
	_ = p.bar.Set64(s.Done + s.Failed)
}

// Finish ends the display and prints the final line.
func (p *Progress) Finish(s Status) {
	if p.bar != nil {
		_ = p.bar.Finish()
	}
	if p.tty {
		fmt.Fprintln(p.w, s.Line())
	}
}

// ErrNotFound is returned for an unknown job.
var ErrNotFound = checkpoint.ErrJobNotFound

// IsNotFound reports whether err says the job does not exist.
func IsNotFound(err error) bool { return errors.Is(err, checkpoint.ErrJobNotFound) }
