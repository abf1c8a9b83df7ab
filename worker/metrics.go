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

	// Usage and time, by model, named after OpenTelemetry's GenAI
	// semantic conventions (gen_ai.client.token.usage,
	// gen_ai.client.operation.duration) as Prometheus spells them.
	tokens       *prometheus.CounterVec
	cost         *prometheus.CounterVec
	tokenUsage   *prometheus.HistogramVec
	duration     *prometheus.HistogramVec
	breakerState *prometheus.GaugeVec
	limiterWaits prometheus.Histogram
}

// The OpenTelemetry GenAI conventions' advised buckets.
var (
	tokenBuckets    = []float64{1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864}
	durationBuckets = []float64{0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92}
)

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
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "llmfleet_tokens_total",
			Help: "Tokens of provider calls made by this worker, by model (as the provider named it) and type (input, output), answers not kept included.",
		}, []string{"model", "type"}),
		cost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "llmfleet_cost_usd_total",
			Help: "Estimated cost of this worker's provider calls in dollars (the model price table), by model.",
		}, []string{"model"}),
		tokenUsage: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gen_ai_client_token_usage",
			Help:    "Tokens per provider call (OpenTelemetry gen_ai.client.token.usage), by operation, model and token type.",
			Buckets: tokenBuckets,
		}, []string{"gen_ai_operation_name", "gen_ai_request_model", "gen_ai_token_type"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gen_ai_client_operation_duration_seconds",
			Help:    "Provider call duration (OpenTelemetry gen_ai.client.operation.duration), by operation, model and outcome (ok or the failure class).",
			Buckets: durationBuckets,
		}, []string{"gen_ai_operation_name", "gen_ai_request_model", "outcome"}),
		breakerState: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "llmfleet_breaker_state",
			Help: "The fleet-wide breaker of each endpoint as this worker last heard it: 0 closed, 1 half-open, 2 open.",
		}, []string{"endpoint"}),
		limiterWaits: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "llmfleet_limiter_wait_seconds",
			Help:    "How long calls waited for the fleet's rate limiter (in the worker, or as a delayed task).",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 16),
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
		reg.MustRegister(m.calls, m.retries, m.items, m.skipped, m.duplicates, m.callSeconds, m.waits, m.breakerTransitions, m.toolRuns, m.steps, m.embeddingRequests, m.embeddingInputs,
			m.tokens, m.cost, m.tokenUsage, m.duration, m.breakerState, m.limiterWaits)
	}
	return m
}

// called records one provider call's duration, usage and cost.
func (m *Metrics) called(op, model, outcome string, seconds float64, in, out int, costUSD float64) {
	m.duration.WithLabelValues(op, model, outcome).Observe(seconds)
	if in > 0 {
		m.tokens.WithLabelValues(model, "input").Add(float64(in))
		m.tokenUsage.WithLabelValues(op, model, "input").Observe(float64(in))
	}
	if out > 0 {
		m.tokens.WithLabelValues(model, "output").Add(float64(out))
		m.tokenUsage.WithLabelValues(op, model, "output").Observe(float64(out))
	}
	if costUSD > 0 {
		m.cost.WithLabelValues(model).Add(costUSD)
	}
}

// breakerStates are llmfleet_breaker_state's values.
var breakerStates = map[string]float64{"closed": 0, "half-open": 1, "open": 2}

func (m *Metrics) breakerSeen(endpoint, state string) {
	if v, ok := breakerStates[state]; ok {
		m.breakerState.WithLabelValues(endpoint).Set(v)
	}
}
