package worker

// The agent loop: an item of a job with tools is a model/tool loop, run by
// the attempt that holds its claim. The transcript (the item's messages and
// its committed steps) says where the loop stands (agent.Next), so an
// attempt that follows a crash, a retry or a redeploy resumes at the last
// committed step: every model answer is committed before any tool runs,
// and every tool result before the next call. A tool run that started but
// was not committed runs again, with the same Idempotency-Key.
//
// Model calls go through callModel, the single-prompt path's call: the
// window, the breaker, the limiter, classification and retries are the
// same, and --max-attempts bounds the failed calls of one step.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/llmfleet/llmfleet/agent"
	"github.com/llmfleet/llmfleet/checkpoint"
	"github.com/llmfleet/llmfleet/provider"
	"github.com/llmfleet/llmfleet/tasks"
)

func (a *attempt) runAgent(ctx context.Context, it *tasks.Item, model string) error {
	h := a.h
	pol := a.claimed.Policy
	steps, err := h.store.Steps(ctx, a.job, a.id)
	if err != nil {
		return a.release(ctx, err, nil, time.Second)
	}
	for _, st := range steps {
		a.prior += st.Calls
	}
	tools := agent.Select(pol.Tools, it.Tools)
	size := transcriptBytes(it.Messages, steps)
	for {
		msgs := checkpoint.Transcript(it.Messages, steps)
		move, pending := agent.Next(msgs)
		if move == agent.Finished && len(steps) == 0 {
			// The item's own messages end with an answer: the run has not
			// begun, the model answers them.
			move = agent.CallModel
		}
		if move != agent.CallModel && a.unsent {
			// Begin counted a call this step does not make.
			if err := h.store.Unsend(ctx, a.job, a.id, a.token); err != nil {
				if errors.Is(err, checkpoint.ErrClaimLost) {
					return nil
				}
				return a.release(ctx, err, nil, time.Second)
			}
			a.unsent = false
		}
		if move != agent.Finished && ctx.Err() != nil {
			// Stopping between steps: every step so far is committed.
			return a.release(ctx, ctx.Err(), nil, time.Second)
		}
		switch move {
		case agent.Finished:
			return a.commitRun(context.WithoutCancel(ctx), it, steps)

		case agent.RunTools:
			head := lastModelStep(steps)
			var reqs []agent.Request
			if needsPerson(tools, pending) {
				if reqs, _, err = h.store.Requests(ctx, a.job, a.id); err != nil {
					return a.release(ctx, err, nil, time.Second)
				}
			}
			var waiting []agent.Request
			for _, tc := range pending {
				var decision *agent.Decision
				if t, ok := agent.Find(tools, tc.Function.Name); ok && t.NeedsPerson() {
					r, found := agent.FindRequest(reqs, head.N, tc.ID)
					if !found {
						reqs = append(reqs, agent.NewRequest(t, tc, head.N, h.now()))
						r = &reqs[len(reqs)-1]
					}
					if r.Decision == nil {
						if !a.inputTimedOut(*r) {
							waiting = append(waiting, *r)
							continue
						}
						if pol.OnInputTimeout != checkpoint.InputTimeoutReject {
							reason := fmt.Sprintf("request %s (tool %s) had no answer within %s (--input-timeout)", r.ID, r.Tool, pol.InputTimeout)
							return a.fail(ctx, a.newFailure(provider.InputTimeout, reason, 0, 0), true)
						}
						r.Decision = &agent.Decision{Decision: agent.DecideReject, TimedOut: true, At: h.now().UTC(),
							Message: fmt.Sprintf("no one answered within %s", pol.InputTimeout)}
					}
					decision = r.Decision
				}
				st, err := a.runTool(ctx, tools, tc, head, len(steps)+1, decision)
				if st == nil {
					return err
				}
				steps = append(steps, *st)
				size += messageBytes(st.Message)
			}
			if len(waiting) > 0 {
				return a.park(ctx, reqs, waiting)
			}

		case agent.CallModel:
			if size > pol.TranscriptLimit() {
				// Checked before a call, never after an answer: an item
				// that finished is done, whatever its size.
				return a.tooLarge(ctx, size)
			}
			if n := modelSteps(steps); n >= pol.StepLimit() {
				reason := fmt.Sprintf("the model still called tools after %d model calls (--max-steps %d); the transcript is kept (export --transcripts)", n, pol.StepLimit())
				return a.fail(ctx, a.newFailure(provider.MaxSteps, reason, 0, 0), true)
			}
			if pol.BudgetUSD > 0 || pol.BudgetTokens > 0 {
				// Checked here rather than at the claim: an item that
				// resumes at a tool run or a person's answer spends
				// nothing until its next model call.
				if j, err := h.store.Job(ctx, a.job); err == nil {
					if reason := pol.OverBudget(j.Spend()); reason != "" {
						return a.pauseForBudget(ctx, reason)
					}
				}
			}
			send := *it
			send.Messages = msgs
			ans, err := a.callModel(ctx, &send, model, tools)
			if ans == nil {
				return err
			}
			comp := ans.comp
			st := checkpoint.Step{
				N: len(steps) + 1, Kind: checkpoint.StepModel,
				Message: tasks.Message{Role: "assistant", Content: comp.Content, ToolCalls: comp.ToolCalls},
				Model:   comp.Model, Calls: ans.calls, TokensIn: comp.TokensIn, TokensOut: comp.TokensOut,
				CostUSD: a.cost(comp, model), FinishReason: comp.FinishReason,
				Truncated: ans.fit.truncated, TokensDropped: ans.fit.dropped, UsageEstimated: comp.UsageEstimated,
				At: h.now().UTC(),
			}
			if ok, err := a.appendStep(ctx, st); !ok {
				return err
			}
			a.prior += ans.calls
			// The calls counted at the claim were this step's.
			a.claimed.Calls, a.claimed.LastErr = 0, nil
			steps = append(steps, st)
			size += messageBytes(st.Message)
		}
	}
}

// runTool runs one pending call and commits its result as step n. It
// returns nil and ProcessTask's answer when the attempt ended instead.
func (a *attempt) runTool(ctx context.Context, tools []agent.Tool, tc tasks.ToolCall, head checkpoint.Step, n int, d *agent.Decision) (*checkpoint.Step, error) {
	h := a.h
	pol := a.claimed.Policy
	var out agent.Outcome
	var prefix string
	t, ok := agent.Find(tools, tc.Function.Name)
	if ok && d != nil {
		switch d.Decision {
		case agent.DecideEdit:
			tc.Function.Arguments = string(d.Arguments)
			prefix = "a person changed the arguments to " + string(d.Arguments) + "; the result: "
		case agent.DecideReject:
			out.Content = agent.Rejected(d.Message)
		case agent.DecideAnswer:
			out.Content = d.Answer
		}
	}
	switch {
	case !ok:
		out.Content = fmt.Sprintf("unknown tool %q: the tools you may call are %s", tc.Function.Name, strings.Join(agent.Names(tools), ", "))
		h.metrics.toolRuns.WithLabelValues("unknown", "to_model").Inc()
	case d != nil && (d.Decision == agent.DecideReject || d.Decision == agent.DecideAnswer):
		h.metrics.toolRuns.WithLabelValues(t.Name, string(d.Decision)).Inc()
	case t.Kind() == agent.ExecutorHuman:
		// Only a person's answer can resolve a human tool's call.
		return nil, a.fail(ctx, a.newFailure(provider.ToolError, fmt.Sprintf("tool %s is answered by a person, and the decision %q is no answer", t.Name, d.Decision), 0, 0), true)
	default:
		// The job as it is now, not as it was at the claim: a tool does
		// not run for a job cancelled, or past a deadline moved earlier,
		// since.
		if j, err := h.store.Job(ctx, a.job); err == nil {
			pol.Deadline = j.Policy.Deadline
			if j.State == checkpoint.StateCancelled || j.State == checkpoint.StateExpired {
				a.claimed.State = j.State
				return nil, a.jobEnded(ctx)
			}
		}
		if !pol.Deadline.IsZero() && !h.now().Before(pol.Deadline) {
			return nil, a.expire(ctx)
		}
		runCtx, cancel := ctx, context.CancelFunc(func() {})
		if !pol.Deadline.IsZero() {
			runCtx, cancel = context.WithDeadlineCause(ctx, pol.Deadline, provider.ErrJobDeadline)
		}
		key := agent.IdempotencyKey(a.job, a.id, head.N, head.At.UnixMilli(), tc.ID)
		out = h.tools.Run(runCtx, t, tc, agent.Call{Job: a.job, Item: a.id, Key: key})
		deadlinePassed := runCtx.Err() != nil && ctx.Err() == nil
		cancel()
		switch {
		case out.Failed != nil && ctx.Err() != nil:
			// Stopping: the run is not committed and runs again later,
			// with the same key.
			return nil, a.release(ctx, ctx.Err(), nil, time.Second)
		case out.Failed != nil && deadlinePassed:
			return nil, a.expire(ctx)
		case out.Failed != nil:
			h.metrics.toolRuns.WithLabelValues(t.Name, "failed").Inc()
			return nil, a.fail(ctx, a.newFailure(provider.ToolError, out.Failed.Error(), 0, 0), true)
		case out.Runs == 0:
			h.metrics.toolRuns.WithLabelValues(t.Name, "to_model").Inc()
		default:
			h.metrics.toolRuns.WithLabelValues(t.Name, "ok").Inc()
		}
	}
	content := prefix + out.Content
	if content == "" {
		content = "(no output)" // providers refuse an empty tool message
	}
	st := checkpoint.Step{
		N: n, Kind: checkpoint.StepTool, Runs: out.Runs, At: h.now().UTC(),
		Message: tasks.Message{Role: "tool", ToolCallID: tc.ID, Content: content},
	}
	if d != nil {
		st.Decision = d.Decision
	}
	if ok, err := a.appendStep(ctx, st); !ok {
		return nil, err
	}
	return &st, nil
}

// appendStep commits a step, durably: a model answer was paid for, a tool
// may have changed the world. false ends the attempt with err (nil when
// another attempt holds the item).
func (a *attempt) appendStep(ctx context.Context, st checkpoint.Step) (bool, error) {
	err := a.durably(context.WithoutCancel(ctx), func(ctx context.Context) error {
		_, err := a.h.store.AppendStep(ctx, a.job, a.id, a.token, st)
		return err
	})
	switch {
	case errors.Is(err, checkpoint.ErrClaimLost):
		// Another attempt holds the item (this one's lease was lost): it
		// resumes from what is committed.
		a.log().Warn("claim lost before a step was committed: the step is left to the attempt that holds the item", "step", st.N)
		return false, nil
	case err != nil:
		return false, err
	}
	a.h.metrics.steps.Inc()
	return true, nil
}

func (a *attempt) tooLarge(ctx context.Context, size int) error {
	reason := fmt.Sprintf("transcript is %d bytes, over --max-transcript-bytes %d; it is kept (export --transcripts)", size, a.claimed.Policy.TranscriptLimit())
	return a.fail(ctx, a.newFailure(provider.TooLarge, reason, 0, 0), true)
}

// commitRun records a finished agent item's result: the final answer and
// the sums of its steps.
func (a *attempt) commitRun(ctx context.Context, it *tasks.Item, steps []checkpoint.Step) error {
	r := checkpoint.Result{ID: a.id, FinishedAt: a.h.now().UTC(), Metadata: it.Metadata}
	for _, st := range steps {
		switch st.Kind {
		case checkpoint.StepModel:
			r.Steps++
			r.Attempts += st.Calls
			r.TokensIn += st.TokensIn
			r.TokensOut += st.TokensOut
			r.TokensDropped += st.TokensDropped
			r.CostUSD += st.CostUSD
			r.Truncated = r.Truncated || st.Truncated
			r.UsageEstimated = r.UsageEstimated || st.UsageEstimated
			r.Model, r.FinishReason, r.Output = st.Model, st.FinishReason, st.Message.Content
		case checkpoint.StepTool:
			r.ToolCalls++
		}
	}
	return a.record(ctx, func(ctx context.Context) (checkpoint.Committed, error) {
		return a.h.store.CommitRun(ctx, a.job, a.token, r)
	})
}

func lastModelStep(steps []checkpoint.Step) checkpoint.Step {
	for i := len(steps) - 1; i >= 0; i-- {
		if steps[i].Kind == checkpoint.StepModel {
			return steps[i]
		}
	}
	return checkpoint.Step{}
}

func modelSteps(steps []checkpoint.Step) int {
	n := 0
	for _, st := range steps {
		if st.Kind == checkpoint.StepModel {
			n++
		}
	}
	return n
}

// transcriptBytes is the JSON size of an item's messages and steps'
// messages, what --max-transcript-bytes bounds.
func transcriptBytes(input []tasks.Message, steps []checkpoint.Step) int {
	n := 0
	for _, m := range input {
		n += messageBytes(m)
	}
	for _, st := range steps {
		n += messageBytes(st.Message)
	}
	return n
}

func messageBytes(m tasks.Message) int {
	b, _ := json.Marshal(m)
	return len(b)
}

// parkRecheck is how long a parked item's task waits before it looks at
// its requests again when no input timeout or deadline comes sooner; an
// answer runs it at once.
const parkRecheck = 24 * time.Hour

func needsPerson(tools []agent.Tool, calls []tasks.ToolCall) bool {
	for _, tc := range calls {
		if t, ok := agent.Find(tools, tc.Function.Name); ok && t.NeedsPerson() {
			return true
		}
	}
	return false
}

// inputTimedOut reports a request past --input-timeout.
func (a *attempt) inputTimedOut(r agent.Request) bool {
	d := a.claimed.Policy.InputTimeout
	return d > 0 && !a.h.now().Before(r.Since.Add(d))
}

// errAwaitingInput is the cause of the wait of a parked item's task: asynq
// shows it as the task's last error.
type errAwaitingInput struct{ tools []string }

func (e errAwaitingInput) Error() string {
	return "awaiting a person: " + strings.Join(e.tools, ", ") + " (see producer inbox)"
}

// park checkpoints the item's requests and parks it (awaiting_input): its
// task leaves the queue for asynq's retry set, holding no worker, lease or
// slot, until an answer runs it (producer run --responses, respond), its
// input timeout or the job's deadline comes, or parkRecheck passes.
func (a *attempt) park(ctx context.Context, reqs, waiting []agent.Request) error {
	h := a.h
	pol := a.claimed.Policy
	err := a.durably(context.WithoutCancel(ctx), func(ctx context.Context) error {
		return h.store.Park(ctx, a.job, a.id, a.token, reqs, a.unsent)
	})
	switch {
	case errors.Is(err, checkpoint.ErrClaimLost):
		return nil
	case err != nil:
		return err
	}
	a.unsent = false
	now := h.now()
	delay := parkRecheck
	var tools []string
	for _, r := range waiting {
		tools = append(tools, r.Tool)
		if pol.InputTimeout > 0 {
			delay = min(delay, r.Since.Add(pol.InputTimeout).Sub(now))
		}
	}
	if !pol.Deadline.IsZero() {
		delay = min(delay, pol.Deadline.Sub(now))
	}
	// asynq schedules in whole seconds, truncated: round up, so the task
	// never wakes before its timeout.
	delay = max(delay, time.Second).Truncate(time.Second) + time.Second
	h.metrics.items.WithLabelValues("parked").Inc()
	h.alerts.parked(a.job, a.id, waiting)
	a.log().Info("item parked: waiting for a person", "requests", len(waiting), "tools", strings.Join(tools, ","))
	return &RetryError{Err: errAwaitingInput{tools: tools}, Delay: delay, Wait: true}
}
