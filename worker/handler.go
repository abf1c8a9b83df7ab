package worker

import (
	"context"
	"github.com/llmfleet/llmfleet/agent"
	"log/slog"
	"sync"
	"time"

	"github.com/hibiken/asynq"

	"github.com/llmfleet/llmfleet/checkpoint"
	"github.com/llmfleet/llmfleet/models"
	"github.com/llmfleet/llmfleet/provider"
	"github.com/llmfleet/llmfleet/tasks"
)

// Completer makes one provider call for an item, offering the model tools
// when given. *provider.Client is the implementation; every failure it
// returns is a *provider.Error.
type Completer interface {
	Complete(ctx context.Context, it *tasks.Item, model string, tools ...agent.Tool) (*provider.Completion, error)
	Embed(ctx context.Context, model string, inputs []string, dims int) (*provider.Embeddings, error)
}

// Handler processes llm:item tasks: one attempt per run (item.go).
type Handler struct {
	store   *checkpoint.Store
	client  Completer
	log     *slog.Logger
	metrics *Metrics
	now     func() time.Time
	guard   *guard
	tools   *agent.Runner
	packer  *packer
	alerts  *alertHooks
	// inspector tells a task run from asynq's archive from a re-dispatch.
	inspector *asynq.Inspector
	// builtin is the model table of jobs that override nothing.
	builtin models.Table

	mu      sync.Mutex
	expired map[string]bool // jobs this process already swept as expired
	noted   map[string]bool // jobs whose breaker endpoint this process noted
}

// NewHandler returns a Handler. g, when not nil, is the fleet-wide breaker
// and rate limiter the calls go through.
func NewHandler(store *checkpoint.Store, client Completer, log *slog.Logger, m *Metrics, g *guard) *Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if m == nil {
		m = NewMetrics(nil)
	}
	if g == nil {
		g = &guard{}
	}
	return &Handler{store: store, client: client, log: log, metrics: m, now: time.Now, guard: g, tools: &agent.Runner{Log: log}, packer: newPacker(),
		builtin: models.Builtin(), expired: map[string]bool{}, noted: map[string]bool{}}
}
