package worker

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the worker's Prometheus metrics. They live on a registry of
// their own (no global state), served by the worker's /metrics.
type Metrics struct {
	calls       *prometheus.CounterVec
	retries     *prometheus.CounterVec
	items       *prometheus.CounterVec
	skipped     prometheus.Counter
	duplicates  prometheus.Counter
	callSeconds prometheus.Histogram

	toolRuns *prometheus.CounterVec

	embeddingRequests, embeddingInputs prometheus.Counter
	steps                              prometheus.Counter

	waits              *prometheus.CounterVec
	breakerTransitions *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them on reg when it is not nil.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "llmfleet_provider_calls_total",
			Help: "Provider calls by outcome: ok or the failure class.",
		}, []string{"outcome"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "llmfleet_retries_total",
			Help: "Attempts that failed and were scheduled again, by class.",
		}, []string{"class"}),
		items: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "llmfleet_items_total",
			Help: "Items finished by this worker, by final status (done, failed).",
		}, []string{"status"}),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "llmfleet_tasks_skipped_total",
			Help: "Tasks whose item was already finished when they ran.",
		}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "llmfleet_duplicate_results_total",
			Help: "Second results for an item that was already done (dropped).",
		}),
		callSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "llmfleet_provider_call_seconds",
			Help:    "Provider call latency.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 14),
		}),
		toolRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "llmfleet_tool_calls_total",
			Help: "Agent items' tool calls by tool and outcome: ok, to_model (a 4xx or invalid arguments sent back to the model), failed.",
		}, []string{"tool", "outcome"}),
		embeddingRequests: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "llmfleet_embedding_requests_total",
			Help: "Embedding requests made by this worker (each carries a pack of items' inputs).",
		}),
		embeddingInputs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "llmfleet_embedding_inputs_total",
			Help: "Inputs sent in embedding requests by this worker.",
		}),
		steps: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "llmfleet_agent_steps_total",
			Help: "Agent items' steps committed by this worker (model answers and tool results).",
		}),
		waits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "llmfleet_waits_total",
			Help: "Tasks delayed without spending an attempt, by what they wait for (breaker, limiter).",
		}, []string{"for"}),
		breakerTransitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "llmfleet_breaker_transitions_total",
			Help: "Breaker transitions made by this worker, by new state (each is made by one worker fleet-wide).",
		}, []string{"to"}),
	}
	if reg != nil {
		reg.MustRegister(m.calls, m.retries, m.items, m.skipped, m.duplicates, m.callSeconds, m.waits, m.breakerTransitions, m.toolRuns, m.steps, m.embeddingRequests, m.embeddingInputs)
	}
	return m
}
