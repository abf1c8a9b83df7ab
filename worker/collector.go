package worker

import (
	"context"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/llmfleet/llmfleet/checkpoint"
)

// stateCollector reads the fleet's shared state at scrape time: asynq's
// queue depths and the items of unfinished jobs by state. Every worker
// reports the same figures (the state is shared); aggregate them with max,
// not sum. A scrape costs one round trip per queue and one per job, with
// a deadline.
type stateCollector struct {
	inspector *asynq.Inspector
	store     *checkpoint.Store
	queue     *prometheus.Desc
	items     *prometheus.Desc
}

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
	if queues, err := c.inspector.Queues(); err == nil {
		for _, q := range queues {
			info, err := c.inspector.GetQueueInfo(q)
			if err != nil {
				continue
			}
			for state, n := range map[string]int{"pending": info.Pending, "active": info.Active, "scheduled": info.Scheduled,
				"retry": info.Retry, "archived": info.Archived, "completed": info.Completed} {
				ch <- prometheus.MustNewConstMetric(c.queue, prometheus.GaugeValue, float64(n), q, state)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	js, err := c.store.Jobs(ctx)
	if err != nil {
		return
	}
	n := 0
	for _, j := range js {
		if !j.FinishedAt.IsZero() || n >= maxScrapedJobs {
			continue
		}
		n++
		for state, v := range map[string]int64{"pending": j.Pending(), "active": j.Active, "awaiting_input": j.AwaitingInput,
			"done": j.Done, "failed": j.Failed} {
			ch <- prometheus.MustNewConstMetric(c.items, prometheus.GaugeValue, float64(v), j.Name, state)
		}
	}
}
