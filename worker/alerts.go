package worker

import (
	"github.com/llmfleet/llmfleet/agent"
	"github.com/llmfleet/llmfleet/alerts"
	"github.com/llmfleet/llmfleet/breaker"
)

// alertHooks is where the worker tells the fleet's alerts what it saw. A
// nil *alertHooks (no --alert-webhook) does nothing. Each hook only
// counts or queues in memory: alerts never slow item processing.
type alertHooks struct{ a *alerts.Alerter }

// itemFinished: an item of job ended done or failed.
func (h *alertHooks) itemFinished(job string, failed bool) {
	if h == nil {
		return
	}
	h.a.ItemFinished(job, failed)
}

// breakerTransition: this worker made the breaker of endpoint change state
// (each transition is made by one worker fleet-wide).
func (h *alertHooks) breakerTransition(job, endpoint string, tr *breaker.Transition) {
	if h == nil || tr == nil {
		return
	}
	h.a.BreakerTransition(job, endpoint, *tr)
}

// budgetPaused: this worker paused job for its budget (once fleet-wide).
func (h *alertHooks) budgetPaused(job, reason string) {
	if h == nil {
		return
	}
	h.a.BudgetPaused(job, reason)
}

// parked: an item of job now waits for a person.
func (h *alertHooks) parked(job, item string, waiting []agent.Request) {
	if h == nil {
		return
	}
	h.a.AwaitingInput(job, item, waiting)
}
