package worker

import (
	"context"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/llmfleet/llmfleet/checkpoint"
)

// stateCollector reads the fleet's shared state at scrape time: asynq's
// queue depths and the items of unfinished jobs by state. Every worker
// reports the same figures (the state is shared); aggregate them with max,
// not sum. The shared state is read at most every collectEvery, whatever
// the scrape rate: one round trip per queue and one for the jobs.
type stateCollector struct {
	inspector *asynq.Inspector
	store     *checkpoint.Store
	queue     *prometheus.Desc
	items     *prometheus.Desc

	// The figures of the last read, kept for collectEvery: scrapes by
	// several Prometheus servers, or a short scrape interval, read Redis
	// once per interval (asynq's queue info runs Lua scripts).
	mu      sync.Mutex
	at      time.Time
	metrics []prometheus.Metric
}

// collectEvery is how often a scrape reads the shared state again.
const collectEvery = 10 * time.Second

func newStateCollector(inspector *asynq.Inspector, store *checkpoint.Store) *stateCollector {
	return &stateCollector{
		inspector: inspector, store: store,
		queue: prometheus.NewDesc("llmfleet_queue_tasks",
			"Tasks in asynq's queues by state (pending, active, scheduled, retry, archived, completed), the fleet's shared figure.",
			[]string{"queue", "state"}, nil),
		items: prometheus.NewDesc("llmfleet_job_items",
			"Items of unfinished jobs by state (pending, active, awaiting_input, done, failed), the fleet's shared figure.",
			[]string{"job", "state"}, nil),
	}
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.queue
	ch <- c.items
}

// maxScrapedJobs bounds the jobs one scrape reports.
const maxScrapedJobs = 200

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.at) >= collectEvery {
		c.metrics = c.read()
		c.at = time.Now()
	}
	for _, m := range c.metrics {
		ch <- m
	}
}

func (c *stateCollector) read() []prometheus.Metric {
	var out []prometheus.Metric
	ch := &out
	if queues, err := c.inspector.Queues(); err == nil {
		for _, q := range queues {
			info, err := c.inspector.GetQueueInfo(q)
			if err != nil {
				continue
			}
			for state, n := range map[string]int{"pending": info.Pending, "active": info.Active, "scheduled": info.Scheduled,
				"retry": info.Retry, "archived": info.Archived, "completed": info.Completed} {
				*ch = append(*ch, prometheus.MustNewConstMetric(c.queue, prometheus.GaugeValue, float64(n), q, state))
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	js, err := c.store.Jobs(ctx)
	if err != nil {
		return out
	}
	n := 0
	for _, j := range js {
		if !j.FinishedAt.IsZero() || n >= maxScrapedJobs {
			continue
		}
		n++
		for state, v := range map[string]int64{"pending": j.Pending(), "active": j.Active, "awaiting_input": j.AwaitingInput,
			"done": j.Done, "failed": j.Failed} {
			*ch = append(*ch, prometheus.MustNewConstMetric(c.items, prometheus.GaugeValue, float64(v), j.Name, state))
		}
	}
	return out
}
