package jobs

import (
	"context"
	"fmt"

	"github.com/llmfleet/llmfleet/checkpoint"
	"github.com/llmfleet/llmfleet/tasks"
)

// BudgetChange is a new budget; nil fields are left as they are.
type BudgetChange struct {
	USD    *float64
	Tokens *int64
}

// SetBudget changes a job's budgets. A job paused by its budget runs again
// when the new budget allows more: its parked tasks are run at once instead
// of at their next budget check. It reports whether the job resumed.
func SetBudget(ctx context.Context, d Deps, job string, c BudgetChange) (bool, error) {
	j, err := d.Store.Job(ctx, job)
	if err != nil {
		return false, err
	}
	pol := j.Policy
	if c.USD != nil {
		if *c.USD < 0 {
			return false, &UsageError{Msg: fmt.Sprintf("--budget-usd must not be negative, got %g", *c.USD)}
		}
		pol.BudgetUSD = *c.USD
	}
	if c.Tokens != nil {
		if *c.Tokens < 0 {
			return false, &UsageError{Msg: fmt.Sprintf("--budget-tokens must not be negative, got %d", *c.Tokens)}
		}
		pol.BudgetTokens = *c.Tokens
	}
	if err := d.Store.UpdatePolicy(ctx, job, pol); err != nil {
		return false, err
	}
	return resumeIfAllowed(ctx, d, job)
}

// resumeIfAllowed resumes a paused job whose budget now allows more calls
// and runs its parked tasks.
func resumeIfAllowed(ctx context.Context, d Deps, job string) (bool, error) {
	j, err := d.Store.Job(ctx, job)
	if err != nil {
		return false, err
	}
	if j.State != checkpoint.StatePaused || j.Policy.OverBudget(j.Spend()) != "" {
		return false, nil
	}
	if _, err := d.Store.Resume(ctx, job); err != nil {
		return false, err
	}
	if d.Inspector == nil {
		return true, nil
	}
	// Parked tasks wait in asynq's retry set; run them now. A task that is
	// not waiting (pending, active) refuses, which is fine.
	err = forEachItem(ctx, d.Store, job, []checkpoint.ItemStatus{checkpoint.ItemPending}, func(id string) error {
		_ = d.Inspector.RunTask(j.Policy.Queue, tasks.TaskID(job, id))
		return nil
	})
	return true, err
}
