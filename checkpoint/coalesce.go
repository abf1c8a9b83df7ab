package checkpoint

import (
	"context"
	"errors"
	"sync"
	"time"
)

// coalescer runs concurrent requests of one kind for one job as one script
// run: group commit, as databases do it. Requests that arrive while a run is
// in flight wait for it and then go together, up to max, in the next one,
// which the first of them leads. When the job's requests come fast (the
// last run began less than linger ago), a leader also waits up to linger for
// company before it runs: a busy worker then pays one round trip, and one
// script's fixed cost, for many items, and that is what makes a fleet on a
// fast provider cheaper than one script per item. Requests that come slower
// never wait, so an attempt against a real provider (hundreds of
// milliseconds a call) pays nothing. Each item's transition is still applied
// whole, in order, inside that one script, so every invariant of a single
// transition holds.
type coalescer[Req, Res any] struct {
	max    int
	linger time.Duration
	run    func(ctx context.Context, reqs []Req) ([]Res, error)

	mu        sync.Mutex
	busy      bool
	queue     []*coalesced[Req, Res]
	lastStart time.Time
	full      chan struct{} // closed when the queue reaches max while a leader lingers
}

type coalesced[Req, Res any] struct {
	req  Req
	res  Res
	err  error
	lead bool // promoted to run the next batch
	done chan struct{}
}

func (c *coalescer[Req, Res]) do(ctx context.Context, req Req) (Res, error) {
	me := &coalesced[Req, Res]{req: req, done: make(chan struct{})}
	c.mu.Lock()
	c.queue = append(c.queue, me)
	if c.full != nil && len(c.queue) >= c.max {
		close(c.full)
		c.full = nil
	}
	if c.busy {
		c.mu.Unlock()
		<-me.done
		if !me.lead {
			return me.res, me.err
		}
		c.mu.Lock()
	}
	// Leading: this request is first in the queue.
	c.busy = true
	if now := time.Now(); c.linger > 0 && len(c.queue) < c.max && now.Sub(c.lastStart) < c.linger {
		full := make(chan struct{})
		c.full = full
		c.mu.Unlock()
		t := time.NewTimer(c.linger)
		select {
		case <-t.C:
		case <-full:
			t.Stop()
		}
		c.mu.Lock()
		c.full = nil
	}
	c.lastStart = time.Now()
	n := min(len(c.queue), c.max)
	batch := make([]*coalesced[Req, Res], n)
	copy(batch, c.queue)
	c.queue = append(c.queue[:0], c.queue[n:]...)
	c.mu.Unlock()

	c.lead(ctx, batch)
	return me.res, me.err
}

// lead runs one batch and answers each of its requests. Whatever happens,
// even a panic in run, every request of the batch is answered and the lead
// is handed on, so no later request of the job waits forever.
func (c *coalescer[Req, Res]) lead(ctx context.Context, batch []*coalesced[Req, Res]) {
	var res []Res
	err := errRunPanicked
	defer func() {
		for i, b := range batch {
			switch {
			case err != nil:
				b.err = err
			case i < len(res):
				b.res = res[i]
			default:
				b.err = errShortBatch
			}
			if i > 0 {
				close(b.done)
			}
		}
		c.mu.Lock()
		if len(c.queue) > 0 {
			next := c.queue[0]
			next.lead = true
			close(next.done)
		} else {
			c.busy = false
		}
		c.mu.Unlock()
	}()
	reqs := make([]Req, len(batch))
	for i, b := range batch {
		reqs[i] = b.req
	}
	// The batch carries other attempts' transitions: one attempt's
	// cancellation must not fail theirs.
	res, err = c.run(context.WithoutCancel(ctx), reqs)
}

var (
	errRunPanicked = errors.New("checkpoint: a coalesced script run panicked")
	errShortBatch  = errors.New("checkpoint: a coalesced script run answered fewer items than it was given")
)

// coalescers keeps one coalescer per job.
type coalescers[Req, Res any] struct {
	max    int
	linger time.Duration
	run    func(ctx context.Context, job string, reqs []Req) ([]Res, error)
	m      sync.Map // job → *coalescer
}

func (cs *coalescers[Req, Res]) do(ctx context.Context, job string, req Req) (Res, error) {
	v, ok := cs.m.Load(job)
	if !ok {
		v, _ = cs.m.LoadOrStore(job, &coalescer[Req, Res]{max: cs.max, linger: cs.linger, run: func(ctx context.Context, reqs []Req) ([]Res, error) {
			return cs.run(ctx, job, reqs)
		}})
	}
	return v.(*coalescer[Req, Res]).do(ctx, req)
}
