package jobs

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestPool(t *testing.T) {
	t.Parallel()

	t.Run("AllWorkFinishesBounded", func(t *testing.T) {
		t.Parallel()
		const n, values = 4, 200
		var mu sync.Mutex
		seen := map[int]bool{}
		var running, most atomic.Int64
		p := newPool(context.Background(), n, func(v int) error {
			r := running.Add(1)
			defer running.Add(-1)
			for {
				m := most.Load()
				if r <= m || most.CompareAndSwap(m, r) {
					break
				}
			}
			mu.Lock()
			seen[v] = true
			mu.Unlock()
			return nil
		})
		for v := range values {
			if err := p.add(v); err != nil {
				t.Fatalf("add(%d) = %v", v, err)
			}
		}
		if err := p.close(); err != nil {
			t.Fatalf("close() = %v, want nil", err)
		}
		if len(seen) != values {
			t.Errorf("fn saw %d values, want all %d", len(seen), values)
		}
		if m := most.Load(); m > n {
			t.Errorf("%d calls at once, want at most %d", m, n)
		}
	})

	t.Run("FirstErrorStopsAndIsReturned", func(t *testing.T) {
		t.Parallel()
		errBoom := errors.New("boom")
		var calls []int
		// One goroutine, so "first" is well defined.
		p := newPool(context.Background(), 1, func(v int) error {
			calls = append(calls, v)
			if v >= 3 {
				return fmt.Errorf("value %d: %w", v, errBoom)
			}
			return nil
		})
		var addErr error
		for v := 0; addErr == nil; v++ {
			if v > 1000 {
				t.Fatal("add never reported the error")
			}
			addErr = p.add(v)
		}
		err := p.close()
		if err == nil || err.Error() != "value 3: boom" {
			t.Errorf("close() = %v, want the first error, value 3: boom", err)
		}
		if !errors.Is(addErr, errBoom) {
			t.Errorf("add after the error = %v, want it", addErr)
		}
		if want := []int{0, 1, 2, 3}; fmt.Sprint(calls) != fmt.Sprint(want) {
			t.Errorf("fn called with %v, want %v: nothing after the error", calls, want)
		}
	})

	t.Run("CancelUnblocksAdd", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		started, release := make(chan struct{}), make(chan struct{})
		var calls atomic.Int64
		p := newPool(ctx, 1, func(int) error {
			if calls.Add(1) == 1 {
				close(started)
			}
			<-release
			return nil
		})
		if err := p.add(0); err != nil {
			t.Fatal(err)
		}
		<-started
		// The one goroutine is busy: fill the buffer, so the next add
		// can only return through ctx.
		for v := 1; len(p.work) < cap(p.work); v++ {
			if err := p.add(v); err != nil {
				t.Fatal(err)
			}
		}
		blocked := make(chan error)
		go func() { blocked <- p.add(99) }()
		cancel()
		select {
		case err := <-blocked:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("blocked add = %v, want context.Canceled", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("add still blocked after ctx was cancelled")
		}
		if err := p.add(100); !errors.Is(err, context.Canceled) {
			t.Errorf("add after cancel = %v, want context.Canceled", err)
		}
		close(release)
		if err := p.close(); !errors.Is(err, context.Canceled) {
			t.Errorf("close() = %v, want context.Canceled", err)
		}
		if c := calls.Load(); c != 1 {
			t.Errorf("fn called %d times, want 1: values waiting when ctx ended are dropped", c)
		}
	})

	t.Run("NothingAdded", func(t *testing.T) {
		t.Parallel()
		p := newPool(context.Background(), 0, func(int) error { return errors.New("never called") })
		if err := p.close(); err != nil {
			t.Errorf("close() = %v, want nil", err)
		}
	})
}
