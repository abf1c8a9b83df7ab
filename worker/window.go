package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/llmfleet/llmfleet/checkpoint"
	"github.com/llmfleet/llmfleet/models"
	"github.com/llmfleet/llmfleet/provider"
	"github.com/llmfleet/llmfleet/tasks"
	"github.com/llmfleet/llmfleet/tokens"
)

// budgetRecheck is how long a task of a paused job waits before it looks at
// the budget again; raising the budget runs the waiting tasks at once.
const budgetRecheck = 5 * time.Minute

// fitted is what the context window did to an item's prompt.
type fitted struct {
	messages  []tasks.Message
	truncated bool
	dropped   int
	recovered bool // shrunk after the provider reported an overflow
	// tokens is the prompt's count by our tokenizer when the window check
	// made one (0 otherwise: the prompt fits by its bytes alone, or the
	// window is unknown); the TPM reservation reuses it.
	tokens int
}

// window returns the prompt limit (tokens) for the item: the context window
// (the job's --context-limit, else the model table) minus the room kept for
// the answer. 0 means unknown: no pre-flight check, the provider decides.
func (a *attempt) window(it *tasks.Item, model string) (limit, window, reserve int) {
	pol := a.claimed.Policy
	window = pol.ContextLimit
	if window == 0 {
		if m, ok := a.modelTable().Lookup(model); ok {
			window = m.ContextWindow
		}
	}
	if window == 0 {
		return 0, 0, 0
	}
	reserve = pol.ReserveOutput
	if it.MaxTokens > 0 {
		reserve = it.MaxTokens
	}
	return window - reserve, window, reserve
}

// preflight fits the item's prompt into the model's window before the call
// (--on-overflow truncate), or fails it without a call (--on-overflow fail).
func (a *attempt) preflight(it *tasks.Item, model string) (fitted, error) {
	f := fitted{messages: it.Messages}
	limit, window, reserve := a.window(it, model)
	if window == 0 {
		return f, nil
	}
	if limit <= 0 {
		return f, fmt.Errorf("no room for the prompt: the context window is %d tokens and %d are reserved for the answer", window, reserve)
	}
	if tokens.AtMost(it.Messages) <= limit {
		// Every token is at least a byte: this prompt fits uncounted.
		return f, nil
	}
	counter := tokens.ForModel(model)
	res, err := counter.Fit(it.Messages, limit)
	if errors.Is(err, tokens.ErrCannotFit) {
		return f, fmt.Errorf("prompt is %d tokens and cannot be truncated to the limit of %d (context %d − %d reserved for the answer): %v",
			counter.Messages(it.Messages), limit, window, reserve, err)
	}
	if err != nil {
		return f, err
	}
	if res.Truncated && a.claimed.Policy.OnOverflow == checkpoint.OverflowFail {
		return f, fmt.Errorf("prompt is %d tokens, over the limit of %d (context %d − %d reserved for the answer); --on-overflow fail",
			res.Before, limit, window, reserve)
	}
	f.messages, f.truncated, f.dropped, f.tokens = res.Messages, res.Truncated, res.Dropped, res.After
	return f, nil
}

// shrink cuts the prompt further after the provider said it overflows,
// using the limit and count the provider reported (its tokenizer differs
// from ours), and updates send and fit. It fails with a reason that gives
// both counts when the prompt cannot fit.
func (a *attempt) shrink(it, send *tasks.Item, model string, fit *fitted, pe *provider.Error) error {
	counter := tokens.ForModel(model)
	ours := counter.Messages(send.Messages)
	provLimit, provCount, completion := pe.ContextLimit, pe.PromptTokens, pe.CompletionTokens
	if completion == 0 {
		// Room for the answer, which the provider did not count: the
		// item's max_tokens, else what the job reserves for answers.
		completion = it.MaxTokens
		if completion == 0 {
			completion = a.claimed.Policy.ReserveOutput
		}
		if completion == 0 {
			completion = defaultCompletionTokens
		}
	}
	target := ours * 3 / 4
	if provLimit > 0 && provCount > 0 {
		// The provider's limit, in our tokens, with a small margin.
		target = int(float64(provLimit-completion)*float64(ours)/float64(provCount)) - 8
		target = min(target, ours-1)
	}
	counts := fmt.Sprintf("the provider counts %d prompt tokens against its limit of %d; we count %d", provCount, provLimit, ours)
	if provCount == 0 {
		counts = fmt.Sprintf("the provider reported an overflow (%s); we count %d prompt tokens", pe.Message, ours)
	}
	if target <= 0 {
		return fmt.Errorf("context overflow: %s, and the prompt cannot be shrunk to fit", counts)
	}
	res, err := counter.Fit(it.Messages, target)
	if err != nil {
		return fmt.Errorf("context overflow: %s, and the prompt cannot be shrunk to %d tokens: %v", counts, target, err)
	}
	send.Messages = res.Messages
	fit.messages, fit.truncated, fit.recovered = res.Messages, true, true
	fit.dropped, fit.tokens = res.Dropped, res.After
	return nil
}

// modelTable is the built-in model table with the job's overrides, built
// once per attempt (the window check and the cost both read it), or the
// handler's built-in table when the job overrides nothing.
func (a *attempt) modelTable() models.Table {
	switch {
	case a.models != nil:
	case len(a.claimed.Policy.Models) == 0 && a.h.builtin != nil:
		a.models = a.h.builtin
	default:
		a.models = models.Builtin().With(a.claimed.Policy.Models)
	}
	return a.models
}

// cost estimates a call's cost from the model price table.
func (a *attempt) cost(c *provider.Completion, model string) float64 {
	t := a.modelTable()
	m, ok := t.Lookup(c.Model)
	if !ok {
		if m, ok = t.Lookup(model); !ok {
			return 0
		}
	}
	return m.CostUSD(c.TokensIn, c.TokensOut)
}

// errBudget is the cause of a retry that waits for a raised budget.
var errBudget = errors.New("job paused: budget reached")

// pauseForBudget pauses the job (once, fleet-wide) and parks the item: it
// stays pending, spends nothing, and comes back when the budget is raised.
func (a *attempt) pauseForBudget(ctx context.Context, reason string) error {
	paused, err := a.h.store.Pause(ctx, a.job, reason)
	if err != nil {
		// The item goes back anyway; the next attempt pauses the job.
		a.log().Warn("pause job", "err", err)
	}
	if paused {
		a.log().Warn("job paused", "reason", reason)
		a.h.alerts.budgetPaused(a.job, reason)
	}
	return a.release(ctx, errBudget, nil, jitter(budgetRecheck))
}
