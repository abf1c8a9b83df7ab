package jobs

import (
	"context"
	"sync"
)

// itemConcurrency is how many per-item asynq round trips run at once when
// the caller does not say: asynq enqueues, runs or deletes one task per
// round trip, so parallel round trips are what make 100k items quick.
const itemConcurrency = 16

// pool runs fn on the values added to it, n at a time. The first error of fn
// stops it, and so does the end of ctx: values not yet started are dropped,
// later adds return the error at once, and close reports it. fn is given no
// context of the pool's own, so calls under way when the pool stops finish
// (and count) as they would have.
//
// close must be called, once, after the last add: it is what ends the
// goroutines.
type pool[T any] struct {
	ctx  context.Context // done when the parent is, or at the first error
	stop context.CancelFunc
	work chan T
	wg   sync.WaitGroup

	mu  sync.Mutex
	err error // fn's first error
}

// newPool starts n goroutines (itemConcurrency when n < 1) calling fn.
func newPool[T any](ctx context.Context, n int, fn func(T) error) *pool[T] {
	if n < 1 {
		n = itemConcurrency
	}
	ctx, stop := context.WithCancel(ctx)
	// A buffer of a few values per goroutine lets the caller read its next
	// batch while the round trips of the last one are still under way.
	p := &pool[T]{ctx: ctx, stop: stop, work: make(chan T, n*4)}
	for range n {
		p.wg.Go(func() {
			for v := range p.work {
				if p.ctx.Err() != nil {
					continue // stopped: drain, so that close returns
				}
				if err := fn(v); err != nil {
					p.fail(err)
				}
			}
		})
	}
	return p
}

// add hands v to the pool, waiting while every goroutine is busy and the
// buffer is full. Once the pool has stopped it drops v and returns the
// reason instead.
func (p *pool[T]) add(v T) error {
	if p.ctx.Err() != nil {
		// Checked first: select picks at random between a free buffer slot
		// and a done context, and a stopped pool must refuse every value.
		return p.cause()
	}
	select {
	case p.work <- v:
		return nil
	case <-p.ctx.Done():
		return p.cause()
	}
}

// close waits for the values added to be done with and returns the first
// error of fn, else the parent context's error when it ended before close
// (some values may have been dropped), else nil.
func (p *pool[T]) close() error {
	close(p.work)
	p.wg.Wait()
	err := p.cause() // before stop, which would make it context.Canceled
	p.stop()
	return err
}

func (p *pool[T]) fail(err error) {
	p.mu.Lock()
	if p.err == nil {
		p.err = err
	}
	p.mu.Unlock()
	p.stop()
}

// cause is why the pool stopped, nil while it runs. An error of fn wins
// over the parent's: a call that fails because the parent ended says which
// item it was on.
func (p *pool[T]) cause() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return p.err
	}
	return context.Cause(p.ctx)
}
